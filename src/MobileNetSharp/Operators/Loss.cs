using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Training;

namespace MobileNetSharp.Graph;

/// <summary>
/// Mean softmax cross-entropy (ONNX SoftmaxCrossEntropyLoss-13 with reduction "mean" and no weights; PyTorch's
/// CrossEntropyLoss): inputs scores [N, K] (float32) and labels [N] (int64, each in [0, K)); output the scalar loss.
/// <see cref="LabelSmoothing"/> s spreads s of the target mass evenly over the K classes (Szegedy et al. 2016,
/// "Rethinking the Inception Architecture", section 7; PyTorch's label_smoothing), which ONNX does not have, so a
/// smoothed loss is not exported. Appended by the trainer; models do not carry it.
/// </summary>
public sealed record SoftmaxCrossEntropyLoss(float LabelSmoothing = 0) : Op, IRunnable, IDifferentiable
{
    public override string Type => "SoftmaxCrossEntropyLoss";

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        var y = node.Input(1).Shape;
        if (x.Length != 2) throw Error(node, $"expects scores [N, classes], got {Shape.Format(x)}.");
        if (y.Length != 1 || y[0] != x[0]) throw Error(node, $"labels {Shape.Format(y)} do not match {x[0]} samples.");
        if (node.Input(1).DataType != DataType.Int64) throw Error(node, $"labels must be int64, got {node.Input(1).DataType}.");
        if (!(LabelSmoothing >= 0 && LabelSmoothing < 1)) throw Error(node, $"label smoothing must be in [0, 1), got {LabelSmoothing}.");
        return [[]];
    }

    public override DataType[] InferTypes(Node node) => [DataType.Float32];

    public override void ExportOnnx(Node n, IOnnxWriter w)
    {
        if (LabelSmoothing != 0) throw new NotSupportedException($"'{n.Name}': ONNX SoftmaxCrossEntropyLoss has no label smoothing.");
        w.Node(Type, n.Name, [w.Name(n.Input(0)), w.Name(n.Input(1))], [n.Output.Name], OnnxAttribute.Of("reduction", "mean"));
    }

    public override int OnnxOpset(Node node) => 13;

    void IRunnable.Lower(Node n, PlanCompiler plan) => LowerForward(n, plan);

    private Slot LowerForward(Node n, PlanCompiler plan)
    {
        PlanCompiler.Require(n, 0, DataType.Float32, "scores");
        var x = n.Input(0);
        var probabilities = PlanCompiler.Buffer(n.Name + ".probabilities", x.Shape);
        plan.Add(new LossStep(n.Name, LabelSmoothing, x.Shape[0], x.Shape[1], plan.Get(x, MemoryLayout.Plain),
            plan.Get(n.Input(1), MemoryLayout.Plain), probabilities, plan.Produce(n.Output, MemoryLayout.Plain)));
        return probabilities;
    }

    void IDifferentiable.LowerTraining(Node n, GradientCompiler t) => t.Save(n, LowerForward(n, t.Plan));

    void IDifferentiable.LowerBackward(Node n, GradientCompiler t)
    {
        var x = n.Input(0);
        if (t.InputGrad(x, MemoryLayout.Plain) is not { } dx) return;
        t.Plan.Add(new LossBackwardStep(n.Name + ".grad", LabelSmoothing, x.Shape[0], x.Shape[1], t.Saved<Slot>(n),
            t.Plan.Get(n.Input(1), MemoryLayout.Plain), t.OutputGrad(n.Output, MemoryLayout.Plain), dx));
    }
}

internal sealed class LossStep(string name, float smoothing, int batch, int classes, Slot scores, Slot labels, Slot probabilities, Slot loss)
    : Step(name, [scores, labels], [probabilities, loss])
{
    public override string Kernel => "softmax-cross-entropy";
    public override void Execute(RunContext ctx) =>
        ctx.Write(loss)[0] = SoftmaxCrossEntropy.Forward(ctx.Read(scores), ctx.Read<long>(labels), ctx.Write(probabilities), batch, classes, smoothing);
}

internal sealed class LossBackwardStep(string name, float smoothing, int batch, int classes, Slot probabilities, Slot labels, Slot dloss, Slot dscores)
    : Step(name, [probabilities, labels, dloss], [dscores])
{
    public override string Kernel => "softmax-cross-entropy-grad";
    public override void Execute(RunContext ctx) =>
        SoftmaxCrossEntropy.Backward(ctx.Read(probabilities), ctx.Read<long>(labels), ctx.Write(dscores), batch, classes, smoothing, ctx.Read(dloss)[0]);
}
