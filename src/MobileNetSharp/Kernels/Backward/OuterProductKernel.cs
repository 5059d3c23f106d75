using System.Runtime.CompilerServices;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels;

/// <summary>
/// C [out, in] (+)= Σ_p dY[p, :]ᵀ ⊗ X[p, :]: the reduction over rows that weight gradients are made of (dW = dYᵀ·X
/// with both operands row-major [rows, features], as NHWC activations are). A register tile of 6 outputs x 2 vectors
/// of inputs walks the rows: per row, two loads of X, six broadcasts of dY and twelve FMAs, as the forward GEMM's
/// micro-kernel (f32-gemm 6x2W), so no operand needs transposing first.
/// <para>
/// Read in place, each row step touches a new cache line of both operands at their row strides, and X's lines are
/// read again for every 6-output tile: measured on Zen 3 at 35-60% of the FMA peak for the shapes of MobileNet
/// training. So when the rows fit a budget, X is first packed into contiguous zero-padded panels of 2W columns
/// [panel][row][2W] (read once, then re-read from L1/L2 at unit stride), and, when there is more than one panel,
/// each tile's 6 dY columns into [row][6], reused by every panel: the GEMM packing of Goto &amp; van de Geijn (2008,
/// "Anatomy of high-performance matrix multiplication", section 4). The sums are formed in the same order either way,
/// so packing never changes a result bit.
/// </para>
/// </summary>
internal static unsafe class OuterProductKernel
{
    private const int MR = 6;

    /// <param name="dy">Row p's outputs start at dy + p·ldy.</param>
    /// <param name="x">Row p's inputs start at x + p·ldx.</param>
    /// <param name="c">[outF, inF] row-major; overwritten, or added to when <paramref name="accumulate"/>.</param>
    /// <param name="allowPacking">False reads both operands in place whatever the shape (tests compare the two paths).</param>
    public static void Run(IsaLevel isa, float* dy, nint ldy, float* x, nint ldx, int rows, float* c, int outF, int inF, bool accumulate,
        bool allowPacking = true)
    {
        var body = new Body { Dy = dy, Ldy = ldy, X = x, Ldx = ldx, Rows = rows, C = c, Out = outF, In = inF, Accumulate = accumulate };
        int panel = 2 * Isa.Width(isa), panels = (inF + panel - 1) / panel;
        long packFloats = (long)panels * panel * rows;
        // Packing pays only when X's rows are wide and re-read by many tiles. Measured on Zen 3 at 1 thread, packed over
        // in place: in x out = 160x1280 0.78, 160x960 0.79, 96x576 0.84; 64x384, 384x64 and 192x32 level; 32x192 1.21,
        // 24x144 1.24, 96x16 1.55 (there the copy is not repaid). The budget keeps the panels in L2.
        if (!allowPacking || rows <= 0 || inF < MinPackedIn || outF < MinPackedOut || packFloats > PackBudgetFloats)
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

    /// <summary>Largest packed X, in floats (256 KiB: half of a Zen 3 L2, with room for the dY tile and C).</summary>
    internal const int PackBudgetFloats = 1 << 16;
    /// <summary>The narrowest X and dY (columns) that are packed; see the measurements in <see cref="Run"/>.</summary>
    internal const int MinPackedIn = 96, MinPackedOut = 384;

    private struct Body : IWidthBody
    {
        public float* Dy, X, C;
        public nint Ldy, Ldx;
        public int Rows, Out, In;
        public bool Accumulate;
        /// <summary>Scratch for X's panels ([panel][row][2W]) and one tile's dY columns ([row][6]); null to read in place.</summary>
        public float* XPack, DyPack;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            int w = TS.Count;
            if (XPack == null)
            {
                for (int o = 0; o < Out; o += MR)
                {
                    int mr = Math.Min(MR, Out - o);
                    for (int i = 0; i < In; i += 2 * w)
                        Tile<TS, TV>(mr, Math.Min(2 * w, In - i), Dy + o, Ldy, X + i, Ldx, Rows, C + (nint)o * In + i, In, Accumulate, fullLoads: false);
                }
                return;
            }
            nint panel = 2 * w, panelFloats = panel * Rows;
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
