using MobileNetSharp.Graph;
using MobileNetSharp.Passes;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Runtime;

/// <summary>
/// Runs a graph: optimizes a copy of it (the caller's graph is never changed), compiles a plan for its
/// input shapes and executes it on demand. A batch size other than the graph's gets its own plan, built
/// on first use from the same optimized graph, so the packed weights are shared; the most recently used
/// <see cref="MaxPlans"/> plans are kept. Not thread-safe: one Run at a time (the plan's arena is reused
/// by every run); create one session per concurrent caller.
/// </summary>
public sealed class InferenceSession : IDisposable
{
    private readonly ModelGraph _source;
    private readonly SessionOptions _options;
    private readonly Kernels.Workers _workers;
    private readonly OperatorCache _cache = new();
    private readonly Dictionary<int, ExecutionPlan> _plans = [];
    private readonly LinkedList<int> _recent = new(); // batch sizes of the extra plans, most recent first
    private readonly ExecutionPlan _plan;
    private readonly int _batch;
    private readonly string? _fixedBatch;

    /// <summary>Plans kept for batch sizes other than the graph's own (each holds an arena).</summary>
    public const int MaxPlans = 4;

    /// <summary>The optimized graph the default plan was compiled from.</summary>
    public ModelGraph OptimizedGraph { get; }
    public OptimizationReport? Optimizations { get; }
    public IReadOnlyList<TensorInfo> Inputs { get; }
    public IReadOnlyList<TensorInfo> Outputs { get; }
    public SessionOptions Options => _options;

    public InferenceSession(ModelGraph graph, SessionOptions? options = null)
    {
        _options = options ?? new SessionOptions();
        if (_options.Threads < 1 || _options.Threads > SessionOptions.MaxThreads)
            throw new ArgumentException($"Threads must be between 1 and {SessionOptions.MaxThreads}, got {_options.Threads}.");
        if (_options.MaxArenaBytes < 1) throw new ArgumentException($"MaxArenaBytes must be positive, got {_options.MaxArenaBytes}.");
        _source = graph.Clone();
        _source.InferShapes();
        if (_source.Inputs.Count == 0) throw new GraphException($"Graph '{graph.Name}' has no inputs.");
        if (_source.Outputs.Count == 0) throw new GraphException($"Graph '{graph.Name}' has no outputs.");
        Inputs = _source.Inputs.Select(v => new TensorInfo(v.Name, (int[])v.Shape.Clone())).ToArray();
        Outputs = _source.Outputs.Select(v => new TensorInfo(v.Name, (int[])v.Shape.Clone())).ToArray();
        _fixedBatch = FixedBatchReason(_source);
        _workers = _options.Threads == 1 ? Kernels.Workers.Single : new Kernels.Workers(_options.Threads);
        OptimizedGraph = _source.Clone();
        Optimizations = _options.Optimize ? Optimizer.Run(OptimizedGraph) : null;
        OptimizedGraph.InferShapes();
        _plan = Compile(OptimizedGraph);
        _batch = _source.Inputs[0].Rank > 0 ? _source.Inputs[0].Shape[0] : 1;
    }

    private ExecutionPlan Compile(ModelGraph g) => new PlanCompiler(g, _options.Isa, _cache, _workers, _options.MaxArenaBytes).Compile();

    /// <summary>Packed-weight operators built so far (shared by the plans of every batch size).</summary>
    internal int CachedOperators => _cache.Count;

    /// <summary>Bytes of the activation arena of the default plan (weights excluded).</summary>
    public long ArenaBytes => _plan.ArenaBytes;

    /// <summary>The kernels the default plan runs, in order.</summary>
    public IReadOnlyList<(string Name, string Kernel)> Steps => _plan.Steps.Select(s => (s.Name, s.Kernel)).ToArray();

    /// <summary>Runs on inputs in graph-input order; returns new output tensors in graph-output order.</summary>
    public Tensor[] Run(params Tensor[] inputs)
    {
        var plan = PlanFor(inputs);
        var outputs = plan.OutputShapes.Select(s => Tensor.Zeros(s)).ToArray();
        plan.Run(inputs, outputs);
        return outputs;
    }

    /// <summary>Runs on named inputs; returns outputs by name.</summary>
    public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs)
    {
        foreach (var name in inputs.Keys)
            if (!Inputs.Any(i => i.Name == name)) throw new ArgumentException($"The model has no input named '{name}'. Inputs: {string.Join(", ", Inputs.Select(i => i.Name))}.");
        var ordered = Inputs.Select(i => inputs.TryGetValue(i.Name, out var t) ? t
            : throw new ArgumentException($"Input '{i.Name}' is missing.")).ToArray();
        var outputs = Run(ordered);
        return Outputs.Select((o, i) => (o.Name, outputs[i])).ToDictionary(p => p.Name, p => p.Item2);
    }

    /// <summary>Runs into caller-owned outputs of the right shapes: the allocation-free path for serving loops.</summary>
    public void Run(ReadOnlySpan<Tensor> inputs, Span<Tensor> outputs)
    {
        var plan = PlanFor(inputs);
        if (outputs.Length != plan.Outputs.Length) throw new ArgumentException($"Expected {plan.Outputs.Length} output tensors, got {outputs.Length}.");
        for (int i = 0; i < outputs.Length; i++)
            if (outputs[i] is null) throw new ArgumentNullException(nameof(outputs), $"Output tensor #{i} is null.");
            else if (outputs[i].DataType != DataType.Float32 || !Shape.Equal(outputs[i].Shape, plan.OutputShapes[i]))
                throw new ArgumentException($"Output #{i} must be float32 {Shape.Format(plan.OutputShapes[i])}, got {outputs[i]}.");
        plan.Run(inputs, outputs);
    }

    /// <summary>Times each step over <paramref name="runs"/> runs (after one warm-up) and returns the mean per step.</summary>
    public IReadOnlyList<StepProfile> Profile(Tensor[] inputs, int runs = 10)
    {
        var plan = PlanFor(inputs);
        var outputs = plan.OutputShapes.Select(s => Tensor.Zeros(s)).ToArray();
        plan.Run(inputs, outputs);
        var ticks = new long[plan.Steps.Length];
        for (int r = 0; r < runs; r++) plan.Run(inputs, outputs, ticks);
        double perTick = 1000.0 / System.Diagnostics.Stopwatch.Frequency / Math.Max(1, runs);
        return plan.Steps.Select((s, i) => new StepProfile(s.Name, s.Kernel, ticks[i] * perTick)).ToArray();
    }

    private ExecutionPlan PlanFor(ReadOnlySpan<Tensor> inputs)
    {
        if (inputs.Length != Inputs.Count)
            throw new ArgumentException($"The model takes {Inputs.Count} input(s) ({string.Join(", ", Inputs.Select(i => i.Name))}), got {inputs.Length}.");
        bool exact = true;
        for (int i = 0; i < inputs.Length; i++)
        {
            var t = inputs[i] ?? throw new ArgumentNullException(nameof(inputs), $"Input '{Inputs[i].Name}' is null.");
            if (t.DataType != DataType.Float32) throw new ArgumentException($"Input '{Inputs[i].Name}' must be float32, got {t.DataType}.");
            exact &= Shape.Equal(t.Shape, Inputs[i].Shape);
        }
        if (exact) return _plan;

        // Another batch size: every input may differ from its declared shape in dimension 0 only, all by the same batch.
        int batch = inputs[0].Rank > 0 ? inputs[0].Shape[0] : -1;
        for (int i = 0; i < inputs.Length; i++)
        {
            var (t, want) = (inputs[i], Inputs[i].Shape);
            if (_fixedBatch is null ? SameButBatch(t, want, batch) : Shape.Equal(t.Shape, want)) continue;
            string hint = _fixedBatch is null ? " (the batch dimension may differ, the same for all inputs)"
                : SameButBatch(t, want, t.Rank > 0 ? t.Shape[0] : -1) ? $"; the batch size is fixed: {_fixedBatch}" : "";
            throw new ArgumentException($"Input '{Inputs[i].Name}' expects shape {Shape.Format(want)}, got {Shape.Format(t.Shape)}{hint}");
        }
        if (_plans.TryGetValue(batch, out var plan))
        {
            _recent.Remove(batch);
            _recent.AddFirst(batch);
            return plan;
        }
        if (batch < 1) throw new ArgumentException("Batch size must be at least 1.");
        plan = Compile(AtBatch(batch));
        _plans[batch] = plan;
        _recent.AddFirst(batch);
        if (_recent.Count > MaxPlans)
        {
            _plans.Remove(_recent.Last!.Value);
            _recent.RemoveLast();
        }
        return plan;
    }

    /// <summary>
    /// The optimized graph at another batch size, sharing its constants (hence the packed weights). Every
    /// value must keep its shape except a leading batch dimension; anything else means the graph mixes
    /// images across the batch (e.g. Reshape to [-1] or Flatten(0)) and is refused rather than run wrong.
    /// </summary>
    private ModelGraph AtBatch(int batch)
    {
        var g = OptimizedGraph.Clone();
        foreach (var v in g.Inputs) v.Shape[0] = batch;
        try { g.InferShapes(); }
        catch (GraphException e) { throw new ArgumentException($"The model cannot run with batch {batch}: {e.Message}", e); }
        for (int i = 0; i < g.Nodes.Count; i++)
            for (int j = 0; j < g.Nodes[i].Outputs.Length; j++)
            {
                int[] was = OptimizedGraph.Nodes[i].Outputs[j].Shape, now = g.Nodes[i].Outputs[j].Shape;
                bool scaled = was.Length == now.Length && was.Length > 0 && was[0] == _batch && now[0] == batch
                    && was.AsSpan(1).SequenceEqual(now.AsSpan(1));
                if (!scaled && !Shape.Equal(was, now))
                    throw new ArgumentException($"The model cannot run with batch {batch}: '{g.Nodes[i].Outputs[j].Name}' would be " +
                        $"{Shape.Format(now)} instead of {Shape.Format(was)} with its batch dimension scaled, so images would mix; " +
                        "run it at its own batch size or re-import it for this one.");
            }
        return g;
    }

    private static bool SameButBatch(Tensor t, int[] want, int batch) =>
        t.Rank == want.Length && t.Rank > 0 && t.Shape[0] == batch && t.Shape.AsSpan(1).SequenceEqual(want.AsSpan(1));

    /// <summary>Why the batch size cannot change at all, or null (then <see cref="AtBatch"/> checks each new size).</summary>
    private static string? FixedBatchReason(ModelGraph g) =>
        g.Inputs.Any(v => v.Rank == 0) || g.Inputs.Select(v => v.Shape[0]).Distinct().Count() > 1
            ? "the inputs do not share a leading batch dimension." : null;

    public void Dispose()
    {
        if (!ReferenceEquals(_workers, Kernels.Workers.Single)) _workers.Dispose();
    }
}
