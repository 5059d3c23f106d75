namespace MobileNetSharp.Tensors;

/// <summary>
/// The affine map between real values and 8-bit (or, for biases, 32-bit) integers: real = (q - ZeroPoint) * Scale
/// (ONNX QuantizeLinear/DequantizeLinear, operators.md; Jacob et al. 2018, "Quantization and Training of Neural
/// Networks for Efficient Integer-Arithmetic-Only Inference", eq. 1). One scale and zero point for the whole
/// tensor, or one per slice along <see cref="Axis"/> (per-channel: ONNX opset 13's axis attribute).
/// </summary>
/// <param name="Scales">Positive, finite step sizes: one (per-tensor) or one per index of <see cref="Axis"/>.</param>
/// <param name="ZeroPoints">The integer that represents real 0, one per scale, within <see cref="Type"/>'s range.</param>
/// <param name="Type">UInt8, Int8, or Int32 (DequantizeLinear of a bias, whose zero point must be 0).</param>
/// <param name="Axis">The per-channel axis (negative counts from the end); ignored for a single scale.</param>
public sealed record QuantParams(float[] Scales, int[] ZeroPoints, DataType Type, int Axis = 1)
{
    public bool PerTensor => Scales.Length == 1;

    /// <summary>The integer range of <see cref="Type"/>.</summary>
    public (int Min, int Max) Range => Limits(Type);

    public static (int Min, int Max) Limits(DataType t) => t switch
    {
        DataType.UInt8 => (0, 255),
        DataType.Int8 => (-128, 127),
        DataType.Int32 => (int.MinValue, int.MaxValue),
        _ => throw new ArgumentException($"quantized tensors are uint8, int8 or int32, not {t}."),
    };

    /// <summary>Per-tensor parameters.</summary>
    public static QuantParams Of(float scale, int zeroPoint, DataType type) => new([scale], [zeroPoint], type);

    /// <summary>Throws ArgumentException naming the first bad scale, zero point or length (hostile files and callers alike).</summary>
    public void Validate()
    {
        var (lo, hi) = Limits(Type);
        if (Scales.Length == 0) throw new ArgumentException("quantization needs at least one scale.");
        if (ZeroPoints.Length != Scales.Length)
            throw new ArgumentException($"{Scales.Length} scales but {ZeroPoints.Length} zero points: they must have the same length.");
        for (int i = 0; i < Scales.Length; i++)
        {
            if (!(Scales[i] > 0) || !float.IsFinite(Scales[i]))
                throw new ArgumentException($"scale[{i}] is {Scales[i]}: scales must be positive and finite.");
            if (ZeroPoints[i] < lo || ZeroPoints[i] > hi)
                throw new ArgumentException($"zero point[{i}] is {ZeroPoints[i]}, outside {Type}'s range {lo}..{hi}.");
            if (Type == DataType.Int32 && ZeroPoints[i] != 0)
                throw new ArgumentException($"an int32 tensor's zero point must be 0, got {ZeroPoints[i]} at [{i}].");
        }
    }

    /// <summary>The axis resolved against <paramref name="rank"/>, checked to have one scale per index. Per-tensor: -1.</summary>
    internal int ResolveAxis(int[] shape, Func<string, Exception> error)
    {
        if (PerTensor) return -1;
        int rank = shape.Length;
        int axis = Axis < 0 ? Axis + rank : Axis;
        if (axis < 0 || axis >= rank) throw error($"axis {Axis} is out of range for a rank-{rank} tensor.");
        if (shape[axis] != Scales.Length)
            throw error($"{Scales.Length} scales along axis {axis}, but that axis has length {shape[axis]}.");
        return axis;
    }

    /// <summary>(outer, channels, inner) for a tensor of <paramref name="shape"/> with this axis.</summary>
    internal (long Outer, int Channels, long Inner) Split(int[] shape, int axis)
    {
        if (axis < 0) return (1, 1, Tensors.Shape.Size(shape));
        long outer = 1, inner = 1;
        for (int i = 0; i < axis; i++) outer *= shape[i];
        for (int i = axis + 1; i < shape.Length; i++) inner *= shape[i];
        return (outer, shape[axis], inner);
    }

    internal void Write(Graph.IOnnxWriter w, string hint, out string scale, out string zeroPoint)
    {
        int[] dims = PerTensor ? [] : [Scales.Length];
        scale = w.Constant(hint + "_scale", new Tensor(DataType.Float32, dims, (float[])Scales.Clone()));
        Array zp = Type switch
        {
            DataType.UInt8 => ZeroPoints.Select(z => (byte)z).ToArray(),
            DataType.Int8 => ZeroPoints.Select(z => (sbyte)z).ToArray(),
            _ => (int[])ZeroPoints.Clone(),
        };
        zeroPoint = w.Constant(hint + "_zero_point", new Tensor(Type, dims, zp));
    }

    internal IEnumerable<Graph.OnnxAttribute> AxisAttribute() => PerTensor ? [] : [Graph.OnnxAttribute.Of("axis", (long)Axis)];
}

/// <summary>
/// Where a float constant came from when it was dequantized at load time (DequantizeLinear of a constant, folded):
/// the integers and their parameters, kept so an integer kernel can use them exactly as the file gave them.
/// </summary>
public sealed record QuantizedOrigin(Tensor Values, QuantParams Params);
