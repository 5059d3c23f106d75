using MobileNetSharp.Graph;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Onnx.Import;

/// <summary>
/// QuantizeLinear and DequantizeLinear (opsets 10, 13, 19, 21): the QDQ form that ONNX Runtime's quantizer and
/// `mnet quantize` write. Scales and zero points must be load-time constants (they are initializers in every
/// quantized model we know of). Blocked quantization (opset 21 block_size), 4-bit, 16-bit and float8 types and
/// non-float32 scales are refused by name.
/// </summary>
internal static class QuantizationConverters
{
    public static void QuantizeLinear(NodeContext n)
    {
        var x = n.Input(0);
        if (x.DataType != DataType.Float32) throw n.Error($"input '{x.Name}' is {x.DataType}; only float32 tensors can be quantized.");
        var p = Params(n, n.Attr.Int32("output_dtype", 0));
        if (p.Type is not (DataType.UInt8 or DataType.Int8)) throw n.Error($"quantizing to {p.Type} is not supported (uint8 and int8 are).");
        n.Emit(new QuantizeLinear(p), x);
    }

    public static void DequantizeLinear(NodeContext n)
    {
        var x = n.Input(0);
        if (x.DataType is not (DataType.UInt8 or DataType.Int8 or DataType.Int32))
            throw n.Error($"input '{x.Name}' is {x.DataType}; DequantizeLinear reads uint8, int8 or int32.");
        var p = Params(n, (int)x.DataType);
        if (p.Type != x.DataType) throw n.Error($"the input is {x.DataType} but the zero point is {p.Type}.");
        n.Emit(new DequantizeLinear(p), x);
    }

    /// <summary>Scale (input 1) and zero point (input 2, default uint8 0 or the type <paramref name="defaultType"/> names).</summary>
    private static QuantParams Params(NodeContext n, int defaultType)
    {
        if (n.Attr.Int("block_size", 0) != 0) throw n.Error("blocked quantization (block_size) is not supported.");
        var scale = n.Constant(1, "scale");
        if (scale.DataType != DataType.Float32) throw n.Error($"scale is {scale.DataType}; only float32 scales are supported.");
        if (scale.Rank > 1) throw n.Error($"scale must be a scalar or 1-D, got shape {Shape.Format(scale.Shape)}.");
        var zeroPoint = n.OptionalConstant(2, "zero point");
        DataType type;
        if (zeroPoint is not null) type = zeroPoint.DataType;
        else if (defaultType == 0) type = DataType.UInt8;
        else type = OnnxDataTypes.ToDataType(defaultType, $"Node '{n.DisplayName}' output_dtype");
        if (type is not (DataType.UInt8 or DataType.Int8 or DataType.Int32))
            throw n.Error($"zero point type {type} is not supported (uint8, int8, and int32 for DequantizeLinear).");
        if (zeroPoint is not null && !Shape.Equal(zeroPoint.Shape, scale.Shape))
            throw n.Error($"zero point shape {Shape.Format(zeroPoint.Shape)} differs from scale shape {Shape.Format(scale.Shape)}.");
        if (scale.Length > 1 && n.Opset < 13) throw n.Error("per-axis scales need opset 13 or later.");
        // On DataType, not the array's type: the CLR lets an sbyte[] match a byte[] pattern.
        int[] zp = zeroPoint?.DataType switch
        {
            DataType.UInt8 => ((byte[])zeroPoint.Data).Select(v => (int)v).ToArray(),
            DataType.Int8 => ((sbyte[])zeroPoint.Data).Select(v => (int)v).ToArray(),
            DataType.Int32 => (int[])((int[])zeroPoint.Data).Clone(),
            null => new int[scale.Length],
            _ => throw n.Error($"zero point type {zeroPoint.DataType} is not supported."),
        };
        int axis = n.Attr.Int32("axis", 1);
        var p = new QuantParams((float[])scale.Floats.Clone(), zp, type, axis);
        try { p.Validate(); }
        catch (ArgumentException e) { throw n.Error(e.Message); }
        if (!p.PerTensor)
        {
            int rank = n.Input(0).Rank;
            n.Axis(axis, rank); // range check with the node named
        }
        return p;
    }
}
