using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
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
    Activation Activation = default) : Op, IRunnable
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

    public override OpCost Cost(Node node)
    {
        int inC = node.Input(0).Shape[1];
        long macs = Shape.Size(node.Output.Shape) * Kernel.Aggregate(1L, (a, k) => a * k) * inC / Groups;
        return new OpCost(macs, CostModel.ConvKind(Groups, inC, Kernel.All(k => k == 1)), [1, 2]);
    }

    public override Op? WithActivation(Activation activation) => Activation.IsNone ? this with { Activation = activation } : null;

    public override void ExportOnnx(Node node, IOnnxWriter w) => OnnxForms.Conv(w, node, Kernel, Strides, Pads, Dilations, Groups, AutoPad, Activation);

    // Off the MobileNet path: the plain layout, and ONNX's weight order as it is.
    void IRunnable.Lower(Node n, PlanCompiler plan) =>
        plan.Add(new ConvNdStep(n.Name, Geometry(n.Input(0).Shape, n.Input(1).Shape[0]), PlanCompiler.ConstantFloats(n, 1, "Conv weight"),
            PlanCompiler.ConstantFloats(n, 2, "Conv bias"), Activation, plan.Get(n.Input(0), MemoryLayout.Plain), plan.Produce(n.Output, MemoryLayout.Plain)));

    public bool Equals(ConvNd? other) => other is not null && Kernel.SequenceEqual(other.Kernel) && Strides.SequenceEqual(other.Strides)
        && Pads.SequenceEqual(other.Pads) && Dilations.SequenceEqual(other.Dilations) && Groups == other.Groups && AutoPad == other.AutoPad && Activation == other.Activation;
    public override int GetHashCode() => HashCode.Combine(Kernel.Length, Groups, AutoPad, Activation);
}

/// <summary>A convolution over other than two spatial axes, on plain N, C, spatial... slots, bias and activation fused.</summary>
internal sealed class ConvNdStep(string name, NdGeometry g, float[] weights, float[] bias, Activation act, Slot x, Slot y)
    : Step(name, [x], [y])
{
    public override string Kernel => act.IsNone ? "ConvNd" : $"ConvNd+{act}";

    public override void Execute(RunContext ctx) => NdConvolution.Run(g, ctx.Read(x), weights, bias, act, ctx.Write(y), ctx.Workers);
}

/// <summary>Max or average pooling over a number of spatial axes other than two; 2-D is <see cref="Pool"/>. Pads as in <see cref="ConvNd"/>.</summary>
public sealed record PoolNd(
    PoolKind Kind, int[] Kernel, int[] Strides, int[] Pads, int[] Dilations,
    bool CeilMode = false, bool CountIncludePad = false,
    AutoPad AutoPad = AutoPad.NotSet) : Op, IRunnable
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

    public override int OnnxOpset(Node node) => Kind == PoolKind.Average && Dilations.Any(d => d != 1) ? 19 : 1;

    public override void ExportOnnx(Node node, IOnnxWriter w) =>
        Pool.ExportWindow(w, node, Type, Kind, Kernel, Strides, Pads, Dilations, CeilMode, CountIncludePad, AutoPad);

    void IRunnable.Lower(Node n, PlanCompiler plan) =>
        plan.Add(new PoolNdStep(n.Name, this, Geometry(n.Input(0).Shape), plan.Get(n.Input(0), MemoryLayout.Plain), plan.Produce(n.Output, MemoryLayout.Plain)));

    public bool Equals(PoolNd? other) => other is not null && Kind == other.Kind && Kernel.SequenceEqual(other.Kernel) && Strides.SequenceEqual(other.Strides)
        && Pads.SequenceEqual(other.Pads) && Dilations.SequenceEqual(other.Dilations) && CeilMode == other.CeilMode
        && CountIncludePad == other.CountIncludePad && AutoPad == other.AutoPad;
    public override int GetHashCode() => HashCode.Combine(Kind, Kernel.Length, CeilMode, AutoPad);
}

/// <summary>Max or average pooling over other than two spatial axes, on plain slots.</summary>
internal sealed class PoolNdStep(string name, PoolNd op, NdGeometry g, Slot x, Slot y) : Step(name, [x], [y])
{
    public override string Kernel => op.Type + "Nd";

    public override void Execute(RunContext ctx)
    {
        if (op.Kind == PoolKind.Max) NdPooling.Max(g, ctx.Read(x), ctx.Write(y), ctx.Workers);
        else NdPooling.Average(g, op.CountIncludePad, ctx.Read(x), ctx.Write(y), ctx.Workers);
    }
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
