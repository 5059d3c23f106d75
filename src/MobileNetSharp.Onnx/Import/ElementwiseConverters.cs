using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Onnx.Import;

/// <summary>Activations and element-wise arithmetic, including the opset &lt; 7 "broadcast/axis" form.</summary>
internal static class ElementwiseConverters
{
    public static void Activation(NodeContext n, Activation a) => n.Emit(new ActivationOp(a), n.Input(0));

    public static void HardSigmoid(NodeContext n) =>
        Activation(n, Graph.Activation.HardSigmoid(n.Attr.Float("alpha", 0.2f), n.Attr.Float("beta", 0.5f)));

    /// <summary>
    /// Clip: bounds are attributes before opset 11 and optional inputs from then on. Constant bounds fold into
    /// the activation (and from there into a conv epilogue); bounds computed at run time stay inputs of the node.
    /// </summary>
    public static void Clip(NodeContext n)
    {
        if (n.Opset < 11)
        {
            Activation(n, Graph.Activation.Clip(n.Attr.Float("min", float.MinValue), n.Attr.Float("max", float.MaxValue)));
            return;
        }
        var (lo, hi) = (n.OptionalInput(1), n.OptionalInput(2));
        if (lo is null or { IsConstant: true } && hi is null or { IsConstant: true })
        {
            Activation(n, Graph.Activation.Clip(n.OptionalScalar(1, "min") ?? float.MinValue, n.OptionalScalar(2, "max") ?? float.MaxValue));
            return;
        }
        n.Emit(new ActivationOp(Graph.Activation.Clip(float.NegativeInfinity, float.PositiveInfinity)), n.Input(0), lo, hi);
    }

    public static void Binary(NodeContext n, BinaryKind kind)
    {
        var a = n.Input(0);
        var b = n.Input(1);
        if (n.Opset < 7) b = LegacyBroadcast(n, a, b);
        n.Emit(new BinaryOp(kind), a, b);
    }

    /// <summary>Max and Min take any number of inputs: a chain of binary nodes.</summary>
    public static void Variadic(NodeContext n, BinaryKind kind)
    {
        if (n.InputCount == 0) throw n.Error("needs at least one input.");
        if (n.InputCount == 1) { n.Emit(new Identity(), n.Input(0)); return; }
        var acc = n.Input(0);
        for (int i = 1; i < n.InputCount - 1; i++) acc = n.EmitHelper(new BinaryOp(kind), $"step{i}", acc, n.Input(i));
        n.Emit(new BinaryOp(kind), acc, n.Input(n.InputCount - 1));
    }

    /// <summary>
    /// Before opset 7, B broadcasts only with broadcast=1, aligned to A at "axis" (default: the trailing axes).
    /// Appending size-1 axes to B turns that into NumPy broadcasting.
    /// </summary>
    private static Value LegacyBroadcast(NodeContext n, Value a, Value b)
    {
        if (n.Attr.Int("broadcast", 0) == 0)
        {
            if (!Tensors.Shape.Equal(a.Shape, b.Shape))
                throw n.Error($"shapes {Tensors.Shape.Format(a.Shape)} and {Tensors.Shape.Format(b.Shape)} differ and broadcast is not set.");
            return b;
        }
        if (b.Rank > a.Rank) throw n.Error($"B {Tensors.Shape.Format(b.Shape)} has a higher rank than A {Tensors.Shape.Format(a.Shape)}.");
        int axis = n.Attr.Has("axis") ? n.Axis(n.Attr.Int("axis", 0), a.Rank) : a.Rank - b.Rank;
        if (axis + b.Rank > a.Rank) throw n.Error($"B {Tensors.Shape.Format(b.Shape)} does not fit A {Tensors.Shape.Format(a.Shape)} at axis {axis}.");
        int trailing = a.Rank - axis - b.Rank;
        if (trailing == 0) return b;
        var target = b.Shape.Select(d => (long)d).Concat(Enumerable.Repeat(1L, trailing)).ToArray();
        return n.EmitHelper(new Reshape(target), "broadcast", b);
    }
}
