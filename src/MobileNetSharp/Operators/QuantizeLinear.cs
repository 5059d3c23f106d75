using MobileNetSharp.Kernels.Int8;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

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

    internal void Write(IOnnxWriter w, string hint, out string scale, out string zeroPoint)
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

    internal IEnumerable<OnnxAttribute> AxisAttribute() => PerTensor ? [] : [OnnxAttribute.Of("axis", (long)Axis)];
}

/// <summary>
/// ONNX QuantizeLinear: y = saturate(round(x / scale) + zero_point), rounding half to even (operators.md,
/// QuantizeLinear-13). Input float32, output <see cref="QuantParams.Type"/> (UInt8 or Int8), same shape.
/// The scale and zero point are load-time constants held on the op.
/// </summary>
public sealed record QuantizeLinear(QuantParams Params) : Op, IRunnable
{
    public override string Type => "QuantizeLinear";

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0);
        if (x.DataType != DataType.Float32) throw Error(node, $"quantizes float32 tensors, got {x.DataType}.");
        if (Params.Type is not (DataType.UInt8 or DataType.Int8)) throw Error(node, $"quantizes to uint8 or int8, not {Params.Type}.");
        try { Params.Validate(); }
        catch (ArgumentException e) { throw Error(node, e.Message); }
        Params.ResolveAxis(x.Shape, m => Error(node, m));
        return [x.Shape];
    }

    public override DataType[] InferTypes(Node node) => [Params.Type];

    public override string Describe() => Params.PerTensor
        ? $"QuantizeLinear {Params.Type} s={Params.Scales[0]:G4} zp={Params.ZeroPoints[0]}"
        : $"QuantizeLinear {Params.Type} per-channel axis {Params.Axis}";

    public override Tensor[]? Fold(Node node)
    {
        var x = node.Input(0).Constant!;
        int axis = Params.ResolveAxis(x.Shape, m => Error(node, m));
        var y = ElementBytes.Allocate(Params.Type, x.Shape, out var bytes);
        QuantizeLinearKernel.Quantize(x.Floats, bytes, Params, Params.Split(x.Shape, axis));
        return [y];
    }

    public override int OnnxOpset(Node node) => Params.PerTensor ? 10 : 13;

    public override void ExportOnnx(Node n, IOnnxWriter w)
    {
        Params.Write(w, n.Output.Name, out var scale, out var zp);
        w.Node("QuantizeLinear", n.Name, [w.Name(n.Input(0)), scale, zp], [n.Output.Name], [.. Params.AxisAttribute()]);
    }

    /// <summary>Per-tensor keeps the input's layout (point-wise); per-channel reads the plain (NCHW) layout the axis refers to.</summary>
    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        var x = n.Input(0);
        PlanCompiler.Require(n, 0, DataType.Float32, "QuantizeLinear input");
        int axis = Params.ResolveAxis(x.Shape, m => Error(n, m));
        var layout = Params.PerTensor ? plan.NativeLayout(x) : MemoryLayout.Plain;
        plan.Add(new QuantizeStep(n.Name, Params, Params.Split(x.Shape, axis), plan.Isa, plan.Get(x, layout), plan.Produce(n.Output, layout)));
    }
}

/// <summary>
/// ONNX DequantizeLinear: y = (x - zero_point) * scale (operators.md, DequantizeLinear-13). Input uint8, int8 or
/// int32 (<see cref="QuantParams.Type"/>), output float32, same shape. A constant input folds at load, so
/// quantized weights become float weights for the float kernels.
/// </summary>
public sealed record DequantizeLinear(QuantParams Params) : Op, IRunnable
{
    public override string Type => "DequantizeLinear";

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0);
        if (x.DataType != Params.Type) throw Error(node, $"the input is {x.DataType} but the zero point is {Params.Type}.");
        try { Params.Validate(); }
        catch (ArgumentException e) { throw Error(node, e.Message); }
        Params.ResolveAxis(x.Shape, m => Error(node, m));
        return [x.Shape];
    }

    public override DataType[] InferTypes(Node node) => [DataType.Float32];

    public override string Describe() => Params.PerTensor
        ? $"DequantizeLinear {Params.Type} s={Params.Scales[0]:G4} zp={Params.ZeroPoints[0]}"
        : $"DequantizeLinear {Params.Type} per-channel axis {Params.Axis}";

    public override Tensor[]? Fold(Node node)
    {
        var x = node.Input(0).Constant!;
        int axis = Params.ResolveAxis(x.Shape, m => Error(node, m));
        var y = new float[x.Length];
        QuantizeLinearKernel.Dequantize(ElementBytes.Of(x), y, Params, Params.Split(x.Shape, axis));
        return [new Tensor(y, x.Shape)];
    }

    public override int OnnxOpset(Node node) => Params.PerTensor ? 10 : 13;

    public override void ExportOnnx(Node n, IOnnxWriter w)
    {
        Params.Write(w, n.Output.Name, out var scale, out var zp);
        w.Node("DequantizeLinear", n.Name, [w.Name(n.Input(0)), scale, zp], [n.Output.Name], [.. Params.AxisAttribute()]);
    }

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        var x = n.Input(0);
        PlanCompiler.Require(n, 0, Params.Type, "DequantizeLinear input");
        int axis = Params.ResolveAxis(x.Shape, m => Error(n, m));
        var layout = Params.PerTensor ? plan.NativeLayout(x) : MemoryLayout.Plain;
        plan.Add(new DequantizeStep(n.Name, Params, Params.Split(x.Shape, axis), plan.Isa, plan.Get(x, layout), plan.Produce(n.Output, layout)));
    }
}

internal sealed class QuantizeStep(string name, QuantParams p, (long, int, long) split, Kernels.IsaLevel? isa, Slot x, Slot y) : Step(name, [x], [y])
{
    public override string Kernel => $"QuantizeLinear(->{p.Type})";
    public override void Execute(RunContext ctx) => QuantizeLinearKernel.Quantize(ctx.Read(x), ctx.WriteBytes(y), p, split, isa);
}

internal sealed class DequantizeStep(string name, QuantParams p, (long, int, long) split, Kernels.IsaLevel? isa, Slot x, Slot y) : Step(name, [x], [y])
{
    public override string Kernel => $"DequantizeLinear({p.Type}->)";
    public override void Execute(RunContext ctx) => QuantizeLinearKernel.Dequantize(ctx.ReadBytes(x), ctx.Write(y), p, split, isa);
}
