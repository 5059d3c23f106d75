using System.Numerics.Tensors;

namespace MobileNetSharp.Kernels;

public static partial class Layout
{
    /// <summary>Mean over <paramref name="axes"/> (negative counts from the end; empty = all axes). y has the
    /// kept axes in order (keepdims only changes the caller's shape, not the data).</summary>
    public static void ReduceMean(ReadOnlySpan<float> x, ReadOnlySpan<int> shape, ReadOnlySpan<int> axes, Span<float> y)
    {
        long reduced = Reduce(x, shape, axes, y, max: false);
        if (reduced > 0) TensorPrimitives.Multiply(y[..(int)OutputCount(shape, axes)], 1f / reduced, y);
    }

    /// <summary>Sum over <paramref name="axes"/>, same conventions as <see cref="ReduceMean"/>.</summary>
    public static void ReduceSum(ReadOnlySpan<float> x, ReadOnlySpan<int> shape, ReadOnlySpan<int> axes, Span<float> y) =>
        Reduce(x, shape, axes, y, max: false);

    /// <summary>Max over <paramref name="axes"/>, same conventions as <see cref="ReduceMean"/>.</summary>
    public static void ReduceMax(ReadOnlySpan<float> x, ReadOnlySpan<int> shape, ReadOnlySpan<int> axes, Span<float> y) =>
        Reduce(x, shape, axes, y, max: true);

    private static long OutputCount(ReadOnlySpan<int> shape, ReadOnlySpan<int> axes)
    {
        Span<bool> reduce = stackalloc bool[MaxRank];
        ReducedAxes(shape, axes, reduce);
        long count = 1;
        for (int i = 0; i < shape.Length; i++) if (!reduce[i]) count *= shape[i];
        return count;
    }

    private static void ReducedAxes(ReadOnlySpan<int> shape, ReadOnlySpan<int> axes, Span<bool> reduce)
    {
        int rank = shape.Length;
        if (rank > MaxRank) throw new ArgumentException($"Reduce: rank {rank} > {MaxRank}.");
        reduce.Clear();
        if (axes.IsEmpty) { reduce[..rank].Fill(true); return; }
        foreach (int a in axes)
        {
            int axis = a < 0 ? a + rank : a;
            if ((uint)axis >= (uint)rank) throw new ArgumentException($"Reduce: axis {a} out of range for rank {rank}.");
            reduce[axis] = true;
        }
    }

    /// <summary>
    /// Merges neighbouring axes that are both kept or both reduced (size-1 axes dropped) into groups, innermost
    /// last: the reduction then walks a few long runs instead of every axis. Returns the number of groups (0 when
    /// every axis has size 1).
    /// </summary>
    internal static int CollapseGroups(ReadOnlySpan<int> shape, ReadOnlySpan<bool> reduce, Span<int> dims, Span<bool> isReduced)
    {
        int groups = 0;
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] == 1) continue;
            if (groups > 0 && isReduced[groups - 1] == reduce[i]) { dims[groups - 1] *= shape[i]; continue; }
            dims[groups] = shape[i];
            isReduced[groups] = reduce[i];
            groups++;
        }
        return groups;
    }

    /// <summary>
    /// Sum or max into y; returns how many inputs fold into each output. Axes are collapsed into alternating
    /// kept/reduced groups; the innermost group is handled with whole-row TensorPrimitives calls (a reduced
    /// tail sums a contiguous row, a kept tail adds a row of x into a row of y).
    /// </summary>
    private static long Reduce(ReadOnlySpan<float> x, ReadOnlySpan<int> shape, ReadOnlySpan<int> axes, Span<float> y, bool max)
    {
        int rank = shape.Length;
        Span<bool> reduce = stackalloc bool[MaxRank];
        ReducedAxes(shape, axes, reduce);
        long inCount = 1, outCount = 1, folded = 1;
        for (int i = 0; i < rank; i++)
        {
            if (shape[i] < 0) throw new ArgumentException("Reduce: negative dimension.");
            inCount *= shape[i];
            if (reduce[i]) folded *= shape[i];
            else outCount *= shape[i];
        }
        if (x.Length < inCount || y.Length < outCount) throw new ArgumentException($"Reduce: buffers ({x.Length}, {y.Length}) smaller than ({inCount}, {outCount}).");
        if (max && folded == 0 && outCount > 0) throw new ArgumentException("ReduceMax over an empty axis.");
        Span<float> output = y[..(int)outCount];
        output.Fill(max ? float.NegativeInfinity : 0f);
        if (inCount == 0) return folded;

        // Collapse into groups: dims[g], reduced flag, and y stride (0 for reduced groups).
        Span<int> dims = stackalloc int[MaxRank];
        Span<bool> isReduced = stackalloc bool[MaxRank];
        int groups = CollapseGroups(shape, reduce, dims, isReduced);
        if (groups == 0) { output[0] = x[0]; return folded; }
        Span<long> yStride = stackalloc long[MaxRank];
        long s = 1;
        for (int g = groups - 1; g >= 0; g--)
        {
            yStride[g] = isReduced[g] ? 0 : s;
            if (!isReduced[g]) s *= dims[g];
        }

        int inner = dims[groups - 1];
        bool innerReduced = isReduced[groups - 1];
        Span<int> index = stackalloc int[MaxRank];
        index.Clear();
        long dst = 0;
        for (long src = 0; src < inCount; src += inner)
        {
            ReadOnlySpan<float> row = x.Slice((int)src, inner);
            if (innerReduced)
            {
                float v = max ? TensorPrimitives.Max(row) : TensorPrimitives.Sum(row);
                output[(int)dst] = max ? MathF.Max(output[(int)dst], v) : output[(int)dst] + v;
            }
            else
            {
                Span<float> yRow = output.Slice((int)dst, inner);
                if (max) TensorPrimitives.Max(yRow, row, yRow);
                else TensorPrimitives.Add(yRow, row, yRow);
            }
            for (int g = groups - 2; g >= 0; g--)
            {
                dst += yStride[g];
                if (++index[g] < dims[g]) break;
                dst -= yStride[g] * dims[g];
                index[g] = 0;
            }
        }
        return folded;
    }
}
