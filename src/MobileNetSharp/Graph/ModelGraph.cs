using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// A computation graph: named inputs, nodes in topological order, named outputs. Constants (weights)
/// are values with <see cref="Value.Constant"/> set. Every model source (builders, importers) produces
/// one of these; passes rewrite it; the runtime compiles it.
/// </summary>
public sealed class ModelGraph
{
    public string Name { get; set; }
    public List<Value> Inputs { get; } = [];
    public List<Node> Nodes { get; } = [];
    public List<Value> Outputs { get; } = [];
    /// <summary>Free-form facts about where the graph came from (architecture, width, resolution, ...).</summary>
    public Dictionary<string, string> Metadata { get; } = [];

    public ModelGraph(string name) => Name = name;

    /// <summary>Every constant used by some node, in first-use order.</summary>
    public IEnumerable<Value> Constants =>
        Nodes.SelectMany(n => n.Inputs).OfType<Value>().Where(v => v.IsConstant).Distinct();

    /// <summary>
    /// Re-orders nodes topologically and checks the graph is well formed: no cycles, every input is a
    /// graph input, a constant or some node's output, names are unique, outputs are produced.
    /// </summary>
    public void Validate()
    {
        var available = new HashSet<Value>(Inputs);
        var names = new HashSet<string>();
        foreach (var v in Inputs)
            if (!names.Add(v.Name)) throw new GraphException($"Duplicate value name '{v.Name}'.");
        foreach (var n in Nodes)
            foreach (var o in n.Outputs)
            {
                if (!names.Add(o.Name)) throw new GraphException($"Value '{o.Name}' is produced twice (node '{n.Name}').");
                if (o.Producer != n) throw new GraphException($"Value '{o.Name}' claims another producer than node '{n.Name}'.");
            }

        var produced = new HashSet<Value>(Nodes.SelectMany(n => n.Outputs));
        foreach (var n in Nodes)
            foreach (var i in n.Inputs)
                if (i is not null && !i.IsConstant && !available.Contains(i) && !produced.Contains(i))
                    throw new GraphException($"Node '{n.Name}' ({n.Op.Type}) reads '{i.Name}', which no node, input or initializer provides.");

        // Kahn's algorithm: count each node's unmet inputs and release readers as values appear. Ready
        // nodes leave in their original order (a min-heap on position), so an already valid order is kept:
        // builders order layers depth-first, which keeps few activations alive at once.
        var waiting = new Dictionary<Node, int>(Nodes.Count);
        var position = new Dictionary<Node, int>(Nodes.Count);
        var readers = new Dictionary<Value, List<Node>>();
        var ready = new PriorityQueue<Node, int>();
        foreach (var n in Nodes)
        {
            position[n] = position.Count;
            int unmet = 0;
            foreach (var i in n.Inputs)
            {
                if (i is null || i.IsConstant || available.Contains(i)) continue;
                unmet++;
                if (!readers.TryGetValue(i, out var list)) readers[i] = list = [];
                list.Add(n);
            }
            waiting[n] = unmet;
            if (unmet == 0) ready.Enqueue(n, position[n]);
        }
        var ordered = new List<Node>(Nodes.Count);
        while (ready.Count > 0)
        {
            var n = ready.Dequeue();
            ordered.Add(n);
            foreach (var o in n.Outputs)
            {
                available.Add(o);
                if (readers.TryGetValue(o, out var list))
                    foreach (var r in list)
                        if (--waiting[r] == 0) ready.Enqueue(r, position[r]);
            }
        }
        if (ordered.Count < Nodes.Count)
        {
            var stuck = Nodes.First(n => waiting[n] > 0);
            throw new GraphException($"The graph has a cycle through node '{stuck.Name}' ({stuck.Op.Type}).");
        }
        foreach (var o in Outputs)
            if (!o.IsConstant && !available.Contains(o)) throw new GraphException($"Graph output '{o.Name}' is never computed.");
        if (Outputs.Select(o => o.Name).Distinct().Count() != Outputs.Count)
            throw new GraphException($"Graph '{Name}' lists an output name twice: {string.Join(", ", Outputs.Select(o => o.Name))}.");
        Nodes.Clear();
        Nodes.AddRange(ordered);
    }

    /// <summary>Validates, then recomputes every node's output shapes and types from the inputs forward.</summary>
    public void InferShapes()
    {
        Validate();
        foreach (var n in Nodes)
        {
            var shapes = n.Op.InferShapes(n);
            var types = n.Op.InferTypes(n);
            if (shapes.Length != n.Outputs.Length || types.Length == 0)
                throw new GraphException($"Node '{n.Name}' ({n.Op.Type}) has {n.Outputs.Length} outputs; the op produces {shapes.Length}.");
            for (int i = 0; i < n.Outputs.Length; i++)
            {
                try { Shape.Size(shapes[i]); } // rejects absurd sizes and ranks early, with the node named
                catch (ArgumentException e) { throw new GraphException(n, e.Message, e); }
                n.Outputs[i].Shape = shapes[i];
                n.Outputs[i].DataType = types[Math.Min(i, types.Length - 1)];
            }
        }
    }

    /// <summary>Nodes that read each value (for passes that need fan-out).</summary>
    public Dictionary<Value, List<Node>> Consumers()
    {
        var map = new Dictionary<Value, List<Node>>();
        foreach (var n in Nodes)
            foreach (var i in n.Inputs)
                if (i is not null)
                {
                    if (!map.TryGetValue(i, out var list)) map[i] = list = [];
                    list.Add(n);
                }
        return map;
    }

    /// <summary>A deep copy of the structure; constant tensors are shared (passes replace, never mutate, them).</summary>
    public ModelGraph Clone()
    {
        var g = new ModelGraph(Name);
        foreach (var kv in Metadata) g.Metadata[kv.Key] = kv.Value;
        var map = new Dictionary<Value, Value>();
        Value Map(Value v)
        {
            if (!map.TryGetValue(v, out var c))
                map[v] = c = new Value(v.Name, v.DataType, (int[])v.Shape.Clone(), v.Constant) { DimParams = (string?[]?)v.DimParams?.Clone() };
            return c;
        }
        foreach (var i in Inputs) g.Inputs.Add(Map(i));
        foreach (var n in Nodes)
            g.Nodes.Add(new Node(n.Name, n.Op, n.Inputs.Select(i => i is null ? null : Map(i)).ToArray(), n.Outputs.Select(Map).ToArray()));
        foreach (var o in Outputs) g.Outputs.Add(Map(o));
        return g;
    }

    public override string ToString() => $"{Name}: {Nodes.Count} nodes";
}
