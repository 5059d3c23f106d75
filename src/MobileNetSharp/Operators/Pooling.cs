using MobileNetSharp.Kernels;
using MobileNetSharp.Tensors;

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
    AutoPad AutoPad = AutoPad.NotSet) : Op
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
}

/// <summary>Global max or average pooling over all spatial axes: [N,C,...] -> [N,C,1,...].</summary>
public sealed record GlobalPool(PoolKind Kind) : Op
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
}

public enum ReduceKind { Mean, Sum, Max, Min }

/// <summary>Reduction over axes (null = all axes), keeping reduced axes as 1 when KeepDims.</summary>
public sealed record Reduce(ReduceKind Kind, int[]? Axes, bool KeepDims = true) : Op
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
}
