using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Runtime;

/// <summary>How an op runs: turns one node into plan steps. Implemented by the op records in <c>Operators/</c>.</summary>
internal interface IRunnable
{
    /// <summary>
    /// Appends the steps that compute <paramref name="node"/>'s outputs, reading its inputs through
    /// <see cref="PlanCompiler.Get"/> and creating its outputs with <see cref="PlanCompiler.Produce"/>.
    /// Throws ArgumentException (named with the node by the compiler) for what the kernels cannot do.
    /// </summary>
    void Lower(Node node, PlanCompiler plan);
}

/// <summary>
/// Turns an optimized graph into an <see cref="ExecutionPlan"/>. Each op lowers itself (<see cref="IRunnable"/>);
/// the compiler's own decision is layout: ops ask for their inputs in the layout they want (2-D spatial
/// ops channels-last, element-wise and axis ops follow their input, everything else the logical order)
/// and a transpose is inserted only where a value is needed in a layout it was not produced in and the
/// two orders differ in memory (not when C == 1 or H*W == 1).
/// </summary>
internal sealed class PlanCompiler
{
    private readonly ModelGraph _g;
    private readonly long _maxArenaBytes;
    private readonly List<Step> _steps = [];
    private readonly Dictionary<Value, (Slot Slot, MemoryLayout Layout)> _native = [];
    private readonly Dictionary<(Value, MemoryLayout), Slot> _views = [];
    private readonly Dictionary<Value, (MemoryLayout Layout, object Source, Func<Slot, Step> Materialize)> _deferred = [];

    public static readonly int[] ToNhwc = [0, 2, 3, 1], ToNchw = [0, 3, 1, 2];

    /// <summary>The SIMD level requested for the session (null: the best the CPU has).</summary>
    public IsaLevel? Isa { get; }
    /// <summary>Packed-weight operators shared by the plans of one session.</summary>
    public OperatorCache Cache { get; }
    /// <summary>The session's arena limit, for lowerings that would build large tables before the arena is checked.</summary>
    public long MaxArenaBytes => _maxArenaBytes;

    public PlanCompiler(ModelGraph g, IsaLevel? isa, OperatorCache cache, long maxArenaBytes) =>
        (_g, Isa, Cache, _maxArenaBytes) = (g, isa, cache, maxArenaBytes);

    /// <summary>Thread ranges fused blocks are planned for; 0 leaves every layer its own step (see <see cref="BlockFusion"/>).</summary>
    public int FusionThreads { get; init; }
    /// <summary>Per-thread cache budget of fused blocks, in bytes.</summary>
    public long FusionCacheBytes { get; init; } = SessionOptions.DefaultFusionCacheBytes;
    /// <summary>See <see cref="Kernels.Fused.BandedBlock.TryCreate"/>.</summary>
    public long FusionSavingsFactor { get; init; } = Kernels.Fused.BandedBlock.DefaultSavingsFactor;

    public ExecutionPlan Compile()
    {
        var inputs = LowerInputs();
        foreach (var n in _g.Nodes) Lower(n);
        var results = _g.Outputs.Select(v => (v.Name, Get(v, MemoryLayout.Plain), v.Shape)).ToArray();
        if (FusionThreads > 0) BlockFusion.Run(_steps, results.Select(r => r.Item2).Concat(inputs).ToHashSet(), FusionThreads, FusionCacheBytes, FusionSavingsFactor);
        return Finish(inputs, results);
    }

    // ---- the phases, for compilers that add steps of their own (training appends the backward pass) ----

    /// <summary>Creates the graph inputs' buffers (plain layout), in graph order.</summary>
    public Slot[] LowerInputs() => _g.Inputs.Select(v => Produce(v, MemoryLayout.Plain)).ToArray();

    /// <summary>Appends one node's steps; errors are named with the node.</summary>
    public void Lower(Node n) => Lower(n, n.Op as IRunnable, (r, node) => r.Lower(node, this));

    /// <summary>Runs <paramref name="lower"/> for <paramref name="n"/>, naming the node in any error it throws.</summary>
    public void Lower<T>(Node n, T? handler, Action<T, Node> lower) where T : class
    {
        if (handler is null)
            throw GraphException.At(n, $"operator {n.Op.Type} is not supported by the runtime.");
        try { lower(handler, n); }
        catch (ArgumentException e) { throw GraphException.At(n, e.Message, e); }
    }

    /// <summary>
    /// Plans the arena and builds the plan. Each output is a slot read after the last step, with the logical
    /// shape callers see; a slot that is a constant, an input or another output is copied to a buffer of its own.
    /// </summary>
    public ExecutionPlan Finish(Slot[] inputs, IReadOnlyList<(string Name, Slot Slot, int[] Shape)> results)
    {
        var outputs = new Slot[results.Count];
        for (int i = 0; i < outputs.Length; i++)
        {
            var (name, s, shape) = results[i];
            if (s.Constant is not null || inputs.Contains(s) || outputs.Take(i).Contains(s))
            {
                var copy = new Slot(name, shape, s.DataType);
                _steps.Add(DataMovement.Copy(name + ".copy", s, copy));
                s = copy;
            }
            outputs[i] = s;
        }
        long arena = MemoryPlanner.Plan(_steps, inputs, outputs);
        if (arena * sizeof(float) > _maxArenaBytes || arena > Array.MaxLength - 64)
            throw new GraphException($"Graph '{_g.Name}' needs a {arena * sizeof(float) / (1 << 20):N0} MiB activation arena, " +
                $"more than the {_maxArenaBytes / (1 << 20):N0} MiB allowed (SessionOptions.MaxArenaBytes).");
        if (KernelWarmup.Active) KernelWarmup.QueueRunLoop(_steps);
        return new ExecutionPlan(_steps.ToArray(), inputs, outputs, results.Select(r => r.Shape).ToArray(), (int)arena);
    }

    // ---- what lowerings use ------------------------------------------------------------------------

    /// <summary>Appends a step to the plan, and hands its kernels to the warm-up thread (see <see cref="KernelWarmup"/>).</summary>
    public void Add(Step step)
    {
        _steps.Add(step);
        if (KernelWarmup.Active) KernelWarmup.Queue(step.Warmer);
    }

    /// <summary>The step added last (null before any), for a lowering that fuses work into the step before it.</summary>
    public Step? LastStep => _steps.Count > 0 ? _steps[^1] : null;

    /// <summary>Replaces the step added last by <paramref name="step"/>, which does its work and more (e.g. writes one more slot).</summary>
    public void ReplaceLast(Step step) => _steps[^1] = step;

    /// <summary>The step added before the last one (null before two), for a fusion across a step that does not touch its data.</summary>
    public Step? StepBeforeLast => _steps.Count > 1 ? _steps[^2] : null;

    /// <summary>Replaces <see cref="StepBeforeLast"/> by <paramref name="step"/>.</summary>
    public void ReplaceBeforeLast(Step step) => _steps[^2] = step;

    /// <summary>A new arena buffer (scratch or an intermediate of a multi-step lowering).</summary>
    public static Slot Buffer(string name, int[] physicalShape, DataType type = DataType.Float32) => new(name, physicalShape, type);

    private static int[] To4D(int[] s)
    {
        if (s.Length > 4) throw new ArgumentException($"Shape {Shape.Format(s)} cannot be viewed channels-last.");
        var r = new int[4];
        int pad = 4 - s.Length;
        for (int i = 0; i < 4; i++) r[i] = i < pad ? 1 : s[i - pad];
        return r;
    }

    /// <summary>The physical shape of a logical shape in a layout (channels-last views pad the rank to 4).</summary>
    public static int[] Physical(int[] logical, MemoryLayout layout)
    {
        if (layout == MemoryLayout.Plain) return logical;
        var s = To4D(logical);
        return [s[0], s[2], s[3], s[1]];
    }

    /// <summary>Channels-last and channels-first orders coincide in memory when C == 1 or H*W == 1.</summary>
    public static bool SameMemory(int[] logical)
    {
        var s = To4D(logical);
        return s[1] == 1 || s[2] * s[3] == 1;
    }

    /// <summary>Logical axis -> physical axis in the given layout.</summary>
    public static int PhysicalAxis(int axis, MemoryLayout layout) => layout == MemoryLayout.Nhwc ? Array.IndexOf(ToNhwc, axis) : axis;

    /// <summary>The layout a computed value was produced in (constants are plain).</summary>
    public MemoryLayout NativeLayout(Value v) =>
        v.IsConstant ? MemoryLayout.Plain : _native.TryGetValue(v, out var n) ? n.Layout : _deferred.TryGetValue(v, out var d) ? d.Layout : _native[v].Layout;

    /// <summary>
    /// <paramref name="v"/> is not computed where its node is lowered but where it is read: a reader that can compute it
    /// itself from <paramref name="source"/> (<see cref="DeferredSource{T}"/>) does so, and the first reader that asks for
    /// its buffer (<see cref="Get"/>) gets it materialized there by the step <paramref name="materialize"/> makes for a slot
    /// in <paramref name="layout"/>. So a value read only by readers that make it themselves never takes memory.
    /// </summary>
    public void Defer(Value v, MemoryLayout layout, object source, Func<Slot, Step> materialize) => _deferred[v] = (layout, source, materialize);

    /// <summary>The source of a deferred value not materialized yet, when it is a <typeparamref name="T"/>; else null.</summary>
    public T? DeferredSource<T>(Value v) where T : class =>
        !_native.ContainsKey(v) && _deferred.TryGetValue(v, out var d) ? d.Source as T : null;

    private Dictionary<Value, List<Node>>? _consumers;

    /// <summary>The nodes of the graph being compiled that read <paramref name="v"/>.</summary>
    public IReadOnlyList<Node> ConsumersOf(Value v) => (_consumers ??= _g.Consumers()).GetValueOrDefault(v) ?? [];

    /// <summary>Whether <paramref name="v"/> is one of the graph's outputs.</summary>
    public bool IsGraphOutput(Value v) => _g.Outputs.Contains(v);

    /// <summary>Computes a deferred value into its own buffer at this point of the plan, if it is deferred and not yet computed.</summary>
    private void Materialize(Value v)
    {
        if (_native.ContainsKey(v) || !_deferred.TryGetValue(v, out var d)) return;
        var slot = Produce(v, d.Layout);
        _steps.Add(d.Materialize(slot));
    }

    /// <summary>Channels-last when <paramref name="x"/> is a rank-4 value produced channels-last: axis ops then remap their axis.</summary>
    public MemoryLayout FollowInput(Value x) => x.Rank == 4 && !x.IsConstant && NativeLayout(x) == MemoryLayout.Nhwc ? MemoryLayout.Nhwc : MemoryLayout.Plain;

    /// <summary>Channels-last when the rank-4 output has any operand produced channels-last (element-wise and concat).</summary>
    public MemoryLayout FollowAny(Value output, IEnumerable<Value?> operands) =>
        output.Rank == 4 && operands.Any(v => v is { IsConstant: false } && NativeLayout(v) == MemoryLayout.Nhwc) ? MemoryLayout.Nhwc : MemoryLayout.Plain;

    /// <summary>Creates the buffer that <paramref name="v"/> is computed into, in <paramref name="layout"/>.</summary>
    public Slot Produce(Value v, MemoryLayout layout)
    {
        var s = new Slot(v.Name, Physical(v.Shape, layout), v.DataType);
        _native[v] = (s, layout);
        return s;
    }

    /// <summary><paramref name="y"/> is <paramref name="x"/>'s buffer as it is, read in plain order (reshape-like ops).</summary>
    public void Alias(Value y, Value x) => _native[y] = (Get(x, MemoryLayout.Plain), MemoryLayout.Plain);

    /// <summary><paramref name="y"/> is the buffer <paramref name="slot"/>, which holds it in <paramref name="layout"/>.</summary>
    public void Alias(Value y, Slot slot, MemoryLayout layout) => _native[y] = (slot, layout);

    /// <summary>The buffer a computed value was produced into.</summary>
    public Slot NativeSlot(Value v)
    {
        Materialize(v);
        return _native[v].Slot;
    }

    /// <summary>The slot holding <paramref name="v"/> in <paramref name="want"/> order, converting once if needed.</summary>
    public Slot Get(Value v, MemoryLayout want)
    {
        if (want == MemoryLayout.Nhwc && v.Rank > 4) throw new ArgumentException($"'{v.Name}' has rank {v.Rank}; channels-last needs rank <= 4.");
        if (_views.TryGetValue((v, want), out var cached)) return cached;
        Slot slot;
        if (v.IsConstant)
        {
            var data = v.Constant!.Data;
            if (want == MemoryLayout.Nhwc && !SameMemory(v.Shape))
            {
                var t = Array.CreateInstance(data.GetType().GetElementType()!, data.Length);
                DataMovement.Transpose(data, t, To4D(v.Shape), ToNhwc);
                data = t;
            }
            slot = new Slot(v.Name, Physical(v.Shape, want), v.DataType, data);
        }
        else
        {
            Materialize(v);
            var native = _native.TryGetValue(v, out var n) ? n
                : throw new GraphException($"Value '{v.Name}' is read before it is computed.");
            if (native.Layout == want || SameMemory(v.Shape)) return native.Slot;
            slot = new Slot(v.Name + (want == MemoryLayout.Nhwc ? ".nhwc" : ".nchw"), Physical(v.Shape, want), v.DataType);
            _steps.Add(Relayout(slot.Name, v.Shape, native.Slot, slot, want));
        }
        _views[(v, want)] = slot;
        return slot;
    }

    /// <summary>A step that copies <paramref name="src"/> (a value of shape <paramref name="logical"/> in the other layout) into <paramref name="dst"/> in <paramref name="to"/>.</summary>
    public static Step Relayout(string name, int[] logical, Slot src, Slot dst, MemoryLayout to) => to == MemoryLayout.Nhwc
        ? DataMovement.Transpose(name, To4D(logical), ToNhwc, src, dst)
        : DataMovement.Transpose(name, Physical(logical, MemoryLayout.Nhwc), ToNchw, src, dst);

    /// <summary>The float32 constant at input <paramref name="i"/> (empty when the input is omitted).</summary>
    public static float[] ConstantFloats(Node n, int i, string what) =>
        n.OptionalInput(i) is not { } v ? [] :
        v.IsConstant && v.DataType == DataType.Float32 ? v.Constant!.Floats :
        throw new ArgumentException($"{what} '{v.Name}' must be a float32 constant.");

    /// <summary>Throws unless input <paramref name="i"/> (when present) holds <paramref name="type"/>.</summary>
    public static void Require(Node n, int i, DataType type, string what)
    {
        if (n.OptionalInput(i) is { } v && v.DataType != type)
            throw new ArgumentException($"{what} '{v.Name}' is {v.DataType}; the runtime computes this op on {type} only.");
    }
}
