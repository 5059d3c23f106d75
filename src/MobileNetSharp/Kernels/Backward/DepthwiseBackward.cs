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
        fixed (float* pdy = dy, pw = packed, pdx = dx)
        {
            var args = new Args { G = g, Dy = pdy, W = pw, Dx = pdx, Isa = Isa.Resolve(isa) };
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
            ref readonly var g = ref A->G;
            int C = g.InC, OH = g.OutH, OW = g.OutW, KW = g.KernelW;
            for (int row = Row0; row < Row1; row++)
            {
                int n = row / g.InH, iy = row % g.InH;
                float* dxRow = A->Dx + ((long)n * g.InH + iy) * g.InW * C;
                for (int ix = 0; ix < g.InW; ix++)
                {
                    float* dxp = dxRow + (long)ix * C;
                    for (int c0 = 0; c0 < C; c0 += TS.Count)
                    {
                        int nc = Math.Min(TS.Count, C - c0);
                        TV acc = TS.Zero;
                        for (int ky = 0; ky < g.KernelH; ky++)
                        {
                            int ty = iy + g.PadTop - ky * g.DilationH;
                            if (ty < 0 || ty % g.StrideH != 0) continue;
                            int oy = ty / g.StrideH;
                            if (oy >= OH) continue;
                            float* dyRow = A->Dy + ((long)n * OH + oy) * OW * C + c0;
                            for (int kx = 0; kx < KW; kx++)
                            {
                                int tx = ix + g.PadLeft - kx * g.DilationW;
                                if (tx < 0 || tx % g.StrideW != 0) continue;
                                int ox = tx / g.StrideW;
                                if (ox >= OW) continue;
                                float* wp = A->W + (ky * KW + kx) * C + c0;
                                acc = nc == TS.Count
                                    ? TS.Fma(TS.Load(dyRow + (long)ox * C), TS.Load(wp), acc)
                                    : TS.Fma(TS.LoadPartial(dyRow + (long)ox * C, nc), TS.LoadPartial(wp, nc), acc);
                            }
                        }
                        if (nc == TS.Count) TS.Store(dxp + c0, acc);
                        else TS.StorePartial(dxp + c0, acc, nc);
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
            ref readonly var g = ref A->G;
            int C = g.InC, OW = g.OutW, KW = g.KernelW, taps = g.KernelH * KW;
            for (int c0 = 0; c0 < C; c0 += TS.Count)
            {
                int nc = Math.Min(TS.Count, C - c0);
                for (int row = Row0; row < Row1; row++)
                {
                    int n = row / g.OutH, oy = row % g.OutH;
                    float* dyRow = A->Dy + ((long)n * g.OutH + oy) * OW * C + c0;
                    TV bias = nc == TS.Count ? TS.Load(Out + taps * C + c0) : TS.LoadPartial(Out + taps * C + c0, nc);
                    for (int ox = 0; ox < OW; ox++)
                        bias = TS.Add(bias, nc == TS.Count ? TS.Load(dyRow + (long)ox * C) : TS.LoadPartial(dyRow + (long)ox * C, nc));
                    if (nc == TS.Count) TS.Store(Out + taps * C + c0, bias); else TS.StorePartial(Out + taps * C + c0, bias, nc);
                    for (int ky = 0; ky < g.KernelH; ky++)
                    {
                        int iy = oy * g.StrideH - g.PadTop + ky * g.DilationH;
                        if ((uint)iy >= (uint)g.InH) continue;
                        float* xRow = A->X + ((long)n * g.InH + iy) * g.InW * C + c0;
                        for (int kx = 0; kx < KW; kx++)
                        {
                            float* o = Out + (ky * KW + kx) * C + c0;
                            TV acc = nc == TS.Count ? TS.Load(o) : TS.LoadPartial(o, nc);
                            // The output columns whose tap (ky, kx) lands inside the input.
                            int off = kx * g.DilationW - g.PadLeft;
                            int ox0 = off >= 0 ? 0 : (-off + g.StrideW - 1) / g.StrideW;
                            int ox1 = g.InW - 1 - off < 0 ? 0 : Math.Min(OW, (g.InW - 1 - off) / g.StrideW + 1);
                            for (int ox = ox0; ox < ox1; ox++)
                            {
                                long ix = (long)ox * g.StrideW + off;
                                acc = nc == TS.Count
                                    ? TS.Fma(TS.Load(dyRow + (long)ox * C), TS.Load(xRow + ix * C), acc)
                                    : TS.Fma(TS.LoadPartial(dyRow + (long)ox * C, nc), TS.LoadPartial(xRow + ix * C, nc), acc);
                            }
                            if (nc == TS.Count) TS.Store(o, acc); else TS.StorePartial(o, acc, nc);
                        }
                    }
                }
            }
        }
    }
}
