using Google.Protobuf;
using MobileNetSharp.Graph;
using MobileNetSharp.Onnx.Import;
using MobileNetSharp.Onnx.Proto;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Onnx;

/// <summary>
/// Reads ONNX models (default domain, opsets 1-21; tested on 6-21) into a <see cref="ModelGraph"/> with
/// static shapes. Shape-computing subgraphs are evaluated at load time. Every problem with the file,
/// including protobuf corruption, is reported as a <see cref="ModelFormatException"/>.
/// </summary>
public static class OnnxImporter
{
    public const int MaxOpset = 21;

    /// <summary>The op_types the importer accepts (default domain).</summary>
    public static IReadOnlyCollection<string> SupportedOperators => OpConverters.Supported;

    /// <summary>Loads a model file with default options (what <c>new InferenceSession(path)</c> calls).</summary>
    public static ModelGraph Load(string path) => Load(path, null);

    /// <summary>Loads a model file; external-data tensors are read from its folder (or <see cref="OnnxImportOptions.ExternalDataDirectory"/>).</summary>
    public static ModelGraph Load(string path, OnnxImportOptions? options = null)
    {
        Runtime.KernelWarmup.Start(); // compile the kernels on a spare core while the file is parsed
        var bytes = ReadFile(path);
        string directory = options?.ExternalDataDirectory ?? Path.GetDirectoryName(Path.GetFullPath(path))!;
        return Build(Parse(bytes), options ?? new(), directory, Path.GetFileNameWithoutExtension(path));
    }

    public static ModelGraph Load(byte[] bytes, OnnxImportOptions? options = null) => Load(bytes.AsSpan(), options);

    /// <summary>Loads a model from memory; external data needs <see cref="OnnxImportOptions.ExternalDataDirectory"/>.</summary>
    public static ModelGraph Load(ReadOnlySpan<byte> bytes, OnnxImportOptions? options = null)
    {
        Runtime.KernelWarmup.Start(); // compile the kernels on a spare core while the bytes are parsed
        return Build(Parse(bytes), options ?? new(), options?.ExternalDataDirectory, "onnx_model");
    }

    private static byte[] ReadFile(string path)
    {
        var info = new FileInfo(path);
        if (info.Exists && info.Length > int.MaxValue)
            throw new ModelFormatException($"'{path}' is larger than 2 GiB, the protobuf limit; store weights as external data.");
        return File.ReadAllBytes(path);
    }

    internal static ModelProto Parse(ReadOnlySpan<byte> bytes)
    {
        try { return ModelProto.Parser.ParseFrom(bytes); }
        catch (InvalidProtocolBufferException e) { throw new ModelFormatException($"Not a valid ONNX model (protobuf error: {e.Message})", e); }
    }

    private static ModelGraph Build(ModelProto model, OnnxImportOptions options, string? externalDirectory, string fallbackName)
    {
        var g = model.Graph ?? throw new ModelFormatException("The file has no graph; it is not an ONNX model.");
        int opset = DefaultOpset(model);
        var graph = new ModelGraph(string.IsNullOrEmpty(g.Name) ? fallbackName : g.Name);
        foreach (var p in model.MetadataProps) graph.Metadata[p.Key] = p.Value;

        var initializers = new Dictionary<string, TensorProto>();
        foreach (var t in g.Initializer)
            if (!initializers.TryAdd(t.Name, t)) throw new ModelFormatException($"Initializer '{t.Name}' is given twice.");
        var allNames = new HashSet<string>(g.Input.Select(v => v.Name).Concat(g.Output.Select(v => v.Name)).Concat(initializers.Keys)
            .Concat(g.Node.SelectMany(n => n.Output)));
        var consumed = LiveValues(g);
        var external = externalDirectory is null ? null : new ExternalDataSource(externalDirectory, options.MaxExternalBytes);
        var ctx = new ImportContext(graph, options, opset, initializers, external, allNames, consumed, g.Node.Count);

        var available = new HashSet<string>(initializers.Keys);
        var defaultedBatch = DefineInputs(g, ctx, initializers, available);
        foreach (var (index, node) in GraphOrder.Sort(g, available))
        {
            // Nodes no graph output depends on are checked for support but not converted: computing them
            // (a dead ConstantOfShape, a dead Gather expansion) could only cost time and memory.
            if (node.Output.Any(consumed.Contains)) Convert(node, index, ctx);
            else CheckSupported(node, index, ctx.Opset);
        }

        foreach (var o in g.Output)
        {
            var v = ctx.Find(o.Name) ?? throw new ModelFormatException($"Graph output '{o.Name}' is never computed.");
            if (graph.Outputs.Contains(v)) throw new ModelFormatException($"Graph output '{o.Name}' is listed twice.");
            graph.Outputs.Add(v);
        }
        if (graph.Outputs.Count == 0) throw new ModelFormatException("The graph has no outputs.");
        RemoveDeadNodes(graph);
        try { graph.InferShapes(); }
        catch (Exception e) when (e is GraphException or ArgumentException)
        {
            throw new ModelFormatException($"The imported graph is inconsistent: {e.Message}", e);
        }
        SymbolicBatch.Mark(graph, defaultedBatch, options.DefaultBatch, ctx.FoldedRuntimeBatch);
        return graph;
    }

    private static int DefaultOpset(ModelProto model)
    {
        long? version = null;
        foreach (var o in model.OpsetImport)
            if (o.Domain is "" or "ai.onnx")
            {
                if (version is { } v && v != o.Version) throw new ModelFormatException($"The default ONNX domain is imported twice (opsets {v} and {o.Version}).");
                version = o.Version;
            }
        if (version is null) throw new ModelFormatException("The model imports no opset of the default ONNX domain.");
        if (version < 1 || version > MaxOpset) throw new ModelFormatException($"Opset {version} is not supported (1 to {MaxOpset}).");
        return (int)version;
    }

    /// <summary>
    /// Graph inputs with static shapes; inputs that have an initializer, or are bound in the options, become
    /// constants. Returns the inputs whose leading dimension took <see cref="OnnxImportOptions.DefaultBatch"/>,
    /// with the file's name for it.
    /// </summary>
    private static List<(Value Input, string Param)> DefineInputs(GraphProto g, ImportContext ctx, Dictionary<string, TensorProto> initializers, HashSet<string> available)
    {
        var declared = g.Input.Where(v => !initializers.ContainsKey(v.Name)).ToList();
        CheckOptions(declared, ctx.Options);
        var defaulted = new List<(Value, string)>();
        foreach (var vi in g.Input)
        {
            if (initializers.ContainsKey(vi.Name)) continue; // an initializer's default value: a constant
            if (!available.Add(vi.Name)) throw new ModelFormatException($"Graph input '{vi.Name}' is declared twice.");
            if (ctx.Options.Constants.TryGetValue(vi.Name, out var t))
            {
                var (declaredType, _, _) = InputType(vi, new OnnxImportOptions { InputShapes = { [vi.Name] = t.Shape } });
                if (t.DataType != declaredType) throw new ArgumentException($"The constant for input '{vi.Name}' is {t.DataType}, but the model declares {declaredType}.");
                ctx.Define(vi.Name, Value.FromConstant(vi.Name, t));
                continue;
            }
            var (type, shape, batchParam) = InputType(vi, ctx.Options);
            var v = new Value(vi.Name, type, shape);
            ctx.Define(vi.Name, v);
            ctx.Graph.Inputs.Add(v);
            if (batchParam is not null) defaulted.Add((v, batchParam));
        }
        return defaulted;
    }

    /// <summary>The inputs a caller feeds (those without an initializer), as the file declares them, before anything is bound.</summary>
    public static IReadOnlyList<OnnxInputInfo> ReadInputs(string path) => ReadInputs(ReadFile(path));

    /// <inheritdoc cref="ReadInputs(string)"/>
    public static IReadOnlyList<OnnxInputInfo> ReadInputs(ReadOnlySpan<byte> bytes)
    {
        var g = Parse(bytes).Graph ?? throw new ModelFormatException("The file has no graph; it is not an ONNX model.");
        var initializers = g.Initializer.Select(t => t.Name).ToHashSet();
        return g.Input.Where(v => !initializers.Contains(v.Name)).Select(Declared).ToList();
    }

    private static OnnxInputInfo Declared(ValueInfoProto vi) =>
        new(vi.Name, vi.Type?.TensorType?.Shape?.Dim.Select(d => d.ValueCase switch
        {
            TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue => new OnnxDimension(d.DimValue, null),
            TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam => new OnnxDimension(null, d.DimParam),
            _ => new OnnxDimension(null, null),
        }).ToArray());

    /// <summary>The declared inputs for a message: the first few, with their dimensions.</summary>
    private static string Listing(IReadOnlyList<ValueInfoProto> declared)
    {
        const int Shown = 10;
        var text = string.Join(", ", declared.Take(Shown).Select(v => Declared(v).ToString()));
        return declared.Count > Shown ? $"{text} and {declared.Count - Shown} more" : declared.Count == 0 ? "none" : text;
    }

    /// <summary>
    /// What the caller binds must fit the file: inputs and dimension names that exist, sizes that are not
    /// negative, shapes of the declared rank that keep the file's fixed sizes and agree with the named sizes.
    /// Checked before anything is read, so a typo costs nothing and is reported as such.
    /// </summary>
    private static void CheckOptions(IReadOnlyList<ValueInfoProto> declared, OnnxImportOptions options)
    {
        var byName = new Dictionary<string, ValueInfoProto>();
        foreach (var vi in declared) byName.TryAdd(vi.Name, vi);
        foreach (var name in options.Constants.Keys.Concat(options.InputShapes.Keys))
            if (!byName.ContainsKey(name)) throw new ArgumentException($"The model has no input named '{name}'. Inputs: {Listing(declared)}.");
        if (options.DefaultBatch < 0) throw new ArgumentException($"DefaultBatch is {options.DefaultBatch}; sizes cannot be negative.");
        var symbolic = declared.SelectMany(v => v.Type?.TensorType?.Shape?.Dim ?? [])
            .Where(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam).Select(d => d.DimParam).ToHashSet();
        foreach (var (name, size) in options.Dimensions)
        {
            if (size < 0) throw new ArgumentException($"Dimension '{name}' is given as {size}; sizes cannot be negative.");
            if (!symbolic.Contains(name))
                throw new ArgumentException($"The model's inputs have no symbolic dimension '{name}'. Inputs: {Listing(declared)}.");
        }
        foreach (var (name, shape) in options.InputShapes)
        {
            if (options.Constants.ContainsKey(name)) continue; // the constant's own shape is what counts
            var dims = byName[name].Type?.TensorType?.Shape?.Dim;
            if (dims is null || dims.Count > Shape.MaxRank) continue; // reported with the input itself
            GivenShape(name, dims, shape);
            for (int i = 0; i < dims.Count; i++)
                if (dims[i].ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam
                    && options.Dimensions.TryGetValue(dims[i].DimParam, out int size) && size != shape[i])
                    throw new ArgumentException($"Input '{name}' is given shape {Shape.Format(shape)}, but its axis {i} is '{dims[i].DimParam}', "
                        + $"given as {size}.");
        }
    }

    /// <summary>
    /// An input's type and static shape. Symbolic dimensions take the given shape or the named sizes, and an
    /// unbound leading dimension takes the default batch: then its name ("" when unnamed) is returned too.
    /// </summary>
    private static (DataType Type, int[] Shape, string? BatchParam) InputType(ValueInfoProto vi, OnnxImportOptions options)
    {
        string what = $"Graph input '{vi.Name}'";
        if (vi.Type is not { ValueCase: TypeProto.ValueOneofCase.TensorType } tp)
            throw new ModelFormatException($"{what} is a {vi.Type?.ValueCase.ToString() ?? "value without a type"}; only tensors are supported.");
        var type = OnnxDataTypes.ToDataType(tp.TensorType.ElemType, what);
        options.InputShapes.TryGetValue(vi.Name, out var given);
        var dims = tp.TensorType.Shape?.Dim;
        if (dims is null)
        {
            if (given is null)
                throw new ModelFormatException($"{what} has no shape in the file; give it on the command line with --shape {vi.Name}=1x3x224x224 "
                    + "(for example; in C#, OnnxImportOptions.InputShapes).");
            if (given.Length > Shape.MaxRank) throw new ArgumentException($"The shape given for input '{vi.Name}' has rank {given.Length}; at most {Shape.MaxRank} is supported.");
            if (given.Any(d => d < 0)) throw new ArgumentException($"The shape given for input '{vi.Name}', {Shape.Format(given)}, has a negative size.");
            Shape.Size(given);
            return (type, (int[])given.Clone(), null);
        }
        if (dims.Count > Shape.MaxRank) throw new ModelFormatException($"{what} has rank {dims.Count}; at most {Shape.MaxRank} is supported.");
        if (given is not null) return (type, GivenShape(vi.Name, dims, given), null);
        var shape = new int[dims.Count];
        var missing = new List<int>();
        string? batchParam = null;
        for (int i = 0; i < shape.Length; i++)
        {
            var d = dims[i];
            long size;
            if (d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue) size = d.DimValue;
            else if (d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam && options.Dimensions.TryGetValue(d.DimParam, out int s)) size = s;
            else if (i == 0) (size, batchParam) = (options.DefaultBatch, d.DimParam);
            else { missing.Add(i); continue; }
            if (size < 0 || size > int.MaxValue) throw new ModelFormatException($"{what} has invalid dimension {size} at axis {i}.");
            shape[i] = (int)size;
        }
        if (missing.Count > 0) throw new ModelFormatException(MissingDimensions(vi, dims, missing, options));
        try { Shape.Size(shape); }
        catch (ArgumentException e) { throw new ModelFormatException($"{what}: {e.Message}", e); }
        return (type, shape, batchParam);
    }

    /// <summary>
    /// Says which dimensions of an input have no size and how to give them, on the command line
    /// (--dim, --shape) and in C#, with an example shape that keeps the sizes already known.
    /// </summary>
    private static string MissingDimensions(ValueInfoProto vi, IList<TensorShapeProto.Types.Dimension> dims, List<int> missing, OnnxImportOptions options)
    {
        var named = missing.Where(i => dims[i].DimParam.Length > 0).Select(i => dims[i].DimParam).Distinct().ToList();
        var parts = missing.Select(i => dims[i].DimParam.Length > 0 ? $"'{dims[i].DimParam}' (axis {i})" : $"an unnamed one (axis {i})").ToList();
        string list = (parts.Count == 1 ? "symbolic dimension " + parts[0] : "symbolic dimensions " + string.Join(", ", parts.Take(parts.Count - 1)) + " and " + parts[^1])
            + " with no size";
        string example = string.Join("x", dims.Select((d, i) =>
            d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? d.DimValue
            : d.DimParam.Length > 0 && options.Dimensions.TryGetValue(d.DimParam, out int s) ? s
            : i == 0 ? options.DefaultBatch : 224L));
        string shapeHint = $"--shape {vi.Name}={example}";
        string how = named.Count == 0
            ? $"give the whole shape, e.g. with {shapeHint} on the command line (OnnxImportOptions.InputShapes in C#)."
            : $"give {(named.Count == 1 && missing.Count == 1 ? "it" : "them")} with {string.Join(" ", named.Select(n => $"--dim {n}=VALUE"))} "
              + $"or the whole shape, e.g. {shapeHint}, on the command line (OnnxImportOptions.Dimensions or InputShapes in C#).";
        return $"Graph input '{vi.Name}' {Declared(vi).DimsText} has {list}; {how}";
    }

    private static int[] GivenShape(string name, IList<TensorShapeProto.Types.Dimension> dims, int[] given)
    {
        string declared = "[" + string.Join(",", dims.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? d.DimValue.ToString()
            : d.DimParam.Length > 0 ? d.DimParam : "?")) + "]";
        string? why = given.Length != dims.Count ? $"its rank is {given.Length}, the input's {dims.Count}"
            : given.Any(d => d < 0) ? "sizes cannot be negative"
            : Enumerable.Range(0, given.Length).FirstOrDefault(i => dims[i].ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue
                && dims[i].DimValue != given[i], -1) is int axis and >= 0 ? $"axis {axis} is fixed at {dims[axis].DimValue} in the file"
            : null;
        if (why is not null) throw new ArgumentException($"Input '{name}' is declared {declared} and cannot take shape {Shape.Format(given)}: {why}.");
        Shape.Size(given);
        return (int[])given.Clone();
    }

    /// <summary>
    /// The names read by nodes that some graph output depends on, plus the graph outputs: found backwards
    /// from the outputs, so a chain of nodes that ends nowhere is dead as a whole.
    /// </summary>
    private static HashSet<string> LiveValues(GraphProto g)
    {
        var producers = new Dictionary<string, List<NodeProto>>();
        foreach (var node in g.Node)
            foreach (var o in node.Output)
                if (o.Length > 0)
                {
                    if (!producers.TryGetValue(o, out var list)) producers[o] = list = [];
                    list.Add(node);
                }
        var live = new HashSet<string>(g.Output.Select(v => v.Name));
        var visited = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        var pending = new Stack<string>(live);
        while (pending.Count > 0)
        {
            if (!producers.TryGetValue(pending.Pop(), out var list)) continue;
            foreach (var node in list)
            {
                if (!visited.Add(node)) continue;
                foreach (var i in node.Input)
                    if (i.Length > 0 && live.Add(i)) pending.Push(i);
            }
        }
        return live;
    }

    private static void CheckSupported(NodeProto node, int index, int opset)
    {
        if (node.Domain is not ("" or "ai.onnx"))
        {
            if (OpConverters.TryGet(node.Domain, node.OpType, out _)) return;
            throw new ModelFormatException($"Unsupported ONNX operator '{node.Domain}.{node.OpType}' in node '{Name(node, index)}' (opset {opset} of the default domain; "
                + $"of other domains only {OpConverters.MicrosoftDomain}'s QLinearAdd and QLinearGlobalAveragePool are supported).");
        }
        if (!LoadTimeOps.Handles(node.OpType) && !OpConverters.TryGet(node.OpType, out _))
            throw new ModelFormatException($"Unsupported ONNX operator '{node.OpType}' in node '{Name(node, index)}' (opset {opset}).");
    }

    private static void Convert(NodeProto node, int index, ImportContext ctx)
    {
        CheckSupported(node, index, ctx.Opset);
        var n = new NodeContext(node, index, ctx);
        bool loadTime = LoadTimeOps.Handles(node.OpType);
        if (loadTime && LoadTimeOps.TryEvaluate(n)) { }
        else if (OpConverters.TryGet(node.Domain, node.OpType, out var convert)) convert(n);
        else if (loadTime)
        {
            var runtime = Enumerable.Range(0, n.InputCount).Select(n.OptionalInput).First(v => v is { IsConstant: false })!;
            throw n.NeedsConstant(runtime, "operand");
        }
        else throw new InvalidOperationException($"'{node.OpType}' passed the support check but has no converter.");

        for (int i = 0; i < node.Output.Count; i++)
            if (n.OutputUsed(i) && ctx.Find(node.Output[i]) is null)
                throw n.Error($"output #{i} ('{node.Output[i]}') is not supported.");
    }

    private static string Name(NodeProto node, int index) => string.IsNullOrEmpty(node.Name) ? $"#{index} (unnamed)" : node.Name;

    /// <summary>Drops nodes nothing reads (e.g. a Shape branch whose result was folded away).</summary>
    private static void RemoveDeadNodes(ModelGraph graph)
    {
        var live = new HashSet<Value>(graph.Outputs);
        for (int i = graph.Nodes.Count - 1; i >= 0; i--)
        {
            var node = graph.Nodes[i];
            if (!node.Outputs.Any(live.Contains)) { graph.Nodes.RemoveAt(i); continue; }
            foreach (var input in node.Inputs) if (input is not null) live.Add(input);
        }
    }
}
