using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Training;

namespace MobileNetSharp.Graph;

public enum PoolKind { Max, Average }

/// <summary>
/// 2-D max or average pooling (ONNX MaxPool / AveragePool on NCHW). CeilMode follows ONNX: the last
/// window may hang over the end but must start inside the (left-padded) input.
/// </summary>
public sealed record Pool(
    PoolKind Kind, int KernelH, int KernelW,
    int StrideH = 1, int StrideW = 1,
    int PadTop = 0, int PadLeft = 0, int PadBottom = 0, int PadRight = 0,
    int DilationH = 1, int DilationW = 1,
    bool CeilMode = false, bool CountIncludePad = false,
    AutoPad AutoPad = AutoPad.NotSet) : Op, IRunnable, IDifferentiable
{
    public override string Type => Kind == PoolKind.Max ? "MaxPool" : "AveragePool";

    /// <summary>
    /// Geometry for the kernels. With ceil mode the extra cells the last window covers are added to
    /// PadBottom/PadRight; <see cref="DeclaredPads"/> keeps the pads the divisor may count.
    /// </summary>
    public Conv2dGeometry Geometry(int[] x)
    {
        var (t, l, b, r) = DeclaredPads(x[2], x[3]);
        int oh = Window.OutputSize(x[2], t, b, KernelH, StrideH, DilationH, CeilMode);
        int ow = Window.OutputSize(x[3], l, r, KernelW, StrideW, DilationW, CeilMode);
        // Enlarge the end pads so that the plain floor formula gives the ceil-mode size (at most stride - 1 cells).
        int extraB = oh < 1 ? 0 : (int)Math.Max(0, (oh - 1L) * StrideH + (long)DilationH * (KernelH - 1) + 1 - ((long)x[2] + t + b));
        int extraR = ow < 1 ? 0 : (int)Math.Max(0, (ow - 1L) * StrideW + (long)DilationW * (KernelW - 1) + 1 - ((long)x[3] + l + r));
        return new Conv2dGeometry(x[0], x[2], x[3], x[1], x[1], KernelH, KernelW, StrideH, StrideW,
            DilationH, DilationW, t, l, b + extraB, r + extraR, 1);
    }

    /// <summary>Cells that <see cref="Geometry"/> added past the declared end pads for ceil mode.</summary>
    public (int Bottom, int Right) CeilExtra(int[] x)
    {
        var g = Geometry(x);
        var (_, _, b, r) = DeclaredPads(x[2], x[3]);
        return (g.PadBottom - b, g.PadRight - r);
    }

    public (int Top, int Left, int Bottom, int Right) DeclaredPads(int inH, int inW) =>
        Conv.ResolvePads2D(AutoPad, (PadTop, PadLeft, PadBottom, PadRight), inH, inW, KernelH, KernelW, StrideH, StrideW, DilationH, DilationW);

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        if (x.Length != 4) throw Error(node, $"expects a 4-D NCHW input, got rank {x.Length}.");
        var g = Geometry(x);
        try { g.Validate(); }
        catch (ArgumentException e) { throw Error(node, e.Message); }
        return [[x[0], x[1], g.OutH, g.OutW]];
    }

    public override string Describe() => $"{Type} {KernelH}x{KernelW}/s{StrideH}";

    public override int OnnxOpset(Node node) => Kind == PoolKind.Average && (DilationH != 1 || DilationW != 1) ? 19 : 1;

    public override void ExportOnnx(Node node, IOnnxWriter w) =>
        ExportWindow(w, node, Type, Kind, [KernelH, KernelW], [StrideH, StrideW], [PadTop, PadLeft, PadBottom, PadRight],
            [DilationH, DilationW], CeilMode, CountIncludePad, AutoPad);

    /// <summary>MaxPool/AveragePool over any number of spatial axes. Dilations only when used: AveragePool takes them from opset 19 on.</summary>
    internal static void ExportWindow(IOnnxWriter w, Node n, string type, PoolKind kind, int[] kernel, int[] strides, int[] pads, int[] dilations,
        bool ceilMode, bool countIncludePad, AutoPad autoPad)
    {
        var attrs = new List<OnnxAttribute>
        {
            OnnxAttribute.Of("kernel_shape", kernel),
            OnnxAttribute.Of("strides", strides),
            OnnxAttribute.Of("ceil_mode", ceilMode ? 1L : 0L),
            OnnxForms.PadAttribute(n, autoPad, pads, kernel, strides, dilations),
        };
        if (dilations.Any(d => d != 1)) attrs.Add(OnnxAttribute.Of("dilations", dilations));
        if (kind == PoolKind.Average) attrs.Add(OnnxAttribute.Of("count_include_pad", countIncludePad ? 1L : 0L));
        w.Node(type, n.Name, [w.Name(n.Input(0))], [n.Output.Name], [.. attrs]);
    }

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        PlanCompiler.Require(n, 0, DataType.Float32, "Pooling input");
        var x = n.Input(0).Shape;
        plan.Add(new PoolStep(n.Name, this, Geometry(x), CeilExtra(x), plan.Get(n.Input(0), MemoryLayout.Nhwc), plan.Produce(n.Output, MemoryLayout.Nhwc)));
    }

    /// <summary>Max: each output's gradient goes to the (first) tap that won; average: spread evenly over the window's counted taps.</summary>
    void IDifferentiable.LowerBackward(Node n, GradientCompiler t)
    {
        var x = n.Input(0);
        if (t.InputGrad(x, MemoryLayout.Nhwc) is not { } dx) return;
        var g = Geometry(x.Shape);
        if (Kind == PoolKind.Average && CeilExtra(x.Shape) != (0, 0))
            throw new ArgumentException("average pooling in ceil mode with a partial last window is not differentiable here.");
        t.Plan.Add(new PoolGradStep(n.Name + ".grad", this, g, t.Plan.Get(x, MemoryLayout.Nhwc), t.OutputGrad(n.Output, MemoryLayout.Nhwc), dx));
    }
}

/// <summary>dX of 2-D max or average pooling on NHWC, written.</summary>
internal sealed class PoolGradStep(string name, Pool op, Conv2dGeometry g, Slot x, Slot dy, Slot dx) : Step(name, [x, dy], [dx])
{
    public override string Kernel => op.Type + "-grad";
    public override void Execute(RunContext ctx)
    {
        if (op.Kind == PoolKind.Max) PoolingBackward.MaxPool2d(g, ctx.Read(x), ctx.Read(dy), ctx.Write(dx), ctx.Workers);
        else PoolingBackward.AveragePool2d(g, op.CountIncludePad, ctx.Read(dy), ctx.Write(dx), ctx.Workers);
    }
}

/// <summary>Global max or average pooling over all spatial axes: [N,C,...] -> [N,C,1,...].</summary>
public sealed record GlobalPool(PoolKind Kind) : Op, IRunnable, IDifferentiable
{
    public override string Type => Kind == PoolKind.Max ? "GlobalMaxPool" : "GlobalAveragePool";

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        if (x.Length < 3) throw Error(node, $"expects rank >= 3, got {Shape.Format(x)}.");
        var y = (int[])x.Clone();
        for (int i = 2; i < y.Length; i++) y[i] = 1;
        return [y];
    }

    public override void ExportOnnx(Node node, IOnnxWriter w) => w.Node(Type, node.Name, [w.Name(node.Input(0))], [node.Output.Name]);

    void IRunnable.Lower(Node n, PlanCompiler plan) =>
        Reduce.LowerReduction(n, plan, Kind == PoolKind.Max ? ReduceKind.Max : ReduceKind.Mean, Enumerable.Range(2, n.Input(0).Rank - 2).ToArray());

    void IDifferentiable.LowerBackward(Node n, GradientCompiler t) =>
        Reduce.LowerSpatialGradient(n, t, Kind == PoolKind.Max ? ReduceKind.Max : ReduceKind.Mean, Enumerable.Range(2, n.Input(0).Rank - 2).ToArray());
}

public enum ReduceKind { Mean, Sum, Max, Min, Prod, L1, L2, SumSquare, LogSum, LogSumExp }

/// <summary>
/// Reduction over axes (null = all axes), keeping reduced axes as 1 when KeepDims (ONNX ReduceMean, ReduceSum,
/// ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSum, ReduceLogSumExp).
/// Reducing an empty axis gives the reduction's identity (0, 1, -inf, +inf; NaN for a mean).
/// </summary>
public sealed record Reduce(ReduceKind Kind, int[]? Axes, bool KeepDims = true) : Op, IRunnable, IDifferentiable
{
    public override string Type => "Reduce" + Kind;

    public int[] NormalizedAxes(int rank)
    {
        if (Axes is null || Axes.Length == 0) return Enumerable.Range(0, rank).ToArray();
        var a = Axes.Select(v => Shape.Axis(v, rank)).Distinct().Order().ToArray();
        return a;
    }

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        int[] axes;
        try { axes = NormalizedAxes(x.Length); }
        catch (ArgumentException e) { throw Error(node, e.Message); }
        var y = new List<int>();
        for (int i = 0; i < x.Length; i++)
        {
            if (!axes.Contains(i)) y.Add(x[i]);
            else if (KeepDims) y.Add(1);
        }
        return [y.ToArray()];
    }

    public override Tensor[]? Fold(Node node)
    {
        var x = node.Input(0).Constant!;
        if (x.DataType != DataType.Float32) return null;
        var y = new float[Shape.Size(node.Output.Shape)];
        Run(Kind, x.Floats, x.Shape, NormalizedAxes(x.Rank), y);
        return [new Tensor(y, node.Output.Shape)];
    }

    /// <summary>The kernel, with ONNX's values for reductions over nothing (the kernel refuses an empty max).</summary>
    internal static void Run(ReduceKind kind, ReadOnlySpan<float> x, int[] shape, int[] axes, Span<float> y)
    {
        if (y.IsEmpty) return;
        if (x.IsEmpty)
        {
            y.Fill(kind switch
            {
                ReduceKind.Sum or ReduceKind.L1 or ReduceKind.L2 or ReduceKind.SumSquare => 0f,
                ReduceKind.Prod => 1f,
                ReduceKind.Min => float.PositiveInfinity,
                ReduceKind.Mean => float.NaN,
                _ => float.NegativeInfinity, // Max, LogSum (log 0), LogSumExp
            });
            return;
        }
        var reduction = kind switch
        {
            ReduceKind.Mean => ReductionKind.Mean,
            ReduceKind.Sum => ReductionKind.Sum,
            ReduceKind.Max => ReductionKind.Max,
            ReduceKind.Min => ReductionKind.Min,
            ReduceKind.Prod => ReductionKind.Prod,
            ReduceKind.L1 => ReductionKind.L1,
            ReduceKind.L2 => ReductionKind.L2,
            ReduceKind.SumSquare => ReductionKind.SumSquare,
            ReduceKind.LogSum => ReductionKind.LogSum,
            ReduceKind.LogSumExp => ReductionKind.LogSumExp,
            _ => throw new ArgumentException($"Unknown reduction {kind}."),
        };
        Layout.Reduce(reduction, x, shape, axes, y);
    }

    /// <summary>Axes are an attribute until opset 18 (ReduceSum: 13), an input after.</summary>
    public override void ExportOnnx(Node n, IOnnxWriter w)
    {
        string y = n.Output.Name;
        int axesInputSince = Kind == ReduceKind.Sum ? 13 : 18;
        var inputs = new List<string> { w.Name(n.Input(0)) };
        var attrs = new List<OnnxAttribute> { OnnxAttribute.Of("keepdims", KeepDims ? 1L : 0L) };
        if (Axes is { Length: > 0 } axes)
        {
            if (w.Opset >= axesInputSince) inputs.Add(w.Ints(y + "/axes", axes.Select(a => (long)a)));
            else attrs.Add(OnnxAttribute.Of("axes", axes));
        }
        w.Node(Type, n.Name, [.. inputs], [y], [.. attrs]);
    }

    void IRunnable.Lower(Node n, PlanCompiler plan) => LowerReduction(n, plan, Kind, NormalizedAxes(n.Input(0).Rank));

    /// <summary>Global pooling, and reductions over exactly H and W of a rank-4 tensor, run channels-last.</summary>
    internal static void LowerReduction(Node n, PlanCompiler plan, ReduceKind kind, int[] axes)
    {
        PlanCompiler.Require(n, 0, DataType.Float32, "Reduction input");
        var x = n.Input(0);
        if (x.Rank == 4 && axes.SequenceEqual([2, 3]) && kind is ReduceKind.Mean or ReduceKind.Max)
        {
            // [N, C, 1, 1] (or [N, C]) is the same memory in every layout.
            var output = plan.Produce(n.Output, MemoryLayout.Plain);
            plan.Add(new GlobalPoolStep(n.Name, kind == ReduceKind.Max ? PoolKind.Max : PoolKind.Average,
                x.Shape[0], x.Shape[2] * x.Shape[3], x.Shape[1], plan.Get(x, MemoryLayout.Nhwc), output));
            return;
        }
        plan.Add(new ReduceStep(n.Name, kind, x.Shape, axes, plan.Get(x, MemoryLayout.Plain), plan.Produce(n.Output, MemoryLayout.Plain)));
    }

    void IDifferentiable.LowerBackward(Node n, GradientCompiler t) => LowerSpatialGradient(n, t, Kind, NormalizedAxes(n.Input(0).Rank));

    /// <summary>The gradient of global pooling (a mean or max over H and W of a rank-4 tensor), channels-last.</summary>
    internal static void LowerSpatialGradient(Node n, GradientCompiler t, ReduceKind kind, int[] axes)
    {
        var x = n.Input(0);
        if (!(x.Rank == 4 && axes.SequenceEqual([2, 3]) && kind is ReduceKind.Mean or ReduceKind.Max))
            throw new ArgumentException($"only a mean or max over H and W of a 4-D tensor is differentiable here (Reduce{kind} over [{string.Join(", ", axes)}]).");
        if (t.InputGrad(x, MemoryLayout.Nhwc) is not { } dx) return;
        t.Plan.Add(new GlobalPoolGradStep(n.Name + ".grad", kind == ReduceKind.Max ? PoolKind.Max : PoolKind.Average, x.Shape[0], x.Shape[2] * x.Shape[3], x.Shape[1],
            t.Plan.Get(x, MemoryLayout.Nhwc), t.OutputGrad(n.Output, MemoryLayout.Plain), dx));
    }

    public bool Equals(Reduce? other) => other is not null && Kind == other.Kind && KeepDims == other.KeepDims
        && (Axes ?? []).SequenceEqual(other.Axes ?? []) && (Axes is null) == (other.Axes is null);
    public override int GetHashCode() => HashCode.Combine(Kind, KeepDims, Axes?.Length);
}

/// <summary>Max or average pooling on NHWC; ceil-mode cells past the declared pads never count in an average.</summary>
internal sealed class PoolStep(string name, Pool op, Conv2dGeometry g, (int Bottom, int Right) ceilExtra, Slot x, Slot y)
    : Step(name, [x], [y])
{
    public override string Kernel => op.Type;

    public override void Execute(RunContext ctx)
    {
        if (op.Kind == PoolKind.Max) Pooling.MaxPool2d(g, g.Batch, ctx.Read(x), ctx.Write(y), ctx.Workers);
        else Pooling.AveragePool2d(g, op.CountIncludePad, g.Batch, ctx.Read(x), ctx.Write(y), ctx.Workers, ceilExtra.Bottom, ceilExtra.Right);
    }
}

/// <summary>Global pooling of a channels-last tensor: [N, spatial, C] -> [N, C].</summary>
internal sealed class GlobalPoolStep(string name, PoolKind kind, int batch, int spatial, int channels, Slot x, Slot y)
    : Step(name, [x], [y])
{
    public override string Kernel => kind == PoolKind.Max ? "GlobalMaxPool" : "GlobalAveragePool";
    public override KernelWarmer? Warmer => WarmerFor(kind, spatial, channels);

    /// <summary>A global pooling's kernels at a miniature size (also run by <see cref="KernelWarmup"/>'s common groups:
    /// every MobileNet's head pools, and MobileNetV3's squeeze-excite blocks).</summary>
    internal static KernelWarmer WarmerFor(PoolKind kind, int spatial, int channels) => new($"globalpool|{kind}", () =>
    {
        int s = Math.Min(spatial, 9), c = Math.Min(channels, 24);
        if (kind == PoolKind.Max) Pooling.GlobalMaxPool(1, s, c, new float[s * c], new float[c]);
        else Pooling.GlobalAveragePool(1, s, c, new float[s * c], new float[c]);
    });

    public override void Execute(RunContext ctx)
    {
        if (kind == PoolKind.Max) Pooling.GlobalMaxPool(batch, spatial, channels, ctx.Read(x), ctx.Write(y));
        else Pooling.GlobalAveragePool(batch, spatial, channels, ctx.Read(x), ctx.Write(y));
    }
}

/// <summary>Reduction over arbitrary axes of a plain tensor (off the MobileNet hot path: global pooling covers those).</summary>
internal sealed class ReduceStep(string name, ReduceKind kind, int[] shape, int[] axes, Slot x, Slot y) : Step(name, [x], [y])
{
    public override string Kernel => "Reduce" + kind;
    public override void Execute(RunContext ctx) => Reduce.Run(kind, ctx.Read(x), shape, axes, ctx.Write(y));
}

/// <summary>dX of global pooling on a channels-last tensor: [N, C] -> [N, spatial, C], written.</summary>
internal sealed class GlobalPoolGradStep(string name, PoolKind kind, int batch, int spatial, int channels, Slot x, Slot dy, Slot dx)
    : Step(name, [x, dy], [dx])
{
    public override string Kernel => (kind == PoolKind.Max ? "GlobalMaxPool" : "GlobalAveragePool") + "-grad";
    public override void Execute(RunContext ctx)
    {
        if (kind == PoolKind.Max) PoolingBackward.GlobalMaxPool(batch, spatial, channels, ctx.Read(x), ctx.Read(dy), ctx.Write(dx));
        else PoolingBackward.GlobalAveragePool(batch, spatial, channels, ctx.Read(dy), ctx.Write(dx), ctx.Workers);
    }
}
