using MobileNetSharp.Graph;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Passes;

/// <summary>
/// Turns a QDQ model's DequantizeLinear(x) -> Conv(weights dequantized from int8 at load) -> QuantizeLinear into one
/// <see cref="QLinearConv"/> that reads and writes the uint8 codes and computes in integers, as ONNX Runtime's QDQ
/// transformer does. Only where the integer op reproduces ONNX's definition of the QDQ pattern: uint8 activations
/// with one scale, symmetric int8 weights (per tensor or per output channel), an int32 bias whose scale is exactly
/// x_scale * w_scale (or none), a ReLU or clip as the fused activation, and a convolution shape the runtime computes
/// in integers (1x1 today). Everything else keeps the float path, which is exact too.
/// </summary>
public static class FuseQuantizedConv
{
    public static int Run(ModelGraph g)
    {
        int fused = 0;
        var consumers = g.Consumers();
        var outputs = g.Outputs.ToHashSet();
        foreach (var n in g.Nodes.ToList())
        {
            if (n.Op is not Conv c || !QLinearConv.IsPointwise(c) || n.OptionalInput(3) is not null) continue;
            if (c.Activation.Kind is not (ActivationKind.None or ActivationKind.Relu or ActivationKind.Clip)) continue;
            if (n.Input(0).Producer is not { Op: DequantizeLinear { Params: { PerTensor: true, Type: DataType.UInt8 } xp } } dq) continue;
            var codes = dq.Input(0);
            if (codes.IsConstant) continue;
            if (n.Input(1).Constant?.Origin is not { Params: { Type: DataType.Int8 } wp } wo || wp.ZeroPoints.Any(z => z != 0)) continue;
            if (!wp.PerTensor && wp.Axis != 0) continue;
            Tensor? bias = null;
            if (n.OptionalInput(2) is { } b)
            {
                if (b.Constant?.Origin is not { Params: { Type: DataType.Int32 } bp } bo) continue;
                // The integer kernel adds the bias codes to the accumulator as they are: that is exact only at this scale.
                bool exact = true;
                for (int i = 0; i < bp.Scales.Length && exact; i++)
                    exact = bp.Scales[i] == xp.Scales[0] * wp.Scales[wp.PerTensor ? 0 : i];
                if (!exact || (bp.PerTensor && !wp.PerTensor && bo.Values.Length > 1)) continue;
                bias = bo.Values;
            }
            var y = n.Output;
            if (outputs.Contains(y) || !consumers.TryGetValue(y, out var readers) || readers.Count != 1) continue;
            if (readers[0] is not { Op: QuantizeLinear { Params: { PerTensor: true, Type: DataType.UInt8 } yp } } q) continue;

            var op = new QLinearConv(c, xp, wp, wo.Values, bias, yp);
            var replacement = new Node(n.Name, op, [codes], [q.Output]);
            g.Nodes[g.Nodes.IndexOf(n)] = replacement;
            g.Nodes.Remove(q);
            if (consumers[dq.Output].Count == 1 && !outputs.Contains(dq.Output)) g.Nodes.Remove(dq);
            consumers = g.Consumers();
            fused++;
        }
        return fused;
    }
}
