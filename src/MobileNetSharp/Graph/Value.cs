using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// A tensor flowing through the graph: a graph input, a node output, or a constant (weights).
/// Shapes are logical (NCHW for images), fully static once shape inference has run.
/// </summary>
public sealed class Value
{
    public string Name { get; set; }
    public DataType DataType { get; set; }
    public int[] Shape { get; set; }
    /// <summary>Non-null for weights and other constants.</summary>
    public Tensor? Constant { get; set; }
    /// <summary>The node that computes this value; null for inputs and constants.</summary>
    public Node? Producer { get; internal set; }
    /// <summary>
    /// For a graph input or output: the name of each dimension that is symbolic in the model it came from
    /// (ONNX dim_param), null for a fixed one; null when all are fixed. <see cref="Shape"/> still holds the
    /// size used now; exporters write these names instead of the sizes.
    /// </summary>
    public string?[]? DimParams { get; set; }

    public Value(string name, DataType type, int[] shape, Tensor? constant = null)
    {
        Name = name;
        DataType = type;
        Shape = shape;
        Constant = constant;
    }

    public static Value FromConstant(string name, Tensor t) => new(name, t.DataType, t.Shape, t);

    public bool IsConstant => Constant is not null;
    public int Rank => Shape.Length;
    public long Length => Tensors.Shape.Size(Shape);

    public override string ToString() => $"{Name}{Tensors.Shape.Format(Shape)}";
}
