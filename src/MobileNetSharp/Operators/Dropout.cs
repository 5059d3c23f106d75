using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Training;

namespace MobileNetSharp.Graph;

/// <summary>
/// Dropout (Srivastava et al. 2014) in its inverted form (ONNX Dropout-13, PyTorch nn.Dropout): at inference the
/// identity; in training each element is kept with probability 1 - <see cref="Ratio"/> and scaled by 1 / (1 - ratio),
/// so the expected activation is unchanged. The training mask derives from the step's seed and the node's
/// position, so a run is reproducible and independent of the thread count.
/// </summary>
public sealed record Dropout(float Ratio = 0.5f) : Op, IRunnable, IDifferentiable
{
    public override string Type => "Dropout";

    public override int[][] InferShapes(Node node)
    {
        if (!(Ratio >= 0 && Ratio < 1)) throw Error(node, $"ratio must be in [0, 1), got {Ratio}.");
        return [node.Input(0).Shape];
    }

    public override string Describe() => $"Dropout {Ratio:0.##}";
    public override Tensor[]? Fold(Node node) => [node.Input(0).Constant!];
    public override bool FoldSharesData => true;
    public override int OnnxOpset(Node node) => 12;

    public override void ExportOnnx(Node n, IOnnxWriter w) =>
        w.Node("Dropout", n.Name, [w.Name(n.Input(0)), w.Scalar(n.Name + ".ratio", Ratio)], [n.Output.Name]);

    void IRunnable.Lower(Node n, PlanCompiler plan) => plan.Alias(n.Output, n.Input(0));

    void IDifferentiable.LowerTraining(Node n, GradientCompiler t)
    {
        PlanCompiler.Require(n, 0, DataType.Float32, "Dropout input");
        var x = n.Input(0);
        var layout = t.Plan.NativeLayout(x);
        var mask = PlanCompiler.Buffer(n.Name + ".mask", PlanCompiler.Physical(x.Shape, layout), DataType.UInt8);
        // Each dropout node draws from its own stream: the step seed mixed with a hash of the node's name.
        ulong salt = (ulong)StableHash(n.Name);
        t.Plan.Add(new DropoutStep(n.Name, Ratio, salt, t.Plan.Get(x, layout), t.Seed, mask, t.Plan.Produce(n.Output, layout)));
        t.Save(n, mask);
    }

    void IDifferentiable.LowerBackward(Node n, GradientCompiler t)
    {
        var x = n.Input(0);
        var layout = t.Plan.NativeLayout(n.Output);
        if (t.InputGrad(x, layout) is not { } dx) return;
        t.Plan.Add(new DropoutBackwardStep(n.Name + ".grad", Ratio, t.OutputGrad(n.Output, layout), t.Saved<Slot>(n), dx));
    }

    /// <summary>FNV-1a over the name: stable across runs and processes (string.GetHashCode is randomized).</summary>
    private static long StableHash(string s)
    {
        ulong h = 14695981039346656037;
        foreach (char c in s) h = (h ^ c) * 1099511628211;
        return (long)h;
    }
}

internal sealed class DropoutStep(string name, float ratio, ulong salt, Slot x, Slot seed, Slot mask, Slot y) : Step(name, [x, seed], [mask, y])
{
    public override string Kernel => "dropout";
    public override void Execute(RunContext ctx) =>
        DropoutKernel.Forward(ctx.Read(x), ctx.Write(y), ctx.Write<byte>(mask), ratio, (ulong)ctx.Read<long>(seed)[0] ^ salt, ctx.Workers);
}

internal sealed class DropoutBackwardStep(string name, float ratio, Slot dy, Slot mask, Slot dx) : Step(name, [dy, mask], [dx])
{
    public override string Kernel => "dropout-grad";
    public override void Execute(RunContext ctx) => DropoutKernel.Backward(ctx.Read(dy), ctx.Read<byte>(mask), ctx.Write(dx), ratio, ctx.Workers);
}
