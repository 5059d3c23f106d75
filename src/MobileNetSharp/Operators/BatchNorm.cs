using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Training;

namespace MobileNetSharp.Graph;

/// <summary>
/// Inference batch normalization over axis 1 (ONNX BatchNormalization, inference mode):
/// y = (x - mean) / sqrt(var + epsilon) * scale + bias. Inputs: X [N, C, ...], scale (gamma), bias (beta),
/// mean, var, each [C]. Usually folded into the convolution before it (<see cref="Passes.FoldBatchNorm"/>);
/// what is left runs as a per-channel affine map, with the parameters read at run time when they are not constants.
/// <see cref="Momentum"/> is ONNX's (running = momentum · running + (1 - momentum) · batch; PyTorch's momentum is
/// 1 minus it): only training reads it. A fused <see cref="Activation"/> (training fuses ReLU/ReLU6 into the batch norm
/// before it, so the normalized tensor is written once) is applied after the affine map.
/// </summary>
public sealed record BatchNorm(float Epsilon = 1e-5f, float Momentum = 0.9f, Activation Activation = default) : Op, IRunnable, IDifferentiable
{
    public override string Type => "BatchNormalization";

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        if (x.Length < 2) throw Error(node, "expects an input of rank >= 2 with channels on axis 1.");
        for (int i = 1; i <= 4; i++)
        {
            var p = node.Input(i).Shape;
            if (p.Length != 1 || p[0] != x[1])
                throw Error(node, $"parameter #{i} has shape {Tensors.Shape.Format(p)}, expected [{x[1]}].");
        }
        return [x];
    }

    /// <summary>Gamma and beta are trainable parameters; the running statistics are not (published-figures.md).</summary>
    public override OpCost Cost(Node node) => new(0, LayerKind.Other, [1, 2]);

    public override string Describe() => Activation.IsNone ? Type : $"{Type} +{Activation}";

    public override Op? WithActivation(Activation activation) => Activation.IsNone ? this with { Activation = activation } : null;

    public override void ExportOnnx(Node n, IOnnxWriter w)
    {
        string raw = OnnxForms.Raw(w, n, !Activation.IsNone, "bn");
        w.Node("BatchNormalization", n.Name, n.Inputs.Take(5).Select(v => w.Name(v!)).ToArray(), [raw], OnnxAttribute.Of("epsilon", Epsilon), OnnxAttribute.Of("momentum", Momentum));
        OnnxForms.Activation(w, n.Name, Activation, raw, n.Output.Name);
    }

    /// <summary>The per-channel scale and shift equivalent to the normalization, computed in double.</summary>
    public static void Affine(ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, ReadOnlySpan<float> mean, ReadOnlySpan<float> variance,
        float epsilon, Span<float> scale, Span<float> shift)
    {
        for (int c = 0; c < scale.Length; c++)
        {
            double s = gamma[c] / Math.Sqrt((double)variance[c] + epsilon);
            scale[c] = (float)s;
            shift[c] = (float)(beta[c] - mean[c] * s);
        }
    }

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        for (int i = 0; i < 5; i++) PlanCompiler.Require(n, i, DataType.Float32, i == 0 ? "BatchNormalization input" : "BatchNormalization parameter");
        var x = n.Input(0);
        int channels = x.Shape[1];
        var layout = x.Rank == 4 ? MemoryLayout.Nhwc : MemoryLayout.Plain;
        int inner = layout == MemoryLayout.Nhwc ? 1 : (int)Tensors.Shape.Size(x.Shape.AsSpan(2));
        var input = plan.Get(x, layout);
        var output = plan.Produce(n.Output, layout);
        if (Enumerable.Range(1, 4).All(i => n.Input(i).IsConstant))
        {
            var scale = new float[channels];
            var shift = new float[channels];
            Affine(PlanCompiler.ConstantFloats(n, 1, "scale"), PlanCompiler.ConstantFloats(n, 2, "bias"), PlanCompiler.ConstantFloats(n, 3, "mean"),
                PlanCompiler.ConstantFloats(n, 4, "var"), Epsilon, scale, shift);
            plan.Add(new BatchNormStep(n.Name, new Slot(n.Name + ".scale", [channels], scale), new Slot(n.Name + ".shift", [channels], shift),
                null, inner, input, output, Activation));
            return;
        }
        // Statistics supplied at run time: the affine map is computed per run into a small scratch buffer.
        var parameters = Enumerable.Range(1, 4).Select(i => plan.Get(n.Input(i), MemoryLayout.Plain)).ToArray();
        plan.Add(new BatchNormStep(n.Name, PlanCompiler.Buffer(n.Name + ".scale", [channels]), PlanCompiler.Buffer(n.Name + ".shift", [channels]),
            (parameters, Epsilon), inner, input, output, Activation));
    }

    // ---- training ----------------------------------------------------------------------------------------
    // With trainable gamma/beta the layer normalizes with the batch's own statistics (Ioffe & Szegedy 2015,
    // Algorithm 1) and updates the running statistics (PyTorch's rule with the layer's momentum, or GradientCompiler.BatchNormMomentum when set).
    // A frozen layer (fine-tuning) keeps inference mode: its running statistics, a fixed affine map.

    private static bool Trains(Node n, GradientCompiler t) => t.NeedsGrad(n.Input(1)) || t.NeedsGrad(n.Input(2));

    private static (MemoryLayout Layout, int Rows, int Channels) TrainingShape(Node n)
    {
        var x = n.Input(0);
        if (x.Rank is not (2 or 4)) throw new ArgumentException($"training-mode batch norm takes [N, C] or [N, C, H, W], got {Tensors.Shape.Format(x.Shape)}.");
        int rows = (int)(x.Length / x.Shape[1]);
        return (x.Rank == 4 ? MemoryLayout.Nhwc : MemoryLayout.Plain, rows, x.Shape[1]);
    }

    void IDifferentiable.LowerTraining(Node n, GradientCompiler t)
    {
        if (!Trains(n, t)) { ((IRunnable)this).Lower(n, t.Plan); return; }
        for (int i = 0; i < 5; i++) PlanCompiler.Require(n, i, DataType.Float32, i == 0 ? "BatchNormalization input" : "BatchNormalization parameter");
        var (layout, rows, c) = TrainingShape(n);
        var mean = PlanCompiler.Buffer(n.Name + ".batch_mean", [c]);
        var invStd = PlanCompiler.Buffer(n.Name + ".batch_invstd", [c]);
        var scale = PlanCompiler.Buffer(n.Name + ".batch_scale", [c]);
        var x = t.Plan.Get(n.Input(0), layout);
        // Right after the convolution that wrote x: that step gathers x's statistics while each chunk of its output is
        // still in cache, and this one only normalizes (one read of x instead of two).
        (Slot Slot, int Granule)? moments = null;
        if (t.Plan.LastStep is RuntimeWeightConvStep { Moments: null } conv && conv.Output == x)
        {
            var slot = PlanCompiler.Buffer(n.Name + ".moments", [ChannelMoments.PartialLength(rows, c)], DataType.Int64);
            moments = (slot, conv.MomentsGranule);
            t.Plan.ReplaceLast(conv.WithMoments(slot));
        }
        var p = Enumerable.Range(1, 4).Select(i => t.Plan.Get(n.Input(i), MemoryLayout.Plain)).ToArray();
        if (moments is var (momentSlot, granule) && layout == MemoryLayout.Nhwc && !t.Plan.IsGraphOutput(n.Output)
            && t.Plan.ConsumersOf(n.Output) is [var reader] && Conv.ReadsNormalized(reader, n.Output))
        {
            // Read only by a depthwise or 1x1 convolution, which normalizes x itself (each image, or each chunk of rows, into
            // its own scratch), forward and backward (BatchNormApply): y is never written, saving its write and the reads of
            // it. Anything else that asks for y gets it computed where it asks.
            t.Plan.Add(new BatchNormStatisticsStep(n.Name, Epsilon, rows, c, momentSlot, granule, p[0], mean, invStd, scale));
            var (act, beta) = (Activation, p[1]);
            t.Plan.Defer(n.Output, layout, new BatchNormApply(Activation, c, x, mean, scale, beta),
                y => new BatchNormApplyStep(n.Name + ".apply", act, rows, c, x, mean, scale, beta, y));
        }
        else
            t.Plan.Add(new BatchNormTrainingStep(n.Name, Epsilon, Activation, rows, c, x, p[0], p[1], t.Plan.Produce(n.Output, layout), mean, invStd, scale, moments));
        var newMean = PlanCompiler.Buffer(n.Input(3).Name + ".next", [c]);
        var newVar = PlanCompiler.Buffer(n.Input(4).Name + ".next", [c]);
        t.Plan.Add(new RunningStatisticsStep(n.Name + ".running", Epsilon, rows, t.BatchNormMomentum ?? 1 - Momentum, mean, invStd, p[2], p[3], newMean, newVar));
        t.UpdatesState(n.Input(3).Name, newMean, [c]);
        t.UpdatesState(n.Input(4).Name, newVar, [c]);
        t.Save(n, (mean, invStd, scale));
    }

    void IDifferentiable.LowerBackward(Node n, GradientCompiler t)
    {
        var x = n.Input(0);
        int c = x.Shape[1];
        if (!Trains(n, t))
        {
            // Frozen: y = act(scale · x + shift), so dX = scale · act'(y) · dY.
            if (t.InputGrad(x, t.Plan.NativeLayout(n.Output)) is not { } dxFrozen) return;
            var layout = t.Plan.NativeLayout(n.Output);
            var dyFrozen = t.OutputGrad(n.Output, layout);
            if (!Activation.IsNone)
            {
                t.Plan.Add(new ActivationGradStep(n.Name + ".act.grad", Activation, t.Plan.Get(n.Output, layout), dyFrozen, dxFrozen, fromOutput: true));
                dyFrozen = dxFrozen;
            }
            var scale = new float[c];
            Affine(PlanCompiler.ConstantFloats(n, 1, "scale"), PlanCompiler.ConstantFloats(n, 2, "bias"), PlanCompiler.ConstantFloats(n, 3, "mean"),
                PlanCompiler.ConstantFloats(n, 4, "var"), Epsilon, scale, new float[c]);
            int inner = layout == MemoryLayout.Nhwc || x.Rank == 2 ? 1 : (int)Tensors.Shape.Size(x.Shape.AsSpan(2));
            t.Plan.Add(new BatchNormStep(n.Name + ".grad", new Slot(n.Name + ".grad.scale", [c], scale), new Slot(n.Name + ".grad.shift", [c], new float[c]),
                null, inner, dyFrozen, dxFrozen));
            return;
        }
        var (lay, rows, _) = TrainingShape(n);
        var (mean, invStd, batchScale) = t.Saved<(Slot, Slot, Slot)>(n);
        var dy = t.OutputGrad(n.Output, lay);
        // The backward step that has just written dy (a depthwise's, image by image; a 1x1's, row block by row block)
        // gathers this batch norm's sums while each piece of dy is in cache: then neither dy nor x is read for them here.
        (Slot, int)? gathered = null;
        if (t.Plan.LastStep is IGathersBatchNormSums { CanGatherSums: true } producer && producer.Dx == dy)
        {
            var sums = PlanCompiler.Buffer(n.Name + ".grad.sums", [producer.SumGroups * 2 * c], DataType.Int64);
            var target = new BatchNormGradSumsTarget(Activation, c, t.Plan.Get(x, lay), mean, t.Plan.Get(n.Input(2), MemoryLayout.Plain), batchScale, sums);
            t.Plan.ReplaceLast(producer.WithSums(target));
            gathered = (sums, producer.SumGroups);
        }
        // dx over dy (the kernel allows it): one buffer fewer, and no write-allocate read of a fresh one.
        var dx = t.InputGradOver(x, lay, dy) ?? PlanCompiler.Buffer(n.Name + ".dx.unused", PlanCompiler.Physical(x.Shape, lay));
        var dgamma = t.InputGrad(n.Input(1), MemoryLayout.Plain) ?? PlanCompiler.Buffer(n.Name + ".dgamma.unused", [c]);
        var dbeta = t.InputGrad(n.Input(2), MemoryLayout.Plain) ?? PlanCompiler.Buffer(n.Name + ".dbeta.unused", [c]);
        // The fused clamp's gradient is folded into the batch-norm gradient (its mask recomputed from x), so the
        // output need not be read back.
        t.Plan.Add(new BatchNormGradStep(n.Name + ".grad", Activation, rows, c, t.Plan.Get(x, lay), dy,
            t.Plan.Get(n.Input(1), MemoryLayout.Plain), t.Plan.Get(n.Input(2), MemoryLayout.Plain), batchScale, mean, invStd, dx, dgamma, dbeta,
            gathered: gathered));
    }
}

/// <summary>
/// Training-mode batch norm on [rows, C]: batch statistics, normalization, affine. With <paramref name="moments"/> the
/// statistics were gathered by the step that wrote x (<see cref="ChannelMoments"/> partials, blocks cut in Granule rows).
/// </summary>
internal sealed class BatchNormTrainingStep(string name, float eps, Activation act, int rows, int c, Slot x, Slot gamma, Slot beta, Slot y, Slot mean,
    Slot invStd, Slot scale, (Slot Slot, int Granule)? moments = null)
    : Step(name, moments is { } m ? [x, gamma, beta, m.Slot] : [x, gamma, beta], [y, mean, invStd, scale])
{
    public override string Kernel => act.IsNone ? "BatchNormalization(training)" : $"BatchNormalization(training)+{act}";

    /// <summary>The statistics come from the step that wrote x.</summary>
    public bool StatisticsFromProducer => moments is not null;

    public override void Execute(RunContext ctx)
    {
        if (moments is var (slot, granule))
            BatchNormTraining.Forward(ctx.Read(x), ctx.Read<double>(slot), granule, ctx.Read(gamma), ctx.Read(beta), ctx.Write(y), ctx.Write(mean),
                ctx.Write(invStd), rows, c, eps, ctx.Workers, act, ctx.Write(scale));
        else
            BatchNormTraining.Forward(ctx.Read(x), ctx.Read(gamma), ctx.Read(beta), ctx.Write(y), ctx.Write(mean), ctx.Write(invStd), rows, c, eps, ctx.Workers, act,
                ctx.Write(scale));
    }
}

/// <summary>Training-mode batch norm's statistics only (mean, invStd, scale) from its producer's moments; y is left to its reader.</summary>
internal sealed class BatchNormStatisticsStep(string name, float eps, int rows, int c, Slot moments, int granule, Slot gamma, Slot mean, Slot invStd, Slot scale)
    : Step(name, [moments, gamma], [mean, invStd, scale])
{
    public override string Kernel => "BatchNormalization(training, statistics)";
    public override void Execute(RunContext ctx) =>
        BatchNormTraining.ForwardStatistics(ctx.Read<double>(moments), granule, ctx.Read(gamma), ctx.Write(mean), ctx.Write(invStd), ctx.Write(scale), rows, c, eps);
}

/// <summary>y = clamp(scale·(x - mean) + beta) of a batch norm whose y was deferred, for a reader that needs it in memory.</summary>
internal sealed class BatchNormApplyStep(string name, Activation act, int rows, int c, Slot x, Slot mean, Slot scale, Slot beta, Slot y)
    : Step(name, [x, mean, scale, beta], [y])
{
    public override string Kernel => act.IsNone ? "BatchNormalization(apply)" : $"BatchNormalization(apply)+{act}";
    public override void Execute(RunContext ctx) =>
        BatchNormTraining.ForwardApply(ctx.Read(x), ctx.Read(mean), ctx.Read(scale), ctx.Read(beta), ctx.Write(y), rows, c, ctx.Workers, act);
}

/// <summary>
/// A training-mode batch norm's output left to its reader: the slots of <see cref="BatchNormApplyRows"/> (x, the batch
/// mean, scale = gamma·invStd and beta), and the fused clamp.
/// </summary>
internal sealed record BatchNormApply(Activation Act, int Channels, Slot X, Slot Mean, Slot Scale, Slot Beta)
{
    public Slot[] Reads => [X, Mean, Scale, Beta];

    /// <summary>The rows bound to this run's buffers, valid while <paramref name="body"/> runs.</summary>
    public unsafe void With(RunContext ctx, BatchNormApplyRows.Body body)
    {
        var (lo, hi) = BatchNormTraining.ClampOf(Act);
        fixed (float* px = ctx.Read(X), pm = ctx.Read(Mean), ps = ctx.Read(Scale), pb = ctx.Read(Beta))
            body(new BatchNormApplyRows { X = px, Mean = pm, Scale = ps, Beta = pb, Lo = lo, Hi = hi, Channels = Channels });
    }
}

/// <summary>The next running mean and variance from the batch's statistics.</summary>
internal sealed class RunningStatisticsStep(string name, float eps, int rows, float momentum, Slot mean, Slot invStd, Slot runMean, Slot runVar, Slot nextMean, Slot nextVar)
    : Step(name, [mean, invStd, runMean, runVar], [nextMean, nextVar])
{
    public override string Kernel => "running-statistics";
    public override void Execute(RunContext ctx)
    {
        var m = ctx.Write(nextMean);
        var v = ctx.Write(nextVar);
        ctx.Read(runMean).CopyTo(m);
        ctx.Read(runVar).CopyTo(v);
        BatchNormTraining.UpdateRunningStatistics(ctx.Read(mean), ctx.Read(invStd), eps, rows, momentum, m, v);
    }
}

/// <summary>
/// dX, dγ, dβ of training-mode batch norm, through its fused clamp if it has one. <see cref="Defer"/> turns it into the
/// reduction half only, leaving dX to the step that reads it (<see cref="BatchNormGradSource"/>).
/// </summary>
internal sealed class BatchNormGradStep(string name, Activation act, int rows, int c, Slot x, Slot dy, Slot gamma, Slot beta, Slot scale, Slot mean,
    Slot invStd, Slot dx, Slot dgamma, Slot dbeta, Slot? coefficients = null, (Slot Slot, int Groups)? gathered = null)
    : Step(name, gathered is { } s ? (coefficients is null ? [x, dy, gamma, beta, scale, mean, invStd, s.Slot] : [gamma, invStd, s.Slot])
            : [x, dy, gamma, beta, scale, mean, invStd],
        coefficients is null ? [dx, dgamma, dbeta] : [coefficients, dgamma, dbeta])
{
    public override string Kernel => (act.IsNone ? "BatchNormalization-grad" : $"BatchNormalization-grad+{act}")
        + (coefficients is null ? "" : " (dX deferred)") + (gathered is null ? "" : " (sums gathered)");

    /// <summary>The slot dX is written to (dy's own, when written over it); with dX deferred, nothing writes it.</summary>
    public Slot Dx => dx;

    /// <summary>The slot dy is read from (with the sums gathered and dX deferred, only by dX's reader).</summary>
    public Slot Dy => dy;

    /// <summary>True once <see cref="Defer"/> made this the reduction half.</summary>
    public bool Deferred => coefficients is not null;

    /// <summary>True when the step that wrote dy gathered this step's sums (<see cref="BatchNormGradSums"/>).</summary>
    public bool SumsGathered => gathered is not null;

    /// <summary>
    /// This step without its dX pass (it writes the coefficients of dX into a new slot) and the source its reader builds
    /// dX's rows from. The caller replaces this step with the first and is the only reader of dX.
    /// </summary>
    public (BatchNormGradStep Reduction, BatchNormGradSource Source) Defer()
    {
        var k = PlanCompiler.Buffer(Name + ".coefficients", [3 * c]);
        return (new(Name, act, rows, c, x, dy, gamma, beta, scale, mean, invStd, dx, dgamma, dbeta, k, gathered),
            new BatchNormGradSource(act, c, x, dy, mean, beta, scale, k));
    }

    public override void Execute(RunContext ctx)
    {
        var k = coefficients is null ? new float[3 * c] : ctx.Write(coefficients);
        if (gathered is var (sums, groups))
            BatchNormTraining.BackwardCoefficients(ctx.Read<double>(sums), groups, ctx.Read(gamma), ctx.Read(invStd), ctx.Write(dgamma), ctx.Write(dbeta),
                rows, c, k);
        else
            BatchNormTraining.BackwardCoefficients(ctx.Read(x), ctx.Read(dy), ctx.Read(gamma), ctx.Read(mean), ctx.Read(invStd), ctx.Write(dgamma),
                ctx.Write(dbeta), rows, c, ctx.Workers, Isa.Resolve(null), act, ctx.Read(beta), ctx.Read(scale), k);
        if (coefficients is null)
            BatchNormTraining.BackwardApply(ctx.Read(x), ctx.Read(dy), ctx.Read(mean), k, ctx.Write(dx), rows, c, ctx.Workers, Isa.Resolve(null), act,
                ctx.Read(beta), ctx.Read(scale));
    }
}

/// <summary>A backward step that writes a batch norm's output gradient (Dx) and can gather that batch norm's sums as it does.</summary>
internal interface IGathersBatchNormSums
{
    /// <summary>The slot the step writes the gradient to.</summary>
    Slot Dx { get; }
    /// <summary>This shape can gather, and it does not yet.</summary>
    bool CanGatherSums { get; }
    /// <summary>The partials' groups (fixed by the shape).</summary>
    int SumGroups { get; }
    bool GathersSums { get; }
    /// <summary>The same step, also gathering into <paramref name="target"/>.</summary>
    Step WithSums(BatchNormGradSumsTarget target);
}

/// <summary>
/// Where a producer of a training-mode batch norm's output gradient gathers that batch norm's sums: the slots of
/// <see cref="BatchNormGradSums"/> (x, the batch mean, beta and scale for a fused clamp, and the [groups][2][C] partials).
/// </summary>
internal sealed record BatchNormGradSumsTarget(Activation Act, int Channels, Slot X, Slot Mean, Slot Beta, Slot Scale, Slot Partials)
{
    public Slot[] Reads => [X, Mean, Beta, Scale];

    /// <summary>The sums bound to this run's buffers; the pointers stay valid while <paramref name="body"/> runs.</summary>
    public unsafe void With(RunContext ctx, BatchNormGradSums.Body body)
    {
        var (lo, hi) = BatchNormTraining.ClampOf(Act);
        fixed (float* px = ctx.Read(X), pm = ctx.Read(Mean), pb = ctx.Read(Beta), ps = ctx.Read(Scale))
        fixed (double* pp = ctx.Write<double>(Partials))
            body(new BatchNormGradSums
            {
                X = px, Mean = pm, MaskScale = Act.IsNone ? null : ps, MaskShift = Act.IsNone ? null : pb, Lo = lo, Hi = hi, Channels = Channels, Partials = pp,
            });
    }
}

/// <summary>
/// A training-mode batch norm's dX left to its one reader: the slots of <see cref="BatchNormGradRows"/> (x, dy, the batch
/// mean, the coefficients from the deferred <see cref="BatchNormGradStep"/>, and for a fused clamp beta and scale).
/// With a <see cref="Product"/>, dy is never written either: it is dz [rows, K] · w [K, C], the input gradient of the 1x1
/// convolution after the batch norm, computed again where it is read (<see cref="BatchNormGradRows.DyLeft"/>).
/// </summary>
internal sealed record BatchNormGradSource(Activation Act, int Channels, Slot X, Slot Dy, Slot Mean, Slot Beta, Slot Scale, Slot Coefficients)
{
    /// <summary>Null, or dy = Left [rows, Inner] · Right [Inner, C] (then the slot Dy is never read).</summary>
    public (Slot Left, Slot Right, int Inner)? Product { get; init; }

    /// <summary>The slots a step reading dX through this source reads instead.</summary>
    public Slot[] Reads => Product is { } p ? [X, p.Left, p.Right, Mean, Beta, Scale, Coefficients] : [X, Dy, Mean, Beta, Scale, Coefficients];

    /// <summary>Runs <paramref name="body"/> with the source's rows bound to this run's buffers (pinned for its duration).</summary>
    public unsafe void With(RunContext ctx, BatchNormGradRows.Body body)
    {
        var (lo, hi) = BatchNormTraining.ClampOf(Act);
        var dy = Product is null ? ctx.Read(Dy) : default;
        ReadOnlySpan<float> left = Product is { } p ? ctx.Read(p.Left) : default, right = Product is { } q ? ctx.Read(q.Right) : default;
        fixed (float* px = ctx.Read(X), pdy = dy, pl = left, pr = right, pm = ctx.Read(Mean), pk = ctx.Read(Coefficients), pb = ctx.Read(Beta), ps = ctx.Read(Scale))
            body(new BatchNormGradRows
            {
                Dy = pdy, DyLeft = Product is null ? null : pl, DyRight = Product is null ? null : pr, DyInner = Product?.Inner ?? 0,
                X = px, Mean = pm, Coefficients = pk, MaskScale = Act.IsNone ? null : ps, MaskShift = Act.IsNone ? null : pb,
                Lo = lo, Hi = hi, Channels = Channels,
            });
    }
}

/// <summary>
/// Batch norm that could not be folded: a per-channel affine map. Channels are innermost in NHWC and in
/// rank-2 tensors; for other plain ranks each (n, c) plane is one contiguous run of `inner` values.
/// With <paramref name="runtime"/> set, scale and shift are computed from the four parameter slots first.
/// </summary>
internal sealed class BatchNormStep(string name, Slot scale, Slot shift, (Slot[] Parameters, float Epsilon)? runtime, int inner, Slot x, Slot y,
    Activation act = default)
    : Step(name, runtime is { } r ? [x, .. r.Parameters] : [x, scale, shift], runtime is null ? [y] : [y, scale, shift])
{
    public override string Kernel => "BatchNormalization";

    public override void Execute(RunContext ctx)
    {
        if (runtime is var (p, eps))
            BatchNorm.Affine(ctx.Read(p[0]), ctx.Read(p[1]), ctx.Read(p[2]), ctx.Read(p[3]), eps, ctx.Write(scale), ctx.Write(shift));
        var input = ctx.Read(x);
        var output = ctx.Write(y);
        var sc = ctx.Read(scale);
        var sh = ctx.Read(shift);
        int c = sc.Length;
        if (inner == 1)
        {
            Elementwise.ChannelAffine(input, sc, sh, output, c, act);
            return;
        }
        for (int plane = 0, off = 0; off < input.Length; plane++, off += inner)
        {
            int ch = plane % c;
            var dst = output.Slice(off, inner);
            System.Numerics.Tensors.TensorPrimitives.Multiply(input.Slice(off, inner), sc[ch], dst);
            System.Numerics.Tensors.TensorPrimitives.Add(dst, sh[ch], dst);
        }
        if (!act.IsNone) Elementwise.Apply(act, output, output);
    }
}
