using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Passes;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Training;

/// <summary>How a <see cref="TrainingSession"/> computes.</summary>
public sealed record TrainingOptions
{
    /// <summary>Worker threads for the kernels (forward and backward).</summary>
    public int Threads { get; init; } = 1;
    /// <summary>SIMD level (null: the best the CPU has).</summary>
    public IsaLevel? Isa { get; init; }
    /// <summary>Label smoothing of the cross-entropy loss, in [0, 1) (Szegedy et al. 2016).</summary>
    public float LabelSmoothing { get; init; }
    /// <summary>
    /// Running-statistics momentum for every batch norm, PyTorch's convention (running = (1 - m) · running + m · batch);
    /// null keeps each layer's own (ONNX's momentum attribute, default 0.9, i.e. PyTorch's 0.1).
    /// </summary>
    public float? BatchNormMomentum { get; init; }
    /// <summary>
    /// Fine-tuning: the nodes up to and including this one (graph order) keep their weights, and their batch norms
    /// run in inference mode; null trains everything.
    /// </summary>
    public string? FreezeUntil { get; init; }
    /// <summary>Upper bound of one step's activation arena (forward activations kept for the backward pass).</summary>
    public long MaxArenaBytes { get; init; } = 8L << 30;
    /// <summary>The smallest 1x1 input gradient (floats) left unwritten and computed again by its reader
    /// (<see cref="PointwiseGradStep.DefaultMinUnwrittenDxFloats"/>); tests move it to force the choice either way, which
    /// changes no result bit.</summary>
    internal long MinUnwrittenDxFloats { get; init; } = PointwiseGradStep.DefaultMinUnwrittenDxFloats;
}

/// <summary>The result of one training step on one batch.</summary>
/// <param name="Loss">Mean cross-entropy over the batch.</param>
/// <param name="Correct">Samples whose highest score is their label.</param>
public readonly record struct StepResult(float Loss, int Correct, int Count);

/// <summary>
/// Trains a classifier graph (builder-made or imported): each <see cref="Step"/> runs the forward pass in training
/// mode and the backward pass as one compiled plan and leaves the gradients in <see cref="Parameters"/>' Grad
/// arrays for an <see cref="Optimizer"/>. The model's last output must be the class scores [N, K] (logits);
/// the loss is the mean softmax cross-entropy against int labels.
/// </summary>
/// <remarks>
/// <para>The same kernels run inference and training. The training graph is the model with the trainable
/// constants (weights, biases, batch-norm gamma and beta: what <see cref="Op.Cost"/> calls parameters) and the
/// running statistics turned into plan inputs, so an optimizer's update reaches the next step without a
/// recompile; BatchNorm is not folded and only clamp activations fuse (into the batch norm before them), because
/// the other gradients need the separate values. One plan is compiled per batch size (a last short batch gets its own).</para>
/// <para>Not thread-safe: one step at a time.</para>
/// </remarks>
public sealed class TrainingSession : IDisposable
{
    private readonly ModelGraph _source;
    private readonly TrainingOptions _options;
    private readonly Workers _workers;
    private readonly Dictionary<int, Compiled> _plans = [];
    private readonly List<Parameter> _parameters = [];
    private readonly Dictionary<string, Tensor> _states = [];
    private readonly long[] _seed = new long[1];

    private sealed record Compiled(ExecutionPlan Plan, Tensor[] Inputs, Tensor[] Outputs, float[] Logits, long[] Labels, float[] Loss, int Classes);

    /// <param name="model">A classifier: input 0 the images [N, C, H, W], the last output the scores [N, K]. Not modified.</param>
    /// <exception cref="GraphException">The graph is not a classifier, or has an op with no gradient (the op and node are named).</exception>
    public TrainingSession(ModelGraph model, TrainingOptions? options = null)
    {
        _options = options ?? new TrainingOptions();
        if (_options.Threads < 1) throw new ArgumentOutOfRangeException(nameof(options), $"Threads must be >= 1, got {_options.Threads}.");
        if (model.Inputs.Count != 1) throw new GraphException($"Training needs a model with one input (the images); '{model.Name}' has {model.Inputs.Count}.");
        if (model.Outputs.Count < 1 || model.Outputs[^1].Rank != 2)
            throw new GraphException($"Training needs the model's last output to be class scores [N, classes]; '{model.Name}' ends in " +
                $"{(model.Outputs.Count == 0 ? "nothing" : Tensors.Shape.Format(model.Outputs[^1].Shape))}.");
        _source = model.Clone();
        _workers = _options.Threads == 1 ? Workers.Single : new Workers(_options.Threads);
        // The trainable set, in a stable order (graph order), from one preparation of the graph.
        var probe = Prepare(_source.Inputs[0].Shape[0], out var parameters, out var states);
        foreach (var v in parameters) _parameters.Add(new Parameter(v.Name, v.Constant!.Floats, v.Shape));
        foreach (var v in states) _states[v.Name] = new Tensor((float[])v.Constant!.Floats.Clone(), v.Shape);
        // Work on copies: the caller's model keeps its weights until ToModel() hands out the trained ones.
        for (int i = 0; i < _parameters.Count; i++)
            _parameters[i] = new Parameter(_parameters[i].Name, (float[])_parameters[i].Value.Clone(), _parameters[i].Shape);
        Classes = probe.Outputs[^1].Shape[1];
    }

    /// <summary>The trainable tensors, in graph order; optimizers update their Value arrays in place.</summary>
    public IReadOnlyList<Parameter> Parameters => _parameters;

    /// <summary>Non-trained state that training updates (batch norms' running mean and variance), by value name.</summary>
    public IReadOnlyDictionary<string, Tensor> States => _states;

    /// <summary>Number of classes (the scores' width).</summary>
    public int Classes { get; }

    /// <summary>The last step's scores [N, K] (logits, before softmax), for accuracy and debugging.</summary>
    public ReadOnlySpan<float> LastLogits(int batch) => _plans.TryGetValue(batch, out var c) ? c.Logits : default;

    /// <summary>
    /// One training step: forward in training mode, loss, backward. Gradients are written (not accumulated)
    /// into each parameter's Grad; running statistics are updated. Weights are left to the optimizer.
    /// </summary>
    /// <param name="images">[N, C, H, W] float32 with the model's C, H, W; any N.</param>
    /// <param name="labels">N labels in [0, classes).</param>
    /// <param name="seed">Seeds this step's dropout masks (use a different one per step, e.g. the step index).</param>
    /// <exception cref="ArgumentException">Wrong image shape, label count or a label out of range.</exception>
    public StepResult Step(Tensor images, ReadOnlySpan<int> labels, ulong seed = 0)
    {
        var expected = _source.Inputs[0].Shape;
        if (images.Shape.Length != 4 || images.DataType != DataType.Float32 || !images.Shape.AsSpan(1).SequenceEqual(expected.AsSpan(1)))
            throw new ArgumentException($"Images must be float32 [N, {expected[1]}, {expected[2]}, {expected[3]}], got {images.DataType} {Tensors.Shape.Format(images.Shape)}.");
        int n = images.Shape[0];
        if (labels.Length != n) throw new ArgumentException($"{n} images but {labels.Length} labels.");
        var c = Plan(n);
        for (int i = 0; i < n; i++)
        {
            if ((uint)labels[i] >= (uint)c.Classes) throw new ArgumentException($"Label {labels[i]} of sample {i} is outside [0, {c.Classes}).");
            c.Labels[i] = labels[i];
        }
        c.Inputs[0] = images;
        _seed[0] = (long)seed;
        c.Plan.Run(c.Inputs, c.Outputs, _workers);
        int correct = 0;
        for (int i = 0; i < n; i++)
            if (System.Numerics.Tensors.TensorPrimitives.IndexOfMax<float>(c.Logits.AsSpan(i * c.Classes, c.Classes)) == labels[i]) correct++;
        return new StepResult(c.Loss[0], correct, n);
    }

    /// <summary>
    /// Milliseconds per step spent in each kernel kind (forward and backward), averaged over <paramref name="steps"/>
    /// steps on one batch, largest first: where training time goes. Updates the running statistics like a step.
    /// </summary>
    public IReadOnlyList<(string Kernel, double Milliseconds, int Steps)> Profile(Tensor images, ReadOnlySpan<int> labels, int steps = 3)
    {
        Step(images, labels);
        var c = _plans[images.Shape[0]];
        var ticks = new long[c.Plan.Steps.Length];
        for (int i = 0; i < steps; i++) c.Plan.Run(c.Inputs, c.Outputs, _workers, ticks);
        return c.Plan.Steps.Select((s, i) => (s.Kernel, Ticks: ticks[i]))
            .GroupBy(x => x.Kernel)
            .Select(g => (g.Key, g.Sum(x => x.Ticks) * 1000.0 / System.Diagnostics.Stopwatch.Frequency / steps, g.Count()))
            .OrderByDescending(x => x.Item2).ToList();
    }

    /// <summary>The compiled plan's steps for a batch size (tests inspect what was fused).</summary>
    internal IReadOnlyList<Step> PlanSteps(int batch) => Plan(batch).Plan.Steps;

    /// <summary>Milliseconds per step of every plan step in plan order (forward, then backward), with its kernel and
    /// the shape it writes first: the per-layer view behind <see cref="Profile"/>.</summary>
    internal IReadOnlyList<(string Name, string Kernel, int[] Shape, double Milliseconds)> ProfileSteps(Tensor images, ReadOnlySpan<int> labels, int steps = 3)
    {
        Step(images, labels);
        var c = _plans[images.Shape[0]];
        var ticks = new long[c.Plan.Steps.Length];
        for (int i = 0; i < steps; i++) c.Plan.Run(c.Inputs, c.Outputs, _workers, ticks);
        return c.Plan.Steps.Select((s, i) => (s.Name, s.Kernel, s.Writes.Length > 0 ? s.Writes[0].Shape : [],
            ticks[i] * 1000.0 / System.Diagnostics.Stopwatch.Frequency / steps)).ToList();
    }

    /// <summary>
    /// The model with the current weights and running statistics, ready for inference or export (the original
    /// graph's structure: batch norms unfolded, dropout kept as an inference no-op).
    /// </summary>
    public ModelGraph ToModel()
    {
        var g = _source.Clone();
        var byName = _parameters.ToDictionary(p => p.Name, p => new Tensor((float[])p.Value.Clone(), p.Shape));
        foreach (var (name, t) in _states) byName[name] = new Tensor((float[])t.Floats.Clone(), t.Shape);
        foreach (var v in g.Constants.ToList())
            if (byName.TryGetValue(v.Name, out var t)) v.Constant = t;
        return g;
    }

    private Compiled Plan(int batch)
    {
        if (_plans.TryGetValue(batch, out var c)) return c;
        var g = Prepare(batch, out var parameters, out var states);
        var logits = g.Outputs[^1];
        int classes = logits.Shape[1];
        var labels = new Value("labels", DataType.Int64, [batch]);
        g.Inputs.Add(labels);
        var loss = new Value("loss", DataType.Float32, []);
        var lossNode = new Node("loss", new SoftmaxCrossEntropyLoss(_options.LabelSmoothing), [logits, labels], [loss]);
        lossNode.Op.InferShapes(lossNode);
        g.Nodes.Add(lossNode);
        foreach (var v in parameters.Concat(states)) { v.Constant = null; g.Inputs.Add(v); }

        var pc = new PlanCompiler(g, _options.Isa, new OperatorCache(), _options.MaxArenaBytes);
        var t = new GradientCompiler(pc) { BatchNormMomentum = _options.BatchNormMomentum, MinUnwrittenDxFloats = _options.MinUnwrittenDxFloats };
        t.MarkTrainable(g, parameters);
        var inputs = pc.LowerInputs();
        foreach (var n in g.Nodes)
        {
            if (n.Op is IDifferentiable d) pc.Lower(n, d, (op, node) => op.LowerTraining(node, t));
            else if (!n.Outputs.Any(t.NeedsGrad)) pc.Lower(n);
            else throw GraphException.At(n, $"operator {n.Op.Type} has no gradient, so it cannot be trained through; freeze the layers up to it (FreezeUntil).");
        }
        t.SeedGrad(loss, new Slot("dloss", [], [1f]));
        for (int i = g.Nodes.Count - 1; i >= 0; i--)
        {
            var n = g.Nodes[i];
            if (!n.Outputs.Any(t.HasGrad)) continue;
            pc.Lower(n, (IDifferentiable)n.Op, (op, node) => op.LowerBackward(node, t));
            t.Flush();
        }
        var results = new List<(string, Slot, int[])> { ("loss", pc.Get(loss, MemoryLayout.Plain), []), (logits.Name, pc.Get(logits, MemoryLayout.Plain), logits.Shape) };
        foreach (var p in parameters)
            results.Add(("d" + p.Name, t.GradOf(p) ?? new Slot("d" + p.Name + ".zero", p.Shape, new float[p.Length]), p.Shape));
        results.AddRange(t.ExtraOutputs);
        var plan = pc.Finish([.. inputs, .. t.ExtraInputs.Select(e => e.Slot)], results);

        // Bind the tensors once: parameters, states and gradients are read and written in place on every step.
        var labelData = new long[batch];
        var lossData = new float[1];
        var logitData = new float[batch * classes];
        var ins = new List<Tensor> { Tensor.Zeros(g.Inputs[0].Shape), new(labelData, batch) };
        ins.AddRange(_parameters.Select(p => new Tensor(p.Value, p.Shape)));
        ins.AddRange(states.Select(v => _states[v.Name]));
        ins.Add(new Tensor(_seed, 1));
        var outs = new List<Tensor> { new(lossData, []), new(logitData, batch, classes) };
        outs.AddRange(_parameters.Select(p => new Tensor(p.Grad, p.Shape)));
        outs.AddRange(t.ExtraOutputs.Select(e => _states[e.Name]));
        c = new Compiled(plan, [.. ins], [.. outs], logitData, labelData, lossData, classes);
        _plans[batch] = c;
        return c;
    }

    /// <summary>
    /// The graph as it trains at <paramref name="batch"/>: training-safe passes only (no batch-norm folding, no
    /// activation fusion), and the trainable constants and running statistics found, still holding their values.
    /// </summary>
    private ModelGraph Prepare(int batch, out List<Value> parameters, out List<Value> states)
    {
        var g = _source.Clone();
        RemoveIdentity.Run(g);
        DropBroadcastExpand.Run(g);
        FuseHardActivation.Run(g);
        FuseSwish.Run(g);
        // ReLU/ReLU6 into the batch norm before it: the normalized tensor is written once, clamped, and the clamp's
        // gradient follows from that output. Nothing else fuses: the other gradients need the separate values.
        FuseActivation.Run(g, (producer, act) => producer.Op is BatchNorm && act.Kind is ActivationKind.Relu or ActivationKind.Clip);
        g.Inputs[0].Shape = [batch, .. g.Inputs[0].Shape[1..]];
        try { g.InferShapes(); }
        catch (GraphException e) { throw new GraphException($"The model cannot run at batch {batch}: {e.Message}", e); }

        int frozen = -1;
        if (_options.FreezeUntil is { } until)
        {
            frozen = g.Nodes.FindIndex(n => n.Name == until);
            if (frozen < 0) throw new GraphException($"FreezeUntil: no node named '{until}' (see `mnet summary` for node names).");
        }
        parameters = [];
        states = [];
        var seen = new HashSet<Value>();
        for (int i = frozen + 1; i < g.Nodes.Count; i++)
        {
            var n = g.Nodes[i];
            foreach (int k in n.Op.Cost(n).ParameterInputs)
                if (n.OptionalInput(k) is { IsConstant: true, DataType: DataType.Float32 } v && seen.Add(v)) parameters.Add(v);
            if (n.Op is BatchNorm)
                for (int k = 3; k <= 4; k++)
                    if (n.Input(k) is { IsConstant: true } s && seen.Add(s)) states.Add(s);
        }
        if (parameters.Count == 0) throw new GraphException($"'{g.Name}' has nothing to train{(frozen >= 0 ? " after " + _options.FreezeUntil : "")}.");
        var names = new HashSet<string>();
        foreach (var v in parameters.Concat(states))
            if (!names.Add(v.Name)) throw new GraphException($"Two different weights are both named '{v.Name}'; training needs unique names.");
        return g;
    }

    public void Dispose()
    {
        if (!ReferenceEquals(_workers, Workers.Single)) _workers.Dispose();
    }
}
