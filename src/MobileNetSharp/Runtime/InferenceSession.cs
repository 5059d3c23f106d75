using MobileNetSharp.Graph;
using MobileNetSharp.Passes;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Runtime;

/// <summary>
/// Runs a graph: optimizes a copy of it (the caller's graph is never changed), compiles a plan for its
/// input shapes and executes it on demand. A batch size other than the graph's gets its own plan, built
/// on first use and kept; packed weights are shared between plans. Not thread-safe: one Run at a time
/// (the plan's arena is reused by every run); create one session per concurrent caller.
/// </summary>
public sealed class InferenceSession : IDisposable
{
    private readonly ModelGraph _source;
    private readonly SessionOptions _options;
    private readonly Kernels.Workers _workers;
    private readonly OperatorCache _cache = new();
    private readonly Dictionary<int, ExecutionPlan> _plans = [];
    private readonly ExecutionPlan _plan;
    private readonly string? _fixedBatch;

    /// <summary>The optimized graph the default plan was compiled from.</summary>
    public ModelGraph OptimizedGraph { get; }
    public OptimizationReport? Optimizations { get; }
    public IReadOnlyList<TensorInfo> Inputs { get; }
    public IReadOnlyList<TensorInfo> Outputs { get; }
    public SessionOptions Options => _options;

    public InferenceSession(ModelGraph graph, SessionOptions? options = null)
    {
        _options = options ?? new SessionOptions();
        if (_options.Threads < 1 || _options.Threads > 256) throw new ArgumentException($"Threads must be between 1 and 256, got {_options.Threads}.");
        _source = graph.Clone();
        _source.InferShapes();
        if (_source.Inputs.Count == 0) throw new GraphException($"Graph '{graph.Name}' has no inputs.");
        if (_source.Outputs.Count == 0) throw new GraphException($"Graph '{graph.Name}' has no outputs.");
        Inputs = _source.Inputs.Select(v => new TensorInfo(v.Name, (int[])v.Shape.Clone())).ToArray();
        Outputs = _source.Outputs.Select(v => new TensorInfo(v.Name, (int[])v.Shape.Clone())).ToArray();
        _fixedBatch = FixedBatchReason(_source);
        _workers = _options.Threads == 1 ? Kernels.Workers.Single : new Kernels.Workers(_options.Threads);
        (OptimizedGraph, Optimizations, _plan) = Build(_source);
        _plans[BatchOf(_source)] = _plan;
    }

    private (ModelGraph, OptimizationReport?, ExecutionPlan) Build(ModelGraph source)
    {
        var g = source.Clone();
        var report = _options.Optimize ? Optimizer.Run(g) : null;
        g.InferShapes();
        return (g, report, new PlanCompiler(g, _options.Isa, _cache, _workers).Compile());
    }

    private static int BatchOf(ModelGraph g) => g.Inputs[0].Shape.Length > 0 ? g.Inputs[0].Shape[0] : 1;

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
            if (outputs[i].DataType != DataType.Float32 || !Shape.Equal(outputs[i].Shape, plan.OutputShapes[i]))
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
        if (_plans.TryGetValue(batch, out var plan)) return plan;
        if (batch < 1) throw new ArgumentException("Batch size must be at least 1.");
        var g = _source.Clone();
        foreach (var v in g.Inputs) v.Shape[0] = batch;
        try { g.InferShapes(); }
        catch (GraphException e) { throw new ArgumentException($"The model cannot run with batch {batch}: {e.Message}", e); }
        plan = Build(g).Item3;
        _plans[batch] = plan;
        return plan;
    }

    private static bool SameButBatch(Tensor t, int[] want, int batch) =>
        t.Rank == want.Length && t.Rank > 0 && t.Shape[0] == batch && t.Shape.AsSpan(1).SequenceEqual(want.AsSpan(1));

    /// <summary>
    /// Why the batch size cannot change, or null when it can: every input must lead with the same batch
    /// dimension, and no Reshape may carry a fixed leading size (importers fold `x.view(x.size(0), -1)` to
    /// [1, -1]; running that at batch 3 would silently mix images).
    /// </summary>
    private static string? FixedBatchReason(ModelGraph g)
    {
        if (g.Inputs.Any(v => v.Rank == 0) || g.Inputs.Select(v => v.Shape[0]).Distinct().Count() > 1)
            return "the inputs do not share a leading batch dimension.";
        var reshape = g.Nodes.FirstOrDefault(n => n.Op is Reshape { Target.Length: > 0 } r && r.Target[0] > 0);
        return reshape is null ? null
            : $"Reshape '{reshape.Name}' has the constant leading size {((Reshape)reshape.Op).Target[0]}; re-import the model for this batch size (e.g. OnnxImportOptions.InputShapes).";
    }

    public void Dispose()
    {
        if (!ReferenceEquals(_workers, Kernels.Workers.Single)) _workers.Dispose();
    }
}
