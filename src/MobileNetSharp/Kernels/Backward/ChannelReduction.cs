using System.Runtime.CompilerServices;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels;

/// <summary>
/// Per-channel sums over the rows of channels-last data, the reduction under batch-norm statistics, their
/// gradients and broadcast gradients: a [segments, rows, channels] tensor is reduced over rows to
/// [segments, channels] (segments = 1 for [rows, C] -> [C]; segments = N for [N, H*W, C] -> [N, 1, C]).
/// <para>
/// Determinism: every segment's rows are cut into a block count chosen from the shape alone (never from the
/// thread count); each block sums into its own double partial, and the partials are added in block order, so
/// 1 and N threads give bitwise identical results. Inside a block the sums run in float SIMD registers over
/// chunks of <see cref="ChunkRows"/> rows and are then added into the double partial, which keeps float
/// rounding to a few ulps however many rows there are.
/// </para>
/// </summary>
internal static unsafe class ChannelReduction
{
    /// <summary>What is summed: Σ a, or both Σ b and Σ b·(a - m) (batch-norm backward: a = x, b = dy). The batch-norm
    /// forward's mean and variance are <see cref="ChannelMoments"/>.</summary>
    public enum Op { Sum, SumAndCenteredProduct }

    /// <summary>Rows summed in float before a chunk is added to the double partial.</summary>
    private const int ChunkRows = 32;

    /// <summary>Rows summed in float by the row-major centred reduction before its chunk is added to the double partial
    /// (per-chunk clearing and merging cost 25% at 32 rows, measured at 96 channels).</summary>
    private const int RowChunkRows = 128;

    /// <summary>At most this many blocks over all segments; fewer for small tensors.</summary>
    private const int MaxBlocks = 8;

    public static int Outputs(Op op) => op == Op.SumAndCenteredProduct ? 2 : 1;

    /// <summary>
    /// Returns double [segments, outputs, channels]: for <see cref="Op.SumAndCenteredProduct"/> output 0 is Σ b and
    /// output 1 is Σ b·(a - m). <paramref name="m"/> ([channels]) is only read by the centred ops. With
    /// <paramref name="maskScale"/> and <paramref name="maskShift"/> ([channels], SumAndCenteredProduct only) b counts only
    /// where maskLo &lt; maskScale·(a - m) + maskShift &lt; maskHi: batch-norm backward through its fused clamp.
    /// </summary>
    public static double[] Run(Op op, ReadOnlySpan<float> a, ReadOnlySpan<float> b, ReadOnlySpan<float> m,
        int segments, int rows, int channels, Workers workers, IsaLevel isa,
        ReadOnlySpan<float> maskScale = default, ReadOnlySpan<float> maskShift = default, float maskLo = 0, float maskHi = 0)
    {
        bool masked = !maskScale.IsEmpty;
        if (masked && (op != Op.SumAndCenteredProduct || maskScale.Length < channels || maskShift.Length < channels))
            throw new ArgumentException("A masked channel reduction is SumAndCenteredProduct with a scale and a shift per channel.");
        int outputs = Outputs(op);
        long total = (long)segments * rows * channels;
        int blocks = total < (1 << 15) ? 1 : Math.Max(1, Math.Min(rows, MaxBlocks / segments));
        int tasks = segments * blocks;
        var partial = new double[(long)tasks * outputs * channels];
        fixed (float* pa = a, pb = b, pm = m, ps = maskScale, pz = maskShift)
        fixed (double* pp = partial)
        {
            var args = new Args
            {
                A = pa, B = pb, M = pm, Partial = pp, Op = op, Segments = segments, Rows = rows, Channels = channels, Blocks = blocks, Isa = isa,
                MaskScale = masked ? ps : null, MaskShift = pz, MaskLo = maskLo, MaskHi = maskHi,
            };
            if (workers.Count == 1 || tasks == 1) for (int t = 0; t < tasks; t++) Task(&args, t);
            else workers.For(tasks, &Task, &args);
        }
        if (blocks == 1) return partial;
        var result = new double[(long)segments * outputs * channels];
        int stride = outputs * channels;
        for (int s = 0; s < segments; s++)
        {
            var sum = result.AsSpan(s * stride, stride);
            for (int blk = 0; blk < blocks; blk++)
            {
                var p = partial.AsSpan((s * blocks + blk) * stride, stride);
                for (int i = 0; i < stride; i++) sum[i] += p[i];
            }
        }
        return result;
    }

    /// <summary>
    /// Adds Σ b and Σ b·(a - m) over <paramref name="rows"/> rows of a and b ([rows, C]) into <paramref name="sums"/> [2][C]
    /// (double, accumulated), b masked as in <see cref="Run"/> when <paramref name="maskScale"/> is not null; on the
    /// caller's thread. For a kernel that has just computed b (a batch norm's output gradient) and still holds it in cache.
    /// </summary>
    public static void AccumulateCentred(IsaLevel isa, float* a, float* b, int rows, int channels, float* m, float* maskScale, float* maskShift,
        float maskLo, float maskHi, double* sums)
    {
        if (rows <= 0) return;
        var args = new Args
        {
            A = a, B = b, M = m, Partial = sums, Op = Op.SumAndCenteredProduct, Segments = 1, Rows = rows, Channels = channels, Blocks = 1, Isa = isa,
            MaskScale = maskScale, MaskShift = maskShift, MaskLo = maskLo, MaskHi = maskHi,
        };
        var body = new Body { A = &args, Row0 = 0, Row1 = rows, Offset = 0, Out = sums };
        KernelDispatch.Run(isa, ref body);
    }

    /// <summary>
    /// <see cref="AccumulateCentred"/> of a batch norm with a fused clamp (b masked where the clamp is flat) that also
    /// writes that batch norm's output y = clamp(maskScale·(a - m) + maskShift) [rows, C] to <paramref name="y"/>: the mask's
    /// pre-activation is the output before its clamp, so one read of a serves both. The sums are the bits of
    /// <see cref="AccumulateCentred"/> and y the bits of the batch norm's forward (<see cref="BatchNormApplyRows"/>).
    /// </summary>
    public static void AccumulateCentredNormalizing(IsaLevel isa, float* a, float* b, int rows, int channels, float* m, float* maskScale, float* maskShift,
        float maskLo, float maskHi, double* sums, float* y)
    {
        if (rows <= 0) return;
        if (maskScale == null || maskShift == null || y == null) throw new ArgumentException("Normalizing while gathering needs the clamp's scale and shift and an output.");
        var args = new Args
        {
            A = a, B = b, M = m, Partial = sums, Op = Op.SumAndCenteredProduct, Segments = 1, Rows = rows, Channels = channels, Blocks = 1, Isa = isa,
            MaskScale = maskScale, MaskShift = maskShift, MaskLo = maskLo, MaskHi = maskHi, Y = y,
        };
        var body = new Body { A = &args, Row0 = 0, Row1 = rows, Offset = 0, Out = sums };
        KernelDispatch.Run(isa, ref body);
    }

    private struct Args
    {
        public float* A, B, M, MaskScale, MaskShift;
        /// <summary>Null, or where the masked centred reduction also writes clamp(MaskScale·(A - M) + MaskShift), row 0 first.</summary>
        public float* Y;
        public float MaskLo, MaskHi;
        public double* Partial;
        public Op Op;
        public int Segments, Rows, Channels, Blocks;
        public IsaLevel Isa;
    }

    private static void Task(void* context, int index)
    {
        var a = (Args*)context;
        var (r0, r1) = Workers.Split(a->Rows, a->Blocks, index % a->Blocks);
        long segment = index / a->Blocks;
        var body = new Body
        {
            A = a, Row0 = r0, Row1 = r1, Offset = segment * a->Rows * a->Channels,
            Out = a->Partial + (long)index * Outputs(a->Op) * a->Channels,
        };
        KernelDispatch.Run(a->Isa, ref body);
    }

    private struct Body : IWidthBody
    {
        public Args* A;
        public int Row0, Row1;
        public long Offset; // of the segment's first row
        public double* Out; // [outputs][C], zeroed

        public readonly void Invoke<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            switch (A->Op)
            {
                case Op.Sum: Reduce<TS, TV, SumTerm>(); break;
                default:
                    if (A->M == null) Reduce<TS, TV, CenteredProductTerm>(); // m empty: centred on zero
                    else if (A->Y != null) CentredRows<TS, TV, NormalizingMaskedCenteredProductTerm>();
                    else if (A->MaskScale != null) CentredRows<TS, TV, MaskedCenteredProductTerm>();
                    else CentredRows<TS, TV, CenteredProductTerm>();
                    break;
            }
        }

        /// <summary>
        /// Σ b and Σ b·(a - m) (b masked when TT says so) row by row: each row of a and b is read once, front to back, and
        /// the chunk's float sums live in two [C] arrays in L1, added to the double partial once per chunk. Measured at
        /// 96 channels, one thread: 2x faster than walking each channel vector down the chunk (<see cref="Reduce"/>),
        /// whose strided walk left the loads waiting; about the speed of streaming both tensors.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void CentredRows<TS, TV, TT>() where TS : unmanaged, ISimd<TV> where TV : unmanaged where TT : unmanaged, ITerm
        {
            int C = A->Channels, w = TS.Count, full = C - C % w, tail = C - full, padded = full + (tail > 0 ? w : 0);
            float[]? rented = padded > 2048 ? System.Buffers.ArrayPool<float>.Shared.Rent(2 * padded) : null;
            float* stack = stackalloc float[rented is null ? 2 * padded : 0];
            try
            {
                fixed (float* heap = rented)
                {
                    float* s = rented is null ? stack : heap;
                    CentredChunks<TS, TV, TT>(C, full, tail, padded, s, s + padded);
                }
            }
            finally
            {
                if (rented is not null) System.Buffers.ArrayPool<float>.Shared.Return(rented);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void CentredChunks<TS, TV, TT>(int C, int full, int tail, int padded, float* sums, float* products)
            where TS : unmanaged, ISimd<TV> where TV : unmanaged where TT : unmanaged, ITerm
        {
            int w = TS.Count;
            float* aRows = A->A + Offset, bRows = A->B + Offset, m = A->M, q = A->MaskScale, z = A->MaskShift, yRows = A->Y - (long)Row0 * C;
            TV lo = TS.Splat(A->MaskLo), hi = TS.Splat(A->MaskHi);
            for (int r0 = Row0; r0 < Row1; r0 += RowChunkRows)
            {
                int r1 = Math.Min(Row1, r0 + RowChunkRows);
                new Span<float>(sums, 2 * padded).Clear(); // products follows sums
                for (int r = r0; r < r1; r++)
                {
                    float* a = aRows + (long)r * C, b = bRows + (long)r * C;
                    for (int c = 0; c < full; c += w)
                    {
                        TV d = TS.Sub(TS.Load(a + c), TS.Load(m + c));
                        TV g = TS.Load(b + c);
                        if (TT.Masked)
                        {
                            TV t = TS.Fma(TS.Load(q + c), d, TS.Load(z + c));
                            g = BatchNormTraining.Masked<TS, TV>(t, g, lo, hi);
                            if (TT.WritesOutput) TS.Store(yRows + (long)r * C + c, TS.Min(TS.Max(t, lo), hi));
                        }
                        TS.Store(sums + c, TS.Add(TS.Load(sums + c), g));
                        TS.Store(products + c, TS.Fma(g, d, TS.Load(products + c)));
                    }
                    if (tail > 0)
                    {
                        TV d = TS.Sub(TS.LoadPartial(a + full, tail), TS.LoadPartial(m + full, tail));
                        TV g = TS.LoadPartial(b + full, tail);
                        if (TT.Masked)
                        {
                            TV t = TS.Fma(TS.LoadPartial(q + full, tail), d, TS.LoadPartial(z + full, tail));
                            g = BatchNormTraining.Masked<TS, TV>(t, g, lo, hi);
                            if (TT.WritesOutput) TS.StorePartial(yRows + (long)r * C + full, TS.Min(TS.Max(t, lo), hi), tail);
                        }
                        TS.Store(sums + full, TS.Add(TS.Load(sums + full), g));
                        TS.Store(products + full, TS.Fma(g, d, TS.Load(products + full)));
                    }
                }
                double* out0 = Out, out1 = Out + C;
                for (int c = 0; c < C; c++) { out0[c] += sums[c]; out1[c] += products[c]; }
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void Reduce<TS, TV, TT>() where TS : unmanaged, ISimd<TV> where TV : unmanaged where TT : unmanaged, ITerm
        {
            int C = A->Channels, w = TS.Count;
            float* aBase = A->A + Offset, bBase = A->B == null ? null : A->B + Offset, mBase = A->M;
            double* out0 = Out, out1 = Out + C;
            float* lanes = stackalloc float[2 * 16];
            TV lo = TS.Splat(A->MaskLo), hi = TS.Splat(A->MaskHi);
            // A chunk of rows stays in L1/L2 while the channel vectors sweep over it (consecutive channel
            // vectors share cache lines); each channel vector's chunk sum is added to the double partial.
            for (int r0 = Row0; r0 < Row1; r0 += ChunkRows)
            {
                int r1 = Math.Min(Row1, r0 + ChunkRows);
                for (int c0 = 0; c0 < C; c0 += w)
                {
                    int n = Math.Min(w, C - c0);
                    bool whole = n == w;
                    TV m = TT.Centred && mBase != null ? (whole ? TS.Load(mBase + c0) : TS.LoadPartial(mBase + c0, n)) : TS.Zero;
                    TV q = TS.Zero, z = TS.Zero;
                    if (TT.Masked)
                    {
                        q = whole ? TS.Load(A->MaskScale + c0) : TS.LoadPartial(A->MaskScale + c0, n);
                        z = whole ? TS.Load(A->MaskShift + c0) : TS.LoadPartial(A->MaskShift + c0, n);
                    }
                    TV s0 = TS.Zero, s1 = TS.Zero, t0 = TS.Zero, t1 = TS.Zero;
                    int r = r0;
                    // Two rows per step: two independent chains per output.
                    for (; r + 2 <= r1; r += 2)
                    {
                        long o = (long)r * C + c0;
                        TV a0 = whole ? TS.Load(aBase + o) : TS.LoadPartial(aBase + o, n);
                        TV a1 = whole ? TS.Load(aBase + o + C) : TS.LoadPartial(aBase + o + C, n);
                        TV b0 = TS.Zero, b1 = TS.Zero;
                        if (TT.UsesB)
                        {
                            b0 = whole ? TS.Load(bBase + o) : TS.LoadPartial(bBase + o, n);
                            b1 = whole ? TS.Load(bBase + o + C) : TS.LoadPartial(bBase + o + C, n);
                        }
                        if (TT.Masked)
                        {
                            b0 = BatchNormTraining.Masked<TS, TV>(TS.Fma(q, TS.Sub(a0, m), z), b0, lo, hi);
                            b1 = BatchNormTraining.Masked<TS, TV>(TS.Fma(q, TS.Sub(a1, m), z), b1, lo, hi);
                        }
                        TT.Accumulate<TS, TV>(a0, b0, m, ref s0, ref t0);
                        TT.Accumulate<TS, TV>(a1, b1, m, ref s1, ref t1);
                    }
                    if (r < r1)
                    {
                        long o = (long)r * C + c0;
                        TV a0 = whole ? TS.Load(aBase + o) : TS.LoadPartial(aBase + o, n);
                        TV b0 = TT.UsesB ? (whole ? TS.Load(bBase + o) : TS.LoadPartial(bBase + o, n)) : TS.Zero;
                        if (TT.Masked) b0 = BatchNormTraining.Masked<TS, TV>(TS.Fma(q, TS.Sub(a0, m), z), b0, lo, hi);
                        TT.Accumulate<TS, TV>(a0, b0, m, ref s0, ref t0);
                    }
                    TS.Store(lanes, TS.Add(s0, s1));
                    for (int l = 0; l < n; l++) out0[c0 + l] += lanes[l];
                    if (TT.TwoOutputs)
                    {
                        TS.Store(lanes + 16, TS.Add(t0, t1));
                        for (int l = 0; l < n; l++) out1[c0 + l] += lanes[16 + l];
                    }
                }
            }
        }
    }

    private interface ITerm
    {
        static abstract bool UsesB { get; }
        static abstract bool Centred { get; }
        static abstract bool TwoOutputs { get; }
        /// <summary>b is masked by the clamp of a's batch-norm pre-activation first.</summary>
        static virtual bool Masked => false;
        /// <summary>The clamped pre-activation (the batch norm's output) is also written to Args.Y (centred rows only).</summary>
        static virtual bool WritesOutput => false;
        static abstract void Accumulate<TS, TV>(TV a, TV b, TV m, ref TV s, ref TV t) where TS : unmanaged, ISimd<TV> where TV : unmanaged;
    }

    private readonly struct SumTerm : ITerm
    {
        public static bool UsesB => false;
        public static bool Centred => false;
        public static bool TwoOutputs => false;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Accumulate<TS, TV>(TV a, TV b, TV m, ref TV s, ref TV t) where TS : unmanaged, ISimd<TV> where TV : unmanaged =>
            s = TS.Add(s, a);
    }

    private readonly struct MaskedCenteredProductTerm : ITerm
    {
        public static bool UsesB => true;
        public static bool Centred => true;
        public static bool TwoOutputs => true;
        public static bool Masked => true;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Accumulate<TS, TV>(TV a, TV b, TV m, ref TV s, ref TV t) where TS : unmanaged, ISimd<TV> where TV : unmanaged =>
            CenteredProductTerm.Accumulate<TS, TV>(a, b, m, ref s, ref t);
    }

    private readonly struct NormalizingMaskedCenteredProductTerm : ITerm
    {
        public static bool UsesB => true;
        public static bool Centred => true;
        public static bool TwoOutputs => true;
        public static bool Masked => true;
        public static bool WritesOutput => true;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Accumulate<TS, TV>(TV a, TV b, TV m, ref TV s, ref TV t) where TS : unmanaged, ISimd<TV> where TV : unmanaged =>
            CenteredProductTerm.Accumulate<TS, TV>(a, b, m, ref s, ref t);
    }

    private readonly struct CenteredProductTerm : ITerm
    {
        public static bool UsesB => true;
        public static bool Centred => true;
        public static bool TwoOutputs => true;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Accumulate<TS, TV>(TV a, TV b, TV m, ref TV s, ref TV t) where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            s = TS.Add(s, b);
            t = TS.Fma(b, TS.Sub(a, m), t);
        }
    }
}
