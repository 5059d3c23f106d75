using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// ONNX PRelu: x for x &gt;= 0, slope * x below, the slope (input 1, a constant or a runtime tensor) broadcasting
/// to X's shape. Not fused into conv epilogues: those take one scalar-parameter activation, and a learned PRelu
/// has a slope per channel (fusing it would need a per-channel epilogue operand).
/// </summary>
public sealed record PReluOp : Op, IRunnable
{
    public override string Type => "PRelu";

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0);
        var slope = node.Input(1);
        if (x.DataType != DataType.Float32 || slope.DataType != DataType.Float32)
            throw Error(node, $"X is {x.DataType} and slope {slope.DataType}; PRelu is computed on Float32 only.");
        int[] y;
        try { y = Tensors.Shape.Broadcast(x.Shape, slope.Shape); }
        catch (ArgumentException e) { throw Error(node, e.Message); }
        if (!Tensors.Shape.Equal(y, x.Shape))
            throw Error(node, $"slope {Tensors.Shape.Format(slope.Shape)} does not broadcast to X {Tensors.Shape.Format(x.Shape)}.");
        return [x.Shape];
    }

    public override Tensor[]? Fold(Node node)
    {
        Tensor x = node.Input(0).Constant!, slope = node.Input(1).Constant!;
        var y = new float[x.Length];
        Elementwise.PRelu(x.Floats, x.Shape, slope.Floats, slope.Shape, y);
        return [new Tensor(y, x.Shape)];
    }

    /// <summary>Opset 7 is the first with NumPy (unidirectional) broadcasting of the slope.</summary>
    public override int OnnxOpset(Node node) => 7;

    public override void ExportOnnx(Node n, IOnnxWriter w) => w.Node("PRelu", n.Name, [w.Name(n.Input(0)), w.Name(n.Input(1))], [n.Output.Name]);

    /// <summary>Follows X's layout; the slope is read in the same layout (a per-channel slope becomes a last-axis vector channels-last).</summary>
    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        PlanCompiler.Require(n, 0, DataType.Float32, "PRelu input");
        PlanCompiler.Require(n, 1, DataType.Float32, "PRelu slope");
        Value x = n.Input(0), slope = n.Input(1);
        var layout = plan.FollowAny(n.Output, [x]);
        plan.Add(new PReluStep(n.Name, plan.Get(x, layout), PlanCompiler.Physical(x.Shape, layout),
            plan.Get(slope, layout), PlanCompiler.Physical(slope.Shape, layout), plan.Produce(n.Output, layout)));
    }
}

internal sealed class PReluStep(string name, Slot x, int[] xShape, Slot slope, int[] slopeShape, Slot y) : Step(name, [x, slope], [y])
{
    public override string Kernel => "PRelu";
    public override void Execute(RunContext ctx) => Elementwise.PRelu(ctx.Read(x), xShape, ctx.Read(slope), slopeShape, ctx.Write(y));
}
