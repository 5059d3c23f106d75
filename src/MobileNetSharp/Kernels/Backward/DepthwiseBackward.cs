using System.Runtime.CompilerServices;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels;

/// <summary>
/// Gradients of a depthwise convolution (groups = channels, one filter per channel) on NHWC tensors:
/// any kernel size, stride, dilation and padding, any channel count, vectorized over channels.
/// Weights are ONNX OIHW [C, 1, KH, KW]. Gradients are written, not accumulated.
/// <para>
/// dX is gathered rather than scattered: each input pixel sums dy · w over the output pixels whose window
/// covers it, so a task that owns a block of input rows writes only those rows (no two threads touch one
/// element, and nothing needs zeroing first). dW and dB reduce over every output pixel: the output rows are
/// cut into a fixed number of blocks (independent of the thread count, so results do not depend on it),
/// each block sums into its own [taps + 1, C] partial, and the partials are added in block order.
/// </para>
/// </summary>
public static unsafe class DepthwiseBackward
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
        int taps = g.KernelH * g.KernelW;
        var packed = new float[taps * g.InC]; // [tap][C]: a whole channel vector per tap
        for (int c = 0; c < g.InC; c++)
            for (int t = 0; t < taps; t++) packed[t * g.InC + c] = w[c * taps + t];
        // For each input column: the kernel columns kx whose window covers it and the output column ox they
        // come from, computed once (the same for every row) so the inner loops do no division.
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

    /// <summary>dw [C, 1, KH, KW] and db [C] (empty to skip) from x [N, H, W, C] and dy [N, OH, OW, C].</summary>
    public static void WeightGradient(in Conv2dGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dw, Span<float> db, Workers? workers = null, IsaLevel? isa = null)
    {
        Check(g);
        if (x.Length < g.InputLength || dy.Length < g.OutputLength || dw.Length < g.WeightLength || (!db.IsEmpty && db.Length < g.InC))
            throw new ArgumentException($"Depthwise backward: buffers x {x.Length}, dy {dy.Length}, dw {dw.Length}, db {db.Length} too small.");
        workers ??= Workers.Single;
        int taps = g.KernelH * g.KernelW, c = g.InC, rows = g.Batch * g.OutH;
        int blocks = Math.Min(rows, WeightBlocks);
        var partial = new float[(long)blocks * (taps + 1) * c];
        fixed (float* px = x, pdy = dy, pp = partial)
        {
            var args = new Args { G = g, X = px, Dy = pdy, Partial = pp, Isa = Isa.Resolve(isa), Blocks = blocks, Rows = rows };
            if (workers.Count == 1 || g.OutputLength * taps < (1 << 15)) for (int b = 0; b < blocks; b++) WeightTask(&args, b);
            else workers.For(blocks, &WeightTask, &args);
        }
        // Sum the partials in block order; transpose [tap][C] to OIHW [C][tap].
        var sum = partial.AsSpan(0, (taps + 1) * c);
        for (int b = 1; b < blocks; b++)
        {
            var p = partial.AsSpan(b * (taps + 1) * c, (taps + 1) * c);
            for (int i = 0; i < sum.Length; i++) sum[i] += p[i];
        }
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
        public float* X, Dy, W, Dx, Partial;
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
        var body = new WeightBody { A = a, Row0 = r0, Row1 = r1, Out = a->Partial + (long)index * (a->G.KernelH * a->G.KernelW + 1) * a->G.InC };
        KernelDispatch.Run(a->Isa, ref body);
    }

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
            int SH = g.StrideH, DH = g.DilationH, PT = g.PadTop, full = C - C % TS.Count, tail = C - full;
            float* dyBase = A->Dy, wBase = A->W, dxBase = A->Dx;
            int* colTaps = A->ColTaps;
            int* rowKy = stackalloc int[KH];
            float** rowDy = stackalloc float*[KH];
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
                    int nkx = t[0];
                    int c0 = 0;
                    // Two channel vectors at a time: two independent FMA chains over the taps.
                    for (; c0 + 2 * TS.Count <= full; c0 += 2 * TS.Count)
                    {
                        TV acc = TS.Zero, acc1 = TS.Zero;
                        for (int a = 0; a < nky; a++)
                            for (int b = 0; b < nkx; b++)
                            {
                                float* d = rowDy[a] + (long)t[2 + 2 * b] * C + c0, wp = wBase + (rowKy[a] + t[1 + 2 * b]) * C + c0;
                                acc = TS.Fma(TS.Load(d), TS.Load(wp), acc);
                                acc1 = TS.Fma(TS.Load(d + TS.Count), TS.Load(wp + TS.Count), acc1);
                            }
                        TS.Store(dxp + c0, acc);
                        TS.Store(dxp + c0 + TS.Count, acc1);
                    }
                    for (; c0 < full; c0 += TS.Count)
                    {
                        TV acc = TS.Zero;
                        for (int a = 0; a < nky; a++)
                            for (int b = 0; b < nkx; b++)
                                acc = TS.Fma(TS.Load(rowDy[a] + (long)t[2 + 2 * b] * C + c0), TS.Load(wBase + (rowKy[a] + t[1 + 2 * b]) * C + c0), acc);
                        TS.Store(dxp + c0, acc);
                    }
                    if (tail > 0)
                    {
                        TV acc = TS.Zero;
                        for (int a = 0; a < nky; a++)
                            for (int b = 0; b < nkx; b++)
                                acc = TS.Fma(TS.LoadPartial(rowDy[a] + (long)t[2 + 2 * b] * C + full, tail),
                                    TS.LoadPartial(wBase + (rowKy[a] + t[1 + 2 * b]) * C + full, tail), acc);
                        TS.StorePartial(dxp + full, acc, tail);
                    }
                }
            }
        }
    }

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
            for (int c0 = 0; c0 < C; c0 += TS.Count)
            {
                int nc = Math.Min(TS.Count, C - c0);
                bool whole = nc == TS.Count;
                for (int row = Row0; row < Row1; row++)
                {
                    int n = row / OH, oy = row % OH;
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
