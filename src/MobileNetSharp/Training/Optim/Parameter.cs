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
        _value = value;
        _grad = new float[value.Length];
        Shape = shape;
        DecayExempt = shape.Length <= 1;
    }

    /// <summary>Unique within an optimizer; optimizer state is keyed by it ("name/momentum").</summary>
    public string Name { get; }

    /// <summary>The values: the array given to the constructor, not a copy, so a model and its optimizer share it. Replaceable by an array of the same length.</summary>
    public float[] Value
    {
        get => _value;
        set => _value = SameLength(value, nameof(Value));
    }

    /// <summary>The gradient, zeros at first. Replaceable by an array of the same length (e.g. a buffer the backward pass owns).</summary>
    public float[] Grad
    {
        get => _grad;
        set => _grad = SameLength(value, nameof(Grad));
    }

    public int[] Shape { get; }

    private float[] _value, _grad;

    private float[] SameLength(float[] array, string what)
    {
        ArgumentNullException.ThrowIfNull(array, what);
        if (array.Length != _value.Length)
            throw new ArgumentException($"Parameter '{Name}': {what} must hold {_value.Length} values, got {array.Length}.", what);
        return array;
    }

    /// <summary>
    /// True for 1-D parameters (biases, BatchNorm gamma/beta): excluded from weight decay by default (standard
    /// practice, e.g. Goyal et al. 2017 / timm). Set it with an initializer to override.
    /// </summary>
    public bool DecayExempt { get; init; }

    public int Length => Value.Length;

    public override string ToString() => $"{Name} [{string.Join("x", Shape)}]";
}
