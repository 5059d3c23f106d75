using System.Runtime.CompilerServices;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels.Gemm;

/// <summary>
/// Register-tiled GEMM micro-kernels: an MR x 2W tile (f32-gemm/6x32 at W=16) and an MR x W tile for
/// narrow last panels. Accumulators start from the bias and the epilogue (+ residual, activation) runs
/// while the tile is still in registers. Rows past <c>mr</c> alias the last valid row of A (computed but
/// never stored), so one kernel serves every row remainder without a branch in the k loop.
/// </summary>
internal static unsafe class GemmMicroKernel
{
    public const int MR = 6;

    /// <summary>C[0..mr, 0..nc) = act(A[0..mr, 0..k) * B + bias + R) for nc in (W, 2W].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Tile2<TS, TV, TA>(int mr, int nc, nint k, float* a, nint lda, float* b, nint ldb,
        float* bias, float* c, nint ldc, float* r, nint ldr, TV alpha, TV beta)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
    {
        nint w = TS.Count;
        float* a0 = a;
        float* a1 = mr > 1 ? a0 + lda : a0;
        float* a2 = mr > 2 ? a1 + lda : a1;
        float* a3 = mr > 3 ? a2 + lda : a2;
        float* a4 = mr > 4 ? a3 + lda : a3;
        float* a5 = mr > 5 ? a4 + lda : a4;
        TV bias0 = bias != null ? TS.Load(bias) : TS.Zero;
        TV bias1 = bias != null ? TS.Load(bias + w) : TS.Zero;
        TV c00 = bias0, c01 = bias1, c10 = bias0, c11 = bias1, c20 = bias0, c21 = bias1;
        TV c30 = bias0, c31 = bias1, c40 = bias0, c41 = bias1, c50 = bias0, c51 = bias1;
        for (nint p = 0; p < k; p++)
        {
            TV b0 = TS.Load(b);
            TV b1 = TS.Load(b + w);
            b += ldb;
            TV x = TS.Splat(a0[p]);
            c00 = TS.Fma(x, b0, c00); c01 = TS.Fma(x, b1, c01);
            x = TS.Splat(a1[p]);
            c10 = TS.Fma(x, b0, c10); c11 = TS.Fma(x, b1, c11);
            x = TS.Splat(a2[p]);
            c20 = TS.Fma(x, b0, c20); c21 = TS.Fma(x, b1, c21);
            x = TS.Splat(a3[p]);
            c30 = TS.Fma(x, b0, c30); c31 = TS.Fma(x, b1, c31);
            x = TS.Splat(a4[p]);
            c40 = TS.Fma(x, b0, c40); c41 = TS.Fma(x, b1, c41);
            x = TS.Splat(a5[p]);
            c50 = TS.Fma(x, b0, c50); c51 = TS.Fma(x, b1, c51);
        }

        StoreRow2<TS, TV, TA>(c, r, nc, c00, c01, alpha, beta);
        if (mr > 1) StoreRow2<TS, TV, TA>(c + ldc, r == null ? null : r + ldr, nc, c10, c11, alpha, beta);
        if (mr > 2) StoreRow2<TS, TV, TA>(c + 2 * ldc, r == null ? null : r + 2 * ldr, nc, c20, c21, alpha, beta);
        if (mr > 3) StoreRow2<TS, TV, TA>(c + 3 * ldc, r == null ? null : r + 3 * ldr, nc, c30, c31, alpha, beta);
        if (mr > 4) StoreRow2<TS, TV, TA>(c + 4 * ldc, r == null ? null : r + 4 * ldr, nc, c40, c41, alpha, beta);
        if (mr > 5) StoreRow2<TS, TV, TA>(c + 5 * ldc, r == null ? null : r + 5 * ldr, nc, c50, c51, alpha, beta);
    }

    /// <summary>C[0..mr, 0..nc) for nc in (0, W]; B loads go through <typeparamref name="TB"/> (masked for unpacked B).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Tile1<TS, TV, TA, TB>(int mr, int nc, nint k, float* a, nint lda, float* b, nint ldb,
        float* bias, float* c, nint ldc, float* r, nint ldr, TV alpha, TV beta)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp where TB : unmanaged, ILanes
    {
        float* a0 = a;
        float* a1 = mr > 1 ? a0 + lda : a0;
        float* a2 = mr > 2 ? a1 + lda : a1;
        float* a3 = mr > 3 ? a2 + lda : a2;
        float* a4 = mr > 4 ? a3 + lda : a3;
        float* a5 = mr > 5 ? a4 + lda : a4;
        TV bias0 = bias != null ? TS.Load(bias) : TS.Zero;
        TV c0 = bias0, c1 = bias0, c2 = bias0, c3 = bias0, c4 = bias0, c5 = bias0;
        for (nint p = 0; p < k; p++)
        {
            TV b0 = TB.Load<TS, TV>(b, nc);
            b += ldb;
            c0 = TS.Fma(TS.Splat(a0[p]), b0, c0);
            c1 = TS.Fma(TS.Splat(a1[p]), b0, c1);
            c2 = TS.Fma(TS.Splat(a2[p]), b0, c2);
            c3 = TS.Fma(TS.Splat(a3[p]), b0, c3);
            c4 = TS.Fma(TS.Splat(a4[p]), b0, c4);
            c5 = TS.Fma(TS.Splat(a5[p]), b0, c5);
        }

        StoreRow1<TS, TV, TA>(c, r, nc, c0, alpha, beta);
        if (mr > 1) StoreRow1<TS, TV, TA>(c + ldc, r == null ? null : r + ldr, nc, c1, alpha, beta);
        if (mr > 2) StoreRow1<TS, TV, TA>(c + 2 * ldc, r == null ? null : r + 2 * ldr, nc, c2, alpha, beta);
        if (mr > 3) StoreRow1<TS, TV, TA>(c + 3 * ldc, r == null ? null : r + 3 * ldr, nc, c3, alpha, beta);
        if (mr > 4) StoreRow1<TS, TV, TA>(c + 4 * ldc, r == null ? null : r + 4 * ldr, nc, c4, alpha, beta);
        if (mr > 5) StoreRow1<TS, TV, TA>(c + 5 * ldc, r == null ? null : r + 5 * ldr, nc, c5, alpha, beta);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow2<TS, TV, TA>(float* c, float* r, int nc, TV v0, TV v1, TV alpha, TV beta)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
    {
        int w = TS.Count;
        int n1 = nc - w;
        if (r != null)
        {
            v0 = TS.Add(v0, TS.Load(r));
            v1 = TS.Add(v1, n1 == w ? TS.Load(r + w) : TS.LoadPartial(r + w, n1));
        }
        TS.Store(c, TA.Apply<TS, TV>(v0, alpha, beta));
        if (n1 == w) TS.Store(c + w, TA.Apply<TS, TV>(v1, alpha, beta));
        else TS.StorePartial(c + w, TA.Apply<TS, TV>(v1, alpha, beta), n1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow1<TS, TV, TA>(float* c, float* r, int nc, TV v, TV alpha, TV beta)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
    {
        bool full = nc == TS.Count;
        if (r != null) v = TS.Add(v, full ? TS.Load(r) : TS.LoadPartial(r, nc));
        v = TA.Apply<TS, TV>(v, alpha, beta);
        if (full) TS.Store(c, v);
        else TS.StorePartial(c, v, nc);
    }
}
