using System.Runtime.CompilerServices;
using MobileNetSharp.Graph;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels;

/// <summary>
/// Training-mode batch normalization (Ioffe &amp; Szegedy 2015, "Batch Normalization: Accelerating Deep Network
/// Training by Reducing Internal Covariate Shift", Algorithm 1 and its back-propagation formulas) over channels-last
/// activations flattened to x [rows, C] (rows = N*H*W of an NHWC tensor), with PyTorch's and ONNX's
/// training_mode semantics: the batch statistics are the per-channel mean and the BIASED variance (divided by
/// rows), and the running statistics are updated with the UNBIASED variance.
/// <para>
/// The per-channel reductions (mean, variance, Σ dy, Σ dy·x̂) are SIMD over channels and split over the workers in
/// row blocks fixed by the shape alone, and the blocks are merged in block order in double, so the results do not
/// depend on the thread count. Mean and variance come from <see cref="ChannelMoments"/>: one read of x from memory,
/// each L1-sized chunk's squared deviations taken around its own mean and chunks merged pairwise (Chan et al.), not
/// E[x²] - mean², so channels with a large mean keep their precision; when the convolution before the batch norm
/// gathered them while writing x, the forward reads x only once, to normalize it. Outputs are written, not accumulated.
/// </para>
/// </summary>
public static unsafe partial class BatchNormTraining
{
    private const int ParallelThreshold = 1 << 15;

    /// <summary>
    /// y [rows, C] = gamma·(x - mean)·invStd + beta with mean [C] and the biased variance var [C] of x over its rows,
    /// invStd = 1/sqrt(var + epsilon); writes mean [C] and invStd [C] for <see cref="Backward"/> and
    /// <see cref="UpdateRunningStatistics"/>. y may alias x. A fused <paramref name="activation"/> (ReLU or Clip, e.g.
    /// ReLU6: a clamp) is applied as y is written, saving a pass over the tensor.
    /// </summary>
    /// <exception cref="ArgumentException">rows or channels below 1, epsilon negative or NaN, a buffer shorter than its shape,
    /// or an activation other than None, Relu and Clip.</exception>
    /// <param name="scale">When not empty, receives the per-channel gamma·invStd [C] exactly as the normalization used it,
    /// which <see cref="Backward(ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, Span{float}, Span{float}, int, int, Activation, Workers?)"/>
    /// needs to recompute the fused clamp's pre-activation bit for bit.</param>
    public static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, Span<float> y,
        Span<float> mean, Span<float> invStd, int rows, int channels, float epsilon, Workers? workers = null, Activation activation = default,
        Span<float> scale = default) =>
        Forward(x, gamma, beta, y, mean, invStd, rows, channels, epsilon, workers, null, activation, scale);

    /// <summary>The clamp bounds of an activation that is a clamp (None, ReLU, Clip).</summary>
    internal static (float Lo, float Hi) ClampOf(in Activation a) => a.Kind switch
    {
        ActivationKind.None => (float.NegativeInfinity, float.PositiveInfinity),
        ActivationKind.Relu => (0f, float.PositiveInfinity),
        ActivationKind.Clip => (a.Alpha, a.Beta),
        _ => throw new ArgumentException($"Batch norm fuses only clamp activations (ReLU, Clip), not {a}."),
    };

    /// <summary><see cref="Forward(ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, Span{float}, Span{float}, int, int, float, Workers?)"/> at a chosen ISA (tests sweep it).</summary>
    internal static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, Span<float> y,
        Span<float> mean, Span<float> invStd, int rows, int channels, float epsilon, Workers? workers, IsaLevel? isa, Activation activation = default,
        Span<float> scaleOut = default)
    {
        var (lo, hi) = ClampOf(activation);
        CheckSizes(rows, channels);
        if (!(epsilon >= 0)) throw new ArgumentException($"Batch norm: epsilon must be non-negative, got {epsilon}.", nameof(epsilon));
        long n = (long)rows * channels;
        if (x.Length < n || y.Length < n)
            throw new ArgumentException($"Batch norm forward: x ({x.Length}) and y ({y.Length}) need [{rows}, {channels}] = {n} values.");
        if (gamma.Length < channels || beta.Length < channels || mean.Length < channels || invStd.Length < channels)
            throw new ArgumentException($"Batch norm forward: gamma ({gamma.Length}), beta ({beta.Length}), mean ({mean.Length}) and invStd ({invStd.Length}) need {channels} values.");
        if (!scaleOut.IsEmpty && scaleOut.Length < channels)
            throw new ArgumentException($"Batch norm forward: scale ({scaleOut.Length}) needs {channels} values.");
        workers ??= Workers.Single;
        IsaLevel level = Isa.Resolve(isa);

        var partials = new double[ChannelMoments.PartialLength(rows, channels)];
        fixed (float* px = x) fixed (double* pp = partials) ChannelMoments.Compute(px, rows, channels, pp, workers, level);
        var scale = Statistics(partials, 1, gamma, mean, invStd, rows, channels, epsilon);
        if (!scaleOut.IsEmpty) scale.CopyTo(scaleOut);
        // y = clamp(scale·(x - mean) + beta)
        Affine(default, x, y, default, scale, mean, beta, rows, channels, workers, level, new Clamp(default, default, lo, hi));
    }

    /// <summary>
    /// <see cref="Forward(ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, Span{float}, Span{float}, int, int, float, Workers?, IsaLevel?, Activation, Span{float})"/>
    /// with the statistics already gathered by the producer of x (<see cref="ChannelMoments"/> partials [blocks][2][C],
    /// blocks cut in <paramref name="granule"/> rows): only the normalization pass reads x.
    /// </summary>
    internal static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<double> partials, int granule, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta,
        Span<float> y, Span<float> mean, Span<float> invStd, int rows, int channels, float epsilon, Workers? workers, Activation activation, Span<float> scaleOut)
    {
        var (lo, hi) = ClampOf(activation);
        CheckSizes(rows, channels);
        if (!(epsilon >= 0)) throw new ArgumentException($"Batch norm: epsilon must be non-negative, got {epsilon}.", nameof(epsilon));
        long n = (long)rows * channels;
        if (x.Length < n || y.Length < n || gamma.Length < channels || beta.Length < channels || mean.Length < channels || invStd.Length < channels
            || scaleOut.Length < channels)
            throw new ArgumentException($"Batch norm forward: a buffer is shorter than [{rows}, {channels}] or [{channels}].");
        var scale = Statistics(partials, granule, gamma, mean, invStd, rows, channels, epsilon);
        scale.CopyTo(scaleOut);
        Affine(default, x, y, default, scale, mean, beta, rows, channels, workers ?? Workers.Single, Isa.Resolve(null), new Clamp(default, default, lo, hi));
    }

    /// <summary>
    /// The statistics half of the forward from the producer's moment partials: mean [C], invStd [C] and scale =
    /// gamma·invStd [C], for a reader that normalizes x itself (<see cref="BatchNormApplyRows"/>); y is not written.
    /// </summary>
    internal static void ForwardStatistics(ReadOnlySpan<double> partials, int granule, ReadOnlySpan<float> gamma, Span<float> mean, Span<float> invStd,
        Span<float> scaleOut, int rows, int channels, float epsilon)
    {
        CheckSizes(rows, channels);
        if (!(epsilon >= 0)) throw new ArgumentException($"Batch norm: epsilon must be non-negative, got {epsilon}.", nameof(epsilon));
        if (gamma.Length < channels || mean.Length < channels || invStd.Length < channels || scaleOut.Length < channels)
            throw new ArgumentException($"Batch norm statistics: a buffer is shorter than [{channels}].");
        Statistics(partials, granule, gamma, mean, invStd, rows, channels, epsilon).CopyTo(scaleOut);
    }

    /// <summary>The normalization half of the forward: y [rows, C] = clamp(scale·(x - mean) + beta), the bits the whole forward writes.</summary>
    internal static void ForwardApply(ReadOnlySpan<float> x, ReadOnlySpan<float> mean, ReadOnlySpan<float> scale, ReadOnlySpan<float> beta, Span<float> y,
        int rows, int channels, Workers workers, Activation activation)
    {
        var (lo, hi) = ClampOf(activation);
        Affine(default, x, y, default, scale, mean, beta, rows, channels, workers, Isa.Resolve(null), new Clamp(default, default, lo, hi));
    }

    /// <summary>mean, invStd = 1/sqrt(var + epsilon) and the returned scale = gamma·invStd [C] from moment partials.</summary>
    private static float[] Statistics(ReadOnlySpan<double> partials, int granule, ReadOnlySpan<float> gamma, Span<float> mean, Span<float> invStd,
        int rows, int channels, float epsilon)
    {
        var meanD = new double[channels];
        var variance = new double[channels];
        ChannelMoments.Combine(partials, rows, channels, meanD, variance, granule);
        var scale = new float[channels];
        for (int c = 0; c < channels; c++)
        {
            mean[c] = (float)meanD[c];
            double inv = 1 / Math.Sqrt(variance[c] + epsilon);
            invStd[c] = (float)inv;
            scale[c] = (float)(gamma[c] * inv);
        }
        return scale;
    }

    /// <summary>
    /// Gradients of <see cref="Forward"/> from x [rows, C], dy [rows, C], gamma [C] and the saved mean [C] and invStd [C]:
    /// with x̂ = (x - mean)·invStd, dbeta [C] = Σ_rows dy, dgamma [C] = Σ_rows dy·x̂ and
    /// dx [rows, C] = gamma·invStd/rows · (rows·dy - Σ dy - x̂·Σ dy·x̂) (Ioffe &amp; Szegedy 2015, section 3; the
    /// gradient PyTorch's batch_norm_backward computes in training mode). All written; dx may alias dy.
    /// </summary>
    /// <exception cref="ArgumentException">rows or channels below 1, or a buffer shorter than its shape.</exception>
    public static void Backward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, ReadOnlySpan<float> gamma, ReadOnlySpan<float> mean,
        ReadOnlySpan<float> invStd, Span<float> dx, Span<float> dgamma, Span<float> dbeta, int rows, int channels, Workers? workers = null) =>
        Backward(x, dy, gamma, mean, invStd, dx, dgamma, dbeta, rows, channels, workers, null);

    /// <summary>
    /// The gradients of <see cref="Forward(ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, Span{float}, Span{float}, int, int, float, Workers?, Activation, Span{float})"/>
    /// with its fused clamp <paramref name="activation"/> (ReLU or Clip), in one reduction and one write pass: dy is
    /// masked where the pre-activation z = scale·(x - mean) + beta lies outside the open interval (lo, hi) (the flat
    /// sides, as PyTorch's ReLU/Hardtanh backward), and then flows through the batch-norm gradient. z is recomputed from
    /// x with the forward's own <paramref name="scale"/> and the same fused multiply-add, so the mask is bit-exact
    /// without reading the output: one pass over the tensor fewer than a separate activation gradient.
    /// </summary>
    /// <exception cref="ArgumentException">As the other overload; also beta or scale shorter than C, or a non-clamp activation.</exception>
    public static void Backward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta,
        ReadOnlySpan<float> scale, ReadOnlySpan<float> mean, ReadOnlySpan<float> invStd, Span<float> dx, Span<float> dgamma, Span<float> dbeta,
        int rows, int channels, Activation activation, Workers? workers = null) =>
        Backward(x, dy, gamma, mean, invStd, dx, dgamma, dbeta, rows, channels, workers, null, activation, beta, scale);

    /// <summary>The backward at a chosen ISA (tests sweep it), with an optional fused clamp (see the public overloads).</summary>
    internal static void Backward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, ReadOnlySpan<float> gamma, ReadOnlySpan<float> mean,
        ReadOnlySpan<float> invStd, Span<float> dx, Span<float> dgamma, Span<float> dbeta, int rows, int channels, Workers? workers, IsaLevel? isa,
        Activation activation = default, ReadOnlySpan<float> beta = default, ReadOnlySpan<float> scale = default)
    {
        var (lo, hi) = ClampOf(activation);
        CheckSizes(rows, channels);
        bool masked = !activation.IsNone;
        if (masked && (beta.Length < channels || scale.Length < channels))
            throw new ArgumentException($"Batch norm backward with a fused {activation}: beta ({beta.Length}) and scale ({scale.Length}) need {channels} values.");
        long n = (long)rows * channels;
        if (x.Length < n || dy.Length < n || dx.Length < n)
            throw new ArgumentException($"Batch norm backward: x ({x.Length}), dy ({dy.Length}) and dx ({dx.Length}) need [{rows}, {channels}] = {n} values.");
        if (gamma.Length < channels || mean.Length < channels || invStd.Length < channels || dgamma.Length < channels || dbeta.Length < channels)
            throw new ArgumentException($"Batch norm backward: gamma ({gamma.Length}), mean ({mean.Length}), invStd ({invStd.Length}), dgamma ({dgamma.Length}) and dbeta ({dbeta.Length}) need {channels} values.");
        workers ??= Workers.Single;
        IsaLevel level = Isa.Resolve(isa);
        var coefficients = new float[3 * channels];
        BackwardCoefficients(x, dy, gamma, mean, invStd, dgamma, dbeta, rows, channels, workers, level, activation, beta, scale, coefficients);
        BackwardApply(x, dy, mean, coefficients, dx, rows, channels, workers, level, activation, beta, scale);
    }

    /// <summary>The write half of the backward: dx [rows, C] = a·dy' + b·(x - mean) + k from the coefficients [3, C] (dx may alias dy).</summary>
    internal static void BackwardApply(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, ReadOnlySpan<float> mean, ReadOnlySpan<float> coefficients,
        Span<float> dx, int rows, int channels, Workers workers, IsaLevel level, Activation activation, ReadOnlySpan<float> beta, ReadOnlySpan<float> scale)
    {
        var (lo, hi) = ClampOf(activation);
        var clamp = activation.IsNone ? new Clamp() : new Clamp(scale, beta, lo, hi) { Mask = true };
        Affine(dy, x, dx, coefficients[..channels], coefficients.Slice(channels, channels), mean, coefficients.Slice(2 * channels, channels),
            rows, channels, workers, level, clamp);
    }

    /// <summary>
    /// The reduction half of the backward: dgamma, dbeta and the coefficients [3, C] of dx = a·dy' + b·(x - mean) + k,
    /// dy' being dy masked by the fused clamp (a = gamma·invStd, b = -a·invStd²·Σ dy'·(x - mean)/rows, c = -a·Σ dy'/rows).
    /// <see cref="BackwardRows"/> applies them, here or in the consumer of dx (<see cref="BatchNormGradRows"/>).
    /// Sizes are the caller's to check.
    /// </summary>
    internal static void BackwardCoefficients(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, ReadOnlySpan<float> gamma, ReadOnlySpan<float> mean,
        ReadOnlySpan<float> invStd, Span<float> dgamma, Span<float> dbeta, int rows, int channels, Workers workers, IsaLevel level,
        Activation activation, ReadOnlySpan<float> beta, ReadOnlySpan<float> scale, Span<float> coefficients)
    {
        var (lo, hi) = ClampOf(activation);
        // [0, C) = Σ dy, [C, 2C) = Σ dy·(x - mean)
        var clamp = activation.IsNone ? new Clamp() : new Clamp(scale, beta, lo, hi);
        double[] sums = ChannelReduction.Run(ChannelReduction.Op.SumAndCenteredProduct, x, dy, mean, 1, rows, channels, workers, level,
            clamp.Scale, clamp.Shift, clamp.Lo, clamp.Hi);
        Coefficients(sums, gamma, invStd, dgamma, dbeta, rows, channels, coefficients);
    }

    /// <summary>
    /// <see cref="BackwardCoefficients(ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, Span{float}, int, int, Workers, IsaLevel, Activation, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float})"/>
    /// from sums the producer of dy gathered (<see cref="BatchNormGradSums"/>: [groups][2][C] partials, added in group order).
    /// </summary>
    internal static void BackwardCoefficients(ReadOnlySpan<double> partials, int groups, ReadOnlySpan<float> gamma, ReadOnlySpan<float> invStd,
        Span<float> dgamma, Span<float> dbeta, int rows, int channels, Span<float> coefficients)
    {
        if (partials.Length < groups * 2 * channels) throw new ArgumentException($"Batch norm backward: {partials.Length} partial sums, [{groups}, 2, {channels}] needed.");
        var sums = partials[..(2 * channels)].ToArray();
        for (int g = 1; g < groups; g++)
        {
            var p = partials.Slice(g * 2 * channels, 2 * channels);
            for (int i = 0; i < sums.Length; i++) sums[i] += p[i];
        }
        Coefficients(sums, gamma, invStd, dgamma, dbeta, rows, channels, coefficients);
    }

    /// <summary>The coefficients [3, C], dgamma and dbeta from Σ dy' [C] and Σ dy'·(x - mean) [C] (in <paramref name="sums"/>).</summary>
    private static void Coefficients(double[] sums, ReadOnlySpan<float> gamma, ReadOnlySpan<float> invStd, Span<float> dgamma, Span<float> dbeta,
        int rows, int channels, Span<float> coefficients)
    {
        Span<float> a = coefficients[..channels], b = coefficients.Slice(channels, channels), k = coefficients.Slice(2 * channels, channels);
        for (int c = 0; c < channels; c++)
        {
            double inv = invStd[c], sumDy = sums[c], sumDyXc = sums[channels + c];
            double ac = gamma[c] * inv;
            a[c] = (float)ac;
            b[c] = (float)(-ac * inv * inv * sumDyXc / rows);
            k[c] = (float)(-ac * sumDy / rows);
            dbeta[c] = (float)sumDy;
            dgamma[c] = (float)(sumDyXc * inv);
        }
    }

    /// <summary>
    /// PyTorch's running-statistics update (torch.nn.BatchNorm2d with momentum, ONNX BatchNormalization training_mode):
    /// runningMean = (1 - momentum)·runningMean + momentum·mean and runningVar = (1 - momentum)·runningVar +
    /// momentum·var·rows/(rows - 1), i.e. with the UNBIASED batch variance (the biased one when rows == 1). The batch
    /// variance is recovered from the saved invStd as 1/invStd² - epsilon (clamped at 0), in double.
    /// </summary>
    /// <exception cref="ArgumentException">rows below 1, momentum outside [0, 1], or a buffer shorter than the channel count (that of mean).</exception>
    public static void UpdateRunningStatistics(ReadOnlySpan<float> mean, ReadOnlySpan<float> invStd, float epsilon, int rows,
        float momentum, Span<float> runningMean, Span<float> runningVar)
    {
        int channels = mean.Length;
        if (rows < 1) throw new ArgumentException($"Batch norm running statistics: rows must be positive, got {rows}.", nameof(rows));
        if (!(momentum >= 0 && momentum <= 1)) throw new ArgumentException($"Batch norm running statistics: momentum must be in [0, 1], got {momentum}.", nameof(momentum));
        if (invStd.Length < channels || runningMean.Length < channels || runningVar.Length < channels)
            throw new ArgumentException($"Batch norm running statistics: invStd ({invStd.Length}), runningMean ({runningMean.Length}) and runningVar ({runningVar.Length}) need {channels} values (the length of mean).");
        double correction = rows > 1 ? (double)rows / (rows - 1) : 1;
        for (int c = 0; c < channels; c++)
        {
            double inv = invStd[c];
            double variance = Math.Max(0, 1 / (inv * inv) - epsilon);
            runningMean[c] = (float)((1 - (double)momentum) * runningMean[c] + momentum * (double)mean[c]);
            runningVar[c] = (float)((1 - (double)momentum) * runningVar[c] + momentum * variance * correction);
        }
    }

    private static void CheckSizes(int rows, int channels)
    {
        if (rows < 1 || channels < 1) throw new ArgumentException($"Batch norm: rows and channels must be positive, got [{rows}, {channels}].");
    }

    /// <summary>
    /// A clamp to [Lo, Hi]: applied to the output (forward), or, with <see cref="Mask"/>, used to zero u where the
    /// pre-activation z = Scale·(v - m) + Shift is outside (Lo, Hi) (backward).
    /// </summary>
    private readonly ref struct Clamp(ReadOnlySpan<float> scale, ReadOnlySpan<float> shift, float lo, float hi)
    {
        public ReadOnlySpan<float> Scale { get; } = scale;
        public ReadOnlySpan<float> Shift { get; } = shift;
        public float Lo { get; } = lo;
        public float Hi { get; } = hi;
        public bool Mask { get; init; }
        public bool IsNone => float.IsNegativeInfinity(Lo) && float.IsPositiveInfinity(Hi);
        public Clamp() : this(default, default, float.NegativeInfinity, float.PositiveInfinity) { }
    }

    /// <summary>
    /// out = p·u + q·(v - m) + r per channel (p and u empty: out = q·(v - m) + r), then clamped or, with a masking
    /// clamp, with u zeroed outside the clamp's open interval; row blocks over the workers.
    /// </summary>
    private static void Affine(ReadOnlySpan<float> u, ReadOnlySpan<float> v, Span<float> output, ReadOnlySpan<float> p, ReadOnlySpan<float> q,
        ReadOnlySpan<float> m, ReadOnlySpan<float> r, int rows, int channels, Workers workers, IsaLevel isa, Clamp clamp)
    {
        fixed (float* pu = u, pv = v, po = output, pp = p, pq = q, pm = m, pr = r, ps = clamp.Scale, pz = clamp.Shift)
        {
            bool none = clamp.IsNone;
            var args = new AffineArgs
            {
                U = pu, V = pv, Out = po, P = pp, Q = pq, M = pm, R = pr, Rows = rows, Channels = channels, Isa = isa,
                Lo = none ? float.NegativeInfinity : clamp.Lo, Hi = none ? float.PositiveInfinity : clamp.Hi,
                Clamp = !none && !clamp.Mask, MaskScale = !none && clamp.Mask ? ps : null, MaskShift = pz,
            };
            args.Blocks = workers.Count == 1 || (long)rows * channels < ParallelThreshold ? 1 : Math.Min(rows, workers.Count * 4);
            workers.For(args.Blocks, &AffineTask, &args);
        }
    }

    private struct AffineArgs
    {
        public float* U, V, Out, P, Q, M, R, MaskScale, MaskShift;
        public int Rows, Channels, Blocks;
        public IsaLevel Isa;
        public float Lo, Hi;
        public bool Clamp;
    }

    private static void AffineTask(void* context, int index)
    {
        var a = (AffineArgs*)context;
        var (r0, r1) = Workers.Split(a->Rows, a->Blocks, index);
        var body = new AffineBody { A = a, Row0 = r0, Row1 = r1 };
        KernelDispatch.Run(a->Isa, ref body);
    }

    private struct AffineBody : IWidthBody
    {
        public AffineArgs* A;
        public int Row0, Row1;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            int C = A->Channels, w = TS.Count;
            float* u = A->U, v = A->V, o = A->Out, p = A->P, q = A->Q, m = A->M, r = A->R, ms = A->MaskScale, mz = A->MaskShift;
            bool hasU = u != null, clamp = A->Clamp, mask = ms != null;
            TV lo = TS.Splat(A->Lo), hi = TS.Splat(A->Hi);
            // Row-major sweep (each row once, the [C] coefficients stay in L1); whole vectors, then the channel tail.
            int full = C - C % w, tail = C - full;
            for (long row = Row0; row < Row1; row++)
            {
                long at = row * C;
                for (int c0 = 0; c0 < full; c0 += w)
                {
                    TV d = TS.Sub(TS.Load(v + at + c0), TS.Load(m + c0));
                    TV t = TS.Fma(TS.Load(q + c0), d, TS.Load(r + c0));
                    if (hasU)
                    {
                        TV du = TS.Load(u + at + c0);
                        if (mask) du = Masked<TS, TV>(TS.Fma(TS.Load(ms + c0), d, TS.Load(mz + c0)), du, lo, hi);
                        t = TS.Fma(TS.Load(p + c0), du, t);
                    }
                    if (clamp) t = TS.Min(TS.Max(t, lo), hi);
                    TS.Store(o + at + c0, t);
                }
                if (tail > 0)
                {
                    TV d = TS.Sub(TS.LoadPartial(v + at + full, tail), TS.LoadPartial(m + full, tail));
                    TV t = TS.Fma(TS.LoadPartial(q + full, tail), d, TS.LoadPartial(r + full, tail));
                    if (hasU)
                    {
                        TV du = TS.LoadPartial(u + at + full, tail);
                        if (mask) du = Masked<TS, TV>(TS.Fma(TS.LoadPartial(ms + full, tail), d, TS.LoadPartial(mz + full, tail)), du, lo, hi);
                        t = TS.Fma(TS.LoadPartial(p + full, tail), du, t);
                    }
                    if (clamp) t = TS.Min(TS.Max(t, lo), hi);
                    TS.StorePartial(o + at + full, t, tail);
                }
            }
        }
    }

    /// <summary>dy where lo &lt; z &lt; hi, else 0: the gradient of a clamp at its pre-activation z (flat at the kinks).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static TV Masked<TS, TV>(TV z, TV dy, TV lo, TV hi) where TS : unmanaged, ISimd<TV> where TV : unmanaged =>
        TS.GreaterSelect(z, lo, TS.GreaterSelect(hi, z, dy, TS.Zero), TS.Zero);
}
