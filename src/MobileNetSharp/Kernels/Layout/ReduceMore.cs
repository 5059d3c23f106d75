using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace MobileNetSharp.Kernels;

/// <summary>The ONNX Reduce* operators (ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2,
/// ReduceSumSquare, ReduceLogSum, ReduceLogSumExp).</summary>
public enum ReductionKind { Sum, Mean, Max, Min, Prod, L1, L2, SumSquare, LogSum, LogSumExp }

public static partial class Layout
{
    /// <summary>
    /// ONNX Reduce{kind} over <paramref name="axes"/> of a row-major tensor (rank ≤ 8; negative axes count from the
    /// end; empty = all axes — noop_with_empty_axes is the caller's). y holds the kept axes in order, so keepdims
    /// only changes the caller's shape. Formulas from the ONNX operator specs: Prod ∏x, L1 Σ|x|, L2 √Σx²,
    /// SumSquare Σx², LogSum log Σx, LogSumExp log Σexp(x) evaluated as m + log Σexp(x - m) with m the max (stable).
    /// An empty reduction yields the reduction of the empty set: 0 (Sum, L1, L2, SumSquare), 1 (Prod),
    /// -inf (LogSum, LogSumExp), +inf (Min); Max over an empty axis throws as <see cref="ReduceMax"/> does.
    /// </summary>
    public static void Reduce(ReductionKind kind, ReadOnlySpan<float> x, ReadOnlySpan<int> shape, ReadOnlySpan<int> axes, Span<float> y)
    {
        switch (kind)
        {
            case ReductionKind.Sum: ReduceSum(x, shape, axes, y); return;
            case ReductionKind.Mean: ReduceMean(x, shape, axes, y); return;
            case ReductionKind.Max: ReduceMax(x, shape, axes, y); return;
            case ReductionKind.Min: Reduce<MinFold>(x, shape, axes, y); return;
            case ReductionKind.Prod: Reduce<ProdFold>(x, shape, axes, y); return;
            case ReductionKind.L1: Reduce<L1Fold>(x, shape, axes, y); return;
            case ReductionKind.L2: Reduce<L2Fold>(x, shape, axes, y); return;
            case ReductionKind.SumSquare: Reduce<SumSquareFold>(x, shape, axes, y); return;
            case ReductionKind.LogSum: Reduce<LogSumFold>(x, shape, axes, y); return;
            case ReductionKind.LogSumExp: Reduce<LogSumExpFold>(x, shape, axes, y); return;
            default: throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown reduction.");
        }
    }

    /// <summary>
    /// One reduction as static methods: fold a contiguous row to a partial, combine partials, accumulate a row into a
    /// row of partials (a kept innermost axis), finish. The LogSumExp fold is two-pass and handled by the driver.
    /// </summary>
    private interface IFold
    {
        static abstract float Identity { get; }
        static abstract float FoldRow(ReadOnlySpan<float> row);
        static abstract float Combine(float acc, float partial);
        /// <summary>acc[i] = Combine(acc[i], fold of the single value row[i]); rows are at most <see cref="ColumnChunk"/> long.</summary>
        static abstract void Accumulate(Span<float> acc, ReadOnlySpan<float> row);
        static abstract float Finish(float acc);
        static virtual bool TwoPass => false;
    }

    private readonly struct MinFold : IFold
    {
        public static float Identity => float.PositiveInfinity;
        public static float FoldRow(ReadOnlySpan<float> row) => TensorPrimitives.Min(row);
        public static float Combine(float acc, float partial) => MathF.Min(acc, partial);
        public static void Accumulate(Span<float> acc, ReadOnlySpan<float> row) => TensorPrimitives.Min(acc, row, acc);
        public static float Finish(float acc) => acc;
    }

    private readonly struct ProdFold : IFold
    {
        public static float Identity => 1f;
        public static float FoldRow(ReadOnlySpan<float> row) => TensorPrimitives.Product(row);
        public static float Combine(float acc, float partial) => acc * partial;
        public static void Accumulate(Span<float> acc, ReadOnlySpan<float> row) => TensorPrimitives.Multiply(acc, row, acc);
        public static float Finish(float acc) => acc;
    }

    private readonly struct L1Fold : IFold
    {
        public static float Identity => 0f;
        public static float FoldRow(ReadOnlySpan<float> row) => TensorPrimitives.SumOfMagnitudes(row);
        public static float Combine(float acc, float partial) => acc + partial;
        public static void Accumulate(Span<float> acc, ReadOnlySpan<float> row)
        {
            Span<float> t = stackalloc float[ColumnChunk];
            TensorPrimitives.Abs(row, t[..row.Length]);
            TensorPrimitives.Add(acc, t[..row.Length], acc);
        }
        public static float Finish(float acc) => acc;
    }

    private readonly struct SumSquareFold : IFold
    {
        public static float Identity => 0f;
        public static float FoldRow(ReadOnlySpan<float> row) => TensorPrimitives.SumOfSquares(row);
        public static float Combine(float acc, float partial) => acc + partial;
        public static void Accumulate(Span<float> acc, ReadOnlySpan<float> row) => TensorPrimitives.MultiplyAdd(row, row, acc, acc);
        public static float Finish(float acc) => acc;
    }

    private readonly struct L2Fold : IFold
    {
        public static float Identity => 0f;
        public static float FoldRow(ReadOnlySpan<float> row) => TensorPrimitives.SumOfSquares(row);
        public static float Combine(float acc, float partial) => acc + partial;
        public static void Accumulate(Span<float> acc, ReadOnlySpan<float> row) => TensorPrimitives.MultiplyAdd(row, row, acc, acc);
        public static float Finish(float acc) => MathF.Sqrt(acc);
    }

    private readonly struct LogSumFold : IFold
    {
        public static float Identity => 0f;
        public static float FoldRow(ReadOnlySpan<float> row) => TensorPrimitives.Sum(row);
        public static float Combine(float acc, float partial) => acc + partial;
        public static void Accumulate(Span<float> acc, ReadOnlySpan<float> row) => TensorPrimitives.Add(acc, row, acc);
        public static float Finish(float acc) => MathF.Log(acc);
    }

    /// <summary>Pass 1 is a max (these members); pass 2, Σexp(x - max), and the finish m + log(sum) live in the driver.</summary>
    private readonly struct LogSumExpFold : IFold
    {
        public static float Identity => float.NegativeInfinity;
        public static float FoldRow(ReadOnlySpan<float> row) => TensorPrimitives.Max(row);
        public static float Combine(float acc, float partial) => MathF.Max(acc, partial);
        public static void Accumulate(Span<float> acc, ReadOnlySpan<float> row) => TensorPrimitives.Max(acc, row, acc);
        public static float Finish(float acc) => acc;
        public static bool TwoPass => true;
    }

    /// <summary>Columns of a kept innermost axis processed together (partials live on the stack).</summary>
    private const int ColumnChunk = 256;

    /// <summary>
    /// Output-stationary driver: axes are collapsed into alternating kept/reduced groups (size-1 axes dropped); each
    /// output (or each chunk of a kept innermost run) is finished before the next, walking the reduced groups with an
    /// odometer. A reduced innermost group is folded a contiguous row at a time; a kept one accumulates rows of x
    /// into a row of partials. Being output-stationary lets LogSumExp take its max and its sum over the same set.
    /// </summary>
    private static void Reduce<TF>(ReadOnlySpan<float> x, ReadOnlySpan<int> shape, ReadOnlySpan<int> axes, Span<float> y) where TF : IFold
    {
        int rank = shape.Length;
        Span<bool> reduce = stackalloc bool[MaxRank];
        ReducedAxes(shape, axes, reduce);
        long inCount = 1, outCount = 1;
        for (int i = 0; i < rank; i++)
        {
            if (shape[i] < 0) throw new ArgumentException("Reduce: negative dimension.");
            inCount *= shape[i];
            if (!reduce[i]) outCount *= shape[i];
        }
        if (x.Length < inCount || y.Length < outCount) throw new ArgumentException($"Reduce: buffers ({x.Length}, {y.Length}) smaller than ({inCount}, {outCount}).");
        if (outCount == 0) return;
        if (inCount == 0)
        {
            y[..(int)outCount].Fill(TF.TwoPass ? float.NegativeInfinity : TF.Finish(TF.Identity));
            return;
        }

        // Groups, innermost last, with their strides in x.
        Span<int> dims = stackalloc int[MaxRank];
        Span<bool> isReduced = stackalloc bool[MaxRank];
        int groups = CollapseGroups(shape, reduce, dims, isReduced);
        if (groups == 0) { dims[0] = 1; isReduced[0] = true; groups = 1; }
        Span<long> stride = stackalloc long[MaxRank];
        long s = 1;
        for (int g = groups - 1; g >= 0; g--) { stride[g] = s; s *= dims[g]; }

        // The outer kept groups (output odometer) and outer reduced groups (inner odometer), innermost group apart.
        int inner = dims[groups - 1];
        bool innerReduced = isReduced[groups - 1];
        Span<int> keptDims = stackalloc int[MaxRank], redDims = stackalloc int[MaxRank];
        Span<long> keptStride = stackalloc long[MaxRank], redStride = stackalloc long[MaxRank];
        int nk = 0, nr = 0;
        for (int g = 0; g < groups - 1; g++)
        {
            if (isReduced[g]) { redDims[nr] = dims[g]; redStride[nr++] = stride[g]; }
            else { keptDims[nk] = dims[g]; keptStride[nk++] = stride[g]; }
        }
        long redCount = 1;
        for (int i = 0; i < nr; i++) redCount *= redDims[i];
        long outer = innerReduced ? outCount : outCount / inner;

        Span<int> keptIndex = stackalloc int[MaxRank], redIndex = stackalloc int[MaxRank];
        keptIndex.Clear();
        Span<float> acc = stackalloc float[ColumnChunk], sum = stackalloc float[ColumnChunk], t = stackalloc float[ColumnChunk];
        long keptBase = 0;
        for (long o = 0; o < outer; o++)
        {
            if (innerReduced)
            {
                float a = TF.Identity;
                redIndex.Clear();
                long r = keptBase;
                for (long k = 0; k < redCount; k++)
                {
                    a = TF.Combine(a, TF.FoldRow(x.Slice((int)r, inner)));
                    r = Next(redDims, redStride, nr, redIndex, r);
                }
                if (TF.TwoPass)
                {
                    float max = a, total = 0f;
                    if (float.IsFinite(max))
                        ForEachReducedChunked(redDims, redStride, nr, redCount, redIndex, keptBase, x, inner, max, t, ref total);
                    a = float.IsFinite(max) ? max + MathF.Log(total) : max;
                }
                y[(int)o] = TF.Finish(a);
            }
            else
            {
                for (int c0 = 0; c0 < inner; c0 += ColumnChunk)
                {
                    int n = Math.Min(ColumnChunk, inner - c0);
                    Span<float> part = acc[..n];
                    part.Fill(TF.Identity);
                    redIndex.Clear();
                    long r = keptBase + c0;
                    for (long k = 0; k < redCount; k++)
                    {
                        TF.Accumulate(part, x.Slice((int)r, n));
                        r = Next(redDims, redStride, nr, redIndex, r);
                    }
                    Span<float> target = y.Slice((int)(o * inner + c0), n);
                    if (TF.TwoPass)
                    {
                        // Σ exp(x - max) per column, then max + log(sum); an infinite max passes through.
                        Span<float> total = sum[..n], tt = t[..n];
                        total.Clear();
                        redIndex.Clear();
                        r = keptBase + c0;
                        for (long k = 0; k < redCount; k++)
                        {
                            TensorPrimitives.Subtract(x.Slice((int)r, n), part, tt);
                            TensorPrimitives.Exp(tt, tt);
                            TensorPrimitives.Add(total, tt, total);
                            r = Next(redDims, redStride, nr, redIndex, r);
                        }
                        TensorPrimitives.Log(total, total);
                        for (int i = 0; i < n; i++) target[i] = float.IsFinite(part[i]) ? part[i] + total[i] : part[i];
                    }
                    else
                    {
                        for (int i = 0; i < n; i++) target[i] = TF.Finish(part[i]);
                    }
                }
            }
            keptBase = Next(keptDims, keptStride, nk, keptIndex, keptBase);
        }
    }

    /// <summary>total += Σ exp(row - shift) over every reduced row, a stack chunk at a time.</summary>
    private static void ForEachReducedChunked(ReadOnlySpan<int> dims, ReadOnlySpan<long> strides, int count, long total, Span<int> index, long start,
        ReadOnlySpan<float> x, int inner, float shift, Span<float> t, ref float sum)
    {
        index.Clear();
        long r = start;
        for (long k = 0; k < total; k++)
        {
            ReadOnlySpan<float> row = x.Slice((int)r, inner);
            for (int c = 0; c < inner; c += t.Length)
            {
                int n = Math.Min(t.Length, inner - c);
                TensorPrimitives.Subtract(row.Slice(c, n), shift, t[..n]);
                TensorPrimitives.Exp(t[..n], t[..n]);
                sum += TensorPrimitives.Sum(t[..n]);
            }
            r = Next(dims, strides, count, index, r);
        }
    }

    /// <summary>Advances an odometer over <paramref name="count"/> dimensions; returns the offset moved by the strides.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long Next(ReadOnlySpan<int> dims, ReadOnlySpan<long> strides, int count, Span<int> index, long offset)
    {
        for (int d = count - 1; d >= 0; d--)
        {
            offset += strides[d];
            if (++index[d] < dims[d]) return offset;
            offset -= strides[d] * dims[d];
            index[d] = 0;
        }
        return offset;
    }
}
