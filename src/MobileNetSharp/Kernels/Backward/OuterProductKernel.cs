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
/// at 25-35 GMAC/s on Zen 3 against 35-45 chunked, over the shapes of MobileNet training (16x96 to 960x160).
/// </para>
/// <para>
/// When C is too large to stay in L2 between chunks (a head's 160x1280) and dY is wide, reading and writing C once per
/// chunk costs more than the chunks save. Then each tile walks all the rows, C is touched once, and the operands are
/// packed so the walks stay in cache: X into contiguous zero-padded panels of 2W columns [panel][row][2W] (read once,
/// then re-read from L2 at unit stride) and each tile's 6 dY columns into [row][6] in L1, reused by every panel (the
/// GEMM packing of Goto &amp; van de Geijn 2008, "Anatomy of high-performance matrix multiplication", section 4).
/// Measured on Zen 3 at 1 thread, 256 rows: 160x1280 and 160x960 34-38 GMAC/s packed against 31-34 chunked; 480x160
/// and 96x576 (C in L2) 37-41 chunked against 22-38 packed.
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
    /// <param name="allowPacking">False takes the chunked path whatever the shape (tests compare the two paths).</param>
    public static void Run(IsaLevel isa, float* dy, nint ldy, float* x, nint ldx, int rows, float* c, int outF, int inF, bool accumulate,
        bool allowPacking = true)
    {
        if (rows <= 0)
        {
            if (!accumulate) new Span<float>(c, checked(outF * inF)).Clear();
            return;
        }
        var body = new Body { Dy = dy, Ldy = ldy, X = x, Ldx = ldx, Rows = rows, C = c, Out = outF, In = inF, Accumulate = accumulate };
        int panel = 2 * Isa.Width(isa), panels = (inF + panel - 1) / panel;
        long packFloats = (long)panels * panel * rows;
        if (!allowPacking || !Packs(inF, outF) || packFloats > PackBudgetFloats)
        {
            KernelDispatch.Run(isa, ref body);
            return;
        }
        var pool = System.Buffers.ArrayPool<float>.Shared;
        // One vector of slack each: PackColumns stores whole vectors.
        float[] xp = pool.Rent((int)packFloats + panel), dyp = pool.Rent((panels > 1 ? MR * rows : 0) + panel);
        try
        {
            fixed (float* pxp = xp, pdyp = dyp)
            {
                body.XPack = pxp;
                body.DyPack = panels > 1 ? pdyp : null;
                KernelDispatch.Run(isa, ref body);
            }
        }
        finally
        {
            pool.Return(xp);
            pool.Return(dyp);
        }
    }

    /// <summary>Whether this shape takes the packed path (given the rows fit <see cref="PackBudgetFloats"/>): C past half
    /// of a Zen 3 L2 (64K floats) and dY at least 384 wide; see the measurements in the class summary.</summary>
    internal static bool Packs(int inF, int outF) => (long)inF * outF > 1 << 16 && outF >= 384;

    /// <summary>Largest packed X, in floats (256 KiB: half of a Zen 3 L2, with room for the dY tile and C).</summary>
    internal const int PackBudgetFloats = 1 << 16;

    private struct Body : IWidthBody
    {
        public float* Dy, X, C;
        public nint Ldy, Ldx;
        public int Rows, Out, In;
        public bool Accumulate;
        /// <summary>Null for the chunked path; else scratch for X's panels ([panel][row][2W]) and one tile's dY columns ([row][6]).</summary>
        public float* XPack, DyPack;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            if (XPack != null)
            {
                Packed<TS, TV>();
                return;
            }
            int panel = 2 * TS.Count;
            if (Rows <= ChunkRows)
            {
                // One chunk: nothing to hold across chunks, so walk C row-major (tiles of the same 6 rows side by side):
                // with a C of megabytes (a 4x4 map's 3x3 weight gradient, 4320 x 480) panel-major touched a new page
                // per tile. The same sums, so the same bits.
                for (int o = 0; o < Out; o += MR)
                    for (int i = 0; i < In; i += panel)
                        Tile<TS, TV>(Math.Min(MR, Out - o), Math.Min(panel, In - i), Dy + o, Ldy, X + i, Ldx, Rows, C + (nint)o * In + i, In, Accumulate, fullLoads: false);
                return;
            }
            for (int r0 = 0; r0 < Rows; r0 += ChunkRows)
            {
                int kc = Math.Min(ChunkRows, Rows - r0);
                bool accumulate = Accumulate || r0 > 0;
                float* dy = Dy + r0 * Ldy, x = X + r0 * Ldx;
                for (int i = 0; i < In; i += panel)
                {
                    int nc = Math.Min(panel, In - i);
                    for (int o = 0; o < Out; o += MR)
                        Tile<TS, TV>(Math.Min(MR, Out - o), nc, dy + o, Ldy, x + i, Ldx, kc, C + (nint)o * In + i, In, accumulate, fullLoads: false);
                }
            }
        }

        /// <summary>All rows per tile, from packed operands: X's panels first, then per tile its dY columns.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void Packed<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            nint panel = 2 * TS.Count, panelFloats = panel * Rows;
            for (int i = 0, p = 0; i < In; i += (int)panel, p++)
                PackColumns<TS, TV>(X + i, Ldx, Rows, Math.Min((int)panel, In - i), XPack + p * panelFloats, (int)panel);
            for (int o = 0; o < Out; o += MR)
            {
                int mr = Math.Min(MR, Out - o);
                float* dy = Dy + o;
                nint ldy = Ldy;
                if (DyPack != null)
                {
                    PackColumns<TS, TV>(Dy + o, Ldy, Rows, mr, DyPack, MR);
                    dy = DyPack;
                    ldy = MR;
                }
                for (int i = 0, p = 0; i < In; i += (int)panel, p++)
                    Tile<TS, TV>(mr, Math.Min((int)panel, In - i), dy, ldy, XPack + p * panelFloats, panel, Rows, C + (nint)o * In + i, In, Accumulate, fullLoads: true);
            }
        }
    }

    /// <summary>
    /// dst [row][ldd] = the first n (at most ldd) columns of each of src's rows (row stride lds), zero-padded to whole
    /// vectors. Stores are whole vectors (masked stores are slow on AMD), so a row may spill past ldd into the next
    /// row, which overwrites it; dst needs one vector of room past rows·ldd. Columns past n are zero when ldd is a
    /// multiple of the vector width (X's panels); the dY tile's columns past n are never read.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PackColumns<TS, TV>(float* src, nint lds, int rows, int n, float* dst, int ldd)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged
    {
        int w = TS.Count;
        for (int r = 0; r < rows; r++, src += lds, dst += ldd)
            for (int j = 0; j < ldd; j += w)
            {
                int k = n - j;
                TS.Store(dst + j, k >= w ? TS.Load(src + j) : k > 0 ? TS.LoadPartial(src + j, k) : TS.Zero);
            }
    }

    /// <summary>One tile: rows past <paramref name="mr"/> alias the last valid output (computed, never stored).</summary>
    /// <param name="fullLoads">X holds 2W readable columns per row (packed, zero-padded) even where nc is less.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile<TS, TV>(int mr, int nc, float* dy, nint ldy, float* x, nint ldx, int rows, float* c, nint ldc, bool accumulate, bool fullLoads)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged
    {
        int w = TS.Count;
        int n0 = Math.Min(nc, w), n1 = nc - n0; // columns in the first and second vector
        nint d1 = Math.Min(1, mr - 1), d2 = Math.Min(2, mr - 1), d3 = Math.Min(3, mr - 1), d4 = Math.Min(4, mr - 1), d5 = Math.Min(5, mr - 1);
        TV c00 = TS.Zero, c01 = TS.Zero, c10 = TS.Zero, c11 = TS.Zero, c20 = TS.Zero, c21 = TS.Zero;
        TV c30 = TS.Zero, c31 = TS.Zero, c40 = TS.Zero, c41 = TS.Zero, c50 = TS.Zero, c51 = TS.Zero;
        if (fullLoads || (n0 == w && n1 == w))
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
