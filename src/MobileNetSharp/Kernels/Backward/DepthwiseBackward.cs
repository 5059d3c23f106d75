using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels;

/// <summary>
/// Gradients of a depthwise convolution (groups = channels, one filter per channel) on NHWC tensors:
/// any kernel size, stride, dilation and padding, any channel count, vectorized over channels.
/// Weights are ONNX OIHW [C, 1, KH, KW]. Gradients are written, not accumulated.
/// <para>
/// dX at stride 1 (every pad at most (K-1)*D) is the forward depthwise convolution of dy with the spatially
/// flipped kernel, so it runs through the register-tiled forward kernel. Otherwise (stride 2, ...) dX is
/// gathered rather than scattered: each input pixel sums dy · w over the output pixels whose window covers it,
/// so a task that owns a block of input rows writes only those rows (no two threads touch one element, and
/// nothing needs zeroing first).
/// </para>
/// <para>
/// dW and dB reduce over every output pixel: the output rows are cut into a fixed number of blocks
/// (independent of the thread count, so results do not depend on it), each block sums into its own
/// [taps + 1, C] partial, and the partials are added in block order. For 3x3 kernels the nine tap sums and
/// the bias sum of a channel vector stay in registers across a whole output row.
/// </para>
/// <para>
/// Measured (bench `dwbackward`, the 3x3 layers of the width-0.5 MobileNetV2 on 28x28 inputs, batch 64, one
/// thread): both gradients now cost about the forward convolution of the same layer (dX 0.6-1.2x, dW
/// 0.7-1.3x), from 1.3-2x and 2.3-4x before.
/// </para>
/// </summary>
public static unsafe partial class DepthwiseBackward
{
    /// <summary>Row blocks for the weight gradient; fixed so that 1 and N threads give identical sums.</summary>
    private const int WeightBlocks = 8;

    /// <summary>dx [N, H, W, C] from dy [N, OH, OW, C] and w [C, 1, KH, KW].</summary>
    public static void InputGradient(in Conv2dGeometry g, ReadOnlySpan<float> dy, ReadOnlySpan<float> w, Span<float> dx, Workers? workers = null, IsaLevel? isa = null)
    {
        Check(g);
        if (dy.Length < g.OutputLength || w.Length < g.WeightLength || dx.Length < g.InputLength)
            throw new ArgumentException($"Depthwise backward: buffers dy {dy.Length}, w {w.Length}, dx {dx.Length} smaller than {g.OutputLength}, {g.WeightLength}, {g.InputLength}.");
        workers ??= Workers.Single;
        if (TransposedGeometry(g) is { } transposed)
        {
            InputGradientAsForward(g, transposed, dy, w, dx, workers, Isa.Resolve(isa));
            return;
        }
        int taps = g.KernelH * g.KernelW;
        var (packed, colTaps) = GatherTables(g, w);
        fixed (float* pdy = dy, pw = packed, pdx = dx)
        fixed (int* pct = colTaps)
        {
            var args = new Args { G = g, Dy = pdy, W = pw, Dx = pdx, ColTaps = pct, Isa = Isa.Resolve(isa) };
            int rows = g.Batch * g.InH;
            args.Blocks = workers.Count == 1 || g.InputLength * taps < (1 << 15) ? 1 : Math.Min(rows, workers.Count * 4);
            args.Rows = rows;
            workers.For(args.Blocks, &InputTask, &args);
        }
    }

    /// <summary>The gather's weights as [tap][C] (a whole channel vector per tap) and, per input column, the kernel columns kx
    /// whose window covers it and the output column ox they come from (count, then (kx, ox) pairs): the same for every
    /// row, so the inner loops do no division.</summary>
    private static (float[] Packed, int[] ColTaps) GatherTables(in Conv2dGeometry g, ReadOnlySpan<float> w)
    {
        int taps = g.KernelH * g.KernelW;
        var packed = new float[taps * g.InC];
        for (int c = 0; c < g.InC; c++)
            for (int t = 0; t < taps; t++) packed[t * g.InC + c] = w[c * taps + t];
        var colTaps = new int[g.InW * (1 + 2 * g.KernelW)];
        for (int ix = 0; ix < g.InW; ix++)
        {
            int count = 0, at = ix * (1 + 2 * g.KernelW);
            for (int kx = 0; kx < g.KernelW; kx++)
            {
                int tx = ix + g.PadLeft - kx * g.DilationW;
                if (tx < 0 || tx % g.StrideW != 0 || tx / g.StrideW >= g.OutW) continue;
                colTaps[at + 1 + 2 * count] = kx;
                colTaps[at + 2 + 2 * count] = tx / g.StrideW;
                count++;
            }
            colTaps[at] = count;
        }
        return (packed, colTaps);
    }

    /// <summary>
    /// At stride 1, dx[iy, ix] = sum over taps of dy[iy + PT - ky*DH, ix + PL - kx*DW] * w[ky, kx]: a forward
    /// depthwise convolution of dy with the spatially flipped kernel and pads (K-1)*D - P on each side, which
    /// the (fast, register-tiled) forward kernel computes. Null when a pad exceeds (K-1)*D (the transposed pad
    /// would be negative, i.e. a crop): those take the gather.
    /// </summary>
    internal static Conv2dGeometry? TransposedGeometry(in Conv2dGeometry g)
    {
        if (g.StrideH != 1 || g.StrideW != 1) return null;
        int eh = (g.KernelH - 1) * g.DilationH, ew = (g.KernelW - 1) * g.DilationW;
        if (g.PadTop > eh || g.PadBottom > eh || g.PadLeft > ew || g.PadRight > ew) return null;
        var t = new Conv2dGeometry(g.Batch, g.OutH, g.OutW, g.InC, g.InC, g.KernelH, g.KernelW, 1, 1, g.DilationH, g.DilationW,
            eh - g.PadTop, ew - g.PadLeft, eh - g.PadBottom, ew - g.PadRight, g.InC);
        return t.OutH == g.InH && t.OutW == g.InW ? t : null;
    }

    private static void InputGradientAsForward(in Conv2dGeometry g, in Conv2dGeometry t, ReadOnlySpan<float> dy, ReadOnlySpan<float> w, Span<float> dx, Workers workers, IsaLevel isa)
    {
        int taps = g.KernelH * g.KernelW;
        var flipped = new float[g.WeightLength];
        for (int c = 0; c < g.InC; c++)
            for (int i = 0; i < taps; i++) flipped[c * taps + i] = w[c * taps + taps - 1 - i];
        var conv = new Depthwise.DepthwiseConvolution(t, flipped, [], isa);
        var scratch = conv.ScratchLength(g.Batch) > 0 ? new float[conv.ScratchLength(g.Batch)] : null;
        fixed (float* pdy = dy, pdx = dx, ps = scratch)
            conv.Run(g.Batch, pdy, pdx, null, Graph.Activation.None, workers, ps);
    }

    /// <summary>dw [C, 1, KH, KW] and db [C] (empty to skip) from x [N, H, W, C] and dy [N, OH, OW, C].</summary>
    public static void WeightGradient(in Conv2dGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dw, Span<float> db, Workers? workers = null, IsaLevel? isa = null)
    {
        Check(g);
        if (x.Length < g.InputLength || dy.Length < g.OutputLength || dw.Length < g.WeightLength || (!db.IsEmpty && db.Length < g.InC))
            throw new ArgumentException($"Depthwise backward: buffers x {x.Length}, dy {dy.Length}, dw {dw.Length}, db {db.Length} too small.");
        workers ??= Workers.Single;
        int taps = g.KernelH * g.KernelW, c = g.InC, rows = g.Batch * g.OutH;
        int blocks = Math.Min(rows, WeightBlocks);
        // Pooled scratch (the partials reach the large-object heap at a few hundred channels): cleared, since
        // the blocks accumulate into their partial.
        int partialLength = checked(blocks * (taps + 1) * c), zeroLength = checked(g.InW * c);
        float[] partial = System.Buffers.ArrayPool<float>.Shared.Rent(partialLength);
        // A zero input row: what the 3x3 kernel reads for kernel rows and columns that fall in the padding.
        float[] zero = System.Buffers.ArrayPool<float>.Shared.Rent(zeroLength);
        try
        {
            partial.AsSpan(0, partialLength).Clear();
            zero.AsSpan(0, zeroLength).Clear();
            fixed (float* px = x, pdy = dy, pp = partial, pz = zero)
            {
                var args = new Args { G = g, X = px, Dy = pdy, Partial = pp, Zero = pz, Isa = Isa.Resolve(isa), Blocks = blocks, Rows = rows };
                if (workers.Count == 1 || g.OutputLength * taps < (1 << 15)) for (int b = 0; b < blocks; b++) WeightTask(&args, b);
                else workers.For(blocks, &WeightTask, &args);
            }
            SumPartials(partial, blocks, taps, c, dw, db);
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(partial);
            System.Buffers.ArrayPool<float>.Shared.Return(zero);
        }
    }

    /// <summary>
    /// Sums the [tap + 1][C] partials in block order (element-wise, so vectorizing it changes no result) and writes the
    /// taps as OIHW dw [C][tap] and the last row as db (empty to skip).
    /// </summary>
    private static void SumPartials(float[] partial, int blocks, int taps, int c, Span<float> dw, Span<float> db)
    {
        var sum = partial.AsSpan(0, (taps + 1) * c);
        for (int b = 1; b < blocks; b++)
            System.Numerics.Tensors.TensorPrimitives.Add(sum, partial.AsSpan(b * (taps + 1) * c, (taps + 1) * c), sum);
        for (int ch = 0; ch < c; ch++)
            for (int t = 0; t < taps; t++) dw[ch * taps + t] = sum[t * c + ch];
        if (!db.IsEmpty) sum.Slice(taps * c, c).CopyTo(db);
    }

    private static void Check(in Conv2dGeometry g)
    {
        g.Validate();
        if (g.Groups != g.InC || g.OutC != g.InC)
            throw new ArgumentException($"Depthwise backward takes one filter per channel (groups = in = out channels), got groups {g.Groups}, {g.InC} -> {g.OutC}; use ConvBackward.");
    }

    private struct Args
    {
        public Conv2dGeometry G;
        public float* X, Dy, W, Dx, Partial, Zero;
        public int* ColTaps; // per input column: count, then (kx, ox) pairs
        public int Blocks, Rows;
        public IsaLevel Isa;
    }

    private static void InputTask(void* context, int index)
    {
        var a = (Args*)context;
        var (r0, r1) = Workers.Split(a->Rows, a->Blocks, index);
        var body = new InputBody { A = a, Row0 = r0, Row1 = r1 };
        KernelDispatch.Run(a->Isa, ref body);
    }

    private static void WeightTask(void* context, int index)
    {
        var a = (Args*)context;
        var (r0, r1) = Workers.Split(a->Rows, a->Blocks, index);
        float* output = a->Partial + (long)index * (a->G.KernelH * a->G.KernelW + 1) * a->G.InC;
        if (a->G.KernelH == 3 && a->G.KernelW == 3)
        {
            var body = new Weight3x3Body { A = a, Row0 = r0, Row1 = r1, Out = output };
            KernelDispatch.Run(a->Isa, ref body);
        }
        else
        {
            var body = new WeightBody { A = a, Row0 = r0, Row1 = r1, Out = output };
            KernelDispatch.Run(a->Isa, ref body);
        }
    }

    /// <summary>
    /// dx by gather, one input row at a time: per input pixel the (dy, w) pointer pairs of the taps that cover
    /// it are worked out once, then the channel loop runs two vectors at a time over them, so the inner loop
    /// is loads and FMAs only and walks dy, w and dx contiguously.
    /// </summary>
    private struct InputBody : IWidthBody
    {
        public Args* A;
        public int Row0, Row1;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            // Locals, not fields: stores through float* could alias Args, so the JIT would reload fields.
            var g = A->G;
            int C = g.InC, OH = g.OutH, OW = g.OutW, KH = g.KernelH, KW = g.KernelW, InH = g.InH, InW = g.InW;
            int SH = g.StrideH, DH = g.DilationH, PT = g.PadTop, W = TS.Count, full = C - C % W, tail = C - full;
            float* dyBase = A->Dy, wBase = A->W, dxBase = A->Dx;
            int* colTaps = A->ColTaps;
            int* rowKy = stackalloc int[KH];
            float** rowDy = stackalloc float*[KH];
            float** dp = stackalloc float*[KH * KW];
            float** wp = stackalloc float*[KH * KW];
            for (int row = Row0; row < Row1; row++)
            {
                int n = row / InH, iy = row % InH, nky = 0;
                for (int ky = 0; ky < KH; ky++)
                {
                    int ty = iy + PT - ky * DH;
                    if (ty < 0 || ty % SH != 0 || ty / SH >= OH) continue;
                    rowKy[nky] = ky * KW;
                    rowDy[nky++] = dyBase + ((long)n * OH + ty / SH) * OW * C;
                }
                float* dxp = dxBase + ((long)n * InH + iy) * InW * C;
                for (int ix = 0; ix < InW; ix++, dxp += C)
                {
                    int* t = colTaps + ix * (1 + 2 * KW);
                    int nkx = t[0], nt = 0;
                    for (int a = 0; a < nky; a++)
                        for (int b = 0; b < nkx; b++, nt++)
                        {
                            dp[nt] = rowDy[a] + (long)t[2 + 2 * b] * C;
                            wp[nt] = wBase + (rowKy[a] + t[1 + 2 * b]) * C;
                        }
                    if (nt == 0)
                    {
                        new Span<float>(dxp, C).Clear();
                        continue;
                    }
                    int c0 = 0;
                    if (nt == 1)
                    {
                        float* d0 = dp[0], w0 = wp[0];
                        for (; c0 + 2 * W <= full; c0 += 2 * W)
                        {
                            TS.Store(dxp + c0, TS.Mul(TS.Load(d0 + c0), TS.Load(w0 + c0)));
                            TS.Store(dxp + c0 + W, TS.Mul(TS.Load(d0 + c0 + W), TS.Load(w0 + c0 + W)));
                        }
                    }
                    else if (nt == 2)
                    {
                        float* d0 = dp[0], w0 = wp[0], d1 = dp[1], w1 = wp[1];
                        for (; c0 + 2 * W <= full; c0 += 2 * W)
                        {
                            TS.Store(dxp + c0, TS.Fma(TS.Load(d1 + c0), TS.Load(w1 + c0), TS.Mul(TS.Load(d0 + c0), TS.Load(w0 + c0))));
                            TS.Store(dxp + c0 + W, TS.Fma(TS.Load(d1 + c0 + W), TS.Load(w1 + c0 + W), TS.Mul(TS.Load(d0 + c0 + W), TS.Load(w0 + c0 + W))));
                        }
                    }
                    else if (nt == 4)
                    {
                        float* d0 = dp[0], w0 = wp[0], d1 = dp[1], w1 = wp[1], d2 = dp[2], w2 = wp[2], d3 = dp[3], w3 = wp[3];
                        for (; c0 + 2 * W <= full; c0 += 2 * W)
                        {
                            TV a0 = TS.Mul(TS.Load(d0 + c0), TS.Load(w0 + c0)), b0 = TS.Mul(TS.Load(d0 + c0 + W), TS.Load(w0 + c0 + W));
                            TV a1 = TS.Mul(TS.Load(d1 + c0), TS.Load(w1 + c0)), b1 = TS.Mul(TS.Load(d1 + c0 + W), TS.Load(w1 + c0 + W));
                            a0 = TS.Fma(TS.Load(d2 + c0), TS.Load(w2 + c0), a0); b0 = TS.Fma(TS.Load(d2 + c0 + W), TS.Load(w2 + c0 + W), b0);
                            a1 = TS.Fma(TS.Load(d3 + c0), TS.Load(w3 + c0), a1); b1 = TS.Fma(TS.Load(d3 + c0 + W), TS.Load(w3 + c0 + W), b1);
                            TS.Store(dxp + c0, TS.Add(a0, a1));
                            TS.Store(dxp + c0 + W, TS.Add(b0, b1));
                        }
                    }
                    else
                    {
                        // Two channel vectors at a time: two independent FMA chains over the taps.
                        for (; c0 + 2 * W <= full; c0 += 2 * W)
                        {
                            TV acc = TS.Zero, acc1 = TS.Zero;
                            for (int k = 0; k < nt; k++)
                            {
                                float* d = dp[k] + c0, ww = wp[k] + c0;
                                acc = TS.Fma(TS.Load(d), TS.Load(ww), acc);
                                acc1 = TS.Fma(TS.Load(d + W), TS.Load(ww + W), acc1);
                            }
                            TS.Store(dxp + c0, acc);
                            TS.Store(dxp + c0 + W, acc1);
                        }
                    }
                    for (; c0 < full; c0 += W)
                    {
                        TV acc = TS.Zero;
                        for (int k = 0; k < nt; k++) acc = TS.Fma(TS.Load(dp[k] + c0), TS.Load(wp[k] + c0), acc);
                        TS.Store(dxp + c0, acc);
                    }
                    if (tail > 0)
                    {
                        TV acc = TS.Zero;
                        for (int k = 0; k < nt; k++) acc = TS.Fma(TS.LoadPartial(dp[k] + full, tail), TS.LoadPartial(wp[k] + full, tail), acc);
                        TS.StorePartial(dxp + full, acc, tail);
                    }
                }
            }
        }
    }

    /// <summary>
    /// dW and dB of a 3x3 kernel (any stride, dilation and padding) for a block of output rows: per output row
    /// and channel vector, the nine tap sums and the bias sum stay in registers while the row is walked (one dy
    /// load and nine x loads per pixel), and are added into the block's partial once per row. Kernel rows in the
    /// top/bottom padding read a zero row; border columns pick the zero row for taps in the left/right padding.
    /// </summary>
    private struct Weight3x3Body : IWidthBody
    {
        public Args* A;
        public int Row0, Row1;
        public float* Out; // [10][C], zeroed

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            var g = A->G; // locals: stores through float* could alias Args
            int C = g.InC, OW = g.OutW, OH = g.OutH, InH = g.InH, InW = g.InW;
            int SH = g.StrideH, SW = g.StrideW, DH = g.DilationH, DW = g.DilationW, PT = g.PadTop, PL = g.PadLeft;
            int W = TS.Count, full = C - C % W;
            float* xBase = A->X, dyBase = A->Dy, output = Out, zero = A->Zero;
            // Output columns whose three taps all lie inside the input.
            int oxL = Math.Min((PL + SW - 1) / SW, OW);
            int span = InW - 1 - 2 * DW + PL;
            int oxR = Math.Max(oxL, Math.Min(span < 0 ? 0 : span / SW + 1, OW));
            var geo = new RowGeometry { C = C, OW = OW, InW = InW, SW = SW, DW = DW, PL = PL, OxL = oxL, OxR = oxR };
            for (int row = Row0; row < Row1; row++)
            {
                int n = row / OH, oy = row % OH;
                float* dyRow = dyBase + (long)row * OW * C;
                float* r0 = XRow(xBase, zero, n, oy * SH - PT, InH, InW, C);
                float* r1 = XRow(xBase, zero, n, oy * SH - PT + DH, InH, InW, C);
                float* r2 = XRow(xBase, zero, n, oy * SH - PT + 2 * DH, InH, InW, C);
                // What the next output row reads that this one does not: the next dy row and the input rows
                // below this window's last (SH of them). Each channel vector's pass over the row touches only a
                // slice of every pixel's cache lines, a strided walk the hardware prefetch follows poorly, so the
                // passes prefetch those rows (a share each) while this row is computed.
                if (row + 1 < Row1)
                {
                    int nextLast = oy * SH - PT + 2 * DH + 1, rowsAhead = Math.Min(SH, InH - nextLast);
                    geo.PfX = rowsAhead > 0 && nextLast >= 0 && oy + 1 < OH ? xBase + ((long)n * InH + nextLast) * InW * C : null;
                    geo.PfXLines = geo.PfX == null ? 0 : rowsAhead * InW * C / 16;
                    geo.PfDy = dyRow + (long)OW * C;
                    geo.PfDyLines = OW * C / 16;
                }
                else geo.PfXLines = geo.PfDyLines = 0;
                if (full > 0) Row<TS, TV, AllLanes>(geo, r0, r1, r2, zero, dyRow, output, 0, full, W);
                if (full < C) Row<TS, TV, FirstLanes>(geo, r0, r1, r2, zero, dyRow, output, full, C, C - full);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float* XRow(float* x, float* zero, int n, int iy, int inH, int inW, int c) =>
            (uint)iy < (uint)inH ? x + ((long)n * inH + iy) * inW * c : zero;
    }

    private struct RowGeometry
    {
        public int C, OW, InW, SW, DW, PL, OxL, OxR;
        public float* PfX, PfDy; // rows to prefetch (64-byte lines) while this row is computed
        public int PfXLines, PfDyLines;
    }

    /// <summary>One output row of the 3x3 weight gradient for the channel vectors [c0, c1) (pointers at channel 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Row<TS, TV, TL>(in RowGeometry geo, float* x0, float* x1, float* x2, float* zero0, float* dy0, float* out0, int cBegin, int cEnd, int lanes)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TL : unmanaged, ILanes
    {
        nint C = geo.C, step = (nint)geo.SW * geo.C, tap = (nint)geo.DW * geo.C;
        int OW = geo.OW, oxL = geo.OxL, oxR = geo.OxR, InW = geo.InW, SW = geo.SW, DW = geo.DW, PL = geo.PL;
        for (int c0 = cBegin; c0 < cEnd; c0 += TS.Count)
        {
            float* r0 = x0 + c0, r1 = x1 + c0, r2 = x2 + c0, zero = zero0 + c0, dy = dy0 + c0, o = out0 + c0;
            if (Sse.IsSupported && (geo.PfXLines | geo.PfDyLines) != 0)
            {
                // This pass's share of the next row's lines: [c0 / C, (c0 + W) / C) of each region.
                int xa = (int)((long)geo.PfXLines * c0 / C), xb = (int)((long)geo.PfXLines * Math.Min(c0 + TS.Count, (int)C) / C);
                for (int l = xa; l < xb; l++) Sse.Prefetch0(geo.PfX + 16 * l);
                int da = (int)((long)geo.PfDyLines * c0 / C), db = (int)((long)geo.PfDyLines * Math.Min(c0 + TS.Count, (int)C) / C);
                for (int l = da; l < db; l++) Sse.Prefetch0(geo.PfDy + 16 * l);
            }
            TV a00 = TL.Load<TS, TV>(o, lanes), a01 = TL.Load<TS, TV>(o + C, lanes), a02 = TL.Load<TS, TV>(o + 2 * C, lanes);
            TV a10 = TL.Load<TS, TV>(o + 3 * C, lanes), a11 = TL.Load<TS, TV>(o + 4 * C, lanes), a12 = TL.Load<TS, TV>(o + 5 * C, lanes);
            TV a20 = TL.Load<TS, TV>(o + 6 * C, lanes), a21 = TL.Load<TS, TV>(o + 7 * C, lanes), a22 = TL.Load<TS, TV>(o + 8 * C, lanes);
            TV ab = TL.Load<TS, TV>(o + 9 * C, lanes);
            // Interior: every tap in bounds, no checks.
            {
                nint xo = ((nint)oxL * SW - PL) * C;
                float* d = dy + oxL * C;
                for (int ox = oxL; ox < oxR; ox++, d += C, xo += step)
                {
                    TV dv = TL.Load<TS, TV>(d, lanes);
                    ab = TS.Add(ab, dv);
                    float* p0 = r0 + xo, p1 = r1 + xo, p2 = r2 + xo;
                    a00 = TS.Fma(dv, TL.Load<TS, TV>(p0, lanes), a00);
                    a01 = TS.Fma(dv, TL.Load<TS, TV>(p0 + tap, lanes), a01);
                    a02 = TS.Fma(dv, TL.Load<TS, TV>(p0 + 2 * tap, lanes), a02);
                    a10 = TS.Fma(dv, TL.Load<TS, TV>(p1, lanes), a10);
                    a11 = TS.Fma(dv, TL.Load<TS, TV>(p1 + tap, lanes), a11);
                    a12 = TS.Fma(dv, TL.Load<TS, TV>(p1 + 2 * tap, lanes), a12);
                    a20 = TS.Fma(dv, TL.Load<TS, TV>(p2, lanes), a20);
                    a21 = TS.Fma(dv, TL.Load<TS, TV>(p2 + tap, lanes), a21);
                    a22 = TS.Fma(dv, TL.Load<TS, TV>(p2 + 2 * tap, lanes), a22);
                }
            }
            // Border columns: taps in the left/right padding read the zero row.
            for (int ox = 0; ox < OW; ox++)
            {
                if (ox == oxL) { ox = oxR; if (ox >= OW) break; }
                TV dv = TL.Load<TS, TV>(dy + ox * C, lanes);
                ab = TS.Add(ab, dv);
                int ix = ox * SW - PL;
                bool v0 = (uint)ix < (uint)InW, v1 = (uint)(ix + DW) < (uint)InW, v2 = (uint)(ix + 2 * DW) < (uint)InW;
                nint o0 = (nint)ix * C, o1 = o0 + tap, o2 = o1 + tap;
                a00 = TS.Fma(dv, TL.Load<TS, TV>(v0 ? r0 + o0 : zero, lanes), a00);
                a01 = TS.Fma(dv, TL.Load<TS, TV>(v1 ? r0 + o1 : zero, lanes), a01);
                a02 = TS.Fma(dv, TL.Load<TS, TV>(v2 ? r0 + o2 : zero, lanes), a02);
                a10 = TS.Fma(dv, TL.Load<TS, TV>(v0 ? r1 + o0 : zero, lanes), a10);
                a11 = TS.Fma(dv, TL.Load<TS, TV>(v1 ? r1 + o1 : zero, lanes), a11);
                a12 = TS.Fma(dv, TL.Load<TS, TV>(v2 ? r1 + o2 : zero, lanes), a12);
                a20 = TS.Fma(dv, TL.Load<TS, TV>(v0 ? r2 + o0 : zero, lanes), a20);
                a21 = TS.Fma(dv, TL.Load<TS, TV>(v1 ? r2 + o1 : zero, lanes), a21);
                a22 = TS.Fma(dv, TL.Load<TS, TV>(v2 ? r2 + o2 : zero, lanes), a22);
            }
            TL.Store<TS, TV>(o, a00, lanes); TL.Store<TS, TV>(o + C, a01, lanes); TL.Store<TS, TV>(o + 2 * C, a02, lanes);
            TL.Store<TS, TV>(o + 3 * C, a10, lanes); TL.Store<TS, TV>(o + 4 * C, a11, lanes); TL.Store<TS, TV>(o + 5 * C, a12, lanes);
            TL.Store<TS, TV>(o + 6 * C, a20, lanes); TL.Store<TS, TV>(o + 7 * C, a21, lanes); TL.Store<TS, TV>(o + 8 * C, a22, lanes);
            TL.Store<TS, TV>(o + 9 * C, ab, lanes);
        }
    }

    /// <summary>dW and dB of any other kernel size: per output row (all channel vectors while its x rows are
    /// in cache), per tap a walk of the row with four FMA chains.</summary>
    private struct WeightBody : IWidthBody
    {
        public Args* A;
        public int Row0, Row1;
        public float* Out; // [taps + 1][C], zeroed

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            var g = A->G; // locals: stores through float* could alias Args
            int C = g.InC, OW = g.OutW, OH = g.OutH, KH = g.KernelH, KW = g.KernelW, InH = g.InH, InW = g.InW, taps = KH * KW;
            int SH = g.StrideH, SW = g.StrideW, DH = g.DilationH, DW = g.DilationW, PT = g.PadTop, PL = g.PadLeft;
            float* xBase = A->X, dyBase = A->Dy, output = Out;
            for (int row = Row0; row < Row1; row++)
            {
                int n = row / OH, oy = row % OH;
                // As in the 3x3 kernel: prefetch what the next output row adds, a share per channel-vector pass.
                float* pfX = null, pfDy = null;
                int pfXLines = 0, pfDyLines = 0;
                if (row + 1 < Row1 && Sse.IsSupported)
                {
                    int nextLast = oy * SH - PT + (KH - 1) * DH + 1, rowsAhead = Math.Min(SH, InH - nextLast);
                    if (rowsAhead > 0 && nextLast >= 0 && oy + 1 < OH)
                    {
                        pfX = xBase + ((long)n * InH + nextLast) * InW * C;
                        pfXLines = rowsAhead * InW * C / 16;
                    }
                    pfDy = dyBase + (long)(row + 1) * OW * C;
                    pfDyLines = OW * C / 16;
                }
                for (int c0 = 0; c0 < C; c0 += TS.Count)
                {
                    int nc = Math.Min(TS.Count, C - c0);
                    bool whole = nc == TS.Count;
                    if (pfDyLines != 0)
                    {
                        for (int l = (int)((long)pfXLines * c0 / C), e = (int)((long)pfXLines * (c0 + nc) / C); l < e; l++) Sse.Prefetch0(pfX + 16 * l);
                        for (int l = (int)((long)pfDyLines * c0 / C), e = (int)((long)pfDyLines * (c0 + nc) / C); l < e; l++) Sse.Prefetch0(pfDy + 16 * l);
                    }
                    float* dyRow = dyBase + ((long)n * OH + oy) * OW * C + c0;
                    float* bp = output + taps * C + c0;
                    TV bias = whole ? TS.Load(bp) : TS.LoadPartial(bp, nc);
                    for (int ox = 0; ox < OW; ox++)
                        bias = TS.Add(bias, whole ? TS.Load(dyRow + (long)ox * C) : TS.LoadPartial(dyRow + (long)ox * C, nc));
                    if (whole) TS.Store(bp, bias); else TS.StorePartial(bp, bias, nc);
                    for (int ky = 0; ky < KH; ky++)
                    {
                        int iy = oy * SH - PT + ky * DH;
                        if ((uint)iy >= (uint)InH) continue;
                        float* xRow = xBase + ((long)n * InH + iy) * InW * C + c0;
                        for (int kx = 0; kx < KW; kx++)
                        {
                            float* o = output + (ky * KW + kx) * C + c0;
                            // The output columns whose tap (ky, kx) lands inside the input.
                            int off = kx * DW - PL;
                            int ox0 = off >= 0 ? 0 : (-off + SW - 1) / SW;
                            int ox1 = InW - 1 - off < 0 ? 0 : Math.Min(OW, (InW - 1 - off) / SW + 1);
                            TV acc = TS.Zero;
                            if (whole)
                            {
                                // Four independent chains: one would wait on the FMA latency at every column.
                                TV acc1 = TS.Zero, acc2 = TS.Zero, acc3 = TS.Zero;
                                float* xp = xRow + ((long)ox0 * SW + off) * C;
                                long xStep = (long)SW * C;
                                int ox = ox0;
                                for (; ox + 4 <= ox1; ox += 4, xp += 4 * xStep)
                                {
                                    float* d = dyRow + (long)ox * C;
                                    acc = TS.Fma(TS.Load(d), TS.Load(xp), acc);
                                    acc1 = TS.Fma(TS.Load(d + C), TS.Load(xp + xStep), acc1);
                                    acc2 = TS.Fma(TS.Load(d + 2 * C), TS.Load(xp + 2 * xStep), acc2);
                                    acc3 = TS.Fma(TS.Load(d + 3 * C), TS.Load(xp + 3 * xStep), acc3);
                                }
                                for (; ox < ox1; ox++, xp += xStep) acc = TS.Fma(TS.Load(dyRow + (long)ox * C), TS.Load(xp), acc);
                                acc = TS.Add(TS.Add(acc, acc1), TS.Add(acc2, acc3));
                            }
                            else
                                for (int ox = ox0; ox < ox1; ox++)
                                    acc = TS.Fma(TS.LoadPartial(dyRow + (long)ox * C, nc), TS.LoadPartial(xRow + ((long)ox * SW + off) * C, nc), acc);
                            if (whole) TS.Store(o, TS.Add(TS.Load(o), acc)); else TS.StorePartial(o, TS.Add(TS.LoadPartial(o, nc), acc), nc);
                        }
                    }
                }
            }
        }
    }
}
