using MobileNetSharp.Graph;
using MobileNetSharp.Onnx.Proto;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Onnx.Import;

/// <summary>
/// The state of one import: ONNX names -> graph values, lazily read initializers, unique naming for the
/// nodes and values the importer adds, and node emission with immediate shape inference and load-time
/// evaluation of nodes whose inputs are all constant.
/// </summary>
/// <remarks>
/// Everything a file can make the importer do is bounded for the whole model, not per node: the elements
/// computed at load time (<see cref="OnnxImportOptions.MaxFoldedElements"/>), the graph nodes emitted
/// (a few per node of the file), the slices that runtime Gathers expand into, and every tensor's rank.
/// </remarks>
internal sealed class ImportContext
{
    /// <summary>Slice nodes all Gathers on runtime tensors may expand into, together.</summary>
    public const int MaxGatherSlices = 4096;

    /// <summary>Graph nodes the importer may emit: a few per node of the file, plus slack for Gather expansion.</summary>
    public static long MaxEmittedNodes(int fileNodes) => 4L * fileNodes + 10_000;

    private readonly Dictionary<string, Value> _values = [];
    private readonly Dictionary<string, TensorProto> _initializers;
    private readonly ExternalDataSource? _external;
    private readonly HashSet<string> _takenValueNames;
    private readonly HashSet<string> _takenNodeNames = [];
    private readonly HashSet<string> _consumed;
    private readonly long _maxNodes;
    private long _foldedElements;
    private int _gatherSlices;

    public ModelGraph Graph { get; }
    public OnnxImportOptions Options { get; }
    public int Opset { get; }

    /// <summary>
    /// Whether a Shape or Size node folded at load time read the leading dimension of a runtime value: the
    /// batch size is then baked into constants, and the graph works at that batch only.
    /// </summary>
    public bool FoldedRuntimeBatch { get; private set; }

    /// <summary>Notes that load-time folding read <paramref name="value"/>'s shape, including its leading dimension or not.</summary>
    public void NoteShapeRead(Value value, bool leadingAxis)
    {
        if (!value.IsConstant && leadingAxis && value.Rank > 0) FoldedRuntimeBatch = true;
    }

    public ImportContext(ModelGraph graph, OnnxImportOptions options, int opset, Dictionary<string, TensorProto> initializers,
        ExternalDataSource? external, HashSet<string> allValueNames, HashSet<string> consumed, int fileNodes)
    {
        _maxNodes = MaxEmittedNodes(fileNodes);
        Graph = graph;
        Options = options;
        Opset = opset;
        _initializers = initializers;
        _external = external;
        _takenValueNames = allValueNames;
        _consumed = consumed;
    }

    /// <summary>The value with this ONNX name; initializers are read on first use only.</summary>
    public Value? Find(string name)
    {
        if (_values.TryGetValue(name, out var v)) return v;
        if (!_initializers.TryGetValue(name, out var proto)) return null;
        var t = TensorReader.Read(proto, _external, $"Initializer '{name}'");
        return _values[name] = Value.FromConstant(name, t);
    }

    public Tensor ReadTensor(TensorProto proto, string what) => TensorReader.Read(proto, _external, what);

    /// <summary>Whether a node that leads to a graph output reads <paramref name="name"/> (or it is a graph output).</summary>
    public bool IsConsumed(string name) => _consumed.Contains(name);

    /// <summary>Counts <paramref name="elements"/> against the load-time budget of the whole model, before they are allocated.</summary>
    public void ChargeFolded(long elements, Func<string, ModelFormatException> error)
    {
        long max = Options.MaxFoldedElements;
        if (elements > max - _foldedElements)
            throw error(_foldedElements == 0
                ? $"computing it at load time would create {elements} elements (limit {max}, OnnxImportOptions.MaxFoldedElements)."
                : $"computing it at load time would create {elements} elements; with the {_foldedElements} computed before it, "
                  + $"that exceeds the limit of {max} for the whole model (OnnxImportOptions.MaxFoldedElements).");
        _foldedElements += elements;
    }

    /// <summary>Counts the slices a Gather on a runtime tensor expands into, against the model's total.</summary>
    public void ChargeGatherSlices(int count, Func<string, ModelFormatException> error)
    {
        if (count > MaxGatherSlices - _gatherSlices)
            throw error($"{count} indices on a runtime tensor would make {count} slices; with the {_gatherSlices} made for earlier Gathers "
                + $"that exceeds the limit of {MaxGatherSlices} per model.");
        _gatherSlices += count;
    }

    /// <summary>Refuses ranks the kernels cannot handle (<see cref="Shape.MaxRank"/>) before anything of that rank is built.</summary>
    public static void CheckRank(long rank, string what, Func<string, ModelFormatException> error)
    {
        if (rank > Shape.MaxRank) throw error($"{what} would have rank {rank}; at most {Shape.MaxRank} is supported.");
    }

    public void Define(string name, Value value)
    {
        if (_values.ContainsKey(name) || _initializers.ContainsKey(name))
            throw new ModelFormatException($"Value '{name}' is defined more than once.");
        _values[name] = value;
    }

    public string FreshValueName(string hint) => Fresh(_takenValueNames, hint);

    /// <summary>A unique node name: the file's own when usable, else one derived from the hint.</summary>
    public string NodeName(string preferred) => Fresh(_takenNodeNames, preferred);

    private static string Fresh(HashSet<string> taken, string hint)
    {
        if (taken.Add(hint)) return hint;
        for (int i = 1; ; i++)
            if (taken.Add($"{hint}_{i}")) return $"{hint}_{i}";
    }

    /// <summary>
    /// Adds a node computing <paramref name="op"/>, inferring its output shapes now so that errors name
    /// this node. When every input is constant and the op is a data-movement or arithmetic op, the
    /// outputs are computed at load time and returned as constants instead.
    /// </summary>
    public Value[] AddNode(string nodeName, Op op, Value?[] inputs, string[] outputNames, Func<string, ModelFormatException> error)
    {
        foreach (var i in inputs) if (i is not null) CheckRank(i.Rank, $"input '{i.Name}'", error);
        var outputs = outputNames.Select(n => new Value(n, DataType.Float32, [])).ToArray();
        var node = new Node(nodeName, op, inputs, outputs);
        int[][] shapes;
        DataType[] types;
        try
        {
            shapes = op.InferShapes(node);
            types = op.InferTypes(node);
            for (int i = 0; i < shapes.Length; i++)
            {
                CheckRank(shapes[i].Length, $"output #{i}", error);
                Shape.Size(shapes[i]);
            }
        }
        catch (GraphException e)
        {
            // The op names the node it is about; this node's context (ONNX name, op type, opset) replaces that, not repeats it.
            throw error(e.NodeName == nodeName ? e.Detail : e.Message);
        }
        catch (ArgumentException e)
        {
            throw error(e.Message);
        }
        if (shapes.Length != outputs.Length) throw error($"produces {shapes.Length} outputs, but the node lists {outputs.Length}.");
        for (int i = 0; i < outputs.Length; i++)
        {
            outputs[i].Shape = shapes[i];
            outputs[i].DataType = types[Math.Min(i, types.Length - 1)];
        }

        if (inputs.All(i => i is null || i.IsConstant))
        {
            // Views (Reshape and friends) share their input's data; everything else allocates its outputs.
            if (!op.FoldSharesData) ChargeFolded(shapes.Sum(s => Shape.Size(s)), error);
            Tensor[]? results;
            try { results = op.Fold(node); }
            catch (ArgumentException e) { throw error(e.Message); }
            if (results is not null) return outputs.Select((o, i) => Value.FromConstant(o.Name, results[i])).ToArray();
        }
        if (Graph.Nodes.Count >= _maxNodes)
            throw error($"the model would need more than {_maxNodes} graph nodes (4 per node of the file, plus 10000).");
        Graph.Nodes.Add(node);
        return outputs;
    }

    /// <summary>Graph inputs that <paramref name="value"/> depends on (empty for constants).</summary>
    public IReadOnlyList<string> RuntimeInputsOf(Value value)
    {
        var inputs = new SortedSet<string>(StringComparer.Ordinal);
        var seen = new HashSet<Value>();
        var stack = new Stack<Value>([value]);
        while (stack.Count > 0)
        {
            var v = stack.Pop();
            if (v.IsConstant || !seen.Add(v)) continue;
            if (v.Producer is null) inputs.Add(v.Name);
            else foreach (var i in v.Producer.Inputs) if (i is not null) stack.Push(i);
        }
        return inputs.ToList();
    }
}
