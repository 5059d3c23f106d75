using MobileNetSharp.Graph;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Passes;

/// <summary>
/// Removes an Expand (or a Tile that repeats only axes of size 1) whose every reader is a broadcasting
/// element-wise op that gives the same result without it, as PyTorch exports <c>x * s.expand_as(x)</c> in
/// squeeze-excite blocks: the Mul broadcasts s by itself, so nothing the size of x needs to be materialized.
/// Element-wise, broadcasting repeats exactly the values the Expand would have, so the result is unchanged.
/// An Expand with any other reader, or that is a graph output, stays and runs.
/// </summary>
public static class DropBroadcastExpand
{
    public static int Run(ModelGraph g)
    {
        int dropped = 0;
        var consumers = g.Consumers();
        foreach (var node in g.Nodes.ToList())
        {
            if (!IsBroadcast(node) || g.Outputs.Contains(node.Output)) continue;
            var source = node.Input(0);
            var readers = consumers.TryGetValue(node.Output, out var list) ? list.Distinct().ToList() : [];
            if (readers.Count == 0 || !readers.All(r => SameWithout(r, node.Output, source))) continue;
            foreach (var reader in readers)
                for (int i = 0; i < reader.Inputs.Length; i++)
                    if (reader.Inputs[i] == node.Output) reader.Inputs[i] = source;
            g.Nodes.Remove(node);
            consumers = g.Consumers();
            dropped++;
        }
        return dropped;
    }

    /// <summary>An Expand, or a Tile whose repeats only copy axes of size 1 (the same broadcast).</summary>
    private static bool IsBroadcast(Node n) => n.Op switch
    {
        ExpandOp => true,
        TileOp t => t.Repeats.Select((r, d) => r == 1 || n.Input(0).Shape[d] == 1).All(b => b),
        _ => false,
    };

    private static bool SameWithout(Node reader, Value expanded, Value source)
    {
        if (reader.Op is not BinaryOp || reader.Inputs.Count(v => v == expanded) == 0) return false;
        var shapes = reader.Inputs.Select(v => v == expanded ? source.Shape : v!.Shape).ToArray();
        try { return Shape.Equal(Shape.Broadcast(shapes[0], shapes[1]), reader.Output.Shape); }
        catch (ArgumentException) { return false; }
    }
}
