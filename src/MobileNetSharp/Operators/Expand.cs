using System.Runtime.InteropServices;
using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// ONNX Expand: X broadcast (NumPy, both ways) with a target shape known at load time, any element type.
/// PyTorch writes <c>x * s.expand_as(x)</c>; where only broadcasting ops read the result the importer can drop
/// the Expand, and this op covers the rest.
/// </summary>
public sealed record ExpandOp(int[] Target) : Op, IRunnable, ElementBytes.IShapedCopy
{
    public override string Type => "Expand";

    public override int[][] InferShapes(Node node)
    {
        try
        {
            var y = Tensors.Shape.Broadcast(node.Input(0).Shape, Target);
            Tensors.Shape.Size(y);
            return [y];
        }
        catch (ArgumentException e) { throw Error(node, e.Message); }
    }

    public override string Describe() => $"Expand to {Tensors.Shape.Format(Target)}";

    public override Tensor[]? Fold(Node node) => ElementBytes.Fold<ExpandOp>("Expand", node.Input(0).Constant!, node.Output.Shape);

    static void ElementBytes.IShapedCopy.Copy<T>(ReadOnlySpan<T> x, int[] xShape, Span<T> y, int[] yShape)
    {
        var body = new ExpandRows<T> { X = x, Y = y };
        Broadcasting.Run("Expand", yShape, y.Length, xShape, x.Length, [], 1, [], 1, ref body);
    }

    private ref struct ExpandRows<T> : IBroadcastRows where T : unmanaged
    {
        public ReadOnlySpan<T> X;
        public Span<T> Y;

        public readonly void Row(long y, long o0, bool row0, long o1, bool row1, long o2, bool row2, int length)
        {
            if (row0) X.Slice((int)o0, length).CopyTo(Y.Slice((int)y, length));
            else Y.Slice((int)y, length).Fill(X[(int)o0]);
        }
    }

    public override int OnnxOpset(Node node) => 8;

    public override void ExportOnnx(Node n, IOnnxWriter w) =>
        w.Node("Expand", n.Name, [w.Name(n.Input(0)), w.Ints(n.Output.Name + "/shape", Target.Select(d => (long)d))], [n.Output.Name]);

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        var x = n.Input(0);
        plan.Add(new ShapedCopyStep<ExpandOp>(n.Name, "Expand", x.DataType.SizeOf(), x.Shape, plan.Get(x, MemoryLayout.Plain), plan.Produce(n.Output, MemoryLayout.Plain)));
    }

    public bool Equals(ExpandOp? other) => other is not null && Target.SequenceEqual(other.Target);
    public override int GetHashCode() => Target.Length;
}

/// <summary>Expand or Tile at run time: the op's element-size-generic copy from one slot into another.</summary>
internal sealed class ShapedCopyStep<TCopy>(string name, string op, int size, int[] xShape, Slot x, Slot y) : Step(name, [x], [y])
    where TCopy : ElementBytes.IShapedCopy
{
    public override string Kernel => op;
    public override void Execute(RunContext ctx) => ElementBytes.Run<TCopy>(op, size, ctx.ReadBytes(x), xShape, ctx.WriteBytes(y), y.Shape);
}

/// <summary>ONNX Tile: X repeated Repeats[d] times along each axis d (repeats known at load time), any element type.</summary>
public sealed record TileOp(int[] Repeats) : Op, IRunnable, ElementBytes.IShapedCopy
{
    public override string Type => "Tile";

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        if (Repeats.Length != x.Length) throw Error(node, $"{Repeats.Length} repeats for an input of rank {x.Length}.");
        if (Repeats.Any(r => r < 0)) throw Error(node, $"repeats [{string.Join(",", Repeats)}] must not be negative.");
        var y = new int[x.Length];
        for (int i = 0; i < y.Length; i++)
        {
            long d = (long)x[i] * Repeats[i];
            if (d > Tensors.Shape.MaxElements) throw Error(node, $"tiling {Tensors.Shape.Format(x)} by [{string.Join(",", Repeats)}] gives dimension {d} on axis {i}.");
            y[i] = (int)d;
        }
        try { Tensors.Shape.Size(y); }
        catch (ArgumentException e) { throw Error(node, e.Message); }
        return [y];
    }

    public override string Describe() => $"Tile [{string.Join(",", Repeats)}]";

    public override Tensor[]? Fold(Node node) => ElementBytes.Fold<TileOp>("Tile", node.Input(0).Constant!, node.Output.Shape);

    /// <summary>
    /// Each output row (last axis) is X's row at the output index modulo X's shape, written repeats[^1] times
    /// side by side; an odometer over the other axes tracks the source row.
    /// </summary>
    static void ElementBytes.IShapedCopy.Copy<T>(ReadOnlySpan<T> x, int[] xShape, Span<T> y, int[] yShape)
    {
        if (y.IsEmpty) return;
        int rank = xShape.Length;
        if (rank == 0) { y[0] = x[0]; return; }
        int row = xShape[^1], outRow = yShape[^1];
        var xStride = new long[rank];
        long s = 1;
        for (int d = rank - 1; d >= 0; d--) { xStride[d] = s; s *= xShape[d]; }
        Span<int> index = stackalloc int[rank];      // output index over axes 0..rank-2
        Span<int> source = stackalloc int[rank];     // the same index modulo X's shape
        long src = 0;
        for (int o = 0; o < y.Length; o += outRow)
        {
            var from = x.Slice((int)src, row);
            for (int k = 0; k < outRow; k += row) from.CopyTo(y.Slice(o + k, row));
            for (int d = rank - 2; d >= 0; d--)
            {
                index[d]++;
                if (++source[d] == xShape[d]) { source[d] = 0; src -= xStride[d] * (xShape[d] - 1); }
                else src += xStride[d];
                if (index[d] < yShape[d]) break;
                index[d] = 0;
                src -= xStride[d] * source[d];
                source[d] = 0;
            }
        }
    }

    public override int OnnxOpset(Node node) => 6;

    public override void ExportOnnx(Node n, IOnnxWriter w) =>
        w.Node("Tile", n.Name, [w.Name(n.Input(0)), w.Ints(n.Output.Name + "/repeats", Repeats.Select(r => (long)r))], [n.Output.Name]);

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        var x = n.Input(0);
        plan.Add(new ShapedCopyStep<TileOp>(n.Name, "Tile", x.DataType.SizeOf(), x.Shape, plan.Get(x, MemoryLayout.Plain), plan.Produce(n.Output, MemoryLayout.Plain)));
    }

    public bool Equals(TileOp? other) => other is not null && Repeats.SequenceEqual(other.Repeats);
    public override int GetHashCode() => Repeats.Length;
}

