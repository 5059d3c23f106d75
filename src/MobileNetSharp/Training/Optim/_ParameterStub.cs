// TEMPORARY: replaced by the real Parameter on merge of branch optim.
namespace MobileNetSharp.Training;

public sealed class Parameter(string name, float[] value, int[] shape)
{
    public string Name { get; } = name;
    public float[] Value { get; } = value;
    public float[] Grad { get; } = new float[value.Length];
    public int[] Shape { get; } = shape;
    public bool DecayExempt { get; init; } = shape.Length <= 1;
}
