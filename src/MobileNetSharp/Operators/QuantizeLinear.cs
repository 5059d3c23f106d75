using MobileNetSharp.Kernels.Int8;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

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
        return [new Tensor(y, x.Shape) { Origin = new QuantizedOrigin(x, Params) }];
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
    public override KernelWarmer? Warmer => new($"quantize|{p.Type}|{p.PerTensor}|{Kernels.Isa.Resolve(isa)}", () =>
    {
        var s = QuantizeLinearKernel.MiniatureSplit(split);
        QuantizeLinearKernel.Quantize(new float[s.Outer * s.Channels * s.Inner], new byte[s.Outer * s.Channels * s.Inner * p.Type.SizeOf()], p, s, isa);
    });
    public override void Execute(RunContext ctx) => QuantizeLinearKernel.Quantize(ctx.Read(x), ctx.WriteBytes(y), p, split, isa);
}

internal sealed class DequantizeStep(string name, QuantParams p, (long, int, long) split, Kernels.IsaLevel? isa, Slot x, Slot y) : Step(name, [x], [y])
{
    public override string Kernel => $"DequantizeLinear({p.Type}->)";
    public override KernelWarmer? Warmer => new($"dequantize|{p.Type}|{p.PerTensor}|{Kernels.Isa.Resolve(isa)}", () =>
    {
        var s = QuantizeLinearKernel.MiniatureSplit(split);
        QuantizeLinearKernel.Dequantize(new byte[s.Outer * s.Channels * s.Inner * p.Type.SizeOf()], new float[s.Outer * s.Channels * s.Inner], p, s, isa);
    });
    public override void Execute(RunContext ctx) => QuantizeLinearKernel.Dequantize(ctx.ReadBytes(x), ctx.Write(y), p, split, isa);
}
