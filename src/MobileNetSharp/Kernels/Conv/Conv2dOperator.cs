using MobileNetSharp.Graph;
using MobileNetSharp.Kernels.Conv;
using MobileNetSharp.Kernels.Depthwise;
using MobileNetSharp.Kernels.Gemm;

namespace MobileNetSharp.Kernels;

/// <summary>
/// A 2-D convolution over NHWC activations, created once (weights packed for the chosen path and ISA)
/// and run many times. Paths, reported by <see cref="KernelName"/>:
/// <list type="bullet">
/// <item>"gemm-1x1": pointwise (1x1, stride 1, no pad, one group) — the input already is the GEMM's A.</item>
/// <item>"dw3x3s1", "dw3x3s2", "dw5x5s1", "dw5x5s2", "dw-generic": depthwise (groups == InC).</item>
/// <item>"stem3": 3x3 over few (≤ 4) input channels, one group — direct kernel, no scratch.</item>
/// <item>"im2col-gemm": everything else (any kernel, stride, dilation, asymmetric pads, groups):
/// one image at a time is unfolded into scratch and multiplied per group.</item>
/// </list>
/// Epilogue per output element: acc + bias[c] (+ residual at the same index) then the activation.
/// The output must not overlap the input; it may be the residual buffer itself (same elements).
/// </summary>
public sealed unsafe class Conv2dOperator
{
    private readonly IsaLevel _isa;
    private readonly Activation _activation;
    private readonly PackedB[]? _groups;          // gemm-1x1 and im2col-gemm: one packed B per group
    private readonly DepthwiseConvolution? _depthwise;
    private readonly StemConvolution? _stem;

    public Conv2dOperator(Conv2dGeometry geometry, ReadOnlySpan<float> weightsOihw, ReadOnlySpan<float> bias, Activation activation, IsaLevel? isa = null)
    {
        Geometry = geometry with { Batch = 1 };
        Geometry.Validate();
        CheckWeights(Geometry, weightsOihw, bias);
        _isa = Isa.Resolve(isa);
        // ReLU as Clip(0, +inf) shares ReLU6's compiled kernels; not for the channel-multiplier depthwise path, whose
        // scalar code applies the activation with Activation.Apply, where Clip passes a NaN that ReLU maps to 0.
        _activation = geometry.IsDepthwise && geometry.OutC != geometry.InC ? activation : activation.ForKernels();
        int width = Isa.Width(_isa);
        Conv2dGeometry g = Geometry;

        if (g.IsPointwise)
        {
            KernelName = "gemm-1x1";
            _groups = [new PackedB(weightsOihw, g.InC, g.OutC, 1, g.InC, bias, width)];
        }
        else if (g.IsDepthwise)
        {
            _depthwise = new DepthwiseConvolution(g, weightsOihw, bias, _isa);
            KernelName = _depthwise.Name;
        }
        else if (StemConvolution.Supports(g))
        {
            _stem = new StemConvolution(g, weightsOihw, bias, _isa);
            KernelName = "stem3";
        }
        else
        {
            KernelName = "im2col-gemm";
            _groups = PackGroups(g, weightsOihw, bias, width);
        }
    }

    /// <summary>
    /// New weights and bias for this convolution, packed into its own buffers: for weights that change on every run (a
    /// training step's), without allocating. Only for an operator its caller owns alone, never one from the operator
    /// cache or shared through <see cref="Resized"/>: a run in progress on it would read a mix of old and new weights.
    /// </summary>
    /// <exception cref="ArgumentException">The weights are not <see cref="Conv2dGeometry.WeightLength"/> long (OIHW), or the
    /// bias is neither empty nor OutC long.</exception>
    internal void Repack(ReadOnlySpan<float> weightsOihw, ReadOnlySpan<float> bias)
    {
        Conv2dGeometry g = Geometry;
        CheckWeights(g, weightsOihw, bias);
        if (_depthwise is not null) _depthwise.Repack(weightsOihw, bias);
        else if (_stem is not null) _stem.Repack(weightsOihw, bias);
        else if (IsPointwiseGemm) _groups![0].Repack(weightsOihw, 1, g.InC, bias);
        else PackGroups(g, weightsOihw, bias, _groups![0].Width, _groups);
    }

    private static void CheckWeights(in Conv2dGeometry g, ReadOnlySpan<float> weightsOihw, ReadOnlySpan<float> bias)
    {
        if (weightsOihw.Length != g.WeightLength)
            throw new ArgumentException($"Expected {g.WeightLength} weights (OIHW) for {g}, got {weightsOihw.Length}.", nameof(weightsOihw));
        if (!bias.IsEmpty && bias.Length != g.OutC)
            throw new ArgumentException($"Expected {g.OutC} bias values or none, got {bias.Length}.", nameof(bias));
    }

    /// <summary>The same packed weights at another input size (plans for other H x W share them).</summary>
    private Conv2dOperator(Conv2dOperator source, Conv2dGeometry geometry)
    {
        Geometry = geometry with { Batch = 1 };
        Geometry.Validate();
        (_isa, _activation, _groups, KernelName) = (source._isa, source._activation, source._groups, source.KernelName);
        _depthwise = source._depthwise?.Resized(Geometry);
        _stem = source._stem?.Resized(Geometry);
    }

    /// <summary>
    /// This convolution for another input height and width (everything else equal), sharing the packed weights:
    /// the packing depends on kernel, channels and groups only, and the kernel path is chosen from those too.
    /// </summary>
    /// <exception cref="ArgumentException">The geometry differs in more than the input size, or is invalid.</exception>
    public Conv2dOperator Resized(Conv2dGeometry geometry)
    {
        if ((geometry with { Batch = 1, InH = Geometry.InH, InW = Geometry.InW }) != Geometry)
            throw new ArgumentException($"Resized may change only the input size: {geometry} vs {Geometry}.");
        return new Conv2dOperator(this, geometry);
    }

    /// <summary>The geometry this operator was built for, with Batch normalised to 1 (batch is a Run argument).</summary>
    public Conv2dGeometry Geometry { get; }

    /// <summary>Which kernel path was chosen (see the class summary).</summary>
    public string KernelName { get; }

    /// <summary>Floats of scratch <see cref="Run"/> needs (0 if none). The im2col path unfolds one image at a time,
    /// and depthwise on small maps copies one image at a time into a zero-padded buffer, so this does not grow
    /// with the batch.</summary>
    public long ScratchLength(int batch) =>
        KernelName == "im2col-gemm" ? (long)Geometry.OutH * Geometry.OutW * Geometry.InC * Geometry.KernelH * Geometry.KernelW
        : _depthwise?.ScratchLength(batch) ?? 0;

    /// <summary>
    /// output = act(conv(input) + bias (+ residual)). input is [batch, InH, InW, InC], output and residual
    /// (empty = none) are [batch, OutH, OutW, OutC], all NHWC. Allocates nothing.
    /// </summary>
    public void Run(int batch, ReadOnlySpan<float> input, Span<float> output, ReadOnlySpan<float> residual, Span<float> scratch, Workers workers) =>
        Run(batch, input, output, residual, scratch, workers, default);

    /// <summary>Whether <see cref="RunNormalized"/> takes this convolution: depthwise (one filter per channel) or a 1x1 GEMM.</summary>
    internal bool TakesNormalizedInput => (_depthwise is not null && Geometry.OutC == Geometry.InC) || IsPointwiseGemm;

    /// <summary>Scratch floats <see cref="RunNormalized"/> needs for <paramref name="batch"/> images.</summary>
    internal long NormalizedScratchLength(int batch) =>
        IsPointwiseGemm ? GemmDriver.NormalizedScratchLength(Geometry.OutC, Geometry.InC) : _depthwise!.NormalizedScratchLength(batch);

    /// <summary>The moments' granule of <see cref="RunNormalized"/>: whole images (depthwise) or GEMM tiles (1x1).</summary>
    internal int NormalizedMomentsGranule => IsPointwiseGemm ? GemmMicroKernel.MR : _depthwise!.NormalizedMomentsGranule;

    /// <summary>
    /// A depthwise convolution whose input is a training-mode batch norm's output that was never written: each image is
    /// normalized from the batch norm's input into scratch and convolved there (<see cref="DepthwiseConvolution.RunNormalized"/>);
    /// with <paramref name="moments"/>, the output's statistics as <see cref="Run(int, ReadOnlySpan{float}, Span{float}, ReadOnlySpan{float}, Span{float}, Workers, Span{double})"/>
    /// gathers them, in blocks of <see cref="NormalizedMomentsGranule"/> rows.
    /// </summary>
    internal unsafe void RunNormalized(int batch, in BatchNormApplyRows input, Span<float> output, Span<float> scratch, Workers workers, Span<double> moments)
    {
        if (!TakesNormalizedInput) throw new InvalidOperationException($"{KernelName} does not read a batch norm's output itself.");
        Conv2dGeometry g = Geometry;
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        long outLength = (long)batch * g.OutH * g.OutW * g.OutC;
        int pixels = batch * g.OutH * g.OutW;
        if (input.Channels != g.InC || output.Length < outLength || scratch.Length < NormalizedScratchLength(batch)
            || (!moments.IsEmpty && moments.Length < ChannelMoments.PartialLength(pixels, g.OutC)))
            throw new ArgumentException($"Normalized depthwise input: {input.Channels} channels for {g.InC}, output {output.Length} of {outLength}, scratch {scratch.Length} of {NormalizedScratchLength(batch)}.");
        fixed (float* po = output, ps = scratch)
        fixed (double* pm = moments)
        {
            if (IsPointwiseGemm)
                GemmDriver.RunPackedNormalized(_isa, _activation, batch * g.InH * g.InW, input, _groups![0], po, workers, ps, moments.IsEmpty ? null : pm);
            else
                _depthwise!.RunNormalized(batch, input, po, _activation, workers, ps, moments.IsEmpty ? null : pm);
        }
    }

    /// <summary>
    /// The rows (output pixels) per unit in which this convolution, run on <paramref name="batch"/> images, cuts the
    /// blocks of the <see cref="ChannelMoments"/> it gathers while writing its output: a GEMM tile's height for 1x1
    /// convolutions, one output row for depthwise ones (one image on small maps, which run an image per task), 1 where
    /// the moments are taken in a pass after the run.
    /// </summary>
    internal int MomentsGranule(int batch) =>
        KernelName == "gemm-1x1" && batch * Geometry.InH * Geometry.InW > Gemv.MaxRows ? GemmMicroKernel.MR
        : _depthwise is not null ? _depthwise.MomentsGranule(withScratch: true)
        : 1;

    /// <summary>
    /// <see cref="Run(int, ReadOnlySpan{float}, Span{float}, ReadOnlySpan{float}, Span{float}, Workers)"/>, and with
    /// <paramref name="moments"/> not empty also the output's per-channel statistics: <see cref="ChannelMoments"/>
    /// partials [blocks][2][OutC] in blocks of <see cref="MomentsGranule"/> rows, for the training-mode batch norm
    /// after this convolution. The GEMM and direct depthwise paths gather them from each output chunk while it is in
    /// cache; the others in one pass over the output afterwards.
    /// </summary>
    internal void Run(int batch, ReadOnlySpan<float> input, Span<float> output, ReadOnlySpan<float> residual, Span<float> scratch, Workers workers,
        Span<double> moments)
    {
        Conv2dGeometry g = Geometry;
        long inLength = (long)batch * g.InH * g.InW * g.InC, outLength = (long)batch * g.OutH * g.OutW * g.OutC;
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        if (input.Length < inLength) throw new ArgumentException($"Input has {input.Length} floats, need {inLength}.", nameof(input));
        if (output.Length < outLength) throw new ArgumentException($"Output has {output.Length} floats, need {outLength}.", nameof(output));
        if (!residual.IsEmpty && residual.Length < outLength) throw new ArgumentException($"Residual has {residual.Length} floats, need {outLength}.", nameof(residual));
        if (scratch.Length < ScratchLength(batch)) throw new ArgumentException($"Scratch has {scratch.Length} floats, need {ScratchLength(batch)}.", nameof(scratch));
        ArgumentNullException.ThrowIfNull(workers);

        int pixels = batch * g.OutH * g.OutW, granule = MomentsGranule(batch);
        if (!moments.IsEmpty && moments.Length < ChannelMoments.PartialLength(pixels, g.OutC))
            throw new ArgumentException($"Moments has {moments.Length} values, need {ChannelMoments.PartialLength(pixels, g.OutC)}.", nameof(moments));

        fixed (float* x = input, y = output, r = residual, s = scratch)
        fixed (double* m = moments)
        {
            float* res = residual.IsEmpty ? null : r;
            // Gathered by the kernel itself (the depthwise kernels always; a 1x1 on the GEMM path), else in a pass after.
            double* direct = _depthwise is not null || granule > 1 ? m : null;
            if (_depthwise is not null) _depthwise.Run(batch, x, y, res, _activation, workers, scratch.IsEmpty ? null : s, direct);
            else if (_stem is not null) _stem.Run(batch, x, y, res, _activation, workers);
            else if (KernelName == "gemm-1x1" && res == null && batch * g.InH * g.InW <= Gemv.MaxRows)
                Gemv.Run(_isa, _activation, batch * g.InH * g.InW, x, g.InC, _groups![0], y, g.OutC, workers); // e.g. squeeze-excite on [1, C, 1, 1]
            else if (KernelName == "gemm-1x1")
                GemmDriver.RunPacked(_isa, _activation, batch * g.InH * g.InW, x, g.InC, _groups![0], y, g.OutC, res, g.OutC, workers, direct);
            else
                RunIm2Col(batch, x, y, res, s, workers);
            if (m != null && direct == null) ChannelMoments.Compute(y, pixels, g.OutC, m, workers, _isa);
        }
    }

    /// <summary>
    /// For the JIT warm-up (Runtime.KernelWarmup): a key naming the compiled code a run of this convolution takes,
    /// and an action that runs that code once on a miniature copy (zero weights, geometry
    /// <see cref="Conv2dGeometry.Miniature"/>: the same path, ISA, activation, kernel shape and strides, and the GEMV or
    /// GEMM choice of a pointwise run of <paramref name="batch"/> images). A miniature that would still be large (a
    /// kernel extent in the hundreds of pixels) does nothing: compiling ahead is not worth megabytes.
    /// </summary>
    internal (string Key, Action Run) Miniature(int batch, bool residual)
    {
        Conv2dGeometry g = Geometry;
        bool gemv = KernelName == "gemm-1x1" && !residual && (long)batch * g.InH * g.InW <= Gemv.MaxRows;
        var mini = g.Miniature(MiniatureChannels);
        int images = gemv ? batch : (long)mini.InH * mini.InW > Gemv.MaxRows ? 1 : Gemv.MaxRows + 1; // a GEMM stays a GEMM
        string shape = g.IsDepthwise && g.OutC != g.InC ? "multiplier" : ""; // "dw-generic" names two paths
        string key = $"conv|{KernelName}{shape}|{_activation.Kind}|{_isa}|{(gemv ? "gemv" : "")}|{(residual ? "residual" : "")}";
        long scratch = KernelName == "im2col-gemm" ? (long)mini.OutH * mini.OutW * mini.InC * mini.KernelH * mini.KernelW : 0;
        if (images * Math.Max(mini.InputLength, mini.OutputLength) + scratch > 1 << 20) return (key, () => { });
        return (key, () =>
        {
            var op = MiniatureOperator();
            var x = new float[images * mini.InH * mini.InW * mini.InC];
            var y = new float[images * mini.OutH * mini.OutW * mini.OutC];
            op.Run(images, x, y, residual ? new float[y.Length] : default, new float[op.ScratchLength(images)], Workers.Single);
        });
    }

    /// <summary>Channels a side of a miniature: three vector widths (at least 24), so a pointwise one has a full
    /// two-vector GEMM panel and a one-vector tail panel (Tile2 and Tile1) at every ISA level.</summary>
    private int MiniatureChannels => Math.Max(24, 3 * Isa.Width(_isa));

    /// <summary>The operator <see cref="Miniature"/> runs: zero weights and bias, geometry <see cref="Conv2dGeometry.Miniature"/>.</summary>
    internal Conv2dOperator MiniatureOperator()
    {
        var mini = Geometry.Miniature(MiniatureChannels);
        return new Conv2dOperator(mini, new float[mini.WeightLength], new float[mini.OutC], _activation, _isa);
    }

    // ---- pieces for fused blocks (Kernels/Fused): the same kernels on a range of rows, on the caller's thread ----

    /// <summary>The "gemm-1x1" path: a pointwise convolution whose input rows are the GEMM's A.</summary>
    internal bool IsPointwiseGemm => KernelName == "gemm-1x1";

    /// <summary>The depthwise kernel, when this is a depthwise convolution.</summary>
    internal DepthwiseConvolution? Depthwise => _depthwise;

    /// <summary>
    /// Pointwise only: y = act(x * W + bias (+ residual)) for <paramref name="rows"/> pixels, NHWC rows of InC
    /// (input) and OutC (output, residual) floats; always the packed GEMM, so every element is computed exactly
    /// as <see cref="Run"/> computes it on a tensor of more than <see cref="Gemv.MaxRows"/> pixels.
    /// </summary>
    internal void RunPointwiseRows(int rows, float* x, float* y, float* residual, Workers workers) =>
        GemmDriver.RunPacked(_isa, _activation, rows, x, Geometry.InC, _groups![0], y, Geometry.OutC, residual, Geometry.OutC, workers);

    /// <summary>
    /// Depthwise only: output rows [oy0, oy1) of one image into <paramref name="output"/> (their OutW * OutC
    /// floats each, from its start), reading input rows [sourceRow0, sourceRow0 + sourceRows) held contiguously
    /// at <paramref name="source"/>; rows outside that range are padding (see <see cref="DepthwiseConvolution.RunBand"/>).
    /// </summary>
    internal void RunDepthwiseBand(float* source, int sourceRow0, int sourceRows, int oy0, int oy1, float* output) =>
        _depthwise!.RunBand(source, sourceRow0, sourceRows, oy0, oy1, output, _activation);

    private void RunIm2Col(int batch, float* x, float* y, float* res, float* columns, Workers workers)
    {
        Conv2dGeometry g = Geometry;
        int pixels = g.OutH * g.OutW, k = g.InCPerGroup * g.KernelH * g.KernelW, ocg = g.OutCPerGroup;
        for (int n = 0; n < batch; n++)
        {
            var unfold = new Im2Col.Args { Image = x + (long)n * g.InH * g.InW * g.InC, Columns = columns, G = g };
            Im2Col.Run(ref unfold, workers);
            long o = (long)n * pixels * g.OutC;
            for (int grp = 0; grp < g.Groups; grp++)
            {
                GemmDriver.RunPacked(_isa, _activation, pixels, columns + grp * k, (nint)g.Groups * k, _groups![grp],
                    y + o + grp * ocg, g.OutC, res == null ? null : res + o + grp * ocg, g.OutC, workers);
            }
        }
    }

    /// <summary>One packed B per group, matching the im2col row order: K = (ky, kx, ic in the group), N = the group's outputs. With
    /// <paramref name="into"/>, the groups are packed into those packings' own buffers instead of new ones.</summary>
    private static PackedB[] PackGroups(in Conv2dGeometry g, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, int width, PackedB[]? into = null)
    {
        int icg = g.InCPerGroup, ocg = g.OutCPerGroup, taps = g.KernelH * g.KernelW, k = icg * taps;
        var packed = into ?? new PackedB[g.Groups];
        var pool = System.Buffers.ArrayPool<float>.Shared;
        var reordered = pool.Rent(ocg * k);
        try
        {
            for (int grp = 0; grp < g.Groups; grp++)
            {
                for (int o = 0; o < ocg; o++)
                    for (int ic = 0; ic < icg; ic++)
                        for (int t = 0; t < taps; t++)
                            reordered[o * k + t * icg + ic] = w[((grp * ocg + o) * icg + ic) * taps + t];
                var groupBias = bias.IsEmpty ? default : bias.Slice(grp * ocg, ocg);
                if (into is null) packed[grp] = new PackedB(reordered.AsSpan(0, ocg * k), k, ocg, 1, k, groupBias, width);
                else packed[grp].Repack(reordered.AsSpan(0, ocg * k), 1, k, groupBias);
            }
        }
        finally { pool.Return(reordered); }
        return packed;
    }
}
