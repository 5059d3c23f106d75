using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// The standard-ONNX QDQ form of a fused integer layer (<see cref="QLinearConv"/>, <see cref="QGemm"/>): what they are
/// written back as, so that any runtime reads the file.
/// </summary>
internal static class QdqExport
{
    /// <summary>
    /// DequantizeLinear of the layer's input codes, of its int8 weights (with their axis) and, if any, of its int32 bias
    /// (scale x_scale · w_scale, zero point 0, axis 0); returns the three float operands' names for the float op.
    /// </summary>
    public static List<string> DequantizedOperands(Node n, IOnnxWriter w, QuantParams x, QuantParams wq, Tensor weights, Tensor? bias)
    {
        string xf = w.Fresh(n.Name + "_x_dequantized");
        x.Write(w, n.Name + "_x", out var xs, out var xz);
        w.Node("DequantizeLinear", n.Name + "_dequantize_x", [w.Name(n.Input(0)), xs, xz], [xf]);
        wq.Write(w, n.Name + "_w", out var ws, out var wz);
        string wf = w.Fresh(n.Name + "_w_dequantized");
        w.Node("DequantizeLinear", n.Name + "_dequantize_w", [w.Constant(n.Name + "_w_quantized", weights), ws, wz], [wf], [.. wq.AxisAttribute()]);
        var operands = new List<string> { xf, wf };
        if (bias is not null)
        {
            var bp = new QuantParams(wq.Scales.Select(s => x.Scales[0] * s).ToArray(), new int[wq.Scales.Length], DataType.Int32, 0);
            bp.Write(w, n.Name + "_b", out var bs, out var bz);
            string bf = w.Fresh(n.Name + "_b_dequantized");
            w.Node("DequantizeLinear", n.Name + "_dequantize_b", [w.Constant(n.Name + "_b_quantized", bias), bs, bz], [bf], [.. bp.AxisAttribute()]);
            operands.Add(bf);
        }
        return operands;
    }

    /// <summary>QuantizeLinear of the float result <paramref name="y"/> into the node's output codes.</summary>
    public static void QuantizeOutput(Node n, IOnnxWriter w, QuantParams yq, string y)
    {
        yq.Write(w, n.Name + "_y", out var ys, out var yz);
        w.Node("QuantizeLinear", n.Name + "_quantize_y", [y, ys, yz], [n.Output.Name]);
    }
}
