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

    /// <summary>For each of `batch` matrices [rows, cols] in x, writes its transpose [cols, rows] to y, in tiles.</summary>
    private static void Transpose2d<T>(ReadOnlySpan<T> x, Span<T> y, int batch, int rows, int cols) where T : unmanaged
    {
        int size = rows * cols;
        for (int b = 0; b < batch; b++)
        {
            ReadOnlySpan<T> xs = x.Slice(b * size, size);
            Span<T> ys = y.Slice(b * size, size);
            for (int i0 = 0; i0 < rows; i0 += Tile)
            {
                int i1 = Math.Min(rows, i0 + Tile);
                for (int j0 = 0; j0 < cols; j0 += Tile)
                {
                    int j1 = Math.Min(cols, j0 + Tile);
                    for (int i = i0; i < i1; i++)
                        for (int j = j0; j < j1; j++)
                            ys[j * rows + i] = xs[i * cols + j];
                }
            }
        }
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
