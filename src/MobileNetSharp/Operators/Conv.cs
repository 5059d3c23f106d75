using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Training;

namespace MobileNetSharp.Graph;

/// <summary>How ONNX's auto_pad derives padding from the input size.</summary>
public enum AutoPad { NotSet, SameUpper, SameLower, Valid }

/// <summary>
/// 2-D convolution (ONNX Conv, NCHW). Inputs: X [N,C,H,W], W [M, C/groups, KH, KW], optional bias B [M],
/// optional Residual [N,M,OH,OW] added before the fused <see cref="Activation"/> (set by the fusion passes).
/// Pads are (top, left, bottom, right), ONNX's begin-then-end order. Runs channels-last through
/// <see cref="Conv2dOperator"/> (packed weights, fused epilogue); weights that are graph inputs rather than
/// constants are packed on every run.
/// </summary>
public sealed record Conv(
    int KernelH, int KernelW,
    int StrideH = 1, int StrideW = 1,
    int PadTop = 0, int PadLeft = 0, int PadBottom = 0, int PadRight = 0,
    int DilationH = 1, int DilationW = 1,
    int Groups = 1,
    AutoPad AutoPad = AutoPad.NotSet,
    Activation Activation = default) : Op, IRunnable, IDifferentiable
{
    public override string Type => "Conv";

    /// <summary>Padding for a given input size, resolving auto_pad like ONNX (SAME_UPPER puts the odd pixel at the end).</summary>
    public (int Top, int Left, int Bottom, int Right) ResolvePads(int inH, int inW) =>
        ResolvePads2D(AutoPad, (PadTop, PadLeft, PadBottom, PadRight), inH, inW, KernelH, KernelW, StrideH, StrideW, DilationH, DilationW);

    /// <summary>The auto_pad rule for any 2-D window (convolution or pooling).</summary>
    internal static (int Top, int Left, int Bottom, int Right) ResolvePads2D(AutoPad mode, (int, int, int, int) explicitPads,
        int inH, int inW, int kh, int kw, int sh, int sw, int dh, int dw)
    {
        if (mode is AutoPad.NotSet) return explicitPads;
        if (mode is AutoPad.Valid) return (0, 0, 0, 0);
        var (t, b) = SamePads(inH, kh, sh, dh, mode);
        var (l, r) = SamePads(inW, kw, sw, dw, mode);
        return (t, l, b, r);
    }

    /// <summary>ONNX SAME padding; in long arithmetic, and all-zero for invalid (non-positive) windows, which Validate then names.</summary>
    internal static (int Begin, int End) SamePads(int size, int kernel, int stride, int dilation, AutoPad mode)
    {
        if (stride < 1 || kernel < 1 || dilation < 1) return (0, 0);
        long outSize = ((long)size + stride - 1) / stride;
        long total = Math.Max(0, (outSize - 1) * stride + (long)(kernel - 1) * dilation + 1 - size);
        if (total > int.MaxValue) return (0, 0); // the window cannot fit; shape inference reports it
        int small = (int)(total / 2), large = (int)(total - small);
        return mode == AutoPad.SameLower ? (large, small) : (small, large);
    }

    /// <summary>Kernel geometry for this node's input shape (batch from the input).</summary>
    public Conv2dGeometry Geometry(int[] x, int outChannels)
    {
        var (t, l, b, r) = ResolvePads(x[2], x[3]);
        return new Conv2dGeometry(x[0], x[2], x[3], x[1], outChannels, KernelH, KernelW, StrideH, StrideW,
            DilationH, DilationW, t, l, b, r, Groups);
    }

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        var w = node.Input(1).Shape;
        if (x.Length != 4) throw Error(node, $"expects a 4-D NCHW input, got rank {x.Length}.");
        if (w.Length != 4 || w[2] != KernelH || w[3] != KernelW)
            throw Error(node, $"weight shape {Tensors.Shape.Format(w)} does not match kernel {KernelH}x{KernelW}.");
        if (Groups < 1 || x[1] % Groups != 0 || w[0] % Groups != 0 || w[1] != x[1] / Groups)
            throw Error(node, $"input has {x[1]} channels but weights {Tensors.Shape.Format(w)} with groups={Groups} expect {w[1] * Groups}.");
        if (node.OptionalInput(2) is { } bias && (bias.Rank != 1 || bias.Shape[0] != w[0]))
            throw Error(node, $"bias shape {Tensors.Shape.Format(bias.Shape)} does not match {w[0]} output channels.");
        var g = Geometry(x, w[0]);
        try { g.Validate(); }
        catch (ArgumentException e) { throw Error(node, e.Message); }
        int[] y = [x[0], w[0], g.OutH, g.OutW];
        if (node.OptionalInput(3) is { } res && !Tensors.Shape.Equal(res.Shape, y))
            throw Error(node, $"residual shape {Tensors.Shape.Format(res.Shape)} differs from output {Tensors.Shape.Format(y)}.");
        return [y];
    }

    public override string Describe()
    {
        string s = $"Conv {KernelH}x{KernelW}/s{StrideH}";
        if (Groups > 1) s += $" g{Groups}";
        if (!Activation.IsNone) s += $" +{Activation}";
        return s;
    }

    public override OpCost Cost(Node node)
    {
        int inC = node.Input(0).Shape[1];
        long macs = Tensors.Shape.Size(node.Output.Shape) * KernelH * KernelW * inC / Groups;
        return new OpCost(macs, CostModel.ConvKind(Groups, inC, KernelH == 1 && KernelW == 1), [1, 2]);
    }

    public override Op? WithActivation(Activation activation) => Activation.IsNone ? this with { Activation = activation } : null;

    public override void ExportOnnx(Node node, IOnnxWriter w) =>
        OnnxForms.Conv(w, node, [KernelH, KernelW], [StrideH, StrideW], [PadTop, PadLeft, PadBottom, PadRight],
            [DilationH, DilationW], Groups, AutoPad, Activation);

    /// <summary>
    /// Whether <paramref name="reader"/> is a training-time depthwise or 1x1 convolution (weights read at run time, no
    /// residual, no fused activation) that takes <paramref name="v"/> as its input and can normalize it itself: the batch
    /// norm that makes v then leaves it unwritten (<see cref="BatchNormApply"/>).
    /// </summary>
    internal static bool ReadsNormalized(Node reader, Value v) =>
        reader.Op is Conv { Activation.IsNone: true } c && reader.Inputs.Length > 1 && reader.Input(0) == v && v.Rank == 4 && !reader.Input(1).IsConstant
        && reader.OptionalInput(3) is null && c.Geometry(v.Shape, reader.Input(1).Shape[0]) is var g
        && ((g.IsDepthwise && g.OutC == g.InC) || g.IsPointwise);

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        var x = n.Input(0);
        var w = n.Input(1);
        for (int i = 0; i < 4; i++) PlanCompiler.Require(n, i, DataType.Float32, i switch { 0 => "Conv input", 1 => "Conv weight", 2 => "Conv bias", _ => "Residual" });
        var g = Geometry(x.Shape, w.Shape[0]);
        if (plan.DeferredSource<BatchNormApply>(x) is { } normalized && ReadsNormalized(n, x))
        {
            // The batch norm before this convolution left its output unwritten: each image (depthwise) or chunk of rows (1x1)
            // is normalized into scratch here.
            var weightSlot = plan.Get(w, MemoryLayout.Plain);
            var biasSlot = n.OptionalInput(2) is { } bv ? plan.Get(bv, MemoryLayout.Plain) : null;
            var shape = new Conv2dOperator(g with { Batch = 1 }, new float[g.WeightLength], [], Activation, plan.Isa);
            plan.Add(new RuntimeWeightConvStep(n.Name, g, Activation, plan.Isa, null, weightSlot, biasSlot, plan.Produce(n.Output, MemoryLayout.Nhwc), null,
                Scratch(n, shape.NormalizedScratchLength(g.Batch)), normalized: normalized));
            return;
        }
        var residual = n.OptionalInput(3) is { } r ? plan.Get(r, MemoryLayout.Nhwc) : null;
        var input = plan.Get(x, MemoryLayout.Nhwc);
        var output = plan.Produce(n.Output, MemoryLayout.Nhwc);
        if (w.IsConstant && n.OptionalInput(2) is null or { IsConstant: true })
        {
            var op = plan.Cache.Conv(g, PlanCompiler.ConstantFloats(n, 1, "Conv weight"), PlanCompiler.ConstantFloats(n, 2, "Conv bias"), Activation, plan.Isa);
            plan.Add(new ConvStep(n.Name, op, g.Batch, input, output, residual, Scratch(n, op.ScratchLength(g.Batch))));
            return;
        }
        // Weights computed at run time (a graph input, or a node's output): pack them on every run.
        var probe = new Conv2dOperator(g with { Batch = 1 }, new float[g.WeightLength], [], Activation, plan.Isa);
        var weights = plan.Get(w, MemoryLayout.Plain);
        var bias = n.OptionalInput(2) is { } b ? plan.Get(b, MemoryLayout.Plain) : null;
        plan.Add(new RuntimeWeightConvStep(n.Name, g, Activation, plan.Isa, input, weights, bias, output, residual, Scratch(n, probe.ScratchLength(g.Batch))));
    }

    /// <summary>
    /// dX = ConvBackward.InputGradient(dY, W), dW and dB = ConvBackward.WeightGradient(X, dY), all channels-last;
    /// a fused activation is undone first from the output (ReLU/ReLU6/Clip only: their derivative follows from y).
    /// </summary>
    void IDifferentiable.LowerBackward(Node n, GradientCompiler t)
    {
        if (n.OptionalInput(3) is not null) throw new ArgumentException("a convolution with a fused residual is not differentiable; train the unfused graph.");
        if (!Activation.IsNone && !ActivationBackward.OutputDetermines(Activation.Kind))
            throw new ArgumentException($"fused {Activation} is not differentiable from the output; train the unfused graph.");
        var x = n.Input(0);
        var w = n.Input(1);
        var g = Geometry(x.Shape, w.Shape[0]);
        var dy = t.OutputGrad(n.Output, MemoryLayout.Nhwc);
        if (!Activation.IsNone)
        {
            var pre = PlanCompiler.Buffer(n.Name + ".dpre", dy.Shape);
            t.Plan.Add(new ActivationGradStep(n.Name + ".act.grad", Activation, t.Plan.Get(n.Output, MemoryLayout.Nhwc), dy, pre, fromOutput: true));
            dy = pre;
        }
        // A batch norm's output that was never written: the fused depthwise backward normalizes it image by image, a 1x1's
        // weight gradient block by block; any other use computes it (PlanCompiler.Get materializes it once).
        var normalized = t.Plan.DeferredSource<BatchNormApply>(x);
        Slot Input() => t.Plan.Get(x, MemoryLayout.Nhwc);
        var weights = t.Plan.Get(w, MemoryLayout.Plain);
        var dx = t.InputGrad(x, MemoryLayout.Nhwc);
        var dw = t.InputGrad(w, MemoryLayout.Plain);
        var db = t.InputGrad(n.OptionalInput(2), MemoryLayout.Plain);
        if (dx is not null && dw is not null && g.IsPointwise && LinearBackward.SharesPass(g.InC, g.OutC))
        {
            // dX and dW of a 1x1 convolution from one read of dY. When dY is the input gradient a batch norm's backward
            // has just written (and nothing else adds to it), that step keeps only its reductions and dY's rows are
            // computed block by block inside this one: dY is never written to memory or read back.
            BatchNormGradSource? source = null;
            if (db is null && t.Plan.LastStep is BatchNormGradStep { Deferred: false } bn && bn.Dx == dy)
            {
                (var reduction, source) = bn.Defer();
                t.Plan.ReplaceLast(reduction);
            }
            t.Plan.Add(new PointwiseGradStep(n.Name + ".grad", g, t.Plan.Isa, Input(), dy, weights, dx, dw, db, source));
            return;
        }
        if (dx is not null && dw is not null && db is null && g.IsDepthwise && g.OutC == g.InC
            && t.Plan.LastStep is BatchNormGradStep { Deferred: false } norm && norm.Dx == dy)
        {
            // Likewise for a depthwise convolution: image by image, dY computed once into cache and read there by both
            // gradients, instead of written whole by the batch norm and read back twice.
            var (reduction, source) = norm.Defer();
            if (norm.SumsGathered && t.Plan.StepBeforeLast is PointwiseGradStep { CanLeaveDxUnwritten: true } projection && projection.Dx == norm.Dy
                && projection.DxFloats >= t.MinUnwrittenDxFloats)
            {
                // The batch norm's dy is the dX of the 1x1 convolution after it (MobileNetV2's projection), which gathered the
                // batch norm's sums and is dy's only writer: it need not write dy at all. Each image's dy is dz · w again,
                // computed in cache (a K = 16..160 GEMM), instead of written whole and read back.
                t.Plan.ReplaceBeforeLast(projection.WithDxUnwritten());
                source = source with { Product = (projection.OutputGradient, projection.Weights, projection.OutChannels) };
            }
            t.Plan.ReplaceLast(reduction);
            t.Plan.Add(new DepthwiseGradStep(n.Name + ".grad", g, t.Plan.Isa, normalized is null ? Input() : null, weights, dx, dw, source, normalizedX: normalized));
            return;
        }
        if (dx is not null && dw is not null && g.IsPointwise && normalized is not null && LinearBackward.GathersSums(g.InC, g.OutC))
        {
            // A 1x1 convolution reading a batch norm's unwritten output (MobileNetV2's projections): dW, dX and then that
            // batch norm's sums (WithSums) from one read of the batch norm's input, block by block, instead of one read by
            // the dW step and another by the dX step.
            t.Plan.Add(new PointwiseGradStep(n.Name + ".grad", g, t.Plan.Isa, null, dy, weights, dx, dw, db, normalizedX: normalized));
            return;
        }
        // dW first, then dX: dX is then the last step, where the batch norm before this convolution finds it (to gather
        // its sums while dX is written), and it is read right after it is made.
        if (dw is not null || db is not null)
            t.Plan.Add(new ConvWeightGradStep(n.Name + ".dw", g, t.Plan.Isa, normalized is not null && g.IsPointwise ? null : Input(), dy,
                dw ?? PlanCompiler.Buffer(n.Name + ".dw.unused", w.Shape), db, g.IsPointwise ? normalized : null));
        if (dx is not null) t.Plan.Add(new ConvInputGradStep(n.Name + ".dx", g, t.Plan.Isa, dy, weights, dx));
    }

    private static Slot? Scratch(Node n, long length)
    {
        if (length > Tensors.Shape.MaxElements)
            throw new ArgumentException($"needs {length:N0} floats of scratch for im2col, more than a buffer may hold.");
        return length > 0 ? PlanCompiler.Buffer(n.Name + ".scratch", [(int)length]) : null;
    }
}

/// <summary>A convolution (any kind) on NHWC slots, with bias, residual and activation fused.</summary>
internal sealed class ConvStep(string name, Conv2dOperator op, int batch, Slot input, Slot output, Slot? residual, Slot? scratch)
    : Step(name, residual is null ? [input] : [input, residual], scratch is null ? [output] : [output, scratch])
{
    public override string Kernel => op.KernelName;
    public override KernelWarmer? Warmer => op.Miniature(batch, residual is not null) is var (key, run) ? new(key, run) : null;

    // What BlockFusion needs to chain convolution steps.
    public Conv2dOperator Operator => op;
    public int Batch => batch;
    public Slot Input => input;
    public Slot Output => output;
    public Slot? Residual => residual;
    public Slot? Scratch => scratch;

    public override void Execute(RunContext ctx) =>
        op.Run(batch, ctx.Read(input), ctx.Write(output), ctx.ReadOptional(residual),
            scratch is null ? default : ctx.Write(scratch), ctx.Workers);
}

/// <summary>
/// A convolution whose weights (and bias) are read from slots and packed on every run (training). With a
/// <paramref name="moments"/> slot (int64-typed, holding doubles) it also leaves its output's per-channel statistics
/// there for the training-mode batch norm after it (<see cref="Conv2dOperator.MomentsGranule"/>).
/// </summary>
internal sealed class RuntimeWeightConvStep(string name, Conv2dGeometry g, Activation act, IsaLevel? isa,
    Slot? input, Slot weights, Slot? bias, Slot output, Slot? residual, Slot? scratch, Slot? moments = null, BatchNormApply? normalized = null)
    : Step(name, new[] { input, weights, bias, residual }.OfType<Slot>().Concat(normalized?.Reads ?? []).ToArray(),
        new[] { output, scratch, moments }.OfType<Slot>().ToArray())
{
    public override string Kernel => normalized is null ? "conv(runtime weights)" : "conv(runtime weights, normalizing its input)";

    public Slot Output => output;
    public Slot? Moments => moments;

    /// <summary>The input is a batch norm's output this step normalizes itself (never written).</summary>
    public bool NormalizesInput => normalized is not null;

    /// <summary>Blocks' granule of the moments this step gathers (see <see cref="Conv2dOperator.MomentsGranule"/>).</summary>
    public int MomentsGranule
    {
        get
        {
            var probe = new Conv2dOperator(g with { Batch = 1 }, new float[g.WeightLength], [], act, isa);
            return normalized is null ? probe.MomentsGranule(g.Batch) : probe.NormalizedMomentsGranule;
        }
    }

    /// <summary>This step, also gathering its output's moments into <paramref name="slot"/>.</summary>
    public RuntimeWeightConvStep WithMoments(Slot slot) => new(Name, g, act, isa, input, weights, bias, output, residual, scratch, slot, normalized);

    public override void Execute(RunContext ctx)
    {
        // The weights change between runs (a training step's): packed into this run context's own buffers, which the
        // next run of the context packs over, rather than a new operator's (3.8 MB a step for MobileNetV2 x0.5).
        var op = ctx.State<Conv2dOperator>(this);
        if (op is null) op = ctx.SetState(this, new Conv2dOperator(g with { Batch = 1 }, ctx.Read(weights), ctx.ReadOptional(bias), act, isa));
        else op.Repack(ctx.Read(weights), ctx.ReadOptional(bias));
        if (normalized is not null)
        {
            normalized.With(ctx, (in BatchNormApplyRows rows) =>
                op.RunNormalized(g.Batch, rows, ctx.Write(output), scratch is null ? default : ctx.Write(scratch), ctx.Workers,
                    moments is null ? default : ctx.Write<double>(moments)));
            return;
        }
        op.Run(g.Batch, ctx.Read(input!), ctx.Write(output), ctx.ReadOptional(residual), scratch is null ? default : ctx.Write(scratch), ctx.Workers,
            moments is null ? default : ctx.Write<double>(moments));
    }
}

/// <summary>
/// dX of a convolution (channels-last), written. A 1x1 convolution with a small weight can also gather the sums of the
/// batch norm whose output gradient dX is (<see cref="WithSums"/>).
/// </summary>
internal sealed class ConvInputGradStep(string name, Conv2dGeometry g, IsaLevel? isa, Slot dy, Slot w, Slot dx, BatchNormGradSumsTarget? sums = null)
    : Step(name, sums is null ? [dy, w] : [dy, w, .. sums.Reads], sums is null ? [dx] : [dx, sums.Partials]), IGathersBatchNormSums
{
    public override string Kernel => (g.IsDepthwise ? "dw-conv-grad-x" : g.IsPointwise ? "1x1-conv-grad-x" : "conv-grad-x") + (sums is null ? "" : " (+ sums)");

    public Slot Dx => dx;
    public bool CanGatherSums => sums is null && g.IsPointwise && LinearBackward.GathersSums(g.InC, g.OutC);
    public int SumGroups => LinearBackward.RowGroupCount(checked(g.Batch * g.InH * g.InW));
    public bool GathersSums => sums is not null;
    public Step WithSums(BatchNormGradSumsTarget target) => new ConvInputGradStep(Name, g, isa, dy, w, dx, target);

    public override unsafe void Execute(RunContext ctx)
    {
        if (sums is null)
        {
            ConvBackward.InputGradient(g, ctx.Read(dy), ctx.Read(w), ctx.Write(dx), ctx.Workers, isa);
            return;
        }
        sums.With(ctx, (in BatchNormGradSums s) =>
        {
            var gather = s;
            LinearBackward.InputGradient(ctx.Read(dy), ctx.Read(w), ctx.Write(dx), checked(g.Batch * g.InH * g.InW), g.InC, g.OutC, ctx.Workers, isa, &gather);
        });
    }
}

/// <summary>
/// dX, dW and dB of a 1x1 convolution with a small weight, in one pass over row blocks (<see cref="LinearBackward.Gradients"/>).
/// With a <paramref name="source"/>, dY is a batch norm's deferred input gradient, computed block by block from it. With
/// <paramref name="normalizedX"/>, x is a batch norm's output never written, normalized block by block, and dX can gather the
/// sums of that batch norm (<see cref="WithSums"/>) while the block of its input is in cache. With
/// <paramref name="dxUnwritten"/> (and sums), dX's blocks are made only for the sums: the batch norm's deferred gradient
/// reads dX as dz · w and computes it again where it is read (<see cref="BatchNormGradSource.Product"/>).
/// </summary>
internal sealed class PointwiseGradStep(string name, Conv2dGeometry g, IsaLevel? isa, Slot? x, Slot dy, Slot w, Slot dx, Slot dw, Slot? db,
    BatchNormGradSource? source = null, BatchNormApply? normalizedX = null, BatchNormGradSumsTarget? sums = null, bool dxUnwritten = false)
    : Step(name, (source is null ? new[] { x, dy, w } : [x, w]).OfType<Slot>().Concat(source?.Reads ?? []).Concat(normalizedX?.Reads ?? [])
            .Concat(sums?.Reads ?? []).ToArray(),
        new[] { dxUnwritten ? null : dx, dw, db, sums?.Partials }.OfType<Slot>().ToArray()),
    IGathersBatchNormSums
{
    public override string Kernel => "1x1-conv-grad-x+w" + (source is null ? "" : " (from batch-norm grad)") + (normalizedX is null ? "" : " (normalizing x)")
        + (sums is null ? "" : " (+ sums)") + (dxUnwritten ? " (dX not written)" : "");

    /// <summary>dz (this convolution's output gradient) and w: dX = dz · w.</summary>
    public Slot OutputGradient => dy;
    public Slot Weights => w;
    public int OutChannels => g.OutC;

    /// <summary>dX's reader can compute it again from dz and w: the sums are gathered here, x is normalized here, and the
    /// step does not write dX yet. Whether that pays depends on dX's size (<see cref="DxFloats"/>).</summary>
    public bool CanLeaveDxUnwritten => sums is not null && normalizedX is not null && source is null && db is null && !dxUnwritten;

    /// <summary>dX's floats.</summary>
    public long DxFloats => (long)g.Batch * g.InH * g.InW * g.InC;

    /// <summary>
    /// The smallest dX left unwritten by default (<see cref="GradientCompiler.MinUnwrittenDxFloats"/>): 4 MiB. Measured per
    /// block (dW, dX and the depthwise backward) at 1 thread on Zen 3, batch 64: 28x28x96 (19 MB) 29.7-33.0 -> 24.8-30.2 ms, 28x28x48 -1 ms, 14x14x96 (4.8 MB) -0.3 to -0.8 ms; but
    /// 7x7x192 and 7x7x288 (2.4 and 3.6 MB, which stay in L3) level to 0.9 ms slower: there the write and read are cheap
    /// and the GEMM per image is not.
    /// </summary>
    internal const long DefaultMinUnwrittenDxFloats = 1 << 20;

    /// <summary>This step gathering the sums from dX's blocks without writing dX (<see cref="CanLeaveDxUnwritten"/>).</summary>
    public PointwiseGradStep WithDxUnwritten() => CanLeaveDxUnwritten
        ? new(Name, g, isa, x, dy, w, dx, dw, db, source, normalizedX, sums, dxUnwritten: true)
        : throw new InvalidOperationException($"{Name}: dX can be left unwritten only by a normalizing step that gathers sums.");

    /// <summary>dX is not written (its reader computes it from dz and w).</summary>
    public bool DxUnwritten => dxUnwritten;

    /// <summary>dY is a batch norm's deferred input gradient, computed here block by block.</summary>
    public bool FromBatchNormGradient => source is not null;

    /// <summary>x is a batch norm's output, normalized here block by block (never written).</summary>
    public bool NormalizesInput => normalizedX is not null;

    private int Rows => checked(g.Batch * g.InH * g.InW);
    public Slot Dx => dx;
    public bool CanGatherSums => sums is null && normalizedX is not null;
    public int SumGroups => LinearBackward.RowGroupCount(Rows);
    public bool GathersSums => sums is not null;
    public Step WithSums(BatchNormGradSumsTarget target) => new PointwiseGradStep(Name, g, isa, x, dy, w, dx, dw, db, source, normalizedX, target, dxUnwritten);

    public override unsafe void Execute(RunContext ctx)
    {
        int rows = Rows;
        if (normalizedX is not null)
        {
            normalizedX.With(ctx, (in BatchNormApplyRows xRows) =>
            {
                var xr = xRows;
                if (sums is null)
                    LinearBackward.Gradients(xr, ctx.Read(dy), ctx.Read(w), ctx.Write(dx), ctx.Write(dw), db is null ? default : ctx.Write(db), rows, g.InC, g.OutC,
                        ctx.Workers, isa, null);
                else
                    sums.With(ctx, (in BatchNormGradSums s) =>
                    {
                        var gather = s;
                        LinearBackward.Gradients(xr, ctx.Read(dy), ctx.Read(w), dxUnwritten ? default : ctx.Write(dx), ctx.Write(dw),
                            db is null ? default : ctx.Write(db), rows, g.InC, g.OutC, ctx.Workers, isa, &gather);
                    });
            });
            return;
        }
        if (source is null)
            LinearBackward.Gradients(ctx.Read(x!), ctx.Read(dy), ctx.Read(w), ctx.Write(dx), ctx.Write(dw), db is null ? default : ctx.Write(db),
                rows, g.InC, g.OutC, ctx.Workers, isa);
        else
            source.With(ctx, (in BatchNormGradRows rows_) =>
                LinearBackward.Gradients(rows_, ctx.Read(x!), ctx.Read(w), ctx.Write(dx), ctx.Write(dw), rows, g.InC, g.OutC, ctx.Workers, isa));
    }
}

/// <summary>
/// dX and dW of a depthwise convolution from its batch norm's deferred input gradient (<see cref="DepthwiseBackward.Gradients"/>);
/// with a <paramref name="sums"/> target, also the sums of the batch norm before it, gathered from dX image by image.
/// </summary>
internal sealed class DepthwiseGradStep(string name, Conv2dGeometry g, IsaLevel? isa, Slot? x, Slot w, Slot dx, Slot dw, BatchNormGradSource source,
    BatchNormGradSumsTarget? sums = null, BatchNormApply? normalizedX = null)
    : Step(name, new[] { x, w }.OfType<Slot>().Concat(source.Reads).Concat(sums?.Reads ?? []).Concat(normalizedX?.Reads ?? []).ToArray(),
        sums is null ? [dx, dw] : [dx, dw, sums.Partials]),
    IGathersBatchNormSums
{
    public override string Kernel => "dw-conv-grad-x+w (from batch-norm grad)" + (sums is null ? "" : " (+ sums)") + (normalizedX is null ? "" : " (normalizing x)");

    public Slot Dx => dx;
    public bool CanGatherSums => sums is null;
    public int SumGroups => DepthwiseBackward.ImageGroupCount(g.Batch);
    public bool GathersSums => sums is not null;
    public Step WithSums(BatchNormGradSumsTarget target) => new DepthwiseGradStep(Name, g, isa, x, w, dx, dw, source, target, normalizedX);

    /// <summary>x is a batch norm's output, normalized here image by image (never written).</summary>
    public bool NormalizesInput => normalizedX is not null;

    public override unsafe void Execute(RunContext ctx) =>
        source.With(ctx, (in BatchNormGradRows rows) =>
        {
            var dyRows = rows;
            if (sums is null) Run(ctx, dyRows, null);
            else
                sums.With(ctx, (in BatchNormGradSums s) =>
                {
                    var gather = s;
                    Run(ctx, dyRows, &gather);
                });
        });

    private unsafe void Run(RunContext ctx, BatchNormGradRows dyRows, BatchNormGradSums* gather)
    {
        if (normalizedX is null)
        {
            DepthwiseBackward.Gradients(g, dyRows, ctx.Read(x!), ctx.Read(w), ctx.Write(dx), ctx.Write(dw), ctx.Workers, isa, gather);
            return;
        }
        normalizedX.With(ctx, (in BatchNormApplyRows xRows) =>
        {
            var xr = xRows;
            DepthwiseBackward.Gradients(g, dyRows, default, ctx.Read(w), ctx.Write(dx), ctx.Write(dw), ctx.Workers, isa, gather, &xr);
        });
    }
}

/// <summary>dW (OIHW) and dB of a convolution, written.</summary>
internal sealed class ConvWeightGradStep(string name, Conv2dGeometry g, IsaLevel? isa, Slot? x, Slot dy, Slot dw, Slot? db, BatchNormApply? normalizedX = null)
    : Step(name, new[] { x, dy }.OfType<Slot>().Concat(normalizedX?.Reads ?? []).ToArray(), db is null ? [dw] : [dw, db])
{
    public override string Kernel => (g.IsDepthwise ? "dw-conv-grad-w" : g.IsPointwise ? "1x1-conv-grad-w" : "conv-grad-w") + (normalizedX is null ? "" : " (normalizing x)");

    /// <summary>x is a batch norm's output, normalized here block by block (never written); 1x1 convolutions only.</summary>
    public bool NormalizesInput => normalizedX is not null;

    public override void Execute(RunContext ctx)
    {
        if (normalizedX is null)
        {
            ConvBackward.WeightGradient(g, ctx.Read(x!), ctx.Read(dy), ctx.Write(dw), db is null ? default : ctx.Write(db), ctx.Workers, isa);
            return;
        }
        normalizedX.With(ctx, (in BatchNormApplyRows rows) =>
            LinearBackward.WeightGradient(rows, ctx.Read(dy), ctx.Write(dw), db is null ? default : ctx.Write(db), checked(g.Batch * g.InH * g.InW),
                g.InC, g.OutC, ctx.Workers, isa));
    }
}
