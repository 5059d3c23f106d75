using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileNetSharp.Kernels.Int8;

/// <summary>
/// Register-tiled u8 x s8 -> u8 GEMM micro-kernels over <see cref="PackedInt8Weights"/> panels, with the
/// requantization (<see cref="Requantization"/>) done while the tile is still in registers.
/// <para>
/// The inner step is one k pair: a broadcast int32 holding two zero-extended activations (A[i,2q], A[i,2q+1])
/// times a packed row of B holding the int16 pairs (B[2q,j], B[2q+1,j]); vpmaddwd multiplies the 16-bit halves
/// and adds each pair into an int32 lane exactly, and vpaddd accumulates. vpmaddubsw (u8 x s8 -> s16, twice
/// the products per instruction) saturates its pair sums at int16 for full-range weights (255·127·2 = 64,770 &gt;
/// 32,767); ONNX Runtime's AVX2 u8s8 kernel uses it anyway, and the tests show it then departs from the exact sum.
/// We use it only where it is exact: weights whose same-signed pairs stay within 128 (every 7-bit weight set;
/// <see cref="PackedInt8Weights.HasByteQuads"/>) run the byte-quad tiles, four k per step, vpmaddubsw then
/// vpmaddwd by 1 into int32. Measured on this Zen 3: 94 vs 70 GMAC/s in a register-only loop, and 0.54 vs 0.82
/// of the float GEMM's time over MobileNetV2's 1x1 shapes (`int8gemm --weight-bits 7` vs `8`).
/// </para>
/// <para>
/// Tiles: f32-gemm style, named by rows x columns. 256-bit: 6x16 (12 accumulators, two B vectors, one
/// broadcast, one product), and 6x8 for a last panel of at most 8 columns. 128-bit: 6x8 over each half of a 16-column panel. Scalar: row by row. Rows past
/// <c>mr</c> alias the last valid row (computed, never stored), so the k loop has no branch.
/// </para>
/// <para>
/// Vector512: there is no 512-bit kernel; <see cref="QuantizedGemm"/> runs the 256-bit one there.
/// VNNI seam: on AVX-VNNI / AVX512-VNNI hardware the vpmaddwd + vpaddd pair below becomes one vpdpwssd
/// (<c>AvxVnni.MultiplyWideningAndAdd</c> on int16) with the same packing, or, with A packed as 4 uint8 and B as
/// 4 int8 per int32, one vpdpbusd (u8 x s8, 4 products per lane, no saturation since it accumulates in int32)
/// at twice the k per instruction. Neither can run on the AVX2-only development machine, so neither is written.
/// </para>
/// </summary>
internal static unsafe class Int8MicroKernel
{
    /// <summary>Rows per register tile of each path.</summary>
    public static int RowsPerTile(Int8Path path) => path == Int8Path.Scalar ? 4 : 6;

    /// <summary>
    /// Writes row <paramref name="src"/> (k bytes) as ceil(k/2) int32 words, word q = A[2q] | A[2q+1] &lt;&lt; 16
    /// (an odd k's last high half 0): the zero-extended int16 pairs the kernels broadcast.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void PackRow(Int8Path path, byte* src, int k, int* dst)
    {
        int q = 0;
        if (path == Int8Path.Avx2)
        {
            // vpmovzxbw: 16 bytes become 16 int16 = 8 words, already in pair order.
            for (; 2 * q + 16 <= k; q += 8) Avx.Store((short*)(dst + q), Avx2.ConvertToVector256Int16(src + 2 * q));
        }
        else if (path != Int8Path.Scalar)
        {
            for (; 2 * q + 16 <= k; q += 8)
            {
                Vector128<byte> v = Vector128.Load(src + 2 * q);
                Vector128.WidenLower(v).Store((ushort*)(dst + q));
                Vector128.WidenUpper(v).Store((ushort*)(dst + q + 4));
            }
        }
        for (; 2 * q + 1 < k; q++) dst[q] = src[2 * q] | src[2 * q + 1] << 16;
        if (2 * q < k) dst[q] = src[2 * q];
    }

    /// <summary>C rows [0, mr) (at <paramref name="c"/>, stride Ldc) for panels [p0, p1), from the packed rows of A.</summary>
    public static void RunPanels(Int8GemmArgs* g, int mr, int* a, byte* c, int p0, int p1)
    {
        if (g->Path == Int8Path.Avx2) { RunPanelsAvx2(g, mr, a, c, p0, p1); return; }
        for (int p = p0; p < p1; p++)
        {
            int j = p * PackedInt8Weights.PanelWidth;
            int nc = Math.Min(PackedInt8Weights.PanelWidth, g->N - j);
            int* b = g->B + p * g->PanelInts;
            switch (g->Path)
            {
                case Int8Path.Sse2:
                    Tile6x8V128<Sse2Ops>(g, mr, Math.Min(nc, 8), j, a, b, c + j * g->ElementBytes);
                    if (nc > 8) Tile6x8V128<Sse2Ops>(g, mr, nc - 8, j + 8, a, b + 8, c + (j + 8) * g->ElementBytes);
                    break;
                case Int8Path.Portable128:
                    Tile6x8V128<PortableOps>(g, mr, Math.Min(nc, 8), j, a, b, c + j * g->ElementBytes);
                    if (nc > 8) Tile6x8V128<PortableOps>(g, mr, nc - 8, j + 8, a, b + 8, c + (j + 8) * g->ElementBytes);
                    break;
                default:
                    TileScalar(g, mr, nc, j, a, b, c + j * g->ElementBytes);
                    break;
            }
        }
    }

    /// <summary>
    /// The AVX2 panel walk, with the 6x16 tile inlined: at the K of expansion layers (16, 24) a tile's k loop is
    /// only 8-12 steps, and the call, prologue and constant set-up per panel were measured at ~7% of the time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunPanelsAvx2(Int8GemmArgs* g, int mr, int* a, byte* c, int p0, int p1)
    {
        for (int p = p0; p < p1; p++)
        {
            int j = p * PackedInt8Weights.PanelWidth;
            int nc = Math.Min(PackedInt8Weights.PanelWidth, g->N - j);
            int* b = g->B + p * g->PanelInts;
            // A last panel of at most 8 columns (N = 24, 1000) takes the one-vector tile instead of computing 16.
            if (nc > 8) Tile6x16Avx2(g, mr, nc, j, a, b, c + j * g->ElementBytes);
            else Tile6x8Avx2(g, mr, nc, j, a, b, c + j * g->ElementBytes);
        }
    }

    /// <summary>C[0..mr, j..j+nc) for nc in (0, 16] with AVX2: a 6x16 tile over one panel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Tile6x16Avx2(Int8GemmArgs* g, int mr, int nc, int j, int* a, int* b, byte* c)
    {
        nint kp = g->KPairs;
        int* a0 = a;
        int* a1 = mr > 1 ? a0 + kp : a0;
        int* a2 = mr > 2 ? a1 + kp : a1;
        int* a3 = mr > 3 ? a2 + kp : a2;
        int* a4 = mr > 4 ? a3 + kp : a3;
        int* a5 = mr > 5 ? a4 + kp : a4;
                Vector256<int> init0 = Avx.LoadVector256(g->Init + j), init1 = Avx.LoadVector256(g->Init + j + 8);
        Vector256<int> c00 = init0, c01 = init1, c10 = init0, c11 = init1, c20 = init0, c21 = init1;
        Vector256<int> c30 = init0, c31 = init1, c40 = init0, c41 = init1, c50 = init0, c51 = init1;
        for (nint q = 0; q < kp; q++)
        {
            Vector256<short> b0 = Avx.LoadVector256(b).AsInt16();
            Vector256<short> b1 = Avx.LoadVector256(b + 8).AsInt16();
            b += PackedInt8Weights.PanelWidth;
            // (Seam: with AVX-VNNI, each MultiplyAddAdjacent + Add pair is one AvxVnni.MultiplyWideningAndAdd.)
            Vector256<short> x = Avx2.BroadcastScalarToVector256(a0 + q).AsInt16();
            c00 = Avx2.Add(c00, Avx2.MultiplyAddAdjacent(x, b0)); c01 = Avx2.Add(c01, Avx2.MultiplyAddAdjacent(x, b1));
            x = Avx2.BroadcastScalarToVector256(a1 + q).AsInt16();
            c10 = Avx2.Add(c10, Avx2.MultiplyAddAdjacent(x, b0)); c11 = Avx2.Add(c11, Avx2.MultiplyAddAdjacent(x, b1));
            x = Avx2.BroadcastScalarToVector256(a2 + q).AsInt16();
            c20 = Avx2.Add(c20, Avx2.MultiplyAddAdjacent(x, b0)); c21 = Avx2.Add(c21, Avx2.MultiplyAddAdjacent(x, b1));
            x = Avx2.BroadcastScalarToVector256(a3 + q).AsInt16();
            c30 = Avx2.Add(c30, Avx2.MultiplyAddAdjacent(x, b0)); c31 = Avx2.Add(c31, Avx2.MultiplyAddAdjacent(x, b1));
            x = Avx2.BroadcastScalarToVector256(a4 + q).AsInt16();
            c40 = Avx2.Add(c40, Avx2.MultiplyAddAdjacent(x, b0)); c41 = Avx2.Add(c41, Avx2.MultiplyAddAdjacent(x, b1));
            x = Avx2.BroadcastScalarToVector256(a5 + q).AsInt16();
            c50 = Avx2.Add(c50, Avx2.MultiplyAddAdjacent(x, b0)); c51 = Avx2.Add(c51, Avx2.MultiplyAddAdjacent(x, b1));
        }

        StoreTile16(g, mr, nc, j, c, c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51);
    }

    /// <summary>
    /// The AVX2 panel walk over byte quads (<see cref="PackedInt8Weights.HasByteQuads"/>): rows of A are raw bytes at
    /// stride <paramref name="lda"/>, each at least KQuads·4 bytes readable.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void RunQuadPanelsAvx2(Int8GemmArgs* g, int mr, byte* a, nint lda, byte* c, int p0, int p1)
    {
        for (int p = p0; p < p1; p++)
        {
            int j = p * PackedInt8Weights.PanelWidth;
            int nc = Math.Min(PackedInt8Weights.PanelWidth, g->N - j);
            byte* b = g->Quads + p * g->QuadPanelBytes;
            if (mr == 1) QuadTile1x16Avx2(g, nc, j, a, b, c + j * g->ElementBytes);
            else if (nc > 8) QuadTile6x16Avx2(g, mr, nc, j, a, lda, b, c + j * g->ElementBytes);
            else QuadTile6x8Avx2(g, mr, nc, j, a, lda, b, c + j * g->ElementBytes);
        }
    }

    /// <summary>
    /// C[0..mr, j..j+nc) for nc in (0, 16]: a 6x16 tile stepping four k at a time. vpmaddubsw multiplies the
    /// broadcast quad (A[i,4q..4q+3], unsigned) by the packed quads of 8 columns (signed) and adds adjacent products
    /// into int16, exact by the packing's guarantee; vpmaddwd by 1 adds the two pair sums into int32. Twice the k
    /// per multiply instruction of the int16-pair tile, measured ~1.35x its throughput on Zen 3.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void QuadTile6x16Avx2(Int8GemmArgs* g, int mr, int nc, int j, byte* a, nint lda, byte* b, byte* c)
    {
        nint kq = g->KQuads;
        int* a0 = (int*)a;
        int* a1 = mr > 1 ? (int*)((byte*)a0 + lda) : a0;
        int* a2 = mr > 2 ? (int*)((byte*)a1 + lda) : a1;
        int* a3 = mr > 3 ? (int*)((byte*)a2 + lda) : a2;
        int* a4 = mr > 4 ? (int*)((byte*)a3 + lda) : a3;
        int* a5 = mr > 5 ? (int*)((byte*)a4 + lda) : a4;
        Vector256<int> init0 = Avx.LoadVector256(g->Init + j), init1 = Avx.LoadVector256(g->Init + j + 8);
        Vector256<int> c00 = init0, c01 = init1, c10 = init0, c11 = init1, c20 = init0, c21 = init1;
        Vector256<int> c30 = init0, c31 = init1, c40 = init0, c41 = init1, c50 = init0, c51 = init1;
        Vector256<short> ones = Vector256.Create((short)1);
        for (nint q = 0; q < kq; q++)
        {
            Vector256<sbyte> b0 = Avx.LoadVector256((sbyte*)b);
            Vector256<sbyte> b1 = Avx.LoadVector256((sbyte*)b + 32);
            b += 4 * PackedInt8Weights.PanelWidth;
            Vector256<byte> x = Avx2.BroadcastScalarToVector256(a0 + q).AsByte();
            c00 = Avx2.Add(c00, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(x, b0), ones));
            c01 = Avx2.Add(c01, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(x, b1), ones));
            x = Avx2.BroadcastScalarToVector256(a1 + q).AsByte();
            c10 = Avx2.Add(c10, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(x, b0), ones));
            c11 = Avx2.Add(c11, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(x, b1), ones));
            x = Avx2.BroadcastScalarToVector256(a2 + q).AsByte();
            c20 = Avx2.Add(c20, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(x, b0), ones));
            c21 = Avx2.Add(c21, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(x, b1), ones));
            x = Avx2.BroadcastScalarToVector256(a3 + q).AsByte();
            c30 = Avx2.Add(c30, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(x, b0), ones));
            c31 = Avx2.Add(c31, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(x, b1), ones));
            x = Avx2.BroadcastScalarToVector256(a4 + q).AsByte();
            c40 = Avx2.Add(c40, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(x, b0), ones));
            c41 = Avx2.Add(c41, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(x, b1), ones));
            x = Avx2.BroadcastScalarToVector256(a5 + q).AsByte();
            c50 = Avx2.Add(c50, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(x, b0), ones));
            c51 = Avx2.Add(c51, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(x, b1), ones));
        }

        StoreTile16(g, mr, nc, j, c, c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51);
    }

    /// <summary>
    /// One row, C[0, j..j+nc) for nc in (0, 16]: a fully connected layer at batch 1 (a GEMV), where the 6-row tile
    /// would compute its one row six times. Bound by streaming B.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void QuadTile1x16Avx2(Int8GemmArgs* g, int nc, int j, byte* a, byte* b, byte* c)
    {
        nint kq = g->KQuads;
        int* a0 = (int*)a;
        Vector256<int> c00 = Avx.LoadVector256(g->Init + j), c01 = Avx.LoadVector256(g->Init + j + 8);
        Vector256<short> ones = Vector256.Create((short)1);
        for (nint q = 0; q < kq; q++)
        {
            Vector256<byte> x = Avx2.BroadcastScalarToVector256(a0 + q).AsByte();
            c00 = Avx2.Add(c00, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(x, Avx.LoadVector256((sbyte*)b)), ones));
            c01 = Avx2.Add(c01, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(x, Avx.LoadVector256((sbyte*)b + 32)), ones));
            b += 4 * PackedInt8Weights.PanelWidth;
        }
        var e = new EpilogueAvx2(g, j);
        if (g->FloatOutput) e.StoreFloats(c, 0, 1, nc, c00, c01, default, default, default, default, default, default, default, default, default, default);
        else if (nc > 8) e.Store(c, c, false, nc, c00, c01, c00, c01);
        else e.Store8(c, c, false, nc, c00, c00);
    }

    /// <summary>C[0..mr, j..j+nc) for nc in (0, 8]: the 6x8 byte-quad tile over the first half of a panel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void QuadTile6x8Avx2(Int8GemmArgs* g, int mr, int nc, int j, byte* a, nint lda, byte* b, byte* c)
    {
        nint kq = g->KQuads;
        int* a0 = (int*)a;
        int* a1 = mr > 1 ? (int*)((byte*)a0 + lda) : a0;
        int* a2 = mr > 2 ? (int*)((byte*)a1 + lda) : a1;
        int* a3 = mr > 3 ? (int*)((byte*)a2 + lda) : a2;
        int* a4 = mr > 4 ? (int*)((byte*)a3 + lda) : a3;
        int* a5 = mr > 5 ? (int*)((byte*)a4 + lda) : a4;
        Vector256<int> init = Avx.LoadVector256(g->Init + j);
        Vector256<int> c0 = init, c1 = init, c2 = init, c3 = init, c4 = init, c5 = init;
        Vector256<short> ones = Vector256.Create((short)1);
        for (nint q = 0; q < kq; q++)
        {
            Vector256<sbyte> b0 = Avx.LoadVector256((sbyte*)b);
            b += 4 * PackedInt8Weights.PanelWidth;
            c0 = Avx2.Add(c0, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.BroadcastScalarToVector256(a0 + q).AsByte(), b0), ones));
            c1 = Avx2.Add(c1, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.BroadcastScalarToVector256(a1 + q).AsByte(), b0), ones));
            c2 = Avx2.Add(c2, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.BroadcastScalarToVector256(a2 + q).AsByte(), b0), ones));
            c3 = Avx2.Add(c3, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.BroadcastScalarToVector256(a3 + q).AsByte(), b0), ones));
            c4 = Avx2.Add(c4, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.BroadcastScalarToVector256(a4 + q).AsByte(), b0), ones));
            c5 = Avx2.Add(c5, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.BroadcastScalarToVector256(a5 + q).AsByte(), b0), ones));
        }

        StoreTile8(g, mr, nc, j, c, c0, c1, c2, c3, c4, c5);
    }

    /// <summary>C[0..mr, j..j+nc) for nc in (0, 8] with AVX2: a 6x8 tile over the first half of a panel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile6x8Avx2(Int8GemmArgs* g, int mr, int nc, int j, int* a, int* b, byte* c)
    {
        nint kp = g->KPairs;
        int* a0 = a;
        int* a1 = mr > 1 ? a0 + kp : a0;
        int* a2 = mr > 2 ? a1 + kp : a1;
        int* a3 = mr > 3 ? a2 + kp : a2;
        int* a4 = mr > 4 ? a3 + kp : a3;
        int* a5 = mr > 5 ? a4 + kp : a4;
        Vector256<int> init = Avx.LoadVector256(g->Init + j);
        Vector256<int> c0 = init, c1 = init, c2 = init, c3 = init, c4 = init, c5 = init;
        for (nint q = 0; q < kp; q++)
        {
            Vector256<short> b0 = Avx.LoadVector256(b).AsInt16();
            b += PackedInt8Weights.PanelWidth;
            c0 = Avx2.Add(c0, Avx2.MultiplyAddAdjacent(Avx2.BroadcastScalarToVector256(a0 + q).AsInt16(), b0));
            c1 = Avx2.Add(c1, Avx2.MultiplyAddAdjacent(Avx2.BroadcastScalarToVector256(a1 + q).AsInt16(), b0));
            c2 = Avx2.Add(c2, Avx2.MultiplyAddAdjacent(Avx2.BroadcastScalarToVector256(a2 + q).AsInt16(), b0));
            c3 = Avx2.Add(c3, Avx2.MultiplyAddAdjacent(Avx2.BroadcastScalarToVector256(a3 + q).AsInt16(), b0));
            c4 = Avx2.Add(c4, Avx2.MultiplyAddAdjacent(Avx2.BroadcastScalarToVector256(a4 + q).AsInt16(), b0));
            c5 = Avx2.Add(c5, Avx2.MultiplyAddAdjacent(Avx2.BroadcastScalarToVector256(a5 + q).AsInt16(), b0));
        }

        StoreTile8(g, mr, nc, j, c, c0, c1, c2, c3, c4, c5);
    }

    /// <summary>The epilogue of a 6x16 AVX2 tile: rows [0, mr), columns [0, nc) of C, requantized to bytes or dequantized to floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreTile16(Int8GemmArgs* g, int mr, int nc, int j, byte* c,
        Vector256<int> c00, Vector256<int> c01, Vector256<int> c10, Vector256<int> c11, Vector256<int> c20, Vector256<int> c21,
        Vector256<int> c30, Vector256<int> c31, Vector256<int> c40, Vector256<int> c41, Vector256<int> c50, Vector256<int> c51)
    {
        var e = new EpilogueAvx2(g, j);
        nint ldc = g->Ldc;
        if (g->FloatOutput)
        {
            e.StoreFloats(c, ldc, mr, nc, c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51);
            return;
        }
        e.Store(c, c + ldc, mr > 1, nc, c00, c01, c10, c11);
        if (mr > 2) e.Store(c + 2 * ldc, c + 3 * ldc, mr > 3, nc, c20, c21, c30, c31);
        if (mr > 4) e.Store(c + 4 * ldc, c + 5 * ldc, mr > 5, nc, c40, c41, c50, c51);
    }

    /// <summary>The epilogue of a 6x8 AVX2 tile (nc &lt;= 8).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreTile8(Int8GemmArgs* g, int mr, int nc, int j, byte* c,
        Vector256<int> c0, Vector256<int> c1, Vector256<int> c2, Vector256<int> c3, Vector256<int> c4, Vector256<int> c5)
    {
        var e = new EpilogueAvx2(g, j);
        nint ldc = g->Ldc;
        if (g->FloatOutput)
        {
            e.StoreFloats(c, ldc, mr, nc, c0, default, c1, default, c2, default, c3, default, c4, default, c5, default);
            return;
        }
        e.Store8(c, c + ldc, mr > 1, nc, c0, c1);
        if (mr > 2) e.Store8(c + 2 * ldc, c + 3 * ldc, mr > 3, nc, c2, c3);
        if (mr > 4) e.Store8(c + 4 * ldc, c + 5 * ldc, mr > 5, nc, c4, c5);
    }

    /// <summary>
    /// The requantization of two rows of 16 columns with AVX2. cvtps2dq rounds half to even under the default
    /// MXCSR, as MathF.Round does. Two rows share one byte pack (vpackssdw, vpackuswb, one vpermd for both).
    /// <para>
    /// When every multiplier is below 1 (<see cref="Requantization.ClampAfterRounding"/>, the normal case:
    /// M = sx·sw/sy), the clamp moves after rounding, onto the bytes: |f| &lt; 2^31 then, so cvtps2dq cannot
    /// overflow; rounding is monotone and leaves the integer bounds fixed, so round(clamp(f)) = clamp(round(f));
    /// and the saturating packs and add only saturate values the clamp would cut anyway. Same bytes, two float
    /// ops per 8 outputs fewer, which matters at the small K of expansion layers.
    /// </para>
    /// </summary>
    private readonly struct EpilogueAvx2
    {
        private readonly Vector256<float> _m0, _m1, _lower, _upper;
        private readonly Vector256<short> _zeroPoint;
        private readonly Vector256<byte> _min, _max;
        private readonly bool _clampBytes, _hardSwish;
        private readonly Vector256<float> _outputScale, _alpha, _beta;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public EpilogueAvx2(Int8GemmArgs* g, int j)
        {
            _hardSwish = g->HardSwish;
            _outputScale = Vector256.Create(g->OutputScale);
            _alpha = Vector256.Create(g->HardSwishAlpha);
            _beta = Vector256.Create(g->HardSwishBeta);
            _m0 = Avx.LoadVector256(g->Multipliers + j);
            _m1 = Avx.LoadVector256(g->Multipliers + j + 8);
            _lower = Vector256.Create(g->Lower);
            _upper = Vector256.Create(g->Upper);
            _zeroPoint = Vector256.Create((short)g->ZeroPointC);
            _min = Vector256.Create(g->MinByte);
            _max = Vector256.Create(g->MaxByte);
            _clampBytes = g->ClampAfterRounding;
        }

        /// <summary>Row r0 (acc00, acc01) to c0 and, if <paramref name="second"/>, row r1 (acc10, acc11) to c1.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Store(byte* c0, byte* c1, bool second, int nc, Vector256<int> acc00, Vector256<int> acc01, Vector256<int> acc10, Vector256<int> acc11)
        {
            Vector256<byte> bytes;
            if (_clampBytes)
            {
                Vector256<short> s0 = Avx2.AddSaturate(Avx2.PackSignedSaturate(Round(acc00, _m0), Round(acc01, _m1)), _zeroPoint);
                Vector256<short> s1 = Avx2.AddSaturate(Avx2.PackSignedSaturate(Round(acc10, _m0), Round(acc11, _m1)), _zeroPoint);
                bytes = Avx2.PackUnsignedSaturate(s0, s1);
                bytes = Avx2.Min(Avx2.Max(bytes, _min), _max);
            }
            else
            {
                // Clamped in float first: every value is in [qmin - zpC, qmax - zpC], so nothing below saturates.
                Vector256<short> s0 = Avx2.Add(Avx2.PackSignedSaturate(ClampRound(acc00, _m0), ClampRound(acc01, _m1)), _zeroPoint);
                Vector256<short> s1 = Avx2.Add(Avx2.PackSignedSaturate(ClampRound(acc10, _m0), ClampRound(acc11, _m1)), _zeroPoint);
                bytes = Avx2.PackUnsignedSaturate(s0, s1);
            }
            // The packs work within 128-bit lanes: dwords hold columns (row 0: 0-3, 8-11; row 1: 0-3, 8-11 | row 0:
            // 4-7, 12-15; row 1: 4-7, 12-15). vpermd puts row 0 in the low half and row 1 in the high half, in order.
            bytes = Avx2.PermuteVar8x32(bytes.AsInt32(), Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7)).AsByte();
            if (nc == PackedInt8Weights.PanelWidth)
            {
                Sse2.Store(c0, bytes.GetLower());
                if (second) Sse2.Store(c1, bytes.GetUpper());
            }
            else
            {
                StorePartial(c0, bytes.GetLower(), nc);
                if (second) StorePartial(c1, bytes.GetUpper(), nc);
            }
        }

        /// <summary>
        /// The dequantizing epilogue (<see cref="QuantizedGemm.RunToFloat"/>): rows [0, mr) of float C = (float)acc · M[j],
        /// columns [0, nc), nc &lt;= 16 (the second vector of a row is not read when nc &lt;= 8).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void StoreFloats(byte* c, nint ldc, int mr, int nc,
            Vector256<int> a00, Vector256<int> a01, Vector256<int> a10, Vector256<int> a11, Vector256<int> a20, Vector256<int> a21,
            Vector256<int> a30, Vector256<int> a31, Vector256<int> a40, Vector256<int> a41, Vector256<int> a50, Vector256<int> a51)
        {
            StoreFloatRow((float*)c, nc, a00, a01);
            if (mr > 1) StoreFloatRow((float*)(c + ldc), nc, a10, a11);
            if (mr > 2) StoreFloatRow((float*)(c + 2 * ldc), nc, a20, a21);
            if (mr > 3) StoreFloatRow((float*)(c + 3 * ldc), nc, a30, a31);
            if (mr > 4) StoreFloatRow((float*)(c + 4 * ldc), nc, a40, a41);
            if (mr > 5) StoreFloatRow((float*)(c + 5 * ldc), nc, a50, a51);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void StoreFloatRow(float* c, int nc, Vector256<int> acc0, Vector256<int> acc1)
        {
            Vector256<float> f0 = Avx.Multiply(Avx.ConvertToVector256Single(acc0), _m0);
            if (nc >= 8) Avx.Store(c, f0);
            else { for (int i = 0; i < nc; i++) c[i] = f0.GetElement(i); return; }
            if (nc == 8) return;
            Vector256<float> f1 = Avx.Multiply(Avx.ConvertToVector256Single(acc1), _m1);
            if (nc == 16) Avx.Store(c + 8, f1);
            else for (int i = 8; i < nc; i++) c[i] = f1.GetElement(i - 8);
        }

        /// <summary>Columns [0, nc) of row r0 (acc0) to c0 and, if <paramref name="second"/>, of row r1 (acc1) to c1; nc &lt;= 8.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Store8(byte* c0, byte* c1, bool second, int nc, Vector256<int> acc0, Vector256<int> acc1)
        {
            Vector256<byte> bytes;
            if (_clampBytes)
            {
                Vector256<short> s = Avx2.AddSaturate(Avx2.PackSignedSaturate(Round(acc0, _m0), Round(acc1, _m0)), _zeroPoint);
                bytes = Avx2.Min(Avx2.Max(Avx2.PackUnsignedSaturate(s, s), _min), _max);
            }
            else
            {
                Vector256<short> s = Avx2.Add(Avx2.PackSignedSaturate(ClampRound(acc0, _m0), ClampRound(acc1, _m0)), _zeroPoint);
                bytes = Avx2.PackUnsignedSaturate(s, s);
            }
            // Dwords now hold (row 0: 0-3, row 1: 0-3, repeated | row 0: 4-7, row 1: 4-7, repeated): row 0 to bytes 0-7, row 1 to 8-15.
            Vector128<byte> rows = Avx2.PermuteVar8x32(bytes.AsInt32(), Vector256.Create(0, 4, 1, 5, 0, 4, 1, 5)).AsByte().GetLower();
            if (nc == 8)
            {
                Unsafe.WriteUnaligned(c0, rows.AsUInt64().ToScalar());
                if (second) Unsafe.WriteUnaligned(c1, rows.AsUInt64().GetElement(1));
            }
            else
            {
                StorePartial(c0, rows, nc);
                if (second) StorePartial(c1, Sse2.ShiftRightLogical128BitLane(rows, 8), nc);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<int> Round(Vector256<int> acc, Vector256<float> multiplier) =>
            Avx.ConvertToVector256Int32(Avx.Multiply(Avx.ConvertToVector256Single(acc), multiplier));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private Vector256<int> ClampRound(Vector256<int> acc, Vector256<float> multiplier)
        {
            Vector256<float> f = Avx.Multiply(Avx.ConvertToVector256Single(acc), multiplier);
            if (_hardSwish)
            {
                // v · min(max(alpha·v + beta, 0), 1), then QuantizeLinear's division (Requantization.WithHardSwish).
                Vector256<float> gate = Avx.Min(Avx.Max(Fma.MultiplyAdd(_alpha, f, _beta), Vector256<float>.Zero), Vector256.Create(1f));
                f = Avx.Divide(Avx.Multiply(f, gate), _outputScale);
            }
            return Avx.ConvertToVector256Int32(Avx.Min(Avx.Max(f, _lower), _upper));
        }
    }

    /// <summary>C[0..mr, j..j+nc) for nc in (0, 8] with 128-bit vectors: 6 rows of two 4-column vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile6x8V128<TOps>(Int8GemmArgs* g, int mr, int nc, int j, int* a, int* b, byte* c) where TOps : unmanaged, IV128Ops
    {
        nint kp = g->KPairs;
        int* a0 = a;
        int* a1 = mr > 1 ? a0 + kp : a0;
        int* a2 = mr > 2 ? a1 + kp : a1;
        int* a3 = mr > 3 ? a2 + kp : a2;
        int* a4 = mr > 4 ? a3 + kp : a3;
        int* a5 = mr > 5 ? a4 + kp : a4;
        Vector128<int> init0 = Vector128.Load(g->Init + j), init1 = Vector128.Load(g->Init + j + 4);
        Vector128<int> c00 = init0, c01 = init1, c10 = init0, c11 = init1, c20 = init0, c21 = init1;
        Vector128<int> c30 = init0, c31 = init1, c40 = init0, c41 = init1, c50 = init0, c51 = init1;
        for (nint q = 0; q < kp; q++)
        {
            Vector128<int> b0 = Vector128.Load(b);
            Vector128<int> b1 = Vector128.Load(b + 4);
            b += PackedInt8Weights.PanelWidth;
            Vector128<int> x = Vector128.Create(a0[q]);
            c00 += TOps.MultiplyAddPairs(x, b0); c01 += TOps.MultiplyAddPairs(x, b1);
            x = Vector128.Create(a1[q]);
            c10 += TOps.MultiplyAddPairs(x, b0); c11 += TOps.MultiplyAddPairs(x, b1);
            x = Vector128.Create(a2[q]);
            c20 += TOps.MultiplyAddPairs(x, b0); c21 += TOps.MultiplyAddPairs(x, b1);
            x = Vector128.Create(a3[q]);
            c30 += TOps.MultiplyAddPairs(x, b0); c31 += TOps.MultiplyAddPairs(x, b1);
            x = Vector128.Create(a4[q]);
            c40 += TOps.MultiplyAddPairs(x, b0); c41 += TOps.MultiplyAddPairs(x, b1);
            x = Vector128.Create(a5[q]);
            c50 += TOps.MultiplyAddPairs(x, b0); c51 += TOps.MultiplyAddPairs(x, b1);
        }

        Vector128<float> m0 = Vector128.Load(g->Multipliers + j), m1 = Vector128.Load(g->Multipliers + j + 4);
        Vector128<float> lower = Vector128.Create(g->Lower), upper = Vector128.Create(g->Upper);
        Vector128<int> zpC = Vector128.Create(g->ZeroPointC);
        nint ldc = g->Ldc;
        StoreRowV128<TOps>(g, c, nc, c00, c01, m0, m1, lower, upper, zpC);
        if (mr > 1) StoreRowV128<TOps>(g, c + ldc, nc, c10, c11, m0, m1, lower, upper, zpC);
        if (mr > 2) StoreRowV128<TOps>(g, c + 2 * ldc, nc, c20, c21, m0, m1, lower, upper, zpC);
        if (mr > 3) StoreRowV128<TOps>(g, c + 3 * ldc, nc, c30, c31, m0, m1, lower, upper, zpC);
        if (mr > 4) StoreRowV128<TOps>(g, c + 4 * ldc, nc, c40, c41, m0, m1, lower, upper, zpC);
        if (mr > 5) StoreRowV128<TOps>(g, c + 5 * ldc, nc, c50, c51, m0, m1, lower, upper, zpC);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRowV128<TOps>(Int8GemmArgs* g, byte* c, int nc, Vector128<int> acc0, Vector128<int> acc1, Vector128<float> m0, Vector128<float> m1,
        Vector128<float> lower, Vector128<float> upper, Vector128<int> zpC) where TOps : unmanaged, IV128Ops
    {
        Vector128<float> f0 = Vector128.ConvertToSingle(acc0) * m0, f1 = Vector128.ConvertToSingle(acc1) * m1;
        if (g->FloatOutput)
        {
            float* cf = (float*)c;
            for (int i = 0; i < nc; i++) cf[i] = i < 4 ? f0.GetElement(i) : f1.GetElement(i - 4);
            return;
        }
        if (g->HardSwish)
        {
            f0 = HardSwishV128(g, f0);
            f1 = HardSwishV128(g, f1);
        }
        Vector128<int> q0 = TOps.RoundToInt32(Vector128.MinNative(Vector128.MaxNative(f0, lower), upper)) + zpC;
        Vector128<int> q1 = TOps.RoundToInt32(Vector128.MinNative(Vector128.MaxNative(f1, lower), upper)) + zpC;
        // Values are in [0, 255]: narrowing cannot lose anything, saturating or not.
        Vector128<byte> bytes = TOps.NarrowToBytes(q0, q1);
        if (nc == 8) Unsafe.WriteUnaligned(c, bytes.AsUInt64().ToScalar());
        else StorePartial(c, bytes, nc);
    }

    /// <summary>hard-swish then the output quantization's division (<see cref="Requantization.WithHardSwish"/>), 4 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> HardSwishV128(Int8GemmArgs* g, Vector128<float> v)
    {
        Vector128<float> gate = Vector128.MinNative(Vector128.MaxNative(Vector128.FusedMultiplyAdd(Vector128.Create(g->HardSwishAlpha), v, Vector128.Create(g->HardSwishBeta)),
            Vector128<float>.Zero), Vector128.Create(1f));
        return v * gate / Vector128.Create(g->OutputScale);
    }

    /// <summary>C[0..mr, j..j+nc) one element at a time, in the contract's order of operations.</summary>
    private static void TileScalar(Int8GemmArgs* g, int mr, int nc, int j, int* a, int* b, byte* c)
    {
        int kp = g->KPairs;
        for (int r = 0; r < mr; r++)
        {
            int* ar = a + r * kp;
            for (int jj = 0; jj < nc; jj++)
            {
                int acc = g->Init[j + jj];
                int* bj = b + jj;
                for (int q = 0; q < kp; q++, bj += PackedInt8Weights.PanelWidth)
                {
                    int x = ar[q], w = *bj;
                    acc += (x & 0xFFFF) * (short)w + (x >>> 16) * (w >> 16);
                }
                if (g->FloatOutput)
                {
                    *(float*)(c + r * g->Ldc + jj * sizeof(float)) = (float)acc * g->Multipliers[j + jj];
                    continue;
                }
                c[r * g->Ldc + jj] = g->HardSwish
                    ? RequantizeHardSwishScalar(acc, g->Multipliers[j + jj], g->HardSwishAlpha, g->HardSwishBeta, g->OutputScale, g->Lower, g->Upper, g->ZeroPointC)
                    : RequantizeScalar(acc, g->Multipliers[j + jj], g->Lower, g->Upper, g->ZeroPointC);
            }
        }
    }

    /// <summary>The epilogue of the contract for one value: float multiply, clamp in float, round half to even, add zpC.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static byte RequantizeScalar(int acc, float multiplier, float lower, float upper, int zeroPoint)
    {
        float f = Math.Min(Math.Max((float)acc * multiplier, lower), upper);
        return (byte)((int)MathF.Round(f) + zeroPoint);
    }

    /// <summary>The hard-swish epilogue for one value (<see cref="Requantization.WithHardSwish"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static byte RequantizeHardSwishScalar(int acc, float dequantize, float alpha, float beta, float outputScale, float lower, float upper, int zeroPoint)
    {
        float v = (float)acc * dequantize;
        float f = Math.Min(Math.Max(v * Math.Min(Math.Max(MathF.FusedMultiplyAdd(alpha, v, beta), 0f), 1f) / outputScale, lower), upper);
        return (byte)((int)MathF.Round(f) + zeroPoint);
    }

    private static void StorePartial(byte* c, Vector128<byte> bytes, int nc)
    {
        for (int i = 0; i < nc; i++) c[i] = bytes.GetElement(i);
    }

    /// <summary>The three 128-bit operations that differ between SSE2 and other hardware (Arm NEON).</summary>
    internal interface IV128Ops
    {
        /// <summary>Per int32 lane: lo16(x)·lo16(y) + hi16(x)·hi16(y), the 16-bit halves signed (pmaddwd).</summary>
        static abstract Vector128<int> MultiplyAddPairs(Vector128<int> x, Vector128<int> y);
        /// <summary>float -> int32 rounding half to even.</summary>
        static abstract Vector128<int> RoundToInt32(Vector128<float> f);
        /// <summary>8 int32 in [0, 255] -> the low 8 bytes, in order.</summary>
        static abstract Vector128<byte> NarrowToBytes(Vector128<int> lo, Vector128<int> hi);
    }

    internal readonly struct Sse2Ops : IV128Ops
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<int> MultiplyAddPairs(Vector128<int> x, Vector128<int> y) => Sse2.MultiplyAddAdjacent(x.AsInt16(), y.AsInt16());
        // cvtps2dq uses the MXCSR rounding mode, round-to-nearest-even unless someone changed it (.NET does not).
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<int> RoundToInt32(Vector128<float> f) => Sse2.ConvertToVector128Int32(f);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<byte> NarrowToBytes(Vector128<int> lo, Vector128<int> hi)
        {
            Vector128<short> s = Sse2.PackSignedSaturate(lo, hi);
            return Sse2.PackUnsignedSaturate(s, s);
        }
    }

    /// <summary>
    /// Portable Vector128 (Arm NEON and other non-x86 hardware): the pair product split into two 32-bit multiplies.
    /// A NEON kernel would use smlal/smlal2 (<c>AdvSimd.MultiplyWideningLowerAndAdd</c>) on int16 instead.
    /// </summary>
    internal readonly struct PortableOps : IV128Ops
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<int> MultiplyAddPairs(Vector128<int> x, Vector128<int> y) =>
            ((x << 16) >> 16) * ((y << 16) >> 16) + (x >> 16) * (y >> 16);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<int> RoundToInt32(Vector128<float> f) => Vector128.ConvertToInt32(Vector128.Round(f));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<byte> NarrowToBytes(Vector128<int> lo, Vector128<int> hi)
        {
            Vector128<ushort> s = Vector128.Narrow(lo.AsUInt32(), hi.AsUInt32());
            return Vector128.Narrow(s, s);
        }
    }
}
