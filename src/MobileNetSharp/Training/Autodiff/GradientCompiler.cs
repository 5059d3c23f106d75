using MobileNetSharp.Graph;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Training;

/// <summary>
/// Builds one plan that runs a training step: the forward pass in training mode (the same kernels as inference),
/// then the backward pass, node by node in reverse order (reverse-mode automatic differentiation, e.g.
/// Griewank &amp; Walther, "Evaluating Derivatives", 2008). The memory planner sees that backward steps read
/// forward activations, so those stay alive exactly as long as they are needed and no longer.
/// </summary>
/// <remarks>
/// <para>Each value's gradient lives in the layout the value was produced in. A node writes its contribution to
/// an input's gradient in whatever layout its kernel produces; the compiler converts it (a transpose, only when
/// the two orders differ in memory) and sums it into the gradient already there when the value feeds several
/// nodes (a residual input, the squeeze-excite branch).</para>
/// <para>Values that need a gradient: the trainable parameters and everything computed from them.</para>
/// </remarks>
internal sealed class GradientCompiler
{
    private readonly Dictionary<Value, Slot> _grads = [];
    private readonly List<(Value Value, Slot Slot, MemoryLayout Layout)> _pending = [];
    private readonly Dictionary<Node, object> _saved = [];
    private readonly HashSet<Value> _needsGrad = [];
    private readonly List<(string Name, Slot Slot, int[] Shape)> _extraOutputs = [];
    private readonly List<(string Name, Slot Slot)> _extraInputs = [];

    public PlanCompiler Plan { get; }

    /// <summary>The per-step random seed (one uint64 as int64), fed by the trainer: dropout masks derive from it.</summary>
    public Slot Seed { get; }

    public GradientCompiler(PlanCompiler plan)
    {
        Plan = plan;
        Seed = PlanCompiler.Buffer("__seed", [1], DataType.Int64);
        _extraInputs.Add(("__seed", Seed));
    }

    /// <summary>Inputs the trainer feeds besides the graph's (the seed).</summary>
    public IReadOnlyList<(string Name, Slot Slot)> ExtraInputs => _extraInputs;

    /// <summary>State the step produces besides the gradients (new running statistics), as (name, slot, shape).</summary>
    public IReadOnlyList<(string Name, Slot Slot, int[] Shape)> ExtraOutputs => _extraOutputs;

    /// <summary>Declares that <paramref name="stateName"/> (e.g. a running mean) gets its next value from <paramref name="slot"/>.</summary>
    public void UpdatesState(string stateName, Slot slot, int[] shape) => _extraOutputs.Add((stateName, slot, shape));

    /// <summary>Marks the values that need gradients: <paramref name="parameters"/> and, in graph order, every output of a node with such an input.</summary>
    public void MarkTrainable(ModelGraph g, IEnumerable<Value> parameters)
    {
        _needsGrad.UnionWith(parameters);
        foreach (var n in g.Nodes)
            if (n.Inputs.Any(v => v is not null && _needsGrad.Contains(v)))
                _needsGrad.UnionWith(n.Outputs);
    }

    /// <summary>True when <paramref name="v"/> is a parameter or computed from one.</summary>
    public bool NeedsGrad(Value? v) => v is not null && _needsGrad.Contains(v);

    /// <summary>Keeps state a node's forward pass made for its backward pass (statistics, a mask).</summary>
    public void Save(Node n, object state) => _saved[n] = state;

    public T Saved<T>(Node n) => _saved.TryGetValue(n, out var s) ? (T)s
        : throw new InvalidOperationException($"Node '{n.Name}' saved no training state.");

    /// <summary>Starts the backward pass: the gradient of <paramref name="v"/> is <paramref name="seed"/>.</summary>
    public void SeedGrad(Value v, Slot seed) => _grads[v] = seed;

    /// <summary>True once some node has contributed to <paramref name="v"/>'s gradient.</summary>
    public bool HasGrad(Value v) => _grads.ContainsKey(v);

    /// <summary>The complete gradient of <paramref name="v"/> (a node's output) in <paramref name="want"/>, converting once if needed.</summary>
    public Slot OutputGrad(Value v, MemoryLayout want)
    {
        if (!_grads.TryGetValue(v, out var g)) throw new InvalidOperationException($"'{v.Name}' has no gradient yet.");
        var native = Plan.NativeLayout(v);
        if (native == want || PlanCompiler.SameMemory(v.Shape)) return g;
        var converted = PlanCompiler.Buffer("d" + v.Name + (want == MemoryLayout.Nhwc ? ".nhwc" : ".nchw"), PlanCompiler.Physical(v.Shape, want));
        Plan.Add(PlanCompiler.Relayout(converted.Name, v.Shape, g, converted, want));
        return converted;
    }

    /// <summary>
    /// A buffer for one contribution to <paramref name="v"/>'s gradient, in <paramref name="layout"/>, or null when
    /// <paramref name="v"/> needs none. The caller appends a step that writes it (every element); the compiler
    /// then makes it the gradient or adds it to the gradient already there.
    /// </summary>
    public Slot? InputGrad(Value? v, MemoryLayout layout)
    {
        if (v is null || !NeedsGrad(v)) return null;
        if (layout == MemoryLayout.Nhwc && v.Rank > 4) throw new ArgumentException($"'{v.Name}' has rank {v.Rank}; channels-last needs rank <= 4.");
        var s = PlanCompiler.Buffer($"d{v.Name}.from{_pending.Count}", PlanCompiler.Physical(v.Shape, layout));
        _pending.Add((v, s, layout));
        return s;
    }

    /// <summary>
    /// Like <see cref="InputGrad"/>, but the contribution to <paramref name="v"/>'s gradient is written over
    /// <paramref name="outputGrad"/>, the complete gradient of the node's own output (from <see cref="OutputGrad"/>), for
    /// an element-wise backward (dx[i] from dy[i] and saved values) whose kernel may write dx over dy. Nothing reads an
    /// output's gradient after its node's backward, and every gradient buffer belongs to one value, so the buffer is free;
    /// writing over it saves a buffer and the write-allocate read of a fresh one (10-20% of a streaming pass measured).
    /// Null when <paramref name="v"/> needs no gradient; a fresh buffer, as from <see cref="InputGrad"/>, when
    /// <paramref name="outputGrad"/> cannot be taken (a constant, a relayout copy, another shape): callers compare.
    /// </summary>
    public Slot? InputGradOver(Value? v, MemoryLayout layout, Slot outputGrad)
    {
        if (v is null || !NeedsGrad(v)) return null;
        // Only a gradient buffer itself (not a constant seed, not a relayout copy), of the contribution's exact shape.
        if (outputGrad.Constant is not null || !_grads.ContainsValue(outputGrad)
            || !outputGrad.Shape.AsSpan().SequenceEqual(PlanCompiler.Physical(v.Shape, layout)))
            return InputGrad(v, layout);
        _pending.Add((v, outputGrad, layout));
        return outputGrad;
    }

    /// <summary>Turns the contributions written by the last node into gradients (converting layouts and summing fan-in).</summary>
    public void Flush()
    {
        foreach (var (v, slot, layout) in _pending)
        {
            var native = v.IsConstant ? MemoryLayout.Plain : Plan.NativeLayout(v);
            var contribution = slot;
            if (layout != native && !PlanCompiler.SameMemory(v.Shape))
            {
                contribution = PlanCompiler.Buffer(slot.Name + (native == MemoryLayout.Nhwc ? ".nhwc" : ".nchw"), PlanCompiler.Physical(v.Shape, native));
                Plan.Add(PlanCompiler.Relayout(contribution.Name, v.Shape, slot, contribution, native));
            }
            if (_grads.TryGetValue(v, out var existing)) Plan.Add(new AccumulateStep("d" + v.Name + ".sum", existing, contribution));
            else _grads[v] = contribution;
        }
        _pending.Clear();
    }

    /// <summary>
    /// Overrides every batch norm's own momentum when set; PyTorch's convention:
    /// running = (1 - momentum) · running + momentum · batch statistic.
    /// </summary>
    public float? BatchNormMomentum { get; init; }

    /// <summary>The smallest 1x1 input gradient, in floats, that its reader computes again instead of reading it
    /// (<see cref="PointwiseGradStep.DefaultMinUnwrittenDxFloats"/>).</summary>
    public long MinUnwrittenDxFloats { get; init; } = PointwiseGradStep.DefaultMinUnwrittenDxFloats;

    /// <summary>
    /// The backward pass of an op whose output is its input's buffer read in another shape (Reshape, Flatten,
    /// Squeeze, Unsqueeze, Identity): the gradient is the output's gradient in the input's shape, one copy.
    /// </summary>
    public static void PassThrough(Node n, GradientCompiler t)
    {
        if (t.InputGrad(n.Input(0), MemoryLayout.Plain) is not { } dx) return;
        t.Plan.Add(DataMovement.Copy(n.Name + ".grad", t.OutputGrad(n.Output, MemoryLayout.Plain), dx));
    }

    /// <summary>The gradient of a parameter, or null when nothing reached it (it does not affect the loss).</summary>
    public Slot? GradOf(Value v) => _grads.GetValueOrDefault(v);
}

/// <summary>sum += x: fan-in of a value's gradient.</summary>
internal sealed class AccumulateStep(string name, Slot sum, Slot x) : Step(name, [sum, x], [sum])
{
    public override string Kernel => "grad-sum";
    public override unsafe void Execute(RunContext ctx)
    {
        var s = ctx.Write(sum);
        fixed (float* ps = s, px = ctx.Read(x))
        {
            var body = new AddInto { Sum = ps, X = px };
            Kernels.Chunked.Run(ctx.Workers, s.Length, ref body);
        }
    }

    private unsafe struct AddInto : Kernels.IChunkBody
    {
        public float* Sum, X;

        public readonly void Invoke(long start, long count) => System.Numerics.Tensors.TensorPrimitives.Add(
            new ReadOnlySpan<float>(Sum + start, (int)count), new ReadOnlySpan<float>(X + start, (int)count), new Span<float>(Sum + start, (int)count));
    }
}
