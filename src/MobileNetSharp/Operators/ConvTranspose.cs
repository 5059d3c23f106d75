using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// 2-D transposed convolution (ONNX ConvTranspose, NCHW). Inputs: X [N, C, H, W], W [C, M/groups, KH, KW],
/// optional bias B [M]. Pads are (top, left, bottom, right), the output's crop at each end; OutputPad adds rows
/// and columns at the bottom/right. <see cref="OutputShape"/> ([H, W], when the model fixes it) and SAME auto_pad
/// derive the pads from the wanted output, as ONNX says (<see cref="ConvTranspose2dGeometry.FromOnnx"/>). Runs
/// channels-last through <see cref="ConvTranspose2dOperator"/>; a fused <see cref="Activation"/> is applied to
/// the output right after the kernel.
/// </summary>
public sealed record ConvTranspose(
    int KernelH, int KernelW,
    int StrideH = 1, int StrideW = 1,
    int PadTop = 0, int PadLeft = 0, int PadBottom = 0, int PadRight = 0,
    int DilationH = 1, int DilationW = 1,
    int OutputPadH = 0, int OutputPadW = 0,
    int Groups = 1,
    AutoPad AutoPad = AutoPad.NotSet,
    int[]? OutputShape = null,
    Activation Activation = default) : Op, IRunnable
{
    public override string Type => "ConvTranspose";

    /// <summary>Kernel geometry for input shape <paramref name="x"/> and weight shape <paramref name="w"/> (batch from the input).</summary>
    public ConvTranspose2dGeometry Geometry(int[] x, int[] w) =>
        ConvTranspose2dGeometry.FromOnnx(x[0], x[2], x[3], x[1], checked(w[1] * Groups), KernelH, KernelW,
            [StrideH, StrideW], [DilationH, DilationW], [PadTop, PadLeft, PadBottom, PadRight], [OutputPadH, OutputPadW], Groups,
            OutputShape ?? default, AutoPad switch
            {
                AutoPad.SameUpper => ConvTransposeAutoPad.SameUpper,
                AutoPad.SameLower => ConvTransposeAutoPad.SameLower,
                AutoPad.Valid => ConvTransposeAutoPad.Valid,
                _ => ConvTransposeAutoPad.NotSet,
            });

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        var w = node.Input(1).Shape;
        if (x.Length != 4) throw Error(node, $"expects a 4-D NCHW input, got rank {x.Length}.");
        if (w.Length != 4 || w[2] != KernelH || w[3] != KernelW)
            throw Error(node, $"weight shape {Shape.Format(w)} does not match kernel {KernelH}x{KernelW}.");
        if (Groups < 1 || w[0] != x[1] || x[1] % Groups != 0)
            throw Error(node, $"input has {x[1]} channels but weights {Shape.Format(w)} with groups={Groups} expect {w[0]} (a multiple of the groups).");
        if ((long)w[1] * Groups > int.MaxValue) throw Error(node, $"{w[1]} x {Groups} output channels are too many.");
        int outC = w[1] * Groups;
        if (node.OptionalInput(2) is { } bias && (bias.Rank != 1 || bias.Shape[0] != outC))
            throw Error(node, $"bias shape {Shape.Format(bias.Shape)} does not match {outC} output channels.");
        try
        {
            var g = Geometry(x, w);
            return [[x[0], outC, g.OutH, g.OutW]];
        }
        catch (ArgumentException e) { throw Error(node, e.Message); }
    }

    public override string Describe()
    {
        string s = $"ConvTranspose {KernelH}x{KernelW}/s{StrideH}";
        if (Groups > 1) s += $" g{Groups}";
        if (!Activation.IsNone) s += $" +{Activation}";
        return s;
    }

    /// <summary>Every input element is multiplied into C_out/groups · KH · KW outputs.</summary>
    public override OpCost Cost(Node node)
    {
        var w = node.Input(1).Shape;
        long macs = Shape.Size(node.Input(0).Shape) * w[1] * KernelH * KernelW;
        return new OpCost(macs, LayerKind.StandardConv, [1, 2]);
    }

    public override Op? WithActivation(Activation activation) => Activation.IsNone ? this with { Activation = activation } : null;

    public override void ExportOnnx(Node n, IOnnxWriter w)
    {
        string y = n.Output.Name;
        var inputs = new List<string> { w.Name(n.Input(0)), w.Name(n.Input(1)) };
        if (n.OptionalInput(2) is { } bias) inputs.Add(w.Name(bias));
        string raw = OnnxForms.Raw(w, n, !Activation.IsNone, "convtranspose");
        var attrs = new List<OnnxAttribute>
        {
            OnnxAttribute.Of("kernel_shape", new[] { KernelH, KernelW }),
            OnnxAttribute.Of("strides", new[] { StrideH, StrideW }),
            OnnxAttribute.Of("dilations", new[] { DilationH, DilationW }),
            OnnxAttribute.Of("group", (long)Groups),
        };
        if (OutputPadH != 0 || OutputPadW != 0) attrs.Add(OnnxAttribute.Of("output_padding", new[] { OutputPadH, OutputPadW }));
        if (OutputShape is not null || AutoPad is AutoPad.SameUpper or AutoPad.SameLower)
        {
            // Pads derived from a wanted output: written resolved for this graph's input size, since runtimes
            // have disagreed on which end SAME_UPPER/SAME_LOWER put the odd cell at.
            var g = Geometry(n.Input(0).Shape, n.Input(1).Shape);
            attrs.RemoveAll(a => a.Name == "output_padding");
            if (g.OutputPadH != 0 || g.OutputPadW != 0) attrs.Add(OnnxAttribute.Of("output_padding", new[] { g.OutputPadH, g.OutputPadW }));
            attrs.Add(OnnxAttribute.Of("pads", new[] { g.PadTop, g.PadLeft, g.PadBottom, g.PadRight }));
        }
        else if (AutoPad == AutoPad.Valid) attrs.Add(OnnxAttribute.Of("auto_pad", "VALID"));
        else attrs.Add(OnnxAttribute.Of("pads", new[] { PadTop, PadLeft, PadBottom, PadRight }));
        w.Node("ConvTranspose", n.Name, [.. inputs], [raw], [.. attrs]);
        OnnxForms.Activation(w, n.Name, Activation, raw, y);
    }

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        for (int i = 0; i < 3; i++) PlanCompiler.Require(n, i, DataType.Float32, i switch { 0 => "ConvTranspose input", 1 => "ConvTranspose weight", _ => "ConvTranspose bias" });
        var x = n.Input(0);
        var w = n.Input(1);
        var g = Geometry(x.Shape, w.Shape);
        var input = plan.Get(x, MemoryLayout.Nhwc);
        var output = plan.Produce(n.Output, MemoryLayout.Nhwc);
        if (w.IsConstant && n.OptionalInput(2) is null or { IsConstant: true })
        {
            var op = new ConvTranspose2dOperator(g with { Batch = 1 }, PlanCompiler.ConstantFloats(n, 1, "ConvTranspose weight"),
                PlanCompiler.ConstantFloats(n, 2, "ConvTranspose bias"), plan.Isa);
            plan.Add(new ConvTransposeStep(n.Name, op, g.Batch, Activation, input, output));
            return;
        }
        // Weights computed at run time: repacked on every run.
        var weights = plan.Get(w, MemoryLayout.Plain);
        var bias = n.OptionalInput(2) is { } b ? plan.Get(b, MemoryLayout.Plain) : null;
        plan.Add(new RuntimeWeightConvTransposeStep(n.Name, g, Activation, plan.Isa, input, weights, bias, output));
    }

    public bool Equals(ConvTranspose? other) => other is not null && KernelH == other.KernelH && KernelW == other.KernelW
        && StrideH == other.StrideH && StrideW == other.StrideW && PadTop == other.PadTop && PadLeft == other.PadLeft
        && PadBottom == other.PadBottom && PadRight == other.PadRight && DilationH == other.DilationH && DilationW == other.DilationW
        && OutputPadH == other.OutputPadH && OutputPadW == other.OutputPadW && Groups == other.Groups && AutoPad == other.AutoPad
        && (OutputShape ?? []).SequenceEqual(other.OutputShape ?? []) && (OutputShape is null) == (other.OutputShape is null) && Activation == other.Activation;

    public override int GetHashCode() => HashCode.Combine(KernelH, KernelW, StrideH, StrideW, Groups, AutoPad, OutputShape?.Length ?? -1, Activation);
}

/// <summary>A transposed convolution on NHWC slots with packed weights; the activation runs over the output in place.</summary>
internal sealed class ConvTransposeStep(string name, ConvTranspose2dOperator op, int batch, Activation act, Slot input, Slot output)
    : Step(name, [input], [output])
{
    public override string Kernel => "ConvTranspose";

    public override void Execute(RunContext ctx)
    {
        var y = ctx.Write(output);
        op.Run(batch, ctx.Read(input), y, ctx.Workers);
        if (!act.IsNone) Elementwise.Apply(act, y, y);
    }
}

/// <summary>A transposed convolution whose weights (and bias) are read from slots and packed on every run.</summary>
internal sealed class RuntimeWeightConvTransposeStep(string name, ConvTranspose2dGeometry g, Activation act, IsaLevel? isa,
    Slot input, Slot weights, Slot? bias, Slot output)
    : Step(name, new[] { input, weights, bias }.OfType<Slot>().ToArray(), [output])
{
    public override string Kernel => "ConvTranspose(runtime weights)";

    public override void Execute(RunContext ctx)
    {
        var op = new ConvTranspose2dOperator(g with { Batch = 1 }, ctx.Read(weights), ctx.ReadOptional(bias), isa);
        var y = ctx.Write(output);
        op.Run(g.Batch, ctx.Read(input), y, ctx.Workers);
        if (!act.IsNone) Elementwise.Apply(act, y, y);
    }
}
