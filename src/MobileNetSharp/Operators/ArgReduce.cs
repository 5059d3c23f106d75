using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// ONNX ArgMax / ArgMin: the int64 index of the largest (smallest) float along Axis, the axis kept as 1 when
/// KeepDims. Ties take the first index, or the last with SelectLastIndex; NaN wins as in NumPy.
/// </summary>
public sealed record ArgReduceOp(bool Max, int Axis, bool KeepDims = true, bool SelectLastIndex = false) : Op, IRunnable
{
    public override string Type => Max ? "ArgMax" : "ArgMin";

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0);
        if (x.DataType != DataType.Float32) throw Error(node, $"input '{x.Name}' is {x.DataType}; {Type} is computed on Float32 only.");
        if (x.Rank == 0) throw Error(node, "the input must have rank >= 1.");
        int axis;
        try { axis = Tensors.Shape.Axis(Axis, x.Rank); }
        catch (ArgumentException e) { throw Error(node, e.Message); }
        if (x.Shape[axis] == 0 && Tensors.Shape.Size(OutputShape(x.Shape, axis)) > 0)
            throw Error(node, $"axis {Axis} is empty: there is no index to return.");
        return [OutputShape(x.Shape, axis)];
    }

    private int[] OutputShape(int[] x, int axis) =>
        KeepDims ? x.Select((d, i) => i == axis ? 1 : d).ToArray() : x.Where((_, i) => i != axis).ToArray();

    public override DataType[] InferTypes(Node node) => [DataType.Int64];

    public override string Describe() => $"{Type} axis {Axis}" + (SelectLastIndex ? " (last)" : "");

    public override Tensor[]? Fold(Node node)
    {
        var x = node.Input(0).Constant!;
        var y = new long[Tensors.Shape.Size(node.Output.Shape)];
        Run(x.Floats, x.Shape, y);
        return [new Tensor(y, node.Output.Shape)];
    }

    internal void Run(ReadOnlySpan<float> x, int[] shape, Span<long> y)
    {
        if (Max) Layout.ArgMax(x, shape, Axis, SelectLastIndex, y);
        else Layout.ArgMin(x, shape, Axis, SelectLastIndex, y);
    }

    public override int OnnxOpset(Node node) => SelectLastIndex ? 12 : 1;

    public override void ExportOnnx(Node n, IOnnxWriter w)
    {
        var attrs = new List<OnnxAttribute> { OnnxAttribute.Of("axis", (long)Axis), OnnxAttribute.Of("keepdims", KeepDims ? 1L : 0L) };
        if (SelectLastIndex) attrs.Add(OnnxAttribute.Of("select_last_index", 1L));
        w.Node(Type, n.Name, [w.Name(n.Input(0))], [n.Output.Name], [.. attrs]);
    }

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        PlanCompiler.Require(n, 0, DataType.Float32, $"{Type} input");
        var x = n.Input(0);
        plan.Add(new ArgReduceStep(n.Name, this, x.Shape, plan.Get(x, MemoryLayout.Plain), plan.Produce(n.Output, MemoryLayout.Plain)));
    }
}

internal sealed class ArgReduceStep(string name, ArgReduceOp op, int[] shape, Slot x, Slot y) : Step(name, [x], [y])
{
    public override string Kernel => op.Type;
    public override void Execute(RunContext ctx) => op.Run(ctx.Read(x), shape, ctx.Write<long>(y));
}
