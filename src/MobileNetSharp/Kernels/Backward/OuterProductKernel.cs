using System.Runtime.CompilerServices;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels;

/// <summary>
/// C [out, in] (+)= Σ_p dY[p, :]ᵀ ⊗ X[p, :]: the reduction over rows that weight gradients are made of (dW = dYᵀ·X
/// with both operands row-major [rows, features], as NHWC activations are). A register tile of 6 outputs x 2 vectors
/// of inputs walks the rows: per row, two loads of X, six broadcasts of dY and twelve FMAs, as the forward GEMM's
/// micro-kernel (f32-gemm 6x2W), so no operand needs transposing first.
/// <para>
/// The rows are taken in chunks of <see cref="ChunkRows"/>, and within a chunk each 2W-column panel of X is held while
/// every 6-output tile of dY passes over it: the chunk's X panel (4 KiB at AVX2) and its rows of dY stay in L1, each
/// line is fetched from L2 once per panel, and the strided row walks never reach past L2. Each tile adds its chunk's sum
/// into C, so C is read and written once per chunk and tile (24 memory operations against 768 FMAs at 64 rows).
/// Walking all rows per tile instead (C touched once) re-fetches both operands' lines from L2 for every tile and ran
/// at 25-35 GMAC/s on Zen 3 against 35-45 chunked, over the shapes of MobileNet training (16x96 to 960x160), and
/// packing X's panels first (Goto &amp; van de Geijn 2008, section 4) did no better than the chunks.
/// </para>
/// </summary>
internal static unsafe class OuterProductKernel
{
    private const int MR = 6;
    /// <summary>Rows per chunk: 32 to 128 measured within noise of each other on Zen 3; 64 keeps a chunk of a
    /// 96-wide dY (24 KiB) with its X panel in a 32 KiB L1.</summary>
    internal const int ChunkRows = 64;

    /// <param name="dy">Row p's outputs start at dy + p·ldy.</param>
    /// <param name="x">Row p's inputs start at x + p·ldx.</param>
    /// <param name="c">[outF, inF] row-major; overwritten, or added to when <paramref name="accumulate"/>.</param>
    public static void Run(IsaLevel isa, float* dy, nint ldy, float* x, nint ldx, int rows, float* c, int outF, int inF, bool accumulate)
    {
        if (rows <= 0)
        {
            if (!accumulate) new Span<float>(c, checked(outF * inF)).Clear();
            return;
        }
        var body = new Body { Dy = dy, Ldy = ldy, X = x, Ldx = ldx, Rows = rows, C = c, Out = outF, In = inF, Accumulate = accumulate };
        KernelDispatch.Run(isa, ref body);
    }

    private struct Body : IWidthBody
    {
        public float* Dy, X, C;
        public nint Ldy, Ldx;
        public int Rows, Out, In;
        public bool Accumulate;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            int panel = 2 * TS.Count;
            for (int r0 = 0; r0 < Rows; r0 += ChunkRows)
            {
                int kc = Math.Min(ChunkRows, Rows - r0);
                bool accumulate = Accumulate || r0 > 0;
                float* dy = Dy + r0 * Ldy, x = X + r0 * Ldx;
                for (int i = 0; i < In; i += panel)
                {
                    int nc = Math.Min(panel, In - i);
                    for (int o = 0; o < Out; o += MR)
                        Tile<TS, TV>(Math.Min(MR, Out - o), nc, dy + o, Ldy, x + i, Ldx, kc, C + (nint)o * In + i, In, accumulate);
                }
            }
        }
    }

    /// <summary>One tile: rows past <paramref name="mr"/> alias the last valid output (computed, never stored).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile<TS, TV>(int mr, int nc, float* dy, nint ldy, float* x, nint ldx, int rows, float* c, nint ldc, bool accumulate)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged
    {
        int w = TS.Count;
        int n0 = Math.Min(nc, w), n1 = nc - n0; // columns in the first and second vector
        nint d1 = Math.Min(1, mr - 1), d2 = Math.Min(2, mr - 1), d3 = Math.Min(3, mr - 1), d4 = Math.Min(4, mr - 1), d5 = Math.Min(5, mr - 1);
        TV c00 = TS.Zero, c01 = TS.Zero, c10 = TS.Zero, c11 = TS.Zero, c20 = TS.Zero, c21 = TS.Zero;
        TV c30 = TS.Zero, c31 = TS.Zero, c40 = TS.Zero, c41 = TS.Zero, c50 = TS.Zero, c51 = TS.Zero;
        if (n0 == w && n1 == w)
        {
            for (int p = 0; p < rows; p++, dy += ldy, x += ldx)
            {
                TV b0 = TS.Load(x), b1 = TS.Load(x + w);
                TV a = TS.Splat(dy[0]); c00 = TS.Fma(a, b0, c00); c01 = TS.Fma(a, b1, c01);
                a = TS.Splat(dy[d1]); c10 = TS.Fma(a, b0, c10); c11 = TS.Fma(a, b1, c11);
                a = TS.Splat(dy[d2]); c20 = TS.Fma(a, b0, c20); c21 = TS.Fma(a, b1, c21);
                a = TS.Splat(dy[d3]); c30 = TS.Fma(a, b0, c30); c31 = TS.Fma(a, b1, c31);
                a = TS.Splat(dy[d4]); c40 = TS.Fma(a, b0, c40); c41 = TS.Fma(a, b1, c41);
                a = TS.Splat(dy[d5]); c50 = TS.Fma(a, b0, c50); c51 = TS.Fma(a, b1, c51);
            }
        }
        else
        {
            for (int p = 0; p < rows; p++, dy += ldy, x += ldx)
            {
                TV b0 = n0 == w ? TS.Load(x) : TS.LoadPartial(x, n0);
                TV b1 = n1 == 0 ? TS.Zero : n1 == w ? TS.Load(x + w) : TS.LoadPartial(x + w, n1);
                TV a = TS.Splat(dy[0]); c00 = TS.Fma(a, b0, c00); c01 = TS.Fma(a, b1, c01);
                a = TS.Splat(dy[d1]); c10 = TS.Fma(a, b0, c10); c11 = TS.Fma(a, b1, c11);
                a = TS.Splat(dy[d2]); c20 = TS.Fma(a, b0, c20); c21 = TS.Fma(a, b1, c21);
                a = TS.Splat(dy[d3]); c30 = TS.Fma(a, b0, c30); c31 = TS.Fma(a, b1, c31);
                a = TS.Splat(dy[d4]); c40 = TS.Fma(a, b0, c40); c41 = TS.Fma(a, b1, c41);
                a = TS.Splat(dy[d5]); c50 = TS.Fma(a, b0, c50); c51 = TS.Fma(a, b1, c51);
            }
        }
        StoreRow<TS, TV>(c, n0, n1, c00, c01, accumulate);
        if (mr > 1) StoreRow<TS, TV>(c + ldc, n0, n1, c10, c11, accumulate);
        if (mr > 2) StoreRow<TS, TV>(c + 2 * ldc, n0, n1, c20, c21, accumulate);
        if (mr > 3) StoreRow<TS, TV>(c + 3 * ldc, n0, n1, c30, c31, accumulate);
        if (mr > 4) StoreRow<TS, TV>(c + 4 * ldc, n0, n1, c40, c41, accumulate);
        if (mr > 5) StoreRow<TS, TV>(c + 5 * ldc, n0, n1, c50, c51, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow<TS, TV>(float* c, int n0, int n1, TV v0, TV v1, bool accumulate) where TS : unmanaged, ISimd<TV> where TV : unmanaged
    {
        int w = TS.Count;
        if (n0 == w)
        {
            TS.Store(c, accumulate ? TS.Add(TS.Load(c), v0) : v0);
            if (n1 == w) TS.Store(c + w, accumulate ? TS.Add(TS.Load(c + w), v1) : v1);
            else if (n1 > 0) TS.StorePartial(c + w, accumulate ? TS.Add(TS.LoadPartial(c + w, n1), v1) : v1, n1);
        }
        else TS.StorePartial(c, accumulate ? TS.Add(TS.LoadPartial(c, n0), v0) : v0, n0);
    }
}
