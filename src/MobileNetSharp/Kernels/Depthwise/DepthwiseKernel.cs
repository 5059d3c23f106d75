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
        args.Chunks = workers.Count == 1 || work < (1 << 16) ? 1 : Math.Min(args.Rows, workers.Count * 4);
        var context = new Context { Args = (DepthwiseArgs*)Unsafe.AsPointer(ref args), Shape = shape };
        workers.For(args.Chunks, &Task, &context);
    }

    private struct Context
    {
        public DepthwiseArgs* Args;
        public DepthwiseShape Shape;
    }

    private static void Task(void* context, int index)
    {
        Context* ctx = (Context*)context;
        DepthwiseArgs* g = ctx->Args;
        (int r0, int r1) = Workers.Split(g->Rows, g->Chunks, index);
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
        int w = TS.Count, c = g->InC;
        TV alpha = TS.Splat(g->Activation.Alpha), beta = TS.Splat(g->Activation.Beta);

        // Output columns whose whole window lies inside the input horizontally.
        int oxL = Math.Min((g->PadLeft + g->SW - 1) / g->SW, g->OutW);
        int span = g->InW - 1 - (g->KW - 1) * g->DW + g->PadLeft;
        int oxR = Math.Max(oxL, Math.Min(span < 0 ? 0 : span / g->SW + 1, g->OutW));

        for (int row = row0; row < row1; row++)
        {
            int n = row / g->OutH, oy = row % g->OutH;
            int iy0 = oy * g->SH - g->PadTop;
            bool interiorRow = iy0 >= 0 && iy0 + (g->KH - 1) * g->DH < g->InH;
            int left = interiorRow ? oxL : g->OutW, right = interiorRow ? oxR : g->OutW;

            for (int ox = 0; ox < left; ox++) Pixel<TS, TV, TA>(g, n, oy, ox, alpha, beta);
            int ox4 = left;
            for (; ox4 + 4 <= right; ox4 += 4)
            {
                float* p = g->Input + (((long)n * g->InH + iy0) * g->InW + ox4 * g->SW - g->PadLeft) * c;
                long o = (((long)n * g->OutH + oy) * g->OutW + ox4) * c;
                float* res = g->Residual == null ? null : g->Residual + o;
                int cc = 0;
                for (; cc + w <= c; cc += w) Block4<TS, TV, TA, TR, AllLanes>(g, p + cc, g->Output + o + cc, res == null ? null : res + cc, cc, w, alpha, beta);
                if (cc < c) Block4<TS, TV, TA, TR, FirstLanes>(g, p + cc, g->Output + o + cc, res == null ? null : res + cc, cc, c - cc, alpha, beta);
            }
            for (int ox = ox4; ox < g->OutW; ox++) Pixel<TS, TV, TA>(g, n, oy, ox, alpha, beta);
        }
    }

    /// <summary>Four interior output pixels, one channel block: no bounds checks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block4<TS, TV, TA, TR, TL>(DepthwiseArgs* g, float* p, float* o, float* res, int cc, int lanes, TV alpha, TV beta)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
        where TR : unmanaged, IDepthwiseRow where TL : unmanaged, ILanes
    {
        nint cs = g->InC, ws = g->CPad;
        nint rowStride = (nint)g->DH * g->InW * cs;
        float* wk = g->Weights + cc;
        TV a0 = TS.Load(g->Bias + cc), a1 = a0, a2 = a0, a3 = a0;
        for (int ky = 0; ky < g->KH; ky++)
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

    /// <summary>One output pixel, every channel, with bounds checks: borders and leftovers, any geometry.</summary>
    private static void Pixel<TS, TV, TA>(DepthwiseArgs* g, int n, int oy, int ox, TV alpha, TV beta)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
    {
        int w = TS.Count, c = g->InC;
        int iy0 = oy * g->SH - g->PadTop, ix0 = ox * g->SW - g->PadLeft;
        float* image = g->Input + (long)n * g->InH * g->InW * c;
        long o = (((long)n * g->OutH + oy) * g->OutW + ox) * c;
        for (int cc = 0; cc < c; cc += w)
        {
            int lanes = Math.Min(w, c - cc);
            bool full = lanes == w;
            TV acc = TS.Load(g->Bias + cc);
            for (int ky = 0; ky < g->KH; ky++)
            {
                int iy = iy0 + ky * g->DH;
                if ((uint)iy >= (uint)g->InH) continue;
                for (int kx = 0; kx < g->KW; kx++)
                {
                    int ix = ix0 + kx * g->DW;
                    if ((uint)ix >= (uint)g->InW) continue;
                    float* x = image + ((long)iy * g->InW + ix) * c + cc;
                    acc = TS.Fma(full ? TS.Load(x) : TS.LoadPartial(x, lanes), TS.Load(g->Weights + (ky * g->KW + kx) * g->CPad + cc), acc);
                }
            }
            if (g->Residual != null)
            {
                float* r = g->Residual + o + cc;
                acc = TS.Add(acc, full ? TS.Load(r) : TS.LoadPartial(r, lanes));
            }
            acc = TA.Apply<TS, TV>(acc, alpha, beta);
            if (full) TS.Store(g->Output + o + cc, acc);
            else TS.StorePartial(g->Output + o + cc, acc, lanes);
        }
    }

    /// <summary>Channel multiplier &gt; 1: output channel oc reads input channel oc / multiplier. Scalar.</summary>
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
