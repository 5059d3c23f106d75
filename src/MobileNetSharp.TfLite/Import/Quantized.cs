using MobileNetSharp.Graph;
using MobileNetSharp.Kernels.Int8;
using MobileNetSharp.TfLite.Schema;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.TfLite.Import;

/// <summary>
/// 8-bit quantized TFLite models (schema table QuantizationParameters; the TFLite quantization spec), read as the QDQ form
/// the ONNX importer reads: real = scale · (q - zero_point).
/// <list type="bullet">
/// <item>Quantized constants (int8/uint8 weights, per tensor or per channel along quantized_dimension; int32 biases) become
/// float constants that keep their integers and parameters (<see cref="QuantizedOrigin"/>), as a folded DequantizeLinear
/// leaves them, so the integer kernels use the file's own codes.</item>
/// <item>Every computed int8/uint8 tensor is the float result of its operator put on the tensor's grid: QuantizeLinear then
/// DequantizeLinear. int8 codes are held as uint8 codes with the zero point + 128 (the same real values; the integer
/// kernels take uint8 activations), so DequantizeLinear → Conv → QuantizeLinear chains fuse into integer convolutions
/// (<see cref="Passes.FuseQuantizedOps"/>) and the rest runs in float on values on the grid.</item>
/// <item>An int8/uint8 graph input is taken as the file's codes and dequantized; an int8/uint8 graph output is given as the
/// file's codes (QuantizeLinear with the file's parameters).</item>
/// <item>A bias is added to the int32 accumulator as it is, so its scale is input scale · weight scale by definition (the
/// TFLite quantization spec); the file's stored bias scale, which a converter rounds, is replaced by that product.</item>
/// </list>
/// Results match TFLite's integer kernels to within one quantization step (TFLite rescales with fixed-point multipliers,
/// we with float ones). int16 (16x8) and 4-bit tensors, and per-channel quantized activations, are refused.
/// </summary>
internal sealed partial class GraphConverter
{
    /// <summary>Refuses what has no path here: 16-bit and 4-bit quantization, and 8-bit tensors without parameters or with bad ones.</summary>
    private void CheckQuantization()
    {
        foreach (var t in _sg.Tensors)
        {
            if (t.Type is TensorType.Int16 or TensorType.Int4)
                throw new ModelFormatException($"Tensor '{t.Name}' is {t.Type.ToString().ToLowerInvariant()}: 16x8 and 4-bit quantized TFLite models are not supported "
                    + "(8-bit int8/uint8 models and float32 or fp16-weight models are).");
            if (t.Type is TensorType.Int8 or TensorType.UInt8 && t.Quantization is null)
                throw Bad($"tensor '{t.Name}' is {t.Type.ToString().ToLowerInvariant()} without quantization parameters (a scale and a zero point)");
            if (t.Quantization is not null && t.Type is TensorType.Int8 or TensorType.UInt8 or TensorType.Int32) FileParams(t.Index);
        }
    }

    /// <summary>
    /// Tensor <paramref name="t"/>'s quantization as <see cref="QuantParams"/> (type from the tensor, axis = quantized_dimension),
    /// or null for a tensor that is not int8, uint8 or int32 with scales. Throws <see cref="ModelFormatException"/> for
    /// scales that are not positive and finite, zero points outside the type (or not 0 for int32), a zero-point count that is
    /// neither 0 (all zero) nor the scale count, or per-channel scales that do not match the quantized dimension's length.
    /// </summary>
    private QuantParams? FileParams(int t)
    {
        var tensor = _sg.Tensors[t];
        if (tensor.Quantization is not { } q) return null;
        var type = tensor.Type switch
        {
            TensorType.Int8 => DataType.Int8,
            TensorType.UInt8 => DataType.UInt8,
            TensorType.Int32 => DataType.Int32,
            _ => (DataType?)null,
        };
        if (type is null) return null;
        int n = q.Scales.Length;
        if (q.ZeroPoints.Length != 0 && q.ZeroPoints.Length != n)
            throw Bad($"tensor '{tensor.Name}' has {n} quantization scales but {q.ZeroPoints.Length} zero points");
        var (lo, hi) = QuantParams.Limits(type.Value);
        var zeroPoints = new int[n];
        for (int i = 0; i < q.ZeroPoints.Length; i++)
        {
            if (q.ZeroPoints[i] < lo || q.ZeroPoints[i] > hi) throw Bad($"tensor '{tensor.Name}' has zero point {q.ZeroPoints[i]}, outside {type}'s range {lo}..{hi}");
            zeroPoints[i] = (int)q.ZeroPoints[i];
        }
        int axis = 0;
        if (n > 1)
        {
            var shape = CheckedShape(tensor);
            if (q.Dimension < 0 || q.Dimension >= shape.Length)
                throw Bad($"tensor '{tensor.Name}' is quantized along dimension {q.Dimension}, outside its shape [{string.Join(",", shape)}]");
            if (shape[q.Dimension] != n)
                throw Bad($"tensor '{tensor.Name}' has {n} quantization scales along dimension {q.Dimension} of length {shape[q.Dimension]}");
            axis = q.Dimension;
        }
        var p = new QuantParams(q.Scales, zeroPoints, type.Value, axis);
        try { p.Validate(); }
        catch (ArgumentException e) { throw Bad($"tensor '{tensor.Name}': {e.Message}"); }
        return p;
    }

    /// <summary>The parameters of a computed 8-bit tensor (null for a float one); per-channel activations are refused.</summary>
    private QuantParams? ActivationParams(int t)
    {
        if (_sg.Tensors[t].Type is not (TensorType.Int8 or TensorType.UInt8) || FileParams(t) is not { } p) return null;
        if (!p.PerTensor) throw new GraphException($"tensor '{TensorName(t)}' is a computed tensor quantized per channel; only per-tensor activations are supported.");
        return p;
    }

    /// <summary>The same real values as uint8 codes: an int8 zero point z is the uint8 zero point z + 128.</summary>
    private static QuantParams AsUInt8(QuantParams p) =>
        p.Type == DataType.UInt8 ? p : new QuantParams(p.Scales, p.ZeroPoints.Select(z => z + 128).ToArray(), DataType.UInt8, p.Axis);

    /// <summary>Float <paramref name="v"/> put on tensor <paramref name="t"/>'s grid: QuantizeLinear to uint8 codes, then DequantizeLinear.</summary>
    private Value OnGrid(Value v, QuantParams p, int t)
    {
        var codes = AsUInt8(p);
        string name = TensorName(t);
        var q = AddNode(Unique(name + "/quantize"), new QuantizeLinear(codes), [v], name + "/codes");
        return AddNode(Unique(name + "/dequantize"), new DequantizeLinear(codes), [q], name + "/dequantized");
    }

    /// <summary>An 8-bit graph input: the file's codes, dequantized (and, for int8, put on the uint8 grid the kernels read).</summary>
    private void QuantizedInput(int t, QuantParams p)
    {
        if (!p.PerTensor) throw Bad($"input tensor '{TensorName(t)}' is quantized per channel; only per-tensor inputs are supported");
        var codes = new Value(Unique(TensorName(t)), p.Type, CheckedShape(_sg.Tensors[t]));
        _graph.Inputs.Add(codes);
        var real = AddNode(Unique(codes.Name + "/dequantize_input"), new DequantizeLinear(p), [codes], codes.Name + "/real");
        _native[t] = p.Type == DataType.UInt8 ? real : OnGrid(real, p, t);
    }

    /// <summary>The constant of a quantized tensor as float (the engine's DequantizeLinear kernel), keeping its integers and parameters.</summary>
    private static Tensor DequantizedConstant(int[] shape, ReadOnlySpan<byte> bytes, QuantParams p)
    {
        long count = Shape.Size(shape);
        var floats = new float[count];
        long outer = 1, inner = 1;
        if (!p.PerTensor)
        {
            for (int a = 0; a < p.Axis; a++) outer *= shape[a];
            for (int a = p.Axis + 1; a < shape.Length; a++) inner *= shape[a];
        }
        else inner = count;
        QuantizeLinearKernel.Dequantize(bytes, floats, p, (outer, p.Scales.Length, inner));
        Array codes = p.Type switch
        {
            DataType.Int8 => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, sbyte>(bytes).ToArray(),
            DataType.UInt8 => bytes.ToArray(),
            _ => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(bytes).ToArray(),
        };
        return new Tensor(floats, shape) { Origin = new QuantizedOrigin(new Tensor(p.Type, shape, codes), p) };
    }

    /// <summary>A permuted copy of a constant that keeps its quantized origin (permuted the same way, its axis moved along).</summary>
    private static Tensor PermuteKeepingOrigin(Tensor c, int[] perm)
    {
        var permuted = Layout.Permute(c, perm);
        if (c.Origin is not { } o) return permuted;
        var p = o.Params.PerTensor ? o.Params : o.Params with { Axis = Array.IndexOf(perm, o.Params.Axis < 0 ? o.Params.Axis + c.Rank : o.Params.Axis) };
        return new Tensor(permuted.DataType, permuted.Shape, permuted.Data) { Origin = new QuantizedOrigin(Layout.Permute(o.Values, perm), p) };
    }

    /// <summary>
    /// The bias of a layer whose input (tensor <paramref name="input"/>) and weights are quantized: its int32 codes at scale
    /// input scale · weight scale, which is what TFLite's kernels add them at, whatever scale the file stores.
    /// </summary>
    private Value? Bias(int i, int input, Value weights)
    {
        var b = Bias(i);
        if (b?.Constant is not { Origin: { Params.Type: DataType.Int32 } bo } c || FileParams(input) is not { PerTensor: true } xp
            || weights.Constant?.Origin is not { } wo)
            return b;
        var wp = wo.Params;
        int n = c.Length;
        if (!wp.PerTensor && wp.Scales.Length != n) return b;
        var scales = new float[wp.PerTensor ? 1 : n];
        for (int k = 0; k < scales.Length; k++) scales[k] = xp.Scales[0] * wp.Scales[k];
        if (scales.Any(s => !(s > 0) || !float.IsFinite(s))) return b;
        var codes = (int[])bo.Values.Data;
        var floats = new float[n];
        for (int k = 0; k < n; k++) floats[k] = codes[k] * scales[wp.PerTensor ? 0 : k];
        var p = wp.PerTensor ? QuantParams.Of(scales[0], 0, DataType.Int32) : new QuantParams(scales, new int[n], DataType.Int32, 0);
        return Constant(b.Name + "/rescaled", new Tensor(floats, c.Shape) { Origin = new QuantizedOrigin(bo.Values, p) });
    }

    /// <summary>TFLite QUANTIZE: float to 8-bit, or 8-bit to other 8-bit parameters; the output's grid does the work (<see cref="SetOutput"/>).</summary>
    private void QuantizeOp()
    {
        int t = In(0);
        if (_op.Outputs.Length != 1 || ActivationParams(_op.Outputs[0]) is null)
            throw new GraphException("QUANTIZE must write one int8 or uint8 tensor with quantization parameters.");
        bool nchw = _nchw[t] is not null;
        var x = nchw ? _nchw[t]! : NativeOf(t);
        if (x.DataType != DataType.Float32) throw new GraphException($"the input is {x.DataType}.");
        SetOutput(0, x, nchw);
    }
}
