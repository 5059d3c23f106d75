using MobileNetSharp.Graph;
namespace MobileNetSharp.Kernels;

public static partial class Layout
{
    /// <summary>
    /// ONNX Pad over a row-major tensor of rank ≤ 8. pads = [begin_0..begin_{r-1}, end_0..end_{r-1}]; a negative
    /// pad crops. Each output row (last axis) copies its in-range middle in one block; only border cells map
    /// one by one (Constant → value, Edge → clamp, Reflect → mirror without repeating the edge, Wrap → modulo).
    /// </summary>
    public static void Pad<T>(ReadOnlySpan<T> x, ReadOnlySpan<int> shape, ReadOnlySpan<int> pads, PadMode mode, T value, Span<T> y) where T : unmanaged
    {
        int rank = shape.Length;
        if (rank > MaxRank || pads.Length != 2 * rank) throw new ArgumentException($"Pad: rank {rank} (≤ {MaxRank}) needs {2 * rank} pads, got {pads.Length}.");
        Span<int> outDims = stackalloc int[MaxRank];
        long inCount = 1, outCount = 1;
        for (int i = 0; i < rank; i++)
        {
            outDims[i] = shape[i] + pads[i] + pads[rank + i];
            if (shape[i] < 0 || outDims[i] < 0) throw new ArgumentException($"Pad: axis {i} of size {shape[i]} with pads {pads[i]}, {pads[rank + i]}.");
            if (mode != PadMode.Constant && shape[i] == 0 && outDims[i] > 0) throw new ArgumentException($"Pad: {mode} padding of the empty axis {i}.");
            inCount *= shape[i];
            outCount *= outDims[i];
        }
        if (x.Length < inCount || y.Length < outCount) throw new ArgumentException($"Pad: buffers ({x.Length}, {y.Length}) smaller than ({inCount}, {outCount}).");
        if (outCount == 0) return;
        if (rank == 0) { y[0] = x[0]; return; }

        Span<long> inStride = stackalloc long[MaxRank];
        long stride = 1;
        for (int i = rank - 1; i >= 0; i--) { inStride[i] = stride; stride *= shape[i]; }

        int last = rank - 1, width = outDims[last], n = shape[last], begin = pads[last];
        int lo = Math.Clamp(begin, 0, width), hi = Math.Clamp(begin + n, lo, width);
        Span<int> index = stackalloc int[MaxRank];
        index.Clear();
        for (long row = 0; row < outCount; row += width)
        {
            Span<T> yRow = y.Slice((int)row, width);
            long source = 0;
            bool inside = true;
            for (int d = 0; d < last && inside; d++)
            {
                int s = Source(index[d] - pads[d], shape[d], mode);
                if (s < 0) inside = false;
                else source += s * inStride[d];
            }
            if (!inside)
            {
                yRow.Fill(value);
            }
            else
            {
                ReadOnlySpan<T> xRow = x.Slice((int)source, n);
                if (hi > lo) xRow.Slice(lo - begin, hi - lo).CopyTo(yRow[lo..hi]);
                for (int o = 0; o < lo; o++) yRow[o] = Cell(xRow, o - begin, mode, value);
                for (int o = hi; o < width; o++) yRow[o] = Cell(xRow, o - begin, mode, value);
            }
            for (int d = last - 1; d >= 0; d--)
            {
                if (++index[d] < outDims[d]) break;
                index[d] = 0;
            }
        }
    }

    private static T Cell<T>(ReadOnlySpan<T> row, int position, PadMode mode, T value) where T : unmanaged
    {
        int s = Source(position, row.Length, mode);
        return s < 0 ? value : row[s];
    }

    /// <summary>The input index an output position reads along one axis, or -1 for the constant.</summary>
    private static int Source(int position, int n, PadMode mode)
    {
        if ((uint)position < (uint)n) return position;
        switch (mode)
        {
            case PadMode.Constant: return -1;
            case PadMode.Edge: return position < 0 ? 0 : n - 1;
            case PadMode.Wrap: return ((position % n) + n) % n;
            case PadMode.Reflect:
                if (n == 1) return 0;
                int period = 2 * (n - 1);
                int k = ((position % period) + period) % period;
                return k < n ? k : period - k;
            default: throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown pad mode.");
        }
    }
}
