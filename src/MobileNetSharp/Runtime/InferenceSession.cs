using MobileNetSharp.Graph;
using MobileNetSharp.Passes;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Runtime;

/// <summary>
/// Runs a graph: optimizes a copy of it (the caller's graph is never changed), compiles a plan for its
/// input shapes and executes it on demand.
/// </summary>
/// <remarks>
/// <para><b>Input shapes.</b> Inputs may come at other shapes than the graph declares, as long as each keeps
/// its rank and element type: another batch size, or another H x W for a fully convolutional model. A plan
/// for a new set of input shapes is compiled on first use from the same optimized graph, so the packed weights
/// are shared; the <see cref="MaxPlans"/> most recently used extra plans are kept. A shape the graph cannot
/// take (a Reshape or Gemm baked for the declared size) is refused with the node that fails. A graph that
/// merges the batch into another axis (e.g. <c>x.view(1, -1)</c>) refuses other batch sizes rather than mixing images.</para>
/// <para><b>Threads.</b> <see cref="Run(Tensor[])"/> and its overloads are thread-safe, as in ONNX Runtime: any
/// number of threads may call them at once on one session, and each call gets exactly the outputs a serial
/// call would. Each run uses an arena of its own from a small pool (memory grows with the peak number of
/// concurrent calls, not with the number of calls); the session's worker threads serve one run at a time and
/// a concurrent run computes on its caller's thread meanwhile. <see cref="Dispose"/> must not race with runs.</para>
/// </remarks>
public sealed class InferenceSession : IDisposable
{
    private ModelGraph _source;
    private readonly SessionOptions _options;
    private readonly Kernels.Workers _workers;
    private readonly object _compileLock = new();
    private volatile Compiled _compiled;

    /// <summary>
    /// Everything derived from the weights, swapped as a whole by <see cref="UpdateWeights"/> so a run in flight
    /// finishes on the plan it started with.
    /// </summary>
    private sealed class Compiled(ModelGraph optimized, OptimizationReport? report, OperatorCache cache, ExecutionPlan plan)
    {
        public ModelGraph Optimized { get; } = optimized;
        public OptimizationReport? Report { get; } = report;
        public OperatorCache Cache { get; } = cache;
        public ExecutionPlan Plan { get; } = plan;
        public Dictionary<string, ExecutionPlan> Plans { get; } = [];
        public LinkedList<string> Recent { get; } = new(); // keys of the extra plans, most recent first
    }
    private readonly bool _sharedBatch;

    /// <summary>Plans kept for input shapes other than the graph's own (each holds its arenas).</summary>
    public const int MaxPlans = 8;

    /// <summary>The optimized graph the default plan was compiled from.</summary>
    public ModelGraph OptimizedGraph => _compiled.Optimized;
    public OptimizationReport? Optimizations => _compiled.Report;
    /// <summary>Names, declared shapes (logical order, NCHW for images) and element types of the inputs.</summary>
    public IReadOnlyList<TensorInfo> Inputs { get; }
    /// <summary>Names, shapes at the declared input shapes, and element types of the outputs.</summary>
    public IReadOnlyList<TensorInfo> Outputs { get; }
    public SessionOptions Options => _options;

    /// <summary>Compiles <paramref name="graph"/> for its declared input shapes. The first session or model load in a
    /// process also starts <see cref="KernelWarmup"/> (a background thread; <see cref="KernelWarmup.Enabled"/> turns it off).</summary>
    /// <exception cref="ArgumentException">Invalid options.</exception>
    /// <exception cref="GraphException">The graph is malformed or uses an operator the runtime cannot run (named with its node).</exception>
    public InferenceSession(ModelGraph graph, SessionOptions? options = null)
    {
        KernelWarmup.Start(); // a graph built in code reaches here first: compile the kernels while this one compiles
        _options = options ?? new SessionOptions();
        if (_options.Threads < 1 || _options.Threads > SessionOptions.MaxThreads)
            throw new ArgumentException($"Threads must be between 1 and {SessionOptions.MaxThreads}, got {_options.Threads}.");
        if (_options.MaxArenaBytes < 1) throw new ArgumentException($"MaxArenaBytes must be positive, got {_options.MaxArenaBytes}.");
        KernelWarmup.NoteSession();
        _source = graph.Clone();
        _source.InferShapes();
        if (_source.Inputs.Count == 0) throw new GraphException($"Graph '{graph.Name}' has no inputs.");
        if (_source.Outputs.Count == 0) throw new GraphException($"Graph '{graph.Name}' has no outputs.");
        Inputs = _source.Inputs.Select(v => new TensorInfo(v.Name, (int[])v.Shape.Clone(), v.DataType)).ToArray();
        Outputs = _source.Outputs.Select(v => new TensorInfo(v.Name, (int[])v.Shape.Clone(), v.DataType)).ToArray();
        _sharedBatch = _source.Inputs.All(v => v.Rank > 0) && _source.Inputs.Select(v => v.Shape[0]).Distinct().Count() == 1;
        _compiled = Build(_source);
        _workers = _options.Threads == 1 ? Kernels.Workers.Single : new Kernels.Workers(_options.Threads);
    }

    /// <summary>Loads a model file with the loader registered for its format (see <see cref="ModelLoaders"/>), then compiles it.</summary>
    /// <exception cref="ModelFormatException">The file is unreadable, or no loader knows its format.</exception>
    public InferenceSession(string modelPath, SessionOptions? options = null) : this(ModelLoaders.Load(modelPath), options) { }

    private Compiled Build(ModelGraph source)
    {
        var optimized = source.Clone();
        var report = _options.Optimize ? Optimizer.Run(optimized, integerKernels: _options.IntegerKernels) : null;
        optimized.InferShapes();
        var cache = new OperatorCache();
        return new Compiled(optimized, report, cache, Compile(optimized, cache));
    }

    private ExecutionPlan Compile(ModelGraph g, OperatorCache cache) => new PlanCompiler(g, _options.Isa, cache, _options.MaxArenaBytes)
    {
        FusionThreads = _options.FuseBlocks && _options.Optimize ? _options.Threads : 0,
        FusionCacheBytes = _options.FusionCacheBytes,
        FusionSavingsFactor = _options.FusionSavingsFactor,
    }.Compile();

    /// <summary>
    /// Replaces constants (weights, biases, BatchNorm statistics; by their names in the graph given to the
    /// constructor, e.g. ONNX initializer names) and recompiles: later runs use the new values, and a run
    /// already in progress finishes with the old ones. Options, threads and the input/output contract stay;
    /// packed weights are rebuilt, plans for other input shapes are compiled again on their next use.
    /// For weights that change on every run, make them graph inputs instead (they are then read per run).
    /// </summary>
    /// <exception cref="ArgumentException">A name is not a constant of the graph, or a tensor's type or shape differs from the constant's.</exception>
    public void UpdateWeights(IReadOnlyDictionary<string, Tensor> weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        lock (_compileLock)
        {
            var next = _source.Clone();
            var constants = next.Nodes.SelectMany(n => n.Inputs).Concat(next.Outputs).OfType<Value>().Where(v => v.IsConstant)
                .GroupBy(v => v.Name).ToDictionary(g => g.Key, g => g.ToList());
            foreach (var (name, t) in weights)
            {
                if (!constants.TryGetValue(name, out var values))
                    throw new ArgumentException($"The model has no constant named '{name}'; weights are named as in the graph (e.g. ONNX initializer names).");
                var v = values[0];
                if (t is null || t.DataType != v.DataType || !Shape.Equal(t.Shape, v.Shape))
                    throw new ArgumentException($"Weight '{name}' must be {v.DataType} {Shape.Format(v.Shape)}, got {(t is null ? "null" : t.ToString())}.");
                foreach (var value in values) value.Constant = new Tensor(t.DataType, t.Shape, (Array)t.Data.Clone());
            }
            _compiled = Build(next);
            _source = next;
        }
    }

    /// <summary>Packed-weight operators built so far (shared by the plans of every input shape).</summary>
    internal int CachedOperators => _compiled.Cache.Count;

    /// <summary>Plans compiled for input shapes other than the declared ones and still cached.</summary>
    internal int CachedPlans { get { var c = _compiled; lock (c.Plans) return c.Plans.Count; } }

    /// <summary>Idle arenas held by all plans (bounded by the pool size per plan, whatever the number of runs).</summary>
    internal int PooledArenas { get { var c = _compiled; lock (c.Plans) return c.Plan.IdleContexts + c.Plans.Values.Sum(p => p.IdleContexts); } }

    /// <summary>Bytes of one activation arena of the default plan (weights excluded).</summary>
    public long ArenaBytes => _compiled.Plan.ArenaBytes;

    /// <summary>The kernels the default plan runs, in order.</summary>
    public IReadOnlyList<(string Name, string Kernel)> Steps => _compiled.Plan.Steps.Select(s => (s.Name, s.Kernel)).ToArray();

    /// <summary>The steps themselves of the plan for the declared input shapes (tests).</summary>
    internal IReadOnlyList<Step> PlanSteps => _compiled.Plan.Steps;

    /// <summary>Runs on inputs in graph-input order; returns new output tensors in graph-output order.</summary>
    /// <exception cref="ArgumentException">Wrong number, type or shape of inputs (the message names the input and what it expects).</exception>
    public Tensor[] Run(params Tensor[] inputs)
    {
        var plan = PlanFor(inputs);
        var outputs = new Tensor[plan.Outputs.Length];
        for (int i = 0; i < outputs.Length; i++) outputs[i] = Tensor.Create(plan.Outputs[i].DataType, plan.OutputShapes[i]);
        plan.Run(inputs, outputs, _workers);
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

    /// <summary>
    /// Runs into caller-owned outputs of the right shapes and types: the allocation-free path for serving
    /// loops. The output shapes for given input shapes are those <see cref="OutputShapes"/> returns.
    /// </summary>
    public void Run(ReadOnlySpan<Tensor> inputs, Span<Tensor> outputs)
    {
        var plan = PlanFor(inputs);
        if (outputs.Length != plan.Outputs.Length) throw new ArgumentException($"Expected {plan.Outputs.Length} output tensors, got {outputs.Length}.");
        for (int i = 0; i < outputs.Length; i++)
            if (outputs[i] is null) throw new ArgumentNullException(nameof(outputs), $"Output tensor #{i} is null.");
            else if (outputs[i].DataType != plan.Outputs[i].DataType || !Shape.Equal(outputs[i].Shape, plan.OutputShapes[i]))
                throw new ArgumentException($"Output #{i} must be {plan.Outputs[i].DataType} {Shape.Format(plan.OutputShapes[i])}, got {outputs[i]}.");
        plan.Run(inputs, outputs, _workers);
    }

    /// <summary>Runs the default plan once on zeros for <see cref="KernelWarmup"/>.</summary>
    internal void WarmUp()
    {
        var inputs = Inputs.Select(i => Tensor.Create(i.DataType, i.Shape)).ToArray();
        var plan = PlanFor(inputs);
        var outputs = plan.Outputs.Select((s, i) => Tensor.Create(s.DataType, plan.OutputShapes[i])).ToArray();
        plan.Run(inputs, outputs, _workers, warmUp: true);
    }

    /// <summary>The output shapes for inputs of the given shapes (compiling that plan if needed).</summary>
    public int[][] OutputShapes(params int[][] inputShapes)
    {
        if (inputShapes.Length != Inputs.Count) throw new ArgumentException($"The model takes {Inputs.Count} input(s), got {inputShapes.Length} shapes.");
        return PlanFor(inputShapes.Select((s, i) => Tensor.Create(Inputs[i].DataType, s)).ToArray()).OutputShapes;
    }

    /// <summary>Times each step over <paramref name="runs"/> runs (after one warm-up) and returns the mean per step.</summary>
    public IReadOnlyList<StepProfile> Profile(Tensor[] inputs, int runs = 10)
    {
        var plan = PlanFor(inputs);
        var outputs = plan.Outputs.Select((s, i) => Tensor.Create(s.DataType, plan.OutputShapes[i])).ToArray();
        plan.Run(inputs, outputs, _workers);
        var ticks = new long[plan.Steps.Length];
        for (int r = 0; r < runs; r++) plan.Run(inputs, outputs, _workers, ticks);
        double perTick = 1000.0 / System.Diagnostics.Stopwatch.Frequency / Math.Max(1, runs);
        return plan.Steps.Select((s, i) => new StepProfile(s.Name, s.Kernel, ticks[i] * perTick) { Nodes = s.Nodes.Count > 1 ? s.Nodes : null }).ToArray();
    }

    private ExecutionPlan PlanFor(ReadOnlySpan<Tensor> inputs)
    {
        if (inputs.Length != Inputs.Count)
            throw new ArgumentException($"The model takes {Inputs.Count} input(s) ({string.Join(", ", Inputs.Select(i => i.Name))}), got {inputs.Length}.");
        bool exact = true;
        for (int i = 0; i < inputs.Length; i++)
        {
            var t = inputs[i] ?? throw new ArgumentNullException(nameof(inputs), $"Input '{Inputs[i].Name}' is null.");
            if (t.DataType != Inputs[i].DataType) throw new ArgumentException($"Input '{Inputs[i].Name}' must be {Inputs[i].DataType}, got {t.DataType}.");
            if (t.Rank != Inputs[i].Shape.Length)
                throw new ArgumentException($"Input '{Inputs[i].Name}' expects rank {Inputs[i].Shape.Length} like {Shape.Format(Inputs[i].Shape)}, got {Shape.Format(t.Shape)}.");
            exact &= Shape.Equal(t.Shape, Inputs[i].Shape);
        }
        var compiled = _compiled;
        if (exact) return compiled.Plan;

        var shapes = new int[inputs.Length][];
        for (int i = 0; i < shapes.Length; i++) shapes[i] = inputs[i].Shape;
        string key = string.Join(";", shapes.Select(s => Shape.Format(s)));
        var (plans, recent) = (compiled.Plans, compiled.Recent);
        lock (plans)
            if (plans.TryGetValue(key, out var found))
            {
                recent.Remove(key);
                recent.AddFirst(key);
                return found;
            }
        lock (_compileLock)
        {
            lock (plans)
                if (plans.TryGetValue(key, out var found)) return found; // another caller compiled it meanwhile
            var plan = Compile(AtShapes(compiled.Optimized, shapes), compiled.Cache);
            lock (plans)
            {
                plans[key] = plan;
                recent.AddFirst(key);
                if (recent.Count > MaxPlans)
                {
                    plans.Remove(recent.Last!.Value);
                    recent.RemoveLast();
                }
            }
            return plan;
        }
    }

    /// <summary>
    /// The optimized graph at other input shapes, sharing its constants (hence the packed weights). When the
    /// batch changes, every value must keep its shape apart from a batch dimension scaled alike (compared with
    /// the same graph at the declared batch); anything else means the graph mixes images across the batch
    /// (e.g. Reshape to [-1] or Flatten(0)) and is refused rather than run wrong.
    /// </summary>
    private ModelGraph AtShapes(ModelGraph optimized, int[][] shapes)
    {
        string Described() => string.Join(", ", Inputs.Select((v, i) => $"{v.Name} {Shape.Format(shapes[i])}"));
        foreach (var s in shapes)
            if (s.Any(d => d < 1)) throw new ArgumentException($"Input dimensions must be at least 1, got {Described()}.");
        int declaredBatch = Inputs[0].Shape.Length > 0 ? Inputs[0].Shape[0] : 1;
        int batch = shapes[0].Length > 0 ? shapes[0][0] : 1;
        // Only a batch dimension that all inputs share can be checked for mixing; without one, shapes just have to infer.
        bool batchChanged = _sharedBatch && batch != declaredBatch;
        if (_sharedBatch && shapes.Any(s => s[0] != batch))
            throw new ArgumentException($"The inputs {Described()} must share one batch size (dimension 0), as the model declares.");

        var g = Reshaped(optimized, shapes, Described);
        if (!batchChanged) return g;
        var reference = Reshaped(optimized, shapes.Select(s => (int[])[declaredBatch, .. s[1..]]).ToArray(), Described);
        for (int i = 0; i < g.Nodes.Count; i++)
            for (int j = 0; j < g.Nodes[i].Outputs.Length; j++)
            {
                int[] was = reference.Nodes[i].Outputs[j].Shape, now = g.Nodes[i].Outputs[j].Shape;
                bool scaled = was.Length == now.Length && was.Length > 0 && was[0] == declaredBatch && now[0] == batch
                    && was.AsSpan(1).SequenceEqual(now.AsSpan(1));
                if (!scaled && !Shape.Equal(was, now))
                    throw new ArgumentException($"The model cannot run with batch {batch}: '{g.Nodes[i].Outputs[j].Name}' would be " +
                        $"{Shape.Format(now)} instead of {Shape.Format(was)} with its batch dimension scaled, so images would mix; " +
                        "run it at its own batch size or re-import it for this one.");
            }
        return g;
    }

    private ModelGraph Reshaped(ModelGraph optimized, int[][] shapes, Func<string> described)
    {
        var g = optimized.Clone();
        for (int i = 0; i < shapes.Length; i++) g.Inputs[i].Shape = (int[])shapes[i].Clone();
        try { g.InferShapes(); }
        catch (GraphException e)
        {
            throw new ArgumentException($"The model, declared for {string.Join(", ", Inputs.Select(v => $"{v.Name} {Shape.Format(v.Shape)}"))}, cannot run with inputs {described()}: {e.Message} " +
                "(a shape baked into the model at import cannot follow; re-import it at this size, e.g. mnet --shape/--dim).", e);
        }
        return g;
    }

    public void Dispose()
    {
        if (!ReferenceEquals(_workers, Kernels.Workers.Single)) _workers.Dispose();
    }
}
