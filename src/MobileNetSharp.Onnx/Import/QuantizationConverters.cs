using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Onnx.Import;

/// <summary>
/// Quantized ONNX operators. QuantizeLinear and DequantizeLinear (opsets 10, 13, 19, 21) are the QDQ form that
/// ONNX Runtime's quantizer and `mnet quantize` write. The operator ("QOperator") form is read as the QDQ
/// subgraph it stands for: QLinearConv and QLinearMatMul (ONNX opset 10), and ONNX Runtime's com.microsoft
/// QLinearAdd and QLinearGlobalAveragePool become DequantizeLinear -> the float op -> QuantizeLinear, so every
/// quantized model runs one way. Scales and zero points must be load-time constants (initializers in every
/// quantized model we know of). Blocked quantization (opset 21 block_size), 4-bit, 16-bit and float8 types and
/// non-float32 scales are refused by name.
/// </summary>
internal static class QuantizationConverters
{
    public static void QuantizeLinear(NodeContext n)
    {
        var x = n.Input(0);
        if (x.DataType != DataType.Float32) throw n.Error($"input '{x.Name}' is {x.DataType}; only float32 tensors can be quantized.");
        var p = Params(n, 1, 2, n.Attr.Int32("output_dtype", 0), n.Attr.Int32("axis", 1), x.Rank);
        if (p.Type is not (DataType.UInt8 or DataType.Int8)) throw n.Error($"quantizing to {p.Type} is not supported (uint8 and int8 are).");
        n.Emit(new QuantizeLinear(p), x);
    }

    public static void DequantizeLinear(NodeContext n)
    {
        var x = n.Input(0);
        if (x.DataType is not (DataType.UInt8 or DataType.Int8 or DataType.Int32))
            throw n.Error($"input '{x.Name}' is {x.DataType}; DequantizeLinear reads uint8, int8 or int32.");
        var p = Params(n, 1, 2, (int)x.DataType, n.Attr.Int32("axis", 1), x.Rank);
        if (p.Type != x.DataType) throw n.Error($"the input is {x.DataType} but the zero point is {p.Type}.");
        n.Emit(new DequantizeLinear(p), x);
    }

    /// <summary>QLinearConv: x (8-bit, per-tensor), w (8-bit, per-tensor or per output channel), y's scale and zero point, optional int32 bias.</summary>
    public static void QLinearConv(NodeContext n)
    {
        var (x, xp) = Dequantized(n, 0, 1, 2, axis: 1, perChannel: false, "x");
        var (w, wp) = Dequantized(n, 3, 4, 5, axis: 0, perChannel: true, "w");
        Value? bias = null;
        if (n.OptionalInput(8) is { } b)
        {
            if (b.DataType != DataType.Int32 || b.Rank != 1) throw n.Error($"bias '{b.Name}' must be a 1-D int32 tensor, got {b.DataType} {Shape.Format(b.Shape)}.");
            // ONNX QLinearConv: the bias is quantized with scale x_scale * w_scale and zero point 0.
            var scales = wp.Scales.Select(s => xp.Scales[0] * s).ToArray();
            var bp = new QuantParams(scales, new int[scales.Length], DataType.Int32, 0);
            if (!bp.PerTensor && b.Shape[0] != scales.Length) throw n.Error($"bias has {b.Shape[0]} values for {scales.Length} weight scales.");
            try { bp.Validate(); }
            catch (ArgumentException e) { throw n.Error($"bias scale: {e.Message}"); }
            bias = n.EmitHelper(new DequantizeLinear(bp), "dq_bias", b);
        }
        var y = ConvPoolConverters.Convolution(n, x, w, bias, final: false);
        Requantize(n, y, 6, 7);
    }

    /// <summary>QLinearMatMul: a and b 8-bit (b per-tensor, or per column from opset 21), y's scale and zero point.</summary>
    public static void QLinearMatMul(NodeContext n)
    {
        var (a, _) = Dequantized(n, 0, 1, 2, axis: 1, perChannel: false, "a");
        var (b, _) = Dequantized(n, 3, 4, 5, axis: -1, perChannel: true, "b");
        Requantize(n, n.EmitHelper(new Graph.MatMul(), "matmul", a, b), 6, 7);
    }

    /// <summary>com.microsoft QLinearAdd (ONNX Runtime's quantizer): C = quantize(dequantize(A) + dequantize(B)).</summary>
    public static void QLinearAdd(NodeContext n)
    {
        var (a, _) = Dequantized(n, 0, 1, 2, axis: 1, perChannel: false, "A");
        var (b, _) = Dequantized(n, 3, 4, 5, axis: 1, perChannel: false, "B");
        Requantize(n, n.EmitHelper(new BinaryOp(BinaryKind.Add), "add", a, b), 6, 7);
    }

    /// <summary>com.microsoft QLinearGlobalAveragePool (NCHW only: channels_last = 0).</summary>
    public static void QLinearGlobalAveragePool(NodeContext n)
    {
        if (n.Attr.Int("channels_last", 0) != 0) throw n.Error("channels_last = 1 (NHWC input) is not supported.");
        var (x, _) = Dequantized(n, 0, 1, 2, axis: 1, perChannel: false, "X");
        Requantize(n, n.EmitHelper(new GlobalPool(PoolKind.Average), "gap", x), 3, 4);
    }

    /// <summary>Input <paramref name="value"/> dequantized with the scale and zero point at the given inputs (a helper node, folded when constant).</summary>
    private static (Value Value, QuantParams Params) Dequantized(NodeContext n, int value, int scale, int zeroPoint, int axis, bool perChannel, string role)
    {
        var x = n.Input(value);
        if (x.DataType is not (DataType.UInt8 or DataType.Int8)) throw n.Error($"{role} '{x.Name}' is {x.DataType}; it must be uint8 or int8.");
        var p = Params(n, scale, zeroPoint, (int)x.DataType, axis < 0 ? x.Rank + axis : axis, x.Rank);
        if (!perChannel && !p.PerTensor) throw n.Error($"{role} must have one scale (per-tensor), got {p.Scales.Length}.");
        if (p.Type != x.DataType) throw n.Error($"{role} is {x.DataType} but its zero point is {p.Type}.");
        return (n.EmitHelper(new DequantizeLinear(p), "dq_" + role, x), p);
    }

    /// <summary>The node's output: <paramref name="y"/> quantized with the scale and zero point at the given inputs.</summary>
    private static void Requantize(NodeContext n, Value y, int scale, int zeroPoint)
    {
        var p = Params(n, scale, zeroPoint, (int)DataType.UInt8, 1, y.Rank);
        if (!p.PerTensor) throw n.Error($"the output must have one scale (per-tensor), got {p.Scales.Length}.");
        if (p.Type is not (DataType.UInt8 or DataType.Int8)) throw n.Error($"the output zero point is {p.Type}; it must be uint8 or int8.");
        n.Emit(new QuantizeLinear(p), y);
    }

    /// <summary>Scale (input <paramref name="scaleInput"/>) and zero point (input <paramref name="zeroPointInput"/>, default 0 of <paramref name="defaultType"/>, 0 meaning uint8).</summary>
    private static QuantParams Params(NodeContext n, int scaleInput, int zeroPointInput, int defaultType, int axis, int rank)
    {
        if (n.Attr.Int("block_size", 0) != 0) throw n.Error("blocked quantization (block_size) is not supported.");
        var scale = n.Constant(scaleInput, "scale");
        if (scale.DataType != DataType.Float32) throw n.Error($"scale is {scale.DataType}; only float32 scales are supported.");
        if (scale.Rank > 1) throw n.Error($"scale must be a scalar or 1-D, got shape {Shape.Format(scale.Shape)}.");
        var zeroPoint = n.OptionalConstant(zeroPointInput, "zero point");
        DataType type;
        if (zeroPoint is not null) type = zeroPoint.DataType;
        else if (defaultType == 0) type = DataType.UInt8;
        else type = OnnxDataTypes.ToDataType(defaultType, $"Node '{n.DisplayName}' output_dtype");
        if (type is not (DataType.UInt8 or DataType.Int8 or DataType.Int32))
            throw n.Error($"zero point type {type} is not supported (uint8, int8, and int32 for DequantizeLinear).");
        if (zeroPoint is not null && zeroPoint.Length != scale.Length)
            throw n.Error($"zero point shape {Shape.Format(zeroPoint.Shape)} differs from scale shape {Shape.Format(scale.Shape)}.");
        if (scale.Length > 1 && n.Opset < 13 && n.OpType is "QuantizeLinear" or "DequantizeLinear") throw n.Error("per-axis scales need opset 13 or later.");
        // On DataType, not the array's type: the CLR lets an sbyte[] match a byte[] pattern.
        int[] zp = zeroPoint?.DataType switch
        {
            DataType.UInt8 => ((byte[])zeroPoint.Data).Select(v => (int)v).ToArray(),
            DataType.Int8 => ((sbyte[])zeroPoint.Data).Select(v => (int)v).ToArray(),
            DataType.Int32 => (int[])((int[])zeroPoint.Data).Clone(),
            null => new int[scale.Length],
            _ => throw n.Error($"zero point type {zeroPoint.DataType} is not supported."),
        };
        // A single value is per-tensor whatever its rank ([] or [1]); a longer one runs along the axis.
        var p = new QuantParams((float[])scale.Floats.Clone(), zp, type, axis);
        try { p.Validate(); }
        catch (ArgumentException e) { throw n.Error(e.Message); }
        if (!p.PerTensor) n.Axis(axis, rank); // range check with the node named
        return p;
    }
}
