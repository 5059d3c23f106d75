using MobileNetSharp.Graph;

namespace MobileNetSharp.Passes;

/// <summary>Small helpers the passes share for splicing nodes out of a graph.</summary>
internal static class GraphRewriter
{
    /// <summary>Replaces every read of <paramref name="from"/> by <paramref name="to"/>, graph outputs included.</summary>
    public static void ReplaceUses(ModelGraph g, Value from, Value to)
    {
        foreach (var n in g.Nodes)
            for (int i = 0; i < n.Inputs.Length; i++)
                if (n.Inputs[i] == from) n.Inputs[i] = to;
        for (int i = 0; i < g.Outputs.Count; i++)
            if (g.Outputs[i] == from)
            {
                // Keep the public output name: the surviving value takes it over.
                to.Name = from.Name;
                g.Outputs[i] = to;
            }
    }

    /// <summary>True when exactly one node reads the value and it is not a graph output.</summary>
    public static bool HasSingleInternalUse(ModelGraph g, Dictionary<Value, List<Node>> consumers, Value v) =>
        consumers.TryGetValue(v, out var list) && list.Count == 1 && !g.Outputs.Contains(v);

    /// <summary>Rebuilds <paramref name="node"/> with a new op and inputs, producing <paramref name="output"/> instead of its own.</summary>
    public static Node Rebuild(ModelGraph g, Node node, Op op, Value?[] inputs, Value output)
    {
        var replacement = new Node(node.Name, op, inputs, [output]);
        g.Nodes[g.Nodes.IndexOf(node)] = replacement;
        return replacement;
    }
}
