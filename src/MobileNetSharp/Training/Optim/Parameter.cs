namespace MobileNetSharp.Training;

/// <summary>
/// A trainable tensor: its values and its gradient (same length), updated in place by optimizers.
/// <see cref="Grad"/> is allocated (zeros) by the constructor; the backward pass accumulates into it and the
/// trainer zeroes it between steps. Optimizers read <see cref="Grad"/> and write <see cref="Value"/> only.
/// </summary>
public sealed class Parameter
{
    public Parameter(string name, float[] value, int[] shape)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(value);
        ArgumentNullException.ThrowIfNull(shape);
        long count = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"Parameter '{name}': negative dimension in shape [{string.Join(", ", shape)}].", nameof(shape));
            count *= d;
        }
        if (count != value.Length)
            throw new ArgumentException($"Parameter '{name}': shape [{string.Join(", ", shape)}] holds {count} values but {value.Length} were given.", nameof(value));
        Name = name;
        Value = value;
        Grad = new float[value.Length];
        Shape = shape;
        DecayExempt = shape.Length <= 1;
    }

    /// <summary>Unique within an optimizer; optimizer state is keyed by it ("name/momentum").</summary>
    public string Name { get; }
    public float[] Value { get; }
    public float[] Grad { get; }
    public int[] Shape { get; }

    /// <summary>
    /// True for 1-D parameters (biases, BatchNorm gamma/beta): excluded from weight decay by default (standard
    /// practice, e.g. Goyal et al. 2017 / timm). Set it with an initializer to override.
    /// </summary>
    public bool DecayExempt { get; init; }

    public int Length => Value.Length;

    public override string ToString() => $"{Name} [{string.Join("x", Shape)}]";
}
