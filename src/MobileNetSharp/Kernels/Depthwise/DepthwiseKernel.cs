using MobileNetSharp.Graph;
using System.Runtime.CompilerServices;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels.Depthwise;

/// <summary>Which row kernel the interior of a depthwise convolution uses.</summary>
internal enum DepthwiseShape { K3S1, K3S2, K5S1, K5S2, Generic, Multiplier }

/// <summary>
/// Depthwise convolution over NHWC, vectorized over channels. Each output row is split into the left
/// border, an interior where every tap is in bounds (four pixels at a time through a specialized
/// <see cref="IDepthwiseRow"/>, all channel blocks of those pixels before moving on so their inputs stay
/// in L1), the leftover interior pixels and the right border; border pixels and rows that touch the top
/// or bottom padding take the bounds-checked per-pixel path. Threads split the batch*OutH output rows.
/// A channel multiplier above 1 takes a scalar path (rare in MobileNets).
/// </summary>
internal static unsafe class DepthwiseKernel
{
    public static void Run(ref DepthwiseArgs args, DepthwiseShape shape, int batch, Workers workers)
    {
        args.Rows = batch * args.OutH;
        long work = (long)args.Rows * args.OutW * args.OutC * args.KH * args.KW;
        var context = new Context { Args = (DepthwiseArgs*)Unsafe.AsPointer(ref args), Shape = shape };
        if (args.Moments != null)
        {
            // One task per moments block (fixed by the shape: statistics independent of the thread count).
            int blocks = ChannelMoments.Blocks(args.Rows * args.OutW, args.OutC);
            float[]? stream = null;
            if (StreamingStore.Pays((long)args.Rows * args.OutW * args.OutC))
            {
                context.StreamFloats = ImageMergingStreamFloats(args.OutC, args.OutW);
                stream = System.Buffers.ArrayPool<float>.Shared.Rent(checked((int)(blocks * context.StreamFloats)));
            }
            try
            {
                fixed (float* ps = stream)
                {
                    context.Stream = ps;
                    if (workers.Count == 1 || blocks == 1 || work < (1 << 16)) for (int i = 0; i < blocks; i++) MomentsTask(&context, i);
                    else workers.For(blocks, &MomentsTask, &context);
                }
            }
            finally
            {
                if (stream != null) System.Buffers.ArrayPool<float>.Shared.Return(stream);
            }
            return;
        }
        args.Chunks = workers.Count == 1 || work < (1 << 16) ? 1 : Math.Min(args.Rows, workers.Count * 4);
        workers.For(args.Chunks, &Task, &context);
    }

    /// <summary>
    /// One moments block of whole output rows, in chunks of about <see cref="ChannelMoments.ChunkRows"/> pixels (at
    /// least one row): each chunk computed, then merged into the block's moments while it is in L1.
    /// </summary>
    private static void MomentsTask(void* context, int index)
    {
        Context* ctx = (Context*)context;
        DepthwiseArgs* g = ctx->Args;
        int c = g->OutC, pixels = g->Rows * g->OutW;
        var (p0, p1) = ChannelMoments.BlockRows(pixels, c, index, g->OutW);
        double* mean = g->Moments + (long)index * 2 * c, m2 = mean + c;
        int rowsPerChunk = ImageMergingChunkRows(c, g->OutW), end = p1 / g->OutW;
        float* stream = ctx->Stream == null ? null : ctx->Stream + index * ctx->StreamFloats;
        DepthwiseArgs local = *g; // with a stream, each chunk's Output points into this task's scratch
        var own = new Context { Args = &local, Shape = ctx->Shape };
        for (int row = p0 / g->OutW; row < end; row += rowsPerChunk)
        {
            int next = Math.Min(end, row + rowsPerChunk);
            long at = (long)row * g->OutW * c;
            if (stream != null) local.Output = stream - at;
            RunRows(&own, row, next);
            ChannelMoments.AddChunk(g->Isa, local.Output + at, (next - row) * g->OutW, c, mean, m2, row * g->OutW - p0);
            if (stream != null) StreamingStore.Copy(stream, g->Output + at, (long)(next - row) * g->OutW * c);
        }
    }

    /// <summary>
    /// One image (batch 1) on the caller's thread, in chunks of about <see cref="ChannelMoments.ChunkRows"/> pixels (at least
    /// an output row), each merged into the running (mean, m2) of a moments block, which already holds
    /// <paramref name="before"/> rows, right after it is computed, while it is in L1. The same chunks and merges, so the
    /// same bits, as computing the image and then merging its rows chunk by chunk; but those rows are read back from L1,
    /// not from L2 or beyond (a 28x28x96 image is 301 KB).
    /// </summary>
    /// <param name="stream">Null, or <see cref="ImageMergingStreamFloats"/> of scratch: each chunk is made there, merged, and
    /// copied to the output with non-temporal stores (<see cref="StreamingStore"/>), for outputs too large to stay in cache.</param>
    internal static void RunImageMerging(ref DepthwiseArgs args, DepthwiseShape shape, double* mean, double* m2, int before, float* stream = null)
    {
        args.Rows = args.OutH;
        args.Moments = null;
        float* output = args.Output;
        var context = new Context { Args = (DepthwiseArgs*)Unsafe.AsPointer(ref args), Shape = shape };
        int c = args.OutC, rowsPerChunk = ImageMergingChunkRows(c, args.OutW);
        for (int row = 0; row < args.OutH; row += rowsPerChunk)
        {
            int next = Math.Min(args.OutH, row + rowsPerChunk);
            long at = (long)row * args.OutW * c, floats = (long)(next - row) * args.OutW * c;
            if (stream != null) args.Output = stream - at; // the kernel addresses output rows from Output by row index
            RunRows(&context, row, next);
            ChannelMoments.AddChunk(args.Isa, args.Output + at, (next - row) * args.OutW, c, mean, m2, before + row * args.OutW);
            if (stream != null) StreamingStore.Copy(stream, output + at, floats);
        }
        args.Output = output;
    }

    /// <summary>Output rows per chunk of <see cref="RunImageMerging"/>: about <see cref="ChannelMoments.ChunkRows"/> pixels, at least one row.</summary>
    private static int ImageMergingChunkRows(int channels, int outW) => Math.Max(1, ChannelMoments.ChunkRows(channels) / outW);

    /// <summary>Floats of the <c>stream</c> scratch of <see cref="RunImageMerging"/>: one chunk of output rows.</summary>
    internal static long ImageMergingStreamFloats(int outC, int outW) => (long)ImageMergingChunkRows(outC, outW) * outW * outC;

    private struct Context
    {
        public DepthwiseArgs* Args;
        public DepthwiseShape Shape;
        /// <summary>Null, or [moments blocks][StreamFloats]: each moments task's chunk scratch for a streamed output.</summary>
        public float* Stream;
        public long StreamFloats;
    }

    private static void Task(void* context, int index)
    {
        Context* ctx = (Context*)context;
        DepthwiseArgs* g = ctx->Args;
        (int r0, int r1) = Workers.Split(g->Rows, g->Chunks, index);
        RunRows(ctx, r0, r1);
    }

    private static void RunRows(Context* ctx, int r0, int r1)
    {
        DepthwiseArgs* g = ctx->Args;
        if (ctx->Shape == DepthwiseShape.Multiplier)
        {
            MultiplierRows(g, r0, r1);
            return;
        }
        var body = new RowsBody { Args = g, Shape = ctx->Shape, Row0 = r0, Row1 = r1 };
        KernelDispatch.Run(g->Isa, g->Activation.Kind, ref body);
    }

    private struct RowsBody : IKernelBody
    {
        public DepthwiseArgs* Args;
        public DepthwiseShape Shape;
        public int Row0, Row1;

        public readonly void Invoke<TS, TV, TA>() where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
        {
            switch (Shape)
            {
                case DepthwiseShape.K3S1: Rows<TS, TV, TA, Row3S1>(Args, Row0, Row1); break;
                case DepthwiseShape.K3S2: Rows<TS, TV, TA, Row3S2>(Args, Row0, Row1); break;
                case DepthwiseShape.K5S1: Rows<TS, TV, TA, Row5S1>(Args, Row0, Row1); break;
                case DepthwiseShape.K5S2: Rows<TS, TV, TA, Row5S2>(Args, Row0, Row1); break;
                default: Rows<TS, TV, TA, RowGeneric>(Args, Row0, Row1); break;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows<TS, TV, TA, TR>(DepthwiseArgs* g, int row0, int row1)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp where TR : unmanaged, IDepthwiseRow
    {
        int c = g->InC;
        TV alpha = TS.Splat(g->Activation.Alpha), beta = TS.Splat(g->Activation.Beta);

        // Output columns whose whole window lies inside the input horizontally.
        int oxL = Math.Min((g->PadLeft + g->SW - 1) / g->SW, g->OutW);
        int span = g->InW - 1 - (g->KW - 1) * g->DW + g->PadLeft;
        int oxR = Math.Max(oxL, Math.Min(span < 0 ? 0 : span / g->SW + 1, g->OutW));

        // Every channel at once (c0..c1): splitting channels into L1-sized tiles was measured slower here (the
        // large maps are bound by L3 traffic, not by re-reading rows).
        int w = TS.Count, c0 = 0, c1 = c;
        for (int row = row0; row < row1; row++)
        {
            int n = row / g->OutH, oy = row % g->OutH;
            int iy0 = oy * g->SH - g->PadTop;
            // Kernel rows inside the input; rows touching the top/bottom padding simply run fewer of them,
            // so they keep the vectorized four-pixel interior path.
            (int kyA, int kyB) = TapRange(iy0, g->DH, g->KH, g->InH);

            for (int ox = 0; ox < oxL; ox++) Pixel<TS, TV, TA>(g, n, oy, ox, kyA, kyB, c0, c1, alpha, beta);
            int ox4 = oxL;
            if (kyB > kyA)
            {
                for (; ox4 + 4 <= oxR; ox4 += 4)
                {
                    float* p = g->Input + (((long)n * g->InH + iy0) * g->InW + ox4 * g->SW - g->PadLeft) * c;
                    long o = (((long)n * g->OutH + oy) * g->OutW + ox4) * c;
                    float* res = g->Residual == null ? null : g->Residual + o;
                    int cc = c0;
                    for (; cc + 2 * w <= c1; cc += 2 * w)
                        Block4x2<TS, TV, TA, TR>(g, p + cc, g->Output + o + cc, res == null ? null : res + cc, cc, kyA, kyB, alpha, beta);
                    for (; cc + w <= c1; cc += w)
                        Block4<TS, TV, TA, TR, AllLanes>(g, p + cc, g->Output + o + cc, res == null ? null : res + cc, cc, w, kyA, kyB, alpha, beta);
                    if (cc < c1)
                        Block4Tail<TS, TV, TA, TR>(g, p + cc, g->Output + o + cc, res == null ? null : res + cc, cc, c1 - cc, kyA, kyB, alpha, beta);
                    // Three interior columns left: the next (last) group ends at the last interior column and
                    // recomputes one pixel of this one, cheaper than three pixels down the per-pixel path (with
                    // one or two left the per-pixel path costs no more than a whole group).
                    if (oxR - ox4 == 7 && g->OverlapOk) ox4 = oxR - 8;
                }
            }
            for (int ox = ox4; ox < g->OutW; ox++) Pixel<TS, TV, TA>(g, n, oy, ox, kyA, kyB, c0, c1, alpha, beta);
        }
    }

    /// <summary>The taps k in [a, b) of a kernel with <paramref name="count"/> taps at <paramref name="dilation"/>
    /// whose input coordinate i0 + k*dilation lies in [0, size).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (int A, int B) TapRange(int i0, int dilation, int count, int size)
    {
        int a = i0 >= 0 ? 0 : (-i0 + dilation - 1) / dilation;
        int b = size - i0 <= 0 ? 0 : Math.Min(count, (size - i0 + dilation - 1) / dilation);
        return (Math.Min(a, b), b);
    }

    /// <summary>Four output pixels whose kernel columns are all inside the input, one channel block, kernel rows
    /// [kyA, kyB): no bounds checks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block4<TS, TV, TA, TR, TL>(DepthwiseArgs* g, float* p, float* o, float* res, int cc, int lanes, int kyA, int kyB, TV alpha, TV beta)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
        where TR : unmanaged, IDepthwiseRow where TL : unmanaged, ILanes
    {
        nint cs = g->InC, ws = g->CPad;
        nint rowStride = (nint)g->DH * g->InW * cs;
        float* wk = g->Weights + cc;
        TV a0 = TS.Load(g->Bias + cc), a1 = a0, a2 = a0, a3 = a0;
        for (int ky = kyA; ky < kyB; ky++)
            TR.Row4<TS, TV, TL>(p + ky * rowStride, cs, wk + ky * g->KW * ws, ws, lanes, in *g, ref a0, ref a1, ref a2, ref a3);
        if (res != null)
        {
            a0 = TS.Add(a0, TL.Load<TS, TV>(res, lanes));
            a1 = TS.Add(a1, TL.Load<TS, TV>(res + cs, lanes));
            a2 = TS.Add(a2, TL.Load<TS, TV>(res + 2 * cs, lanes));
            a3 = TS.Add(a3, TL.Load<TS, TV>(res + 3 * cs, lanes));
        }
        TL.Store<TS, TV>(o, TA.Apply<TS, TV>(a0, alpha, beta), lanes);
        TL.Store<TS, TV>(o + cs, TA.Apply<TS, TV>(a1, alpha, beta), lanes);
        TL.Store<TS, TV>(o + 2 * cs, TA.Apply<TS, TV>(a2, alpha, beta), lanes);
        TL.Store<TS, TV>(o + 3 * cs, TA.Apply<TS, TV>(a3, alpha, beta), lanes);
    }

    /// <summary>
    /// <see cref="Block4{TS, TV, TA, TR, TL}"/> for the last partial channel block (C not a multiple of the vector width).
    /// Not inlined: MobileNet channel counts are multiples of 8, so this is rarely called, and compiled (on first call)
    /// only then, instead of adding a fourth copy of the multiply-add body to every <see cref="Rows"/> instantiation
    /// (each instantiation costs 8-14 ms of JIT on a first run; see Runtime.KernelWarmup).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Block4Tail<TS, TV, TA, TR>(DepthwiseArgs* g, float* p, float* o, float* res, int cc, int lanes, int kyA, int kyB, TV alpha, TV beta)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp where TR : unmanaged, IDepthwiseRow =>
        Block4<TS, TV, TA, TR, FirstLanes>(g, p, o, res, cc, lanes, kyA, kyB, alpha, beta);

    /// <summary>Four interior output pixels, two full channel blocks: eight independent accumulator chains, enough to
    /// keep both FMA pipes busy through the FMA latency.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block4x2<TS, TV, TA, TR>(DepthwiseArgs* g, float* p, float* o, float* res, int cc, int kyA, int kyB, TV alpha, TV beta)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp where TR : unmanaged, IDepthwiseRow
    {
        nint cs = g->InC, ws = g->CPad, w = TS.Count;
        nint rowStride = (nint)g->DH * g->InW * cs;
        float* wk = g->Weights + cc;
        TV a0 = TS.Load(g->Bias + cc), a1 = a0, a2 = a0, a3 = a0;
        TV b0 = TS.Load(g->Bias + cc + w), b1 = b0, b2 = b0, b3 = b0;
        for (int ky = kyA; ky < kyB; ky++)
        {
            float* pr = p + ky * rowStride;
            float* wr = wk + ky * g->KW * ws;
            TR.Row4<TS, TV, AllLanes>(pr, cs, wr, ws, (int)w, in *g, ref a0, ref a1, ref a2, ref a3);
            TR.Row4<TS, TV, AllLanes>(pr + w, cs, wr + w, ws, (int)w, in *g, ref b0, ref b1, ref b2, ref b3);
        }
        if (res != null)
        {
            a0 = TS.Add(a0, TS.Load(res)); b0 = TS.Add(b0, TS.Load(res + w));
            a1 = TS.Add(a1, TS.Load(res + cs)); b1 = TS.Add(b1, TS.Load(res + cs + w));
            a2 = TS.Add(a2, TS.Load(res + 2 * cs)); b2 = TS.Add(b2, TS.Load(res + 2 * cs + w));
            a3 = TS.Add(a3, TS.Load(res + 3 * cs)); b3 = TS.Add(b3, TS.Load(res + 3 * cs + w));
        }
        TS.Store(o, TA.Apply<TS, TV>(a0, alpha, beta)); TS.Store(o + w, TA.Apply<TS, TV>(b0, alpha, beta));
        TS.Store(o + cs, TA.Apply<TS, TV>(a1, alpha, beta)); TS.Store(o + cs + w, TA.Apply<TS, TV>(b1, alpha, beta));
        TS.Store(o + 2 * cs, TA.Apply<TS, TV>(a2, alpha, beta)); TS.Store(o + 2 * cs + w, TA.Apply<TS, TV>(b2, alpha, beta));
        TS.Store(o + 3 * cs, TA.Apply<TS, TV>(a3, alpha, beta)); TS.Store(o + 3 * cs + w, TA.Apply<TS, TV>(b3, alpha, beta));
    }

    /// <summary>
    /// One output pixel (a border or leftover column), every channel. The taps inside the input are worked
    /// out once per pixel (kernel rows [kyA, kyB), columns [kxA, kxB)); the channel loop then runs the same
    /// branch-free vector code as the interior, four channel blocks at a time so the FMA chains overlap.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Pixel<TS, TV, TA>(DepthwiseArgs* g, int n, int oy, int ox, int kyA, int kyB, int c0, int c1, TV alpha, TV beta)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
    {
        int w = TS.Count, c = g->InC;
        int iy0 = oy * g->SH - g->PadTop, ix0 = ox * g->SW - g->PadLeft;
        (int kxA, int kxB) = TapRange(ix0, g->DW, g->KW, g->InW);
        if (kxB <= kxA) kyB = kyA; // the window misses the input: bias (+ residual) only
        nint cs = c, ws = g->CPad;
        nint tapX = g->DW * cs, tapY = (nint)g->DH * g->InW * cs;
        // First in-range tap of channel 0.
        float* x0 = g->Input + (((long)n * g->InH + iy0 + kyA * g->DH) * g->InW + ix0 + kxA * g->DW) * c;
        float* w0 = g->Weights + (kyA * g->KW + kxA) * ws;
        nint wRow = g->KW * ws;
        int rows = kyB - kyA, cols = kxB - kxA;
        long o = (((long)n * g->OutH + oy) * g->OutW + ox) * c;
        float* y = g->Output + o;
        float* r = g->Residual == null ? null : g->Residual + o;

        int cc = c0;
        for (; cc + 4 * w <= c1; cc += 4 * w)
        {
            TV a0 = TS.Load(g->Bias + cc), a1 = TS.Load(g->Bias + cc + w), a2 = TS.Load(g->Bias + cc + 2 * w), a3 = TS.Load(g->Bias + cc + 3 * w);
            float* xr = x0 + cc;
            float* wr = w0 + cc;
            for (int ky = 0; ky < rows; ky++, xr += tapY, wr += wRow)
            {
                float* xp = xr;
                float* wp = wr;
                for (int kx = 0; kx < cols; kx++, xp += tapX, wp += ws)
                {
                    a0 = TS.Fma(TS.Load(xp), TS.Load(wp), a0);
                    a1 = TS.Fma(TS.Load(xp + w), TS.Load(wp + w), a1);
                    a2 = TS.Fma(TS.Load(xp + 2 * w), TS.Load(wp + 2 * w), a2);
                    a3 = TS.Fma(TS.Load(xp + 3 * w), TS.Load(wp + 3 * w), a3);
                }
            }
            PixelStore<TS, TV, TA, AllLanes>(y + cc, r == null ? null : r + cc, a0, w, alpha, beta);
            PixelStore<TS, TV, TA, AllLanes>(y + cc + w, r == null ? null : r + cc + w, a1, w, alpha, beta);
            PixelStore<TS, TV, TA, AllLanes>(y + cc + 2 * w, r == null ? null : r + cc + 2 * w, a2, w, alpha, beta);
            PixelStore<TS, TV, TA, AllLanes>(y + cc + 3 * w, r == null ? null : r + cc + 3 * w, a3, w, alpha, beta);
        }
        for (; cc + w <= c1; cc += w) PixelBlock<TS, TV, TA, AllLanes>(g, x0 + cc, w0 + cc, y + cc, r == null ? null : r + cc, cc, w, rows, cols, tapX, tapY, wRow, alpha, beta);
        if (cc < c1) PixelBlock<TS, TV, TA, FirstLanes>(g, x0 + cc, w0 + cc, y + cc, r == null ? null : r + cc, cc, c1 - cc, rows, cols, tapX, tapY, wRow, alpha, beta);
    }

    /// <summary>One channel block of a border pixel, two accumulators (alternate kernel rows).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PixelBlock<TS, TV, TA, TL>(DepthwiseArgs* g, float* x, float* wt, float* y, float* r, int cc, int lanes,
        int rows, int cols, nint tapX, nint tapY, nint wRow, TV alpha, TV beta)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp where TL : unmanaged, ILanes
    {
        nint ws = g->CPad;
        TV a0 = TS.Load(g->Bias + cc), a1 = TS.Zero;
        int ky = 0;
        for (; ky + 2 <= rows; ky += 2, x += 2 * tapY, wt += 2 * wRow)
        {
            float* xp = x;
            float* wp = wt;
            for (int kx = 0; kx < cols; kx++, xp += tapX, wp += ws)
            {
                a0 = TS.Fma(TL.Load<TS, TV>(xp, lanes), TS.Load(wp), a0);
                a1 = TS.Fma(TL.Load<TS, TV>(xp + tapY, lanes), TS.Load(wp + wRow), a1);
            }
        }
        if (ky < rows)
        {
            for (int kx = 0; kx < cols; kx++, x += tapX, wt += ws) a0 = TS.Fma(TL.Load<TS, TV>(x, lanes), TS.Load(wt), a0);
        }
        PixelStore<TS, TV, TA, TL>(y, r, TS.Add(a0, a1), lanes, alpha, beta);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PixelStore<TS, TV, TA, TL>(float* y, float* r, TV acc, int lanes, TV alpha, TV beta)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp where TL : unmanaged, ILanes
    {
        if (r != null) acc = TS.Add(acc, TL.Load<TS, TV>(r, lanes));
        TL.Store<TS, TV>(y, TA.Apply<TS, TV>(acc, alpha, beta), lanes);
    }

    /// <summary>Channel multiplier &gt; 1: output channel oc reads input channel oc / multiplier. Scalar.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MultiplierRows(DepthwiseArgs* g, int row0, int row1)
    {
        Activation act = g->Activation;
        int m = g->Multiplier;
        for (int row = row0; row < row1; row++)
        {
            int n = row / g->OutH, oy = row % g->OutH;
            float* image = g->Input + (long)n * g->InH * g->InW * g->InC;
            for (int ox = 0; ox < g->OutW; ox++)
            {
                long o = ((long)row * g->OutW + ox) * g->OutC;
                for (int oc = 0; oc < g->OutC; oc++)
                {
                    float acc = g->Bias[oc];
                    for (int ky = 0; ky < g->KH; ky++)
                    {
                        int iy = oy * g->SH - g->PadTop + ky * g->DH;
                        if ((uint)iy >= (uint)g->InH) continue;
                        for (int kx = 0; kx < g->KW; kx++)
                        {
                            int ix = ox * g->SW - g->PadLeft + kx * g->DW;
                            if ((uint)ix >= (uint)g->InW) continue;
                            acc += image[((long)iy * g->InW + ix) * g->InC + oc / m] * g->Weights[(ky * g->KW + kx) * g->CPad + oc];
                        }
                    }
                    if (g->Residual != null) acc += g->Residual[o + oc];
                    g->Output[o + oc] = act.Apply(acc);
                }
            }
        }
    }
}
