using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Passes;

/// <summary>
/// Recognizes hard-sigmoid and hard-swish written out in arithmetic, as models spell them when they avoid the
/// operators (<c>x * F.relu6(x + 3) / 6</c>, TensorFlow's <c>x * relu6(x + 3) * 0.16666667</c>):
/// <code>
///   hard-sigmoid:  Scale(Clamp(Add(x, 3)))           -> HardSigmoid(x), alpha 1/6, beta 1/2
///   hard-swish:    Scale(Mul(x, Clamp(Add(x, 3))))   -> HardSwish(x)
/// </code>
/// Clamp is any chain of Relu, Clip, Max(., c) and Min(., c) that together clamp to [0, 6] (Relu6, Clip(0, 6),
/// Relu then Clip, Min(Max(., 0), 6), ...); Scale is Div by 6 or Mul by 1/6. <c>x * (clamp / 6)</c> becomes
/// <c>x * HardSigmoid(x)</c> here, which <see cref="FuseSwish"/> then turns into HardSwish. As one activation the
/// result folds into the conv before it instead of costing four or five passes over memory.
/// </summary>
/// <remarks>
/// Only exact spellings match: the constants must be 3, 6 and 1/6 to within 1e-6 relative (0 exactly), each
/// either a scalar or a tensor of one repeated value that broadcasts without enlarging the other operand.
/// Every intermediate value must have exactly one reader and not be a graph output, since it disappears.
/// </remarks>
public static class FuseHardActivation
{
    private const double Tolerance = 1e-6;

    public static int Run(ModelGraph g)
    {
        int fused = 0;
        var consumers = g.Consumers();
        var gone = new HashSet<Node>();
        foreach (var scale in g.Nodes.ToList())
        {
            if (gone.Contains(scale) || ScaledBySixth(scale) is not { } v) continue;
            if (!GraphRewriter.HasSingleInternalUse(g, consumers, v) || v.Producer is not { } producer) continue;

            List<Node>? removed = null;
            Activation activation = default;
            Value? x = null;
            if (ClampOfAddThree(g, consumers, v) is { } sigmoid)
            {
                (x, removed) = sigmoid;
                activation = Activation.HardSigmoid(1f / 6f, 0.5f);
            }
            else if (producer.Op is BinaryOp { Kind: BinaryKind.Mul, Activation.IsNone: true })
            {
                for (int side = 0; side < 2 && removed is null; side++)
                {
                    var gate = producer.Input(side);
                    if (!GraphRewriter.HasSingleInternalUse(g, consumers, gate)) continue;
                    if (ClampOfAddThree(g, consumers, gate) is { } inner && inner.X == producer.Input(1 - side)
                        && Shape.Equal(producer.Output.Shape, inner.X.Shape))
                    {
                        (x, removed) = (inner.X, [.. inner.Nodes, producer]);
                        activation = Activation.HardSwish;
                    }
                }
            }
            if (removed is null || x is null || !Shape.Equal(scale.Output.Shape, x.Shape)) continue;

            GraphRewriter.Rebuild(g, scale, new ActivationOp(activation), [x], scale.Output);
            foreach (var n in removed) g.Nodes.Remove(n);
            gone.UnionWith(removed);
            consumers = g.Consumers();
            fused++;
        }
        return fused;
    }

    /// <summary>The value that <paramref name="node"/> divides by 6 or multiplies by 1/6; null for any other node.</summary>
    private static Value? ScaledBySixth(Node node)
    {
        if (node.Op is not BinaryOp { Activation.IsNone: true } b) return null;
        if (b.Kind == BinaryKind.Div) return Is(Uniform(node.Input(1), node.Input(0)), 6.0) ? node.Input(0) : null;
        if (b.Kind != BinaryKind.Mul) return null;
        for (int side = 0; side < 2; side++)
            if (Is(Uniform(node.Input(side), node.Input(1 - side)), 1.0 / 6.0)) return node.Input(1 - side);
        return null;
    }

    /// <summary>
    /// When <paramref name="v"/> is Clamp(Add(x, 3)) with a clamp to [0, 6]: x, and the nodes computing v from x
    /// (all of whose outputs are read once, by the next of them).
    /// </summary>
    private static (Value X, List<Node> Nodes)? ClampOfAddThree(ModelGraph g, Dictionary<Value, List<Node>> consumers, Value v)
    {
        double lo = double.NegativeInfinity, hi = double.PositiveInfinity;
        var nodes = new List<Node>();
        var current = v;
        while (current.Producer is { } p && Stage(p) is { } stage)
        {
            // Clamps to overlapping intervals compose, in any order, into a clamp to their intersection.
            lo = Math.Max(lo, stage.Lo);
            hi = Math.Min(hi, stage.Hi);
            if (lo > hi) return null;
            nodes.Add(p);
            current = stage.Input;
            if (!GraphRewriter.HasSingleInternalUse(g, consumers, current)) return null;
        }
        if (current.Producer is not { Op: BinaryOp { Kind: BinaryKind.Add } add } addNode) return null;
        // An Add that already carries a Relu or Clip (from an earlier fusion) is one more clamp stage.
        if (!add.Activation.IsNone)
        {
            if (ActivationRange(add.Activation) is not { } range) return null;
            (lo, hi) = (Math.Max(lo, range.Lo), Math.Min(hi, range.Hi));
        }
        else if (nodes.Count == 0) return null; // no clamp at all
        if (lo != 0 || !Is(hi, 6.0)) return null;
        for (int side = 0; side < 2; side++)
        {
            var x = addNode.Input(side);
            if (!x.IsConstant && Is(Uniform(addNode.Input(1 - side), x), 3.0))
            {
                nodes.Add(addNode);
                return (x, nodes);
            }
        }
        return null;
    }

    /// <summary>One clamp stage: Relu, Clip, or Max/Min with a uniform constant.</summary>
    private static (double Lo, double Hi, Value Input)? Stage(Node p)
    {
        if (p.Op is ActivationOp a) return ActivationRange(a.Activation) is { } r ? (r.Lo, r.Hi, p.Input(0)) : null;
        if (p.Op is not BinaryOp { Kind: BinaryKind.Max or BinaryKind.Min, Activation.IsNone: true } b) return null;
        for (int side = 0; side < 2; side++)
        {
            var input = p.Input(side);
            if (input.IsConstant || Uniform(p.Input(1 - side), input) is not { } k) continue;
            return b.Kind == BinaryKind.Max ? (k, double.PositiveInfinity, input) : (double.NegativeInfinity, k, input);
        }
        return null;
    }

    private static (double Lo, double Hi)? ActivationRange(Activation a) => a.Kind switch
    {
        ActivationKind.Relu => (0, double.PositiveInfinity),
        ActivationKind.Clip when a.Alpha <= a.Beta => (a.Alpha, a.Beta),
        _ => null,
    };

    /// <summary>
    /// The one value a float constant <paramref name="c"/> holds everywhere, when it broadcasts against
    /// <paramref name="other"/> without changing its shape; null otherwise.
    /// </summary>
    private static double? Uniform(Value c, Value other)
    {
        if (c.Constant is not { DataType: DataType.Float32 } t || t.Length == 0) return null;
        try
        {
            if (!Shape.Equal(Shape.Broadcast(other.Shape, t.Shape), other.Shape)) return null;
        }
        catch (ArgumentException) { return null; }
        var values = t.Floats;
        foreach (var f in values) if (f != values[0]) return null;
        return values[0];
    }

    private static bool Is(double? value, double target) => value is { } v && Math.Abs(v - target) <= Tolerance * Math.Abs(target);
}
