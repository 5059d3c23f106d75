using MobileNetSharp.Graph;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Onnx.Import;

/// <summary>
/// Expand of a tensor computed at run time, as PyTorch exports <c>x * s.expand_as(x)</c>: Expand(s, Shape(x))
/// feeding a Mul with x. The Mul broadcasts s by itself, so the Expand is redundant there and is dropped:
/// the Mul reads s directly, and nothing the size of x is materialized. A Tile that repeats only axes of size 1
/// (<c>s.repeat(1, 1, h, w)</c>) is the same broadcast and is handled the same way.
/// </summary>
/// <remarks>
/// Whether that is exact depends on every reader of the Expand, and readers are converted after it. So the
/// converter emits a placeholder (<see cref="PendingExpand"/>, which has the expanded shape, so the readers'
/// shapes come out as in the file), and <see cref="Resolve"/> removes each one once the whole graph is built.
/// It succeeds when every reader is a broadcasting element-wise op (Add, Sub, Mul, Div, Pow, Max, Min) whose
/// output shape is the same with the unexpanded input: element-wise, broadcasting then repeats exactly the
/// values the Expand would have. Any other reader is refused with the node named; the graph has no op that
/// materializes a broadcast at run time.
/// </remarks>
internal static class BroadcastExpand
{
    /// <summary>The importer's stand-in for an Expand of a runtime tensor; it never reaches a finished graph.</summary>
    /// <param name="OpType">The ONNX op it stands for: Expand, or Tile of size-1 axes.</param>
    internal sealed record PendingExpand(int[] Target, string Context, string OpType) : Op
    {
        public override string Type => OpType;

        public override int[][] InferShapes(Node node)
        {
            try { return [Shape.Broadcast(node.Input(0).Shape, Target)]; }
            catch (ArgumentException e) { throw Error(node, e.Message); }
        }
    }

    /// <summary>Expand's converter; reached only when the data input is not a load-time constant.</summary>
    public static void Expand(NodeContext n)
    {
        var x = n.Input(0);
        var shape = LoadTimeOps.ExpandedShape(n, x.Shape);
        if (Shape.Equal(shape, x.Shape)) n.Emit(new Identity(), x); // expanding to its own shape (or a broadcastable smaller one)
        else n.Emit(new PendingExpand(shape, n.Context, n.OpType), x);
    }

    /// <summary>Tile's converter; reached only when the data input is not a load-time constant.</summary>
    public static void Tile(NodeContext n)
    {
        var x = n.Input(0);
        var (shape, repeats) = LoadTimeOps.TiledShape(n, x.Shape);
        if (repeats.All(r => r == 1)) n.Emit(new Identity(), x);
        else if (repeats.Select((r, d) => r == 1 || x.Shape[d] == 1).All(b => b)) n.Emit(new PendingExpand(shape, n.Context, n.OpType), x);
        else
        {
            throw new ConstantInputRequiredException(
                $"{n.Context}: Tile of a computed tensor is supported when it repeats only axes of size 1 (a broadcast, like Expand) "
                + $"and feeds broadcasting element-wise ops (Add, Sub, Mul, Div, Pow, Max, Min); here '{x.Name}' {Shape.Format(x.Shape)} "
                + $"is repeated [{string.Join(",", repeats)}] times, along an axis longer than 1. Repeating data at run time is not supported yet.",
                n.Import.RuntimeInputsOf(x));
        }
    }

    /// <summary>
    /// Drops every placeholder whose readers all broadcast the unexpanded input to the same result; refuses the
    /// first one that has another kind of reader. Runs on the finished graph with dead nodes removed.
    /// </summary>
    public static void Resolve(ImportContext ctx)
    {
        var g = ctx.Graph;
        var pending = g.Nodes.Where(n => n.Op is PendingExpand).ToList();
        if (pending.Count == 0) return;
        var consumers = g.Consumers();
        foreach (var node in pending)
        {
            var op = (PendingExpand)node.Op;
            var source = node.Input(0);
            var expanded = node.Output;
            var readers = consumers.TryGetValue(expanded, out var list) ? list.Distinct().ToList() : [];
            string? problem = g.Outputs.Contains(expanded) ? "it is a graph output" : null;
            foreach (var reader in readers)
            {
                if (problem is not null) break;
                problem = Obstacle(reader, expanded, source);
            }
            if (problem is not null)
            {
                var inputs = ctx.RuntimeInputsOf(source);
                throw new ConstantInputRequiredException(
                    $"{op.Context}: {op.OpType} of a computed tensor is supported when it feeds broadcasting element-wise ops "
                    + "(Add, Sub, Mul, Div, Pow, Max, Min) that give the same result without it; "
                    + $"here '{source.Name}' {Shape.Format(source.Shape)} is {(op.OpType == "Tile" ? "tiled" : "expanded")} to {Shape.Format(expanded.Shape)} and {problem}. "
                    + "Materializing a broadcast at run time is not supported yet.", inputs);
            }
            foreach (var reader in readers)
                for (int i = 0; i < reader.Inputs.Length; i++)
                    if (reader.Inputs[i] == expanded) reader.Inputs[i] = source;
            g.Nodes.Remove(node);
        }
    }

    /// <summary>Why <paramref name="reader"/> cannot read <paramref name="source"/> instead of <paramref name="expanded"/>; null when it can.</summary>
    private static string? Obstacle(Node reader, Value expanded, Value source)
    {
        string who = $"node '{reader.Name}' ({reader.Op.Type}) reads it";
        if (reader.Op is not BinaryOp) return who;
        var shapes = reader.Inputs.Select(v => v == expanded ? source.Shape : v!.Shape).ToArray();
        int[] without;
        try { without = Shape.Broadcast(shapes[0], shapes[1]); }
        catch (ArgumentException) { return who + ", and its operands do not broadcast without the Expand"; }
        return Shape.Equal(without, reader.Output.Shape) ? null
            : $"{who}, whose result would be {Shape.Format(without)} instead of {Shape.Format(reader.Output.Shape)} without it";
    }
}
