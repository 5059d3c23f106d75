using System.Runtime.CompilerServices;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels.Depthwise;

/// <summary>
/// One kernel row (fixed ky) of a depthwise convolution for four horizontally adjacent output pixels:
/// acc_q += sum_kx in[q*stride + kx*dilation] * w[kx]. <c>p</c> points at the input pixel under tap kx=0 of
/// output pixel 0 (channel block start), <c>cs</c> is the pixel stride (channels), <c>w</c> at tap (ky, 0)
/// with tap stride <c>ws</c>. Implementations are the specialized shapes; all are interior-only (no bounds checks).
/// </summary>
internal unsafe interface IDepthwiseRow
{
    static abstract void Row4<TS, TV, TL>(float* p, nint cs, float* w, nint ws, int lanes, in DepthwiseArgs g,
        ref TV a0, ref TV a1, ref TV a2, ref TV a3)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TL : unmanaged, ILanes;
}

/// <summary>3 taps, stride 1: the six input columns are loaded once and shared by the four outputs.</summary>
internal readonly unsafe struct Row3S1 : IDepthwiseRow
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Row4<TS, TV, TL>(float* p, nint cs, float* w, nint ws, int lanes, in DepthwiseArgs g,
        ref TV a0, ref TV a1, ref TV a2, ref TV a3)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TL : unmanaged, ILanes
    {
        TV w0 = TS.Load(w), w1 = TS.Load(w + ws), w2 = TS.Load(w + 2 * ws);
        TV x0 = TL.Load<TS, TV>(p, lanes);
        TV x1 = TL.Load<TS, TV>(p + cs, lanes);
        TV x2 = TL.Load<TS, TV>(p + 2 * cs, lanes);
        a0 = TS.Fma(x0, w0, a0); a0 = TS.Fma(x1, w1, a0); a0 = TS.Fma(x2, w2, a0);
        TV x3 = TL.Load<TS, TV>(p + 3 * cs, lanes);
        a1 = TS.Fma(x1, w0, a1); a1 = TS.Fma(x2, w1, a1); a1 = TS.Fma(x3, w2, a1);
        TV x4 = TL.Load<TS, TV>(p + 4 * cs, lanes);
        a2 = TS.Fma(x2, w0, a2); a2 = TS.Fma(x3, w1, a2); a2 = TS.Fma(x4, w2, a2);
        TV x5 = TL.Load<TS, TV>(p + 5 * cs, lanes);
        a3 = TS.Fma(x3, w0, a3); a3 = TS.Fma(x4, w1, a3); a3 = TS.Fma(x5, w2, a3);
    }
}

/// <summary>3 taps, stride 2: nine input columns, the even ones shared by neighbouring outputs.</summary>
internal readonly unsafe struct Row3S2 : IDepthwiseRow
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Row4<TS, TV, TL>(float* p, nint cs, float* w, nint ws, int lanes, in DepthwiseArgs g,
        ref TV a0, ref TV a1, ref TV a2, ref TV a3)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TL : unmanaged, ILanes
    {
        TV w0 = TS.Load(w), w1 = TS.Load(w + ws), w2 = TS.Load(w + 2 * ws);
        TV x0 = TL.Load<TS, TV>(p, lanes);
        TV x1 = TL.Load<TS, TV>(p + cs, lanes);
        TV x2 = TL.Load<TS, TV>(p + 2 * cs, lanes);
        a0 = TS.Fma(x0, w0, a0); a0 = TS.Fma(x1, w1, a0); a0 = TS.Fma(x2, w2, a0);
        TV x3 = TL.Load<TS, TV>(p + 3 * cs, lanes);
        TV x4 = TL.Load<TS, TV>(p + 4 * cs, lanes);
        a1 = TS.Fma(x2, w0, a1); a1 = TS.Fma(x3, w1, a1); a1 = TS.Fma(x4, w2, a1);
        TV x5 = TL.Load<TS, TV>(p + 5 * cs, lanes);
        TV x6 = TL.Load<TS, TV>(p + 6 * cs, lanes);
        a2 = TS.Fma(x4, w0, a2); a2 = TS.Fma(x5, w1, a2); a2 = TS.Fma(x6, w2, a2);
        TV x7 = TL.Load<TS, TV>(p + 7 * cs, lanes);
        TV x8 = TL.Load<TS, TV>(p + 8 * cs, lanes);
        a3 = TS.Fma(x6, w0, a3); a3 = TS.Fma(x7, w1, a3); a3 = TS.Fma(x8, w2, a3);
    }
}

/// <summary>5 taps, stride 1: eight input columns shared by the four outputs.</summary>
internal readonly unsafe struct Row5S1 : IDepthwiseRow
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Row4<TS, TV, TL>(float* p, nint cs, float* w, nint ws, int lanes, in DepthwiseArgs g,
        ref TV a0, ref TV a1, ref TV a2, ref TV a3)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TL : unmanaged, ILanes
    {
        TV w0 = TS.Load(w), w1 = TS.Load(w + ws), w2 = TS.Load(w + 2 * ws), w3 = TS.Load(w + 3 * ws), w4 = TS.Load(w + 4 * ws);
        TV x = TL.Load<TS, TV>(p, lanes);                 // column 0
        a0 = TS.Fma(x, w0, a0);
        x = TL.Load<TS, TV>(p + cs, lanes);               // column 1
        a0 = TS.Fma(x, w1, a0); a1 = TS.Fma(x, w0, a1);
        x = TL.Load<TS, TV>(p + 2 * cs, lanes);
        a0 = TS.Fma(x, w2, a0); a1 = TS.Fma(x, w1, a1); a2 = TS.Fma(x, w0, a2);
        x = TL.Load<TS, TV>(p + 3 * cs, lanes);
        a0 = TS.Fma(x, w3, a0); a1 = TS.Fma(x, w2, a1); a2 = TS.Fma(x, w1, a2); a3 = TS.Fma(x, w0, a3);
        x = TL.Load<TS, TV>(p + 4 * cs, lanes);
        a0 = TS.Fma(x, w4, a0); a1 = TS.Fma(x, w3, a1); a2 = TS.Fma(x, w2, a2); a3 = TS.Fma(x, w1, a3);
        x = TL.Load<TS, TV>(p + 5 * cs, lanes);
        a1 = TS.Fma(x, w4, a1); a2 = TS.Fma(x, w3, a2); a3 = TS.Fma(x, w2, a3);
        x = TL.Load<TS, TV>(p + 6 * cs, lanes);
        a2 = TS.Fma(x, w4, a2); a3 = TS.Fma(x, w3, a3);
        x = TL.Load<TS, TV>(p + 7 * cs, lanes);
        a3 = TS.Fma(x, w4, a3);
    }
}

/// <summary>5 taps, stride 2: eleven input columns; output q uses columns 2q .. 2q+4.</summary>
internal readonly unsafe struct Row5S2 : IDepthwiseRow
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Row4<TS, TV, TL>(float* p, nint cs, float* w, nint ws, int lanes, in DepthwiseArgs g,
        ref TV a0, ref TV a1, ref TV a2, ref TV a3)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TL : unmanaged, ILanes
    {
        TV w0 = TS.Load(w), w1 = TS.Load(w + ws), w2 = TS.Load(w + 2 * ws), w3 = TS.Load(w + 3 * ws), w4 = TS.Load(w + 4 * ws);
        TV x = TL.Load<TS, TV>(p, lanes);
        a0 = TS.Fma(x, w0, a0);
        x = TL.Load<TS, TV>(p + cs, lanes);
        a0 = TS.Fma(x, w1, a0);
        x = TL.Load<TS, TV>(p + 2 * cs, lanes);
        a0 = TS.Fma(x, w2, a0); a1 = TS.Fma(x, w0, a1);
        x = TL.Load<TS, TV>(p + 3 * cs, lanes);
        a0 = TS.Fma(x, w3, a0); a1 = TS.Fma(x, w1, a1);
        x = TL.Load<TS, TV>(p + 4 * cs, lanes);
        a0 = TS.Fma(x, w4, a0); a1 = TS.Fma(x, w2, a1); a2 = TS.Fma(x, w0, a2);
        x = TL.Load<TS, TV>(p + 5 * cs, lanes);
        a1 = TS.Fma(x, w3, a1); a2 = TS.Fma(x, w1, a2);
        x = TL.Load<TS, TV>(p + 6 * cs, lanes);
        a1 = TS.Fma(x, w4, a1); a2 = TS.Fma(x, w2, a2); a3 = TS.Fma(x, w0, a3);
        x = TL.Load<TS, TV>(p + 7 * cs, lanes);
        a2 = TS.Fma(x, w3, a2); a3 = TS.Fma(x, w1, a3);
        x = TL.Load<TS, TV>(p + 8 * cs, lanes);
        a2 = TS.Fma(x, w4, a2); a3 = TS.Fma(x, w2, a3);
        x = TL.Load<TS, TV>(p + 9 * cs, lanes);
        a3 = TS.Fma(x, w3, a3);
        x = TL.Load<TS, TV>(p + 10 * cs, lanes);
        a3 = TS.Fma(x, w4, a3);
    }
}

/// <summary>Any width, stride and dilation, read from the arguments at run time.</summary>
internal readonly unsafe struct RowGeneric : IDepthwiseRow
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Row4<TS, TV, TL>(float* p, nint cs, float* w, nint ws, int lanes, in DepthwiseArgs g,
        ref TV a0, ref TV a1, ref TV a2, ref TV a3)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TL : unmanaged, ILanes
    {
        nint step = g.SW * cs, tap = g.DW * cs;
        for (int kx = 0; kx < g.KW; kx++)
        {
            TV wk = TS.Load(w + kx * ws);
            float* q = p + kx * tap;
            a0 = TS.Fma(TL.Load<TS, TV>(q, lanes), wk, a0);
            a1 = TS.Fma(TL.Load<TS, TV>(q + step, lanes), wk, a1);
            a2 = TS.Fma(TL.Load<TS, TV>(q + 2 * step, lanes), wk, a2);
            a3 = TS.Fma(TL.Load<TS, TV>(q + 3 * step, lanes), wk, a3);
        }
    }
}
