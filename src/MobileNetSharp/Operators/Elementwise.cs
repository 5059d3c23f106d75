using MobileNetSharp.Kernels;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>A point-wise activation (Relu, Clip, HardSwish, HardSigmoid, Sigmoid, SiLU).</summary>
public sealed record ActivationOp(Activation Activation) : Op
{
    public override string Type => Activation.Kind switch
    {
        ActivationKind.Relu => "Relu",
        ActivationKind.Clip => "Clip",
        ActivationKind.HardSwish => "HardSwish",
        ActivationKind.HardSigmoid => "HardSigmoid",
        ActivationKind.Sigmoid => "Sigmoid",
        ActivationKind.Silu => "Silu",
        _ => "Identity",
    };

    public override int[][] InferShapes(Node node) => [node.Input(0).Shape];
    public override string Describe() => Activation.ToString();
}

/// <summary>Element-wise binary op with NumPy broadcasting, optionally followed by a fused activation.</summary>
public sealed record BinaryOp(BinaryKind Kind, Activation Activation = default) : Op
{
    public override string Type => Kind.ToString();

    public override int[][] InferShapes(Node node)
    {
        try { return [Shape.Broadcast(node.Input(0).Shape, node.Input(1).Shape)]; }
        catch (ArgumentException e) { throw Error(node, e.Message); }
    }

    public override string Describe() => Activation.IsNone ? Kind.ToString() : $"{Kind} +{Activation}";
}

/// <summary>Softmax (or log-softmax) along an axis. Legacy2D: opset &lt; 13 semantics that flatten at the axis.</summary>
public sealed record Softmax(int Axis = -1, bool Log = false, bool Legacy2D = false) : Op
{
    public override string Type => Log ? "LogSoftmax" : "Softmax";

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        try { Shape.Axis(Axis, Math.Max(1, x.Length)); }
        catch (ArgumentException e) { throw Error(node, e.Message); }
        return [x];
    }
}

/// <summary>Passes its input through (ONNX Identity, Dropout at inference).</summary>
public sealed record Identity : Op
{
    public override string Type => "Identity";
    public override int[][] InferShapes(Node node) => [node.Input(0).Shape];
}
