using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileNetSharp.Kernels;

/// <summary>Data movement between layouts: transpose, concat blocks, pad, and reductions.</summary>
public static partial class Layout
{
    private const int MaxRank = 8;
    private const int Tile = 16;

    /// <summary>
    /// y = x with its axes permuted: y's axis i is x's axis perm[i]. Size-1 axes are dropped and axes that stay
    /// neighbours are merged first, so NCHW→NHWC ([N, C, HW] → [N, HW, C]) and NHWC→NCHW both become a batched
    /// 2-D transpose done in cache tiles; a permutation that keeps the last axis copies whole rows.
    /// </summary>
    public static void Transpose<T>(ReadOnlySpan<T> x, ReadOnlySpan<int> shape, ReadOnlySpan<int> perm, Span<T> y) where T : unmanaged
    {
        int rank = shape.Length;
        if (rank > MaxRank || perm.Length != rank) throw new ArgumentException($"Transpose: rank {rank} (≤ {MaxRank}) with perm of length {perm.Length}.");
        Span<bool> seen = stackalloc bool[MaxRank];
        long count = 1;
        for (int i = 0; i < rank; i++)
        {
            if ((uint)perm[i] >= (uint)rank || seen[perm[i]]) throw new ArgumentException($"Transpose: [{string.Join(",", perm.ToArray())}] is not a permutation.");
            seen[perm[i]] = true;
            if (shape[i] < 0) throw new ArgumentException("Transpose: negative dimension.");
            count *= shape[i];
        }
        if (x.Length < count || y.Length < count) throw new ArgumentException($"Transpose: buffers ({x.Length}, {y.Length}) smaller than {count}.");
        if (count == 0) return;

        // Collapse: drop size-1 axes (compact index per kept input axis), then merge output-order runs of
        // input axes that stay consecutive. Each run is one collapsed axis; its input position is its rank.
        Span<int> compact = stackalloc int[MaxRank];
        Span<int> keptDims = stackalloc int[MaxRank];
        int kept = 0;
        for (int a = 0; a < rank; a++)
        {
            compact[a] = shape[a] == 1 ? -1 : kept;
            if (shape[a] != 1) keptDims[kept++] = shape[a];
        }
        Span<int> first = stackalloc int[MaxRank];
        Span<int> product = stackalloc int[MaxRank];
        int runs = 0, previous = -2;
        for (int i = 0; i < rank; i++)
        {
            int axis = compact[perm[i]];
            if (axis < 0) continue;
            if (axis == previous + 1) product[runs - 1] *= keptDims[axis];
            else { first[runs] = axis; product[runs] = keptDims[axis]; runs++; }
            previous = axis;
        }
        Span<int> order = stackalloc int[MaxRank];
        Span<int> inDims = stackalloc int[MaxRank];
        for (int i = 0; i < runs; i++)
        {
            int position = 0;
            for (int j = 0; j < runs; j++) if (first[j] < first[i]) position++;
            order[i] = position;
            inDims[position] = product[i];
        }

        if (runs <= 1) { x[..(int)count].CopyTo(y); return; }
        if (runs == 2) { Transpose2d(x, y, 1, inDims[0], inDims[1]); return; }
        if (runs == 3 && order[0] == 0 && order[1] == 2 && order[2] == 1) { Transpose2d(x, y, inDims[0], inDims[1], inDims[2]); return; }
        General(x, y, inDims[..runs], order[..runs]);
    }

    /// <summary>For each of `batch` matrices [rows, cols] in x, writes its transpose [cols, rows] to y, in tiles.
    /// A few rows (NCHW→NHWC of an RGB image: 3 rows of H*W) stream every row once and write y contiguously.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Transpose2d<T>(ReadOnlySpan<T> x, Span<T> y, int batch, int rows, int cols) where T : unmanaged
    {
        int size = rows * cols;
        for (int b = 0; b < batch; b++)
        {
            // Bounds were checked by the caller (x and y hold batch * size elements).
            ref T xs = ref Unsafe.Add(ref MemoryMarshal.GetReference(x), (nint)b * size);
            ref T ys = ref Unsafe.Add(ref MemoryMarshal.GetReference(y), (nint)b * size);
            if (rows == 3 && typeof(T) == typeof(float) && Isa.Best == IsaLevel.Vector512 && Avx512F.IsSupported)
            {
                Interleave3(ref Unsafe.As<T, float>(ref xs), ref Unsafe.As<T, float>(ref ys), cols);
                continue;
            }
            if (rows == 3 && typeof(T) == typeof(byte) && Vector128.IsHardwareAccelerated)
            {
                Interleave3Bytes(ref Unsafe.As<T, byte>(ref xs), ref Unsafe.As<T, byte>(ref ys), cols);
                continue;
            }
            if (rows <= 4)
            {
                for (int j = 0; j < cols; j++)
                {
                    ref T dst = ref Unsafe.Add(ref ys, (nint)j * rows);
                    for (int i = 0; i < rows; i++) Unsafe.Add(ref dst, i) = Unsafe.Add(ref xs, (nint)i * cols + j);
                }
                continue;
            }
            for (int i0 = 0; i0 < rows; i0 += Tile)
            {
                int i1 = Math.Min(rows, i0 + Tile);
                for (int j0 = 0; j0 < cols; j0 += Tile)
                {
                    int j1 = Math.Min(cols, j0 + Tile);
                    for (int i = i0; i < i1; i++)
                        for (int j = j0; j < j1; j++)
                            Unsafe.Add(ref ys, (nint)j * rows + i) = Unsafe.Add(ref xs, (nint)i * cols + j);
                }
            }
        }
    }

    /// <summary>[3, cols] -> [cols, 3] (planar RGB to interleaved): 16 columns at a time, two two-source permutes
    /// per output vector.</summary>
    private static unsafe void Interleave3(ref float x, ref float y, int cols)
    {
        // Output vector k (k = 0..2) holds elements p = 16k .. 16k+15 of the 48 interleaved ones: column p / 3 of
        // row p % 3. First pick rows 0 and 1 (row 2 lanes left as don't-care), then insert row 2.
        Vector512<int> a0 = Indices01(0), a1 = Indices01(1), a2 = Indices01(2);
        Vector512<int> b0 = Indices2(0), b1 = Indices2(1), b2 = Indices2(2);
        int j = 0;
        for (; j + 16 <= cols; j += 16)
        {
            Vector512<float> r0 = Vector512.LoadUnsafe(ref x, (nuint)j);
            Vector512<float> r1 = Vector512.LoadUnsafe(ref x, (nuint)(cols + j));
            Vector512<float> r2 = Vector512.LoadUnsafe(ref x, (nuint)(2 * cols + j));
            ref float o = ref Unsafe.Add(ref y, (nint)j * 3);
            Avx512F.PermuteVar16x32x2(Avx512F.PermuteVar16x32x2(r0, a0, r1), b0, r2).StoreUnsafe(ref o);
            Avx512F.PermuteVar16x32x2(Avx512F.PermuteVar16x32x2(r0, a1, r1), b1, r2).StoreUnsafe(ref o, 16);
            Avx512F.PermuteVar16x32x2(Avx512F.PermuteVar16x32x2(r0, a2, r1), b2, r2).StoreUnsafe(ref o, 32);
        }
        Interleave3Tail(ref x, ref y, j, cols);
    }

    /// <summary>Columns [j, cols) of a [3, cols] -> [cols, 3] interleave, one element at a time.</summary>
    private static void Interleave3Tail<T>(ref T x, ref T y, int j, int cols)
    {
        for (; j < cols; j++)
        {
            Unsafe.Add(ref y, (nint)j * 3) = Unsafe.Add(ref x, j);
            Unsafe.Add(ref y, (nint)j * 3 + 1) = Unsafe.Add(ref x, (nint)cols + j);
            Unsafe.Add(ref y, (nint)j * 3 + 2) = Unsafe.Add(ref x, 2 * (nint)cols + j);
        }
    }

    /// <summary>
    /// [3, cols] -> [cols, 3] for bytes (a quantized RGB image, NCHW to NHWC): 16 columns at a time, each 16-byte
    /// output vector the OR of three byte shuffles (pshufb / tbl), one per plane; the element-by-element loop took
    /// ~0.13 ms for a 224x224 image, as long as a whole 1x1 layer.
    /// </summary>
    private static void Interleave3Bytes(ref byte x, ref byte y, int cols)
    {
        // Output byte p of vector k (element 16k + p of the 48) is column (16k + p) / 3 of plane (16k + p) % 3; an
        // index of 16 or more selects 0, so each shuffle fills only its plane's bytes.
        static Vector128<byte> Indices(int k, int plane)
        {
            Span<byte> idx = stackalloc byte[16];
            for (int p = 0; p < 16; p++) idx[p] = (byte)((16 * k + p) % 3 == plane ? (16 * k + p) / 3 : 0xFF);
            return Vector128.Create((ReadOnlySpan<byte>)idx);
        }
        Vector128<byte> i00 = Indices(0, 0), i01 = Indices(0, 1), i02 = Indices(0, 2);
        Vector128<byte> i10 = Indices(1, 0), i11 = Indices(1, 1), i12 = Indices(1, 2);
        Vector128<byte> i20 = Indices(2, 0), i21 = Indices(2, 1), i22 = Indices(2, 2);
        int j = 0;
        for (; j + 16 <= cols; j += 16)
        {
            Vector128<byte> r0 = Vector128.LoadUnsafe(ref x, (nuint)j);
            Vector128<byte> r1 = Vector128.LoadUnsafe(ref x, (nuint)(cols + j));
            Vector128<byte> r2 = Vector128.LoadUnsafe(ref x, (nuint)(2 * cols + j));
            ref byte o = ref Unsafe.Add(ref y, (nint)j * 3);
            (Vector128.Shuffle(r0, i00) | Vector128.Shuffle(r1, i01) | Vector128.Shuffle(r2, i02)).StoreUnsafe(ref o);
            (Vector128.Shuffle(r0, i10) | Vector128.Shuffle(r1, i11) | Vector128.Shuffle(r2, i12)).StoreUnsafe(ref o, 16);
            (Vector128.Shuffle(r0, i20) | Vector128.Shuffle(r1, i21) | Vector128.Shuffle(r2, i22)).StoreUnsafe(ref o, 32);
        }
        Interleave3Tail(ref x, ref y, j, cols);
    }

    private static Vector512<int> Indices01(int k)
    {
        Span<int> idx = stackalloc int[16];
        for (int p = 0; p < 16; p++)
        {
            int q = 16 * k + p, column = q / 3, row = q % 3;
            idx[p] = row == 0 ? column : row == 1 ? 16 + column : 0;
        }
        return Vector512.Create<int>(idx);
    }

    private static Vector512<int> Indices2(int k)
    {
        Span<int> idx = stackalloc int[16];
        for (int p = 0; p < 16; p++)
        {
            int q = 16 * k + p;
            idx[p] = q % 3 == 2 ? 16 + q / 3 : p;
        }
        return Vector512.Create<int>(idx);
    }

    /// <summary>Any collapsed permutation: odometer over y; rows are copied whole when the last axis stays last.</summary>
    private static void General<T>(ReadOnlySpan<T> x, Span<T> y, ReadOnlySpan<int> inDims, ReadOnlySpan<int> order) where T : unmanaged
    {
        int r = inDims.Length;
        Span<long> inStride = stackalloc long[MaxRank];
        long s = 1;
        for (int i = r - 1; i >= 0; i--) { inStride[i] = s; s *= inDims[i]; }
        Span<int> outDims = stackalloc int[MaxRank];
        Span<long> step = stackalloc long[MaxRank];   // input stride of each output axis
        for (int i = 0; i < r; i++) { outDims[i] = inDims[order[i]]; step[i] = inStride[order[i]]; }

        bool rows = order[r - 1] == r - 1;
        int inner = rows ? outDims[r - 1] : 1;
        int outer = rows ? r - 1 : r;
        Span<int> index = stackalloc int[MaxRank];
        index.Clear();
        long src = 0;
        for (long dst = 0; dst < s; dst += inner)
        {
            if (rows) x.Slice((int)src, inner).CopyTo(y.Slice((int)dst, inner));
            else y[(int)dst] = x[(int)src];
            for (int d = outer - 1; d >= 0; d--)
            {
                src += step[d];
                if (++index[d] < outDims[d]) break;
                src -= step[d] * outDims[d];
                index[d] = 0;
            }
        }
    }

    /// <summary>Copies `outer` blocks of `srcBlock` elements: block i goes to dst[dstOffset + i*dstStride ..]. Concat along any axis.</summary>
    public static void CopyBlocks<T>(ReadOnlySpan<T> src, Span<T> dst, int outer, int srcBlock, int dstStride, int dstOffset) where T : unmanaged
    {
        if (outer < 0 || srcBlock < 0 || dstOffset < 0 || (outer > 1 && dstStride < srcBlock))
            throw new ArgumentException($"CopyBlocks: outer {outer}, block {srcBlock}, stride {dstStride}, offset {dstOffset}.");
        if (outer == 0 || srcBlock == 0) return;
        if (src.Length < (long)outer * srcBlock || dst.Length < dstOffset + (long)(outer - 1) * dstStride + srcBlock)
            throw new ArgumentException("CopyBlocks: buffers too small.");
        for (int i = 0; i < outer; i++) src.Slice(i * srcBlock, srcBlock).CopyTo(dst.Slice(dstOffset + i * dstStride, srcBlock));
    }
}
