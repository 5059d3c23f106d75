using MobileNetSharp.Graph;
using MobileNetSharp.Onnx.Proto;

namespace MobileNetSharp.Onnx.Import;

/// <summary>
/// Orders an ONNX graph's nodes so every value is produced before it is read (keeping the file's order
/// where it allows), and rejects dangling names, duplicate producers and cycles with the node named.
/// </summary>
internal static class GraphOrder
{
    public static List<(int Index, NodeProto Node)> Sort(GraphProto g, HashSet<string> available)
    {
        var producer = new Dictionary<string, int>();
        for (int i = 0; i < g.Node.Count; i++)
            foreach (var o in g.Node[i].Output)
            {
                if (o.Length == 0) continue;
                if (available.Contains(o)) throw new ModelFormatException($"Node {Describe(g.Node[i], i)} writes '{o}', which is already a graph input or initializer.");
                if (!producer.TryAdd(o, i)) throw new ModelFormatException($"Value '{o}' is produced by two nodes: {Describe(g.Node[producer[o]], producer[o])} and {Describe(g.Node[i], i)}.");
            }

        var waiting = new int[g.Node.Count];
        var readers = new List<int>[g.Node.Count];
        for (int i = 0; i < g.Node.Count; i++)
        {
            foreach (var name in g.Node[i].Input.Where(n => n.Length > 0).Distinct())
            {
                if (available.Contains(name)) continue;
                if (!producer.TryGetValue(name, out int p))
                    throw new ModelFormatException($"Node {Describe(g.Node[i], i)} reads '{name}', which no node, graph input or initializer provides.");
                (readers[p] ??= []).Add(i);
                waiting[i]++;
            }
        }

        var ready = new PriorityQueue<int, int>();
        for (int i = 0; i < waiting.Length; i++) if (waiting[i] == 0) ready.Enqueue(i, i);
        var order = new List<(int, NodeProto)>(g.Node.Count);
        while (ready.TryDequeue(out int i, out _))
        {
            order.Add((i, g.Node[i]));
            foreach (int r in readers[i] ?? []) if (--waiting[r] == 0) ready.Enqueue(r, r);
        }
        if (order.Count < g.Node.Count)
        {
            int stuck = Enumerable.Range(0, waiting.Length).First(i => waiting[i] > 0);
            throw new ModelFormatException($"The graph has a cycle through node {Describe(g.Node[stuck], stuck)}.");
        }
        return order;
    }

    public static string Describe(NodeProto n, int index) =>
        string.IsNullOrEmpty(n.Name) ? $"#{index} ({n.OpType})" : $"'{n.Name}' ({n.OpType})";
}
