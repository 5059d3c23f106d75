using MobileNetSharp.Kernels;

namespace MobileNetSharp.Graph;

/// <summary>How ONNX's auto_pad derives padding from the input size.</summary>
public enum AutoPad { NotSet, SameUpper, SameLower, Valid }

/// <summary>
/// 2-D convolution (ONNX Conv, NCHW). Inputs: X [N,C,H,W], W [M, C/groups, KH, KW], optional bias B [M],
/// optional Residual [N,M,OH,OW] added before the fused <see cref="Activation"/> (set by the fusion passes).
/// Pads are (top, left, bottom, right), ONNX's begin-then-end order.
/// </summary>
public sealed record Conv(
    int KernelH, int KernelW,
    int StrideH = 1, int StrideW = 1,
    int PadTop = 0, int PadLeft = 0, int PadBottom = 0, int PadRight = 0,
    int DilationH = 1, int DilationW = 1,
    int Groups = 1,
    AutoPad AutoPad = AutoPad.NotSet,
    Activation Activation = default) : Op
{
    public override string Type => "Conv";

    /// <summary>Padding for a given input size, resolving auto_pad like ONNX (SAME_UPPER puts the odd pixel at the end).</summary>
    public (int Top, int Left, int Bottom, int Right) ResolvePads(int inH, int inW) =>
        ResolvePads2D(AutoPad, (PadTop, PadLeft, PadBottom, PadRight), inH, inW, KernelH, KernelW, StrideH, StrideW, DilationH, DilationW);

    /// <summary>The auto_pad rule for any 2-D window (convolution or pooling).</summary>
    internal static (int Top, int Left, int Bottom, int Right) ResolvePads2D(AutoPad mode, (int, int, int, int) explicitPads,
        int inH, int inW, int kh, int kw, int sh, int sw, int dh, int dw)
    {
        if (mode is AutoPad.NotSet) return explicitPads;
        if (mode is AutoPad.Valid) return (0, 0, 0, 0);
        var (t, b) = SamePads(inH, kh, sh, dh, mode);
        var (l, r) = SamePads(inW, kw, sw, dw, mode);
        return (t, l, b, r);
    }

    /// <summary>ONNX SAME padding; in long arithmetic, and all-zero for invalid (non-positive) windows, which Validate then names.</summary>
    internal static (int Begin, int End) SamePads(int size, int kernel, int stride, int dilation, AutoPad mode)
    {
        if (stride < 1 || kernel < 1 || dilation < 1) return (0, 0);
        long outSize = ((long)size + stride - 1) / stride;
        long total = Math.Max(0, (outSize - 1) * stride + (long)(kernel - 1) * dilation + 1 - size);
        if (total > int.MaxValue) return (0, 0); // the window cannot fit; shape inference reports it
        int small = (int)(total / 2), large = (int)(total - small);
        return mode == AutoPad.SameLower ? (large, small) : (small, large);
    }

    /// <summary>Kernel geometry for this node's input shape (batch from the input).</summary>
    public Conv2dGeometry Geometry(int[] x, int outChannels)
    {
        var (t, l, b, r) = ResolvePads(x[2], x[3]);
        return new Conv2dGeometry(x[0], x[2], x[3], x[1], outChannels, KernelH, KernelW, StrideH, StrideW,
            DilationH, DilationW, t, l, b, r, Groups);
    }

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        var w = node.Input(1).Shape;
        if (x.Length != 4) throw Error(node, $"expects a 4-D NCHW input, got rank {x.Length}.");
        if (w.Length != 4 || w[2] != KernelH || w[3] != KernelW)
            throw Error(node, $"weight shape {Tensors.Shape.Format(w)} does not match kernel {KernelH}x{KernelW}.");
        if (Groups < 1 || x[1] % Groups != 0 || w[0] % Groups != 0 || w[1] != x[1] / Groups)
            throw Error(node, $"input has {x[1]} channels but weights {Tensors.Shape.Format(w)} with groups={Groups} expect {w[1] * Groups}.");
        if (node.OptionalInput(2) is { } bias && (bias.Rank != 1 || bias.Shape[0] != w[0]))
            throw Error(node, $"bias shape {Tensors.Shape.Format(bias.Shape)} does not match {w[0]} output channels.");
        var g = Geometry(x, w[0]);
        try { g.Validate(); }
        catch (ArgumentException e) { throw Error(node, e.Message); }
        int[] y = [x[0], w[0], g.OutH, g.OutW];
        if (node.OptionalInput(3) is { } res && !Tensors.Shape.Equal(res.Shape, y))
            throw Error(node, $"residual shape {Tensors.Shape.Format(res.Shape)} differs from output {Tensors.Shape.Format(y)}.");
        return [y];
    }

    public override string Describe()
    {
        string s = $"Conv {KernelH}x{KernelW}/s{StrideH}";
        if (Groups > 1) s += $" g{Groups}";
        if (!Activation.IsNone) s += $" +{Activation}";
        return s;
    }
}
