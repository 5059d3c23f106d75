using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels;

/// <summary>
/// Per-channel mean and sum of squared deviations (M2) of channels-last rows x [rows, C], in one pass over memory:
/// the statistics of training-mode batch norm. A chunk of rows small enough for L1 is read twice (its sum, then its
/// squared deviations around its own mean), and each chunk is merged into its block's running (mean, M2) with the
/// pairwise update, in double, of Chan, Golub &amp; LeVeque (1979, "Updating formulae and a pairwise algorithm for computing sample
/// variances"): M2 = M2_a + M2_b + δ²·n_a·n_b/(n_a + n_b), δ = mean_b - mean_a. No E[x²] - mean² cancellation, so a
/// channel whose mean is large against its spread keeps its precision.
/// <para>
/// A producer that has just written the rows (a convolution's output tile, still in cache) can feed its chunks
/// itself with <see cref="AddChunk"/>, so the statistics cost no pass over memory at all; the batch norm after it
/// then only combines the blocks (<see cref="Combine"/>).
/// </para>
/// <para>
/// Layout of the partials: [blocks][2][C] doubles, per block its mean, then its M2. The blocks are the row ranges
/// <see cref="BlockRows"/>, fixed by the shape alone (never by the thread count), and are combined in block order
/// in double, so 1 and N threads give bitwise identical statistics.
/// </para>
/// </summary>
internal static unsafe class ChannelMoments
{
    /// <summary>At most this many blocks (independent partials, one task each).</summary>
    public const int MaxBlocks = 8;

    /// <summary>The block count for a [rows, C] tensor: 1 for small tensors, else up to <see cref="MaxBlocks"/>.</summary>
    public static int Blocks(int rows, int channels) => (long)rows * channels < (1 << 15) ? 1 : Math.Min(rows, MaxBlocks);

    /// <summary>Rows [start, end) of block <paramref name="block"/> in units of <paramref name="granule"/> rows (a producer's
    /// tile height; 1 for plain rows), so a producer's tiles never straddle two blocks.</summary>
    public static (int Start, int End) BlockRows(int rows, int channels, int block, int granule = 1)
    {
        int units = (rows + granule - 1) / granule;
        var (u0, u1) = Workers.Split(units, Blocks(rows, channels), block);
        return (Math.Min(rows, u0 * granule), Math.Min(rows, u1 * granule));
    }

    /// <summary>Rows per chunk: about 16 KiB of the tensor, so the second read of a chunk hits L1.</summary>
    public static int ChunkRows(int channels) => Math.Clamp(4096 / Math.Max(1, channels), 2, 64);

    /// <summary>Doubles of partials for a [rows, C] tensor: [blocks][2][C].</summary>
    public static int PartialLength(int rows, int channels) => Blocks(rows, channels) * 2 * channels;

    /// <summary>Fills <paramref name="partials"/> ([blocks][2][C]) from x [rows, C], blocks over the workers.</summary>
    public static void Compute(float* x, int rows, int channels, double* partials, Workers workers, IsaLevel isa)
    {
        var args = new Args { X = x, Rows = rows, Channels = channels, Partials = partials, Isa = isa };
        int blocks = Blocks(rows, channels);
        if (workers.Count == 1 || blocks == 1) for (int b = 0; b < blocks; b++) Task(&args, b);
        else workers.For(blocks, &Task, &args);
    }

    private struct Args
    {
        public float* X;
        public double* Partials;
        public int Rows, Channels;
        public IsaLevel Isa;
    }

    private static void Task(void* context, int block)
    {
        var a = (Args*)context;
        int C = a->Channels, chunk = ChunkRows(C);
        var (r0, r1) = BlockRows(a->Rows, C, block);
        double* mean = a->Partials + (long)block * 2 * C, m2 = mean + C;
        for (int r = r0; r < r1; r += chunk)
            AddChunk(a->Isa, a->X + (long)r * C, Math.Min(chunk, r1 - r), C, mean, m2, r - r0);
    }

    /// <summary>
    /// Merges the n rows at x ([n, C], row stride C) into a block's running mean [C] and M2 [C] (double) over the
    /// <paramref name="before"/> rows it holds so far (0: the chunk initializes them, whatever they held).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AddChunk(IsaLevel isa, float* x, int n, int channels, double* mean, double* m2, int before)
    {
        if (n <= 0) return;
        // The chunk's float sums, float means and squared deviations around them, [3][C], then the merge in double.
        const int StackChannels = 1024;
        float[]? rented = channels > StackChannels ? System.Buffers.ArrayPool<float>.Shared.Rent(3 * channels) : null;
        float* stack = stackalloc float[rented is null ? 3 * channels : 0];
        try
        {
            fixed (float* heap = rented)
            {
                float* sums = rented is null ? stack : heap;
                var body = new ChunkBody { X = x, N = n, C = channels, Sums = sums };
                KernelDispatch.Run(isa, ref body);
                Merge(sums, sums + channels, sums + 2 * channels, n, channels, mean, m2, before);
            }
        }
        finally
        {
            if (rented is not null) System.Buffers.ArrayPool<float>.Shared.Return(rented);
        }
    }

    /// <summary>Per channel: Σ x, m_f = (float)(Σ x / n) and Σ (x - m_f)² over the chunk's n rows, into Sums [3][C].</summary>
    private struct ChunkBody : IWidthBody
    {
        public float* X, Sums;
        public int N, C;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            int w = TS.Count, C = this.C, full = C - C % w, c0 = 0;
            for (; c0 + 2 * w <= full; c0 += 2 * w) ChannelPair<TS, TV>(c0);
            if (c0 < full) Channels<TS, TV, AllLanes>(c0, w);
            if (full < C) Channels<TS, TV, FirstLanes>(full, C - full);
        }

        /// <summary>
        /// <see cref="Channels{TS, TV, TL}"/> of two whole channel vectors at once, each lane's operations unchanged (the
        /// same bits). A chunk's rows are few (28 for a 28-wide row), so one vector's chains are short and end in a
        /// dependent mean and second pass: alone, a vector waits on add and FMA latency; two in flight fill those waits.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly void ChannelPair<TS, TV>(int c0) where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            int C = this.C, n = N, w = TS.Count;
            float* x = X + c0;
            TV s0 = TS.Zero, s1 = TS.Zero, s2 = TS.Zero, s3 = TS.Zero, u0 = TS.Zero, u1 = TS.Zero, u2 = TS.Zero, u3 = TS.Zero;
            int r = 0;
            for (; r + 4 <= n; r += 4)
            {
                float* p = x + (long)r * C;
                s0 = TS.Add(s0, TS.Load(p));
                u0 = TS.Add(u0, TS.Load(p + w));
                s1 = TS.Add(s1, TS.Load(p + C));
                u1 = TS.Add(u1, TS.Load(p + C + w));
                s2 = TS.Add(s2, TS.Load(p + 2 * C));
                u2 = TS.Add(u2, TS.Load(p + 2 * C + w));
                s3 = TS.Add(s3, TS.Load(p + 3 * C));
                u3 = TS.Add(u3, TS.Load(p + 3 * C + w));
            }
            for (; r < n; r++)
            {
                float* p = x + (long)r * C;
                s0 = TS.Add(s0, TS.Load(p));
                u0 = TS.Add(u0, TS.Load(p + w));
            }
            TV inv = TS.Splat(1f / n);
            TV s = TS.Add(TS.Add(s0, s1), TS.Add(s2, s3)), u = TS.Add(TS.Add(u0, u1), TS.Add(u2, u3));
            TV m = TS.Mul(s, inv), mu = TS.Mul(u, inv);
            // Stored now, so only the means stay live through the second pass beside its eight accumulators.
            TS.Store(Sums + c0, s);
            TS.Store(Sums + c0 + w, u);
            TS.Store(Sums + C + c0, m);
            TS.Store(Sums + C + c0 + w, mu);
            TV q0 = TS.Zero, q1 = TS.Zero, q2 = TS.Zero, q3 = TS.Zero, v0 = TS.Zero, v1 = TS.Zero, v2 = TS.Zero, v3 = TS.Zero;
            for (r = 0; r + 4 <= n; r += 4)
            {
                // Each difference used as soon as it is made: eight accumulators, two means and one temporary fit the 16
                // registers of AVX2 (holding all eight differences spilled two accumulators to the stack).
                float* p = x + (long)r * C;
                TV d = TS.Sub(TS.Load(p), m); q0 = TS.Fma(d, d, q0);
                d = TS.Sub(TS.Load(p + w), mu); v0 = TS.Fma(d, d, v0);
                d = TS.Sub(TS.Load(p + C), m); q1 = TS.Fma(d, d, q1);
                d = TS.Sub(TS.Load(p + C + w), mu); v1 = TS.Fma(d, d, v1);
                d = TS.Sub(TS.Load(p + 2 * C), m); q2 = TS.Fma(d, d, q2);
                d = TS.Sub(TS.Load(p + 2 * C + w), mu); v2 = TS.Fma(d, d, v2);
                d = TS.Sub(TS.Load(p + 3 * C), m); q3 = TS.Fma(d, d, q3);
                d = TS.Sub(TS.Load(p + 3 * C + w), mu); v3 = TS.Fma(d, d, v3);
            }
            for (; r < n; r++)
            {
                float* p = x + (long)r * C;
                TV d0 = TS.Sub(TS.Load(p), m), e0 = TS.Sub(TS.Load(p + w), mu);
                q0 = TS.Fma(d0, d0, q0);
                v0 = TS.Fma(e0, e0, v0);
            }
            TV q = TS.Add(TS.Add(q0, q1), TS.Add(q2, q3)), v = TS.Add(TS.Add(v0, v1), TS.Add(v2, v3));
            TS.Store(Sums + 2 * C + c0, q);
            TS.Store(Sums + 2 * C + c0 + w, v);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly void Channels<TS, TV, TL>(int c0, int k) where TS : unmanaged, ISimd<TV> where TV : unmanaged where TL : ILanes
        {
            int C = this.C, n = N;
            float* x = X + c0;
            // Four chains each (the adds' and FMAs' latency, not their throughput, would set the pace with fewer).
            TV s0 = TS.Zero, s1 = TS.Zero, s2 = TS.Zero, s3 = TS.Zero;
            int r = 0;
            for (; r + 4 <= n; r += 4)
            {
                float* p = x + (long)r * C;
                s0 = TS.Add(s0, TL.Load<TS, TV>(p, k));
                s1 = TS.Add(s1, TL.Load<TS, TV>(p + C, k));
                s2 = TS.Add(s2, TL.Load<TS, TV>(p + 2 * C, k));
                s3 = TS.Add(s3, TL.Load<TS, TV>(p + 3 * C, k));
            }
            for (; r < n; r++) s0 = TS.Add(s0, TL.Load<TS, TV>(x + (long)r * C, k));
            TV s = TS.Add(TS.Add(s0, s1), TS.Add(s2, s3));
            TV m = TS.Mul(s, TS.Splat(1f / n));
            TV q0 = TS.Zero, q1 = TS.Zero, q2 = TS.Zero, q3 = TS.Zero;
            for (r = 0; r + 4 <= n; r += 4)
            {
                float* p = x + (long)r * C;
                TV d0 = TS.Sub(TL.Load<TS, TV>(p, k), m);
                TV d1 = TS.Sub(TL.Load<TS, TV>(p + C, k), m);
                TV d2 = TS.Sub(TL.Load<TS, TV>(p + 2 * C, k), m);
                TV d3 = TS.Sub(TL.Load<TS, TV>(p + 3 * C, k), m);
                q0 = TS.Fma(d0, d0, q0);
                q1 = TS.Fma(d1, d1, q1);
                q2 = TS.Fma(d2, d2, q2);
                q3 = TS.Fma(d3, d3, q3);
            }
            for (; r < n; r++)
            {
                TV d0 = TS.Sub(TL.Load<TS, TV>(x + (long)r * C, k), m);
                q0 = TS.Fma(d0, d0, q0);
            }
            TV q = TS.Add(TS.Add(q0, q1), TS.Add(q2, q3));
            TL.Store<TS, TV>(Sums + c0, s, k);
            TL.Store<TS, TV>(Sums + C + c0, m, k);
            TL.Store<TS, TV>(Sums + 2 * C + c0, q, k);
        }
    }

    /// <summary>
    /// In double, per channel: the chunk's mean m = Σ x / n, its M2 moved from the float mean to m
    /// (Σ (x - m_f)² = Σ (x - m)² + n·(m_f - m)²), then the pairwise merge into the block's running mean and M2.
    /// The same IEEE operations in vector and scalar lanes, so the result does not depend on the ISA's width.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Merge(float* sums, float* floatMeans, float* squares, int n, int channels, double* mean, double* m2, int before)
    {
        double invN = 1.0 / n, total = (double)before + n, weight = n / total, cross = before * weight;
        int c = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var vInvN = Vector256.Create(invN);
            var vN = Vector256.Create((double)n);
            var vWeight = Vector256.Create(weight);
            var vCross = Vector256.Create(cross);
            var zero = Vector256<double>.Zero;
            for (; c + 4 <= channels; c += 4)
            {
                var mb = Vector256.WidenLower(Vector256.Create(
                    Vector128.Load(sums + c), default(Vector128<float>))) * vInvN;
                var mf = Vector256.WidenLower(Vector256.Create(
                    Vector128.Load(floatMeans + c), default(Vector128<float>)));
                var q = Vector256.WidenLower(Vector256.Create(
                    Vector128.Load(squares + c), default(Vector128<float>)));
                var shift = mf - mb;
                var qb = Vector256.Max(zero, q - vN * (shift * shift));
                if (before == 0)
                {
                    mb.Store(mean + c);
                    qb.Store(m2 + c);
                    continue;
                }
                var ma = Vector256.Load(mean + c);
                var delta = mb - ma;
                (ma + delta * vWeight).Store(mean + c);
                (Vector256.Load(m2 + c) + (qb + delta * delta * vCross)).Store(m2 + c);
            }
        }
        for (; c < channels; c++)
        {
            double mb = sums[c] * invN, shift = floatMeans[c] - mb;
            double qb = Math.Max(0, squares[c] - n * (shift * shift));
            if (before == 0)
            {
                mean[c] = mb;
                m2[c] = qb;
                continue;
            }
            double ma = mean[c], delta = mb - ma;
            mean[c] = ma + delta * weight;
            m2[c] = m2[c] + (qb + delta * delta * cross);
        }
    }

    /// <summary>
    /// The whole tensor's mean [C] and biased variance [C] (M2 / rows) from the blocks' partials, merged in block
    /// order in double.
    /// </summary>
    /// <param name="granule">The granule the partials' blocks were cut in (see <see cref="BlockRows"/>).</param>
    public static void Combine(ReadOnlySpan<double> partials, int rows, int channels, Span<double> mean, Span<double> variance, int granule = 1)
    {
        int blocks = Blocks(rows, channels);
        if (partials.Length < blocks * 2 * channels)
            throw new ArgumentException($"Channel moments: {partials.Length} partials, [{blocks}, 2, {channels}] needed.");
        for (int c = 0; c < channels; c++)
        {
            double count = 0, m = 0, q = 0;
            for (int b = 0; b < blocks; b++)
            {
                var (r0, r1) = BlockRows(rows, channels, b, granule);
                int n = r1 - r0;
                if (n == 0) continue;
                double mb = partials[b * 2 * channels + c], qb = partials[(b * 2 + 1) * channels + c];
                double total = count + n, delta = mb - m;
                m += delta * n / total;
                q += qb + delta * delta * count * n / total;
                count = total;
            }
            mean[c] = m;
            variance[c] = Math.Max(0, q / rows);
        }
    }
}
