using MobileNetSharp.Kernels;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// Convolution over a number of spatial axes other than two (ONNX Conv on NCW, NCDHW, ...); 2-D is
/// <see cref="Conv"/>, which the passes and the channels-last kernels know. Inputs: X [N, C, spatial...],
/// W [M, C/groups, kernel...], optional bias B [M]. Pads are ONNX's: all begins, then all ends.
/// <see cref="Activation"/> is set by the fusion pass.
/// </summary>
public sealed record ConvNd(
    int[] Kernel, int[] Strides, int[] Pads, int[] Dilations,
    int Groups = 1,
    AutoPad AutoPad = AutoPad.NotSet,
    Activation Activation = default) : Op
{
    public override string Type => "Conv";

    /// <summary>Kernel geometry for this node's input shape, auto_pad resolved.</summary>
    public NdGeometry Geometry(int[] x, int outChannels) =>
        new(x[0], x[1], outChannels, x[2..], Kernel, Strides, Dilations, NdWindow.ResolvePads(AutoPad, Pads, x[2..], Kernel, Strides, Dilations), Groups);

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        var w = node.Input(1).Shape;
        if (NdWindow.RankProblem(x, Kernel.Length) is { } problem) throw Error(node, problem);
        if (w.Length != x.Length || !w.AsSpan(2).SequenceEqual(Kernel))
            throw Error(node, $"weight shape {Shape.Format(w)} does not match kernel {Shape.Format(Kernel)}.");
        if (Groups < 1 || x[1] % Groups != 0 || w[0] % Groups != 0 || w[1] != x[1] / Groups)
            throw Error(node, $"input has {x[1]} channels but weights {Shape.Format(w)} with groups={Groups} expect {w[1] * Groups}.");
        if (node.OptionalInput(2) is { } bias && (bias.Rank != 1 || bias.Shape[0] != w[0]))
            throw Error(node, $"bias shape {Shape.Format(bias.Shape)} does not match {w[0]} output channels.");
        try { return [[x[0], w[0], .. Geometry(x, w[0]).OutSize]]; }
        catch (ArgumentException e) { throw Error(node, e.Message); }
    }

    public override string Describe()
    {
        string s = $"Conv {string.Join("x", Kernel)}/s{Strides[0]}";
        if (Groups > 1) s += $" g{Groups}";
        if (!Activation.IsNone) s += $" +{Activation}";
        return s;
    }
}

/// <summary>Max or average pooling over a number of spatial axes other than two; 2-D is <see cref="Pool"/>. Pads as in <see cref="ConvNd"/>.</summary>
public sealed record PoolNd(
    PoolKind Kind, int[] Kernel, int[] Strides, int[] Pads, int[] Dilations,
    bool CeilMode = false, bool CountIncludePad = false,
    AutoPad AutoPad = AutoPad.NotSet) : Op
{
    public override string Type => Kind == PoolKind.Max ? "MaxPool" : "AveragePool";

    /// <summary>Window geometry for this node's input shape (auto_pad resolved; ceil mode decides the output size).</summary>
    public NdGeometry Geometry(int[] x) =>
        new(x[0], x[1], x[1], x[2..], Kernel, Strides, Dilations, NdWindow.ResolvePads(AutoPad, Pads, x[2..], Kernel, Strides, Dilations), 1, CeilMode);

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        if (NdWindow.RankProblem(x, Kernel.Length) is { } problem) throw Error(node, problem);
        try { return [[x[0], x[1], .. Geometry(x).OutSize]]; }
        catch (ArgumentException e) { throw Error(node, e.Message); }
    }

    public override string Describe() => $"{Type} {string.Join("x", Kernel)}/s{Strides[0]}";
}

/// <summary>Window arithmetic shared by the convolution and pooling ops of every spatial rank.</summary>
public static class NdWindow
{
    /// <summary>Why an input shape cannot take a window of <paramref name="spatial"/> axes, or null.</summary>
    internal static string? RankProblem(int[] x, int spatial) =>
        spatial == 2 ? "2-D windows are the Conv and Pool ops; ConvNd and PoolNd take any other number of spatial axes."
        : spatial < 1 ? "a window needs at least one spatial axis."
        : x.Length != spatial + 2 ? $"a {spatial}-D window expects a rank-{spatial + 2} N,C,spatial... input, got {Shape.Format(x)}."
        : null;

    /// <summary>Pads (begins, then ends) for an input size, resolving auto_pad like <see cref="Conv.ResolvePads"/>.</summary>
    public static int[] ResolvePads(AutoPad mode, int[] pads, int[] inSize, int[] kernel, int[] strides, int[] dilations)
    {
        if (mode is AutoPad.NotSet) return pads;
        int rank = inSize.Length;
        var resolved = new int[2 * rank];
        if (mode is AutoPad.Valid) return resolved;
        if (kernel.Length != rank || strides.Length != rank || dilations.Length != rank)
            throw new ArgumentException($"kernel, strides and dilations need {rank} values each for auto_pad.");
        for (int d = 0; d < rank; d++)
            (resolved[d], resolved[rank + d]) = Conv.SamePads(inSize[d], kernel[d], strides[d], dilations[d], mode);
        return resolved;
    }
}
