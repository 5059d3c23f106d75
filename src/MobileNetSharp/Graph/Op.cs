using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// What a node computes. Ops are immutable records with the operator's attributes; they know
/// how to infer output shapes from input shapes. The op set follows ONNX semantics (NCHW) so
/// that importers and exporters map one-to-one; the runtime chooses physical layouts.
/// </summary>
public abstract record Op
{
    /// <summary>The ONNX-style operator name, e.g. "Conv".</summary>
    public abstract string Type { get; }

    /// <summary>Output shapes for the node's current input shapes. Throws GraphException on a mismatch.</summary>
    public abstract int[][] InferShapes(Node node);

    /// <summary>Output element types; by default the first input's.</summary>
    public virtual DataType[] InferTypes(Node node) => [node.Input(0).DataType];

    /// <summary>A short human description, e.g. "Conv 3x3/s2 g32 +Relu6".</summary>
    public virtual string Describe() => Type;

    protected static GraphException Error(Node node, string message) => new(node, message);
}
