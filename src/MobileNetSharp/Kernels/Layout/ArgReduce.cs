using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace MobileNetSharp.Kernels;

public static partial class Layout
{
    /// <summary>
    /// ONNX ArgMax: y = index of the largest value along <paramref name="axis"/> (negative counts from the end) of a
    /// row-major float tensor, as int64. y holds the other axes in order (keepdims only changes the caller's shape).
    /// Ties take the first index, or the last with <paramref name="selectLastIndex"/>; NaN counts as the largest
    /// value (NumPy's argmax, which the ONNX reference implementation calls).
    /// </summary>
    public static void ArgMax(ReadOnlySpan<float> x, ReadOnlySpan<int> shape, int axis, bool selectLastIndex, Span<long> y) =>
        Arg<MaxOrder>(x, shape, axis, selectLastIndex, y);

    /// <summary>ONNX ArgMin: as <see cref="ArgMax"/> for the smallest value (NaN still wins, as in NumPy's argmin).</summary>
    public static void ArgMin(ReadOnlySpan<float> x, ReadOnlySpan<int> shape, int axis, bool selectLastIndex, Span<long> y) =>
        Arg<MinOrder>(x, shape, axis, selectLastIndex, y);

    private interface IOrder
    {
        /// <summary>Whether v strictly beats best (NaN beats every number).</summary>
        static abstract bool Beats(float v, float best);
        static abstract int FirstIndex(ReadOnlySpan<float> row);
    }

    private readonly struct MaxOrder : IOrder
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool Beats(float v, float best) => v > best || (float.IsNaN(v) && !float.IsNaN(best));
        public static int FirstIndex(ReadOnlySpan<float> row) => TensorPrimitives.IndexOfMax(row); // first NaN, else first max
    }

    private readonly struct MinOrder : IOrder
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool Beats(float v, float best) => v < best || (float.IsNaN(v) && !float.IsNaN(best));
        public static int FirstIndex(ReadOnlySpan<float> row) => TensorPrimitives.IndexOfMin(row);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Arg<TO>(ReadOnlySpan<float> x, ReadOnlySpan<int> shape, int axis, bool last, Span<long> y) where TO : IOrder
    {
        int rank = shape.Length;
        int a = axis < 0 ? axis + rank : axis;
        if ((uint)a >= (uint)Math.Max(rank, 1) || rank == 0) throw new ArgumentException($"ArgMax/ArgMin: axis {axis} out of range for rank {rank}.");
        long outer = 1, inner = 1, count = 1;
        for (int i = 0; i < rank; i++)
        {
            if (shape[i] < 0) throw new ArgumentException("ArgMax/ArgMin: negative dimension.");
            if (i < a) outer *= shape[i];
            else if (i > a) inner *= shape[i];
            count *= shape[i];
        }
        int n = shape[a];
        if (x.Length < count || y.Length < outer * inner) throw new ArgumentException($"ArgMax/ArgMin: buffers ({x.Length}, {y.Length}) smaller than ({count}, {outer * inner}).");
        if (outer * inner == 0) return;
        if (n == 0) throw new ArgumentException($"ArgMax/ArgMin over the empty axis {axis}.");

        if (inner == 1)
        {
            for (long o = 0; o < outer; o++)
            {
                ReadOnlySpan<float> row = x.Slice((int)(o * n), n);
                if (!last) { y[(int)o] = TO.FirstIndex(row); continue; }
                int best = 0;
                for (int i = 1; i < n; i++)
                    if (TO.Beats(row[i], row[best]) || (row[i] == row[best] || (float.IsNaN(row[i]) && float.IsNaN(row[best])))) best = i;
                y[(int)o] = best;
            }
            return;
        }

        // Strided axis: a stack row of the best values per column chunk, indices straight into y.
        const int Chunk = 256;
        Span<float> bestValue = stackalloc float[Chunk];
        for (long o = 0; o < outer; o++)
        {
            long plane = o * n * inner;
            for (long c0 = 0; c0 < inner; c0 += Chunk)
            {
                int m = (int)Math.Min(Chunk, inner - c0);
                Span<float> best = bestValue[..m];
                Span<long> index = y.Slice((int)(o * inner + c0), m);
                x.Slice((int)(plane + c0), m).CopyTo(best);
                index.Clear();
                for (int i = 1; i < n; i++)
                {
                    ReadOnlySpan<float> row = x.Slice((int)(plane + (long)i * inner + c0), m);
                    for (int j = 0; j < m; j++)
                    {
                        float v = row[j], b = best[j];
                        if (TO.Beats(v, b) || (last && (v == b || (float.IsNaN(v) && float.IsNaN(b)))))
                        {
                            best[j] = v;
                            index[j] = i;
                        }
                    }
                }
            }
        }
    }
}
