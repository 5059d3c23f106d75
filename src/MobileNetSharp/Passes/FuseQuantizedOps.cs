using MobileNetSharp.Graph;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Passes;

/// <summary>
/// Turns a QDQ model's DequantizeLinear -> op -> QuantizeLinear patterns into ops that read and write the uint8 codes,
/// as ONNX Runtime's QDQ transformer does:
/// <list type="bullet">
/// <item>Conv with int8 weights (dequantized at load) into <see cref="QLinearConv"/>, computed in integers. Only
/// where that reproduces ONNX's definition of the pattern: uint8 activations with one scale, symmetric int8 weights
/// (per tensor or per output channel), an int32 bias whose scale is exactly x_scale * w_scale (or none), a ReLU or
/// clip or a hard-swish as the fused activation, and a shape the runtime computes in integers (1x1, depthwise, and one-group
/// convolutions of any kernel such as the stem).</item>
/// <item>Add (plain or with ReLU) of two same-shape dequantized tensors into <see cref="QLinearAdd"/>: one pass over
/// the codes with the same float arithmetic, bit-identical to the nodes it replaces.</item>
/// <item>Gemm (transA = 0, alpha = beta = 1, a per-output bias) and 2-D MatMul with int8 weights into <see cref="QGemm"/>,
/// under the same conditions as Conv (hard-swish included); its output stays float (a classifier's logits) unless a
/// QuantizeLinear reads it.</item>
/// </list>
/// Everything else keeps the float path, which is exact too.
/// </summary>
public static class FuseQuantizedOps
{
    public static int Run(ModelGraph g)
    {
        int fused = 0;
        var consumers = g.Consumers();
        var outputs = g.Outputs.ToHashSet();
        foreach (var n in g.Nodes.ToList())
        {
            if (TryAdd(g, n, consumers, outputs) || TryGemm(g, n, consumers, outputs))
            {
                consumers = g.Consumers();
                fused++;
                continue;
            }
            if (n.Op is not Conv c || !QLinearConv.Computes(c, n.Input(0).Shape[1], n.Input(1).Shape[0]) || n.OptionalInput(3) is not null) continue;
            // ReLU and clips become a clamp on the codes; hard-swish a float step in the kernels' epilogue.
            bool hardSwish = c.Activation.Kind == ActivationKind.HardSwish;
            if (c.Activation.Kind is not (ActivationKind.None or ActivationKind.Relu or ActivationKind.Clip or ActivationKind.HardSwish)) continue;
            if (n.Input(0).Producer is not { Op: DequantizeLinear { Params: { PerTensor: true, Type: DataType.UInt8 } xp } } dq) continue;
            var codes = dq.Input(0);
            if (codes.IsConstant) continue;
            if (n.Input(1).Constant?.Origin is not { Params: { Type: DataType.Int8 } wp } wo || wp.ZeroPoints.Any(z => z != 0)) continue;
            if (!wp.PerTensor && wp.Axis != 0) continue;
            if (!TryBias(n.OptionalInput(2), xp, wp, out var bias)) continue;
            var y = n.Output;
            if (SoleQuantizer(y, consumers, outputs) is not { } q) continue;
            var yp = ((QuantizeLinear)q.Op).Params;

            var op = new QLinearConv(c, xp, wp, wo.Values, bias, yp);
            // Valid files the integer kernels cannot express keep the float path: an empty clip (min > max) or a
            // requantization multiplier that over- or underflows float.
            if (op.Clamp() is var (lo, hi) && lo > hi) continue;
            if (wp.Scales.Any(ws => xp.Scales[0] * ws / (hardSwish ? 1f : yp.Scales[0]) is var m && !(m > 0 && float.IsFinite(m)))) continue;
            var replacement = new Node(n.Name, op, [codes], [q.Output]);
            g.Nodes[g.Nodes.IndexOf(n)] = replacement;
            g.Nodes.Remove(q);
            RemoveIfUnread(g, dq, consumers, outputs, readers: 1);
            consumers = g.Consumers();
            fused++;
        }
        return fused;
    }

    /// <summary>
    /// The int32 bias codes of a layer, or null for none; false when the bias is not int32 codes at exactly
    /// x_scale · w_scale (the integer kernels add the codes to the accumulator as they are, exact only at that scale).
    /// </summary>
    private static bool TryBias(Value? b, QuantParams xp, QuantParams wp, out Tensor? bias)
    {
        bias = null;
        if (b is null) return true;
        if (b.Constant?.Origin is not { Params: { Type: DataType.Int32 } bp } bo) return false;
        for (int i = 0; i < bp.Scales.Length; i++)
            if (bp.Scales[i] != xp.Scales[0] * wp.Scales[wp.PerTensor ? 0 : i]) return false;
        if (bp.PerTensor && !wp.PerTensor && bo.Values.Length > 1) return false;
        bias = bo.Values;
        return true;
    }

    /// <summary>DequantizeLinear -> Gemm or 2-D MatMul by int8 weights [-> QuantizeLinear] into a <see cref="QGemm"/>.</summary>
    private static bool TryGemm(ModelGraph g, Node n, Dictionary<Value, List<Node>> consumers, HashSet<Value> outputs)
    {
        bool transB;
        Activation activation;
        switch (n.Op)
        {
            case Gemm { TransA: false, Alpha: 1f } gm when n.OptionalInput(2) is null || gm.Beta == 1f:
                (transB, activation) = (gm.TransB, gm.Activation);
                break;
            case MatMul when n.Input(0).Rank == 2 && n.Input(1).Rank == 2:
                (transB, activation) = (false, Activation.None);
                break;
            default:
                return false;
        }
        if (n.Input(0).Rank != 2 || Dequantizer(n.Input(0)) is not { } dq) return false;
        var xp = ((DequantizeLinear)dq.Op).Params;
        if (n.Input(1).Constant?.Origin is not { Params: { Type: DataType.Int8 } wp } wo || wp.ZeroPoints.Any(z => z != 0)) return false;
        // Per-output-column scales run along B's N axis: 0 under transB ([N, K]), else 1.
        if (!wp.PerTensor && (wp.Axis < 0 ? wp.Axis + 2 : wp.Axis) != (transB ? 0 : 1)) return false;
        int outF = n.Output.Shape[1];
        // A per-output bias only ([N] or [1, N]); C of the full [M, N] shape keeps the float path.
        // A scalar C (allowed when N = 1) keeps the float path too: no rank-0 shape is indexed.
        if (n.OptionalInput(2) is { } c && !(c.Length == outF && (c.Rank == 1 || (c.Rank == 2 && c.Shape[0] == 1)))) return false;
        if (!TryBias(n.OptionalInput(2), xp, wp, out var bias)) return false;
        // A [1, N] bias is kept as [N], so the fused op exports a per-channel DequantizeLinear along its only axis.
        if (bias is { Rank: 2 }) bias = new Tensor(DataType.Int32, [outF], (int[])bias.Data);
        var q = SoleQuantizer(n.Output, consumers, outputs);
        QuantParams? yp = q is null ? null : ((QuantizeLinear)q.Op).Params;
        if (yp is null ? !activation.IsNone : activation.Kind is not (ActivationKind.None or ActivationKind.Relu or ActivationKind.Clip or ActivationKind.HardSwish)) return false;
        // The dequantizing (or requantizing) multiplier must be a finite positive float, as for Conv; hard-swish
        // dequantizes first (xs · ws) and divides by the output scale after.
        bool dequantizes = yp is null || activation.Kind == ActivationKind.HardSwish;
        if (wp.Scales.Any(ws => xp.Scales[0] * ws / (dequantizes ? 1f : yp!.Scales[0]) is var m && !(m > 0 && float.IsFinite(m)))) return false;
        var op = new QGemm(transB, activation, xp, wp, wo.Values, bias, yp);
        if (yp is not null && activation.Kind == ActivationKind.Clip && activation.Alpha > activation.Beta) return false;
        g.Nodes[g.Nodes.IndexOf(n)] = new Node(n.Name, op, [dq.Input(0)], [q?.Output ?? n.Output]);
        if (q is not null) g.Nodes.Remove(q);
        RemoveIfUnread(g, dq, consumers, outputs, readers: 1);
        return true;
    }

    /// <summary>The QuantizeLinear (uint8, one scale) that is the only reader of <paramref name="y"/>, or null.</summary>
    private static Node? SoleQuantizer(Value y, Dictionary<Value, List<Node>> consumers, HashSet<Value> outputs) =>
        !outputs.Contains(y) && consumers.TryGetValue(y, out var readers) && readers.Count == 1
        && readers[0] is { Op: QuantizeLinear { Params: { PerTensor: true, Type: DataType.UInt8 } } } q ? q : null;

    /// <summary>A DequantizeLinear (uint8, one scale) of computed codes, or null.</summary>
    private static Node? Dequantizer(Value v) =>
        v.Producer is { Op: DequantizeLinear { Params: { PerTensor: true, Type: DataType.UInt8 } } } dq && !dq.Input(0).IsConstant ? dq : null;

    private static void RemoveIfUnread(ModelGraph g, Node dq, Dictionary<Value, List<Node>> consumers, HashSet<Value> outputs, int readers)
    {
        if (consumers[dq.Output].Count == readers && !outputs.Contains(dq.Output)) g.Nodes.Remove(dq);
    }

    private static bool TryAdd(ModelGraph g, Node n, Dictionary<Value, List<Node>> consumers, HashSet<Value> outputs)
    {
        if (n.Op is not BinaryOp { Kind: BinaryKind.Add } add || add.Activation.Kind is not (ActivationKind.None or ActivationKind.Relu)) return false;
        if (Dequantizer(n.Input(0)) is not { } da || Dequantizer(n.Input(1)) is not { } db) return false;
        if (!Shape.Equal(n.Input(0).Shape, n.Input(1).Shape) || SoleQuantizer(n.Output, consumers, outputs) is not { } q) return false;
        var op = new QLinearAdd(((DequantizeLinear)da.Op).Params, ((DequantizeLinear)db.Op).Params, ((QuantizeLinear)q.Op).Params,
            add.Activation.Kind == ActivationKind.Relu);
        g.Nodes[g.Nodes.IndexOf(n)] = new Node(n.Name, op, [da.Input(0), db.Input(0)], [q.Output]);
        g.Nodes.Remove(q);
        // x + x reads one DequantizeLinear twice.
        RemoveIfUnread(g, da, consumers, outputs, readers: da == db ? 2 : 1);
        if (db != da) RemoveIfUnread(g, db, consumers, outputs, readers: 1);
        return true;
    }
}
