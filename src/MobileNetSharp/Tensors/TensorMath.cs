using System.Numerics.Tensors;

namespace MobileNetSharp.Tensors;

/// <summary>
/// Small read-out helpers a classifier needs on its output: <see cref="ArgMax"/>, <see cref="Softmax"/>
/// and <see cref="TopK"/>.
/// </summary>
/// <remarks>
/// <para>
/// All three work along the <b>last axis</b> and treat every leading axis as a batch of rows: a tensor of
/// shape <c>[d0, ..., dn-2, C]</c> has <c>d0 * ... * dn-2</c> rows of <c>C</c> elements each, in row-major
/// order. A rank-1 tensor <c>[C]</c> is one row; the usual logits <c>[N, 1000]</c> are <c>N</c> rows.
/// Rank-0 (scalar) tensors have no last axis and are refused.
/// </para>
/// <para>
/// Only <see cref="DataType.Float32"/> tensors are accepted; anything else gives an
/// <see cref="ArgumentException"/> naming the type.
/// </para>
/// <para>
/// Ordering: larger values come first; equal values (including <c>-0</c> and <c>+0</c>) are ordered by
/// lower index first. NaN ranks above every number, as in <c>torch.argmax</c> and <c>torch.topk</c>, so a
/// broken output is visible rather than silently skipped.
/// </para>
/// </remarks>
public static class TensorMath
{
    /// <summary>Index of the largest element of each row along the last axis.</summary>
    /// <param name="t">A float32 tensor of shape <c>[..., C]</c> with rank ≥ 1 and <c>C</c> ≥ 1.</param>
    /// <returns>
    /// One index in <c>[0, C)</c> per row: an array of length <c>d0 * ... * dn-2</c>, in row-major order
    /// (length 1 for a rank-1 tensor, <c>N</c> for <c>[N, C]</c>). Ties go to the lowest index; a NaN wins.
    /// </returns>
    /// <exception cref="ArgumentException">Not float32, rank 0, or an empty last axis (<c>C</c> = 0).</exception>
    public static int[] ArgMax(this Tensor t)
    {
        var (data, rows, cols) = Rows(t, nameof(ArgMax));
        if (cols == 0 && rows > 0)
            throw new ArgumentException($"ArgMax of a tensor with an empty last axis ({Shape.Format(t.Shape)}) is undefined.", nameof(t));
        var result = new int[rows];
        for (int r = 0; r < rows; r++)
        {
            var row = data.AsSpan(r * cols, cols);
            int best = 0;
            for (int i = 1; i < row.Length; i++)
                if (Before(row[i], i, row[best], best)) best = i;
            result[r] = best;
        }
        return result;
    }

    /// <summary>
    /// Softmax along the last axis, computed stably as <c>exp(x - max) / sum(exp(x - max))</c> per row.
    /// </summary>
    /// <param name="t">A float32 tensor of shape <c>[..., C]</c> with rank ≥ 1.</param>
    /// <returns>
    /// A new float32 tensor of the same shape; each row is non-negative and sums to 1 (up to rounding).
    /// The input is not modified. A row containing NaN, or whose largest value is ±infinity, comes out
    /// as NaN (as in PyTorch). An empty tensor gives an empty tensor.
    /// </returns>
    /// <exception cref="ArgumentException">Not float32, or rank 0.</exception>
    public static Tensor Softmax(this Tensor t)
    {
        var (data, rows, cols) = Rows(t, nameof(Softmax));
        var output = new float[data.Length];
        for (int r = 0; r < rows && cols > 0; r++)
        {
            var src = data.AsSpan(r * cols, cols);
            var dst = output.AsSpan(r * cols, cols);
            float max = TensorPrimitives.Max(src);              // NaN if the row holds a NaN
            TensorPrimitives.Subtract(src, max, dst);
            TensorPrimitives.Exp(dst, dst);
            float sum = TensorPrimitives.Sum(dst);              // >= 1: the max itself contributes exp(0)
            TensorPrimitives.Divide(dst, sum, dst);
        }
        return new Tensor(output, t.Shape);
    }

    /// <summary>The <paramref name="k"/> largest elements of each row along the last axis, largest first.</summary>
    /// <param name="t">A float32 tensor of shape <c>[..., C]</c> with rank ≥ 1.</param>
    /// <param name="k">
    /// How many to return per row, ≥ 0. A <paramref name="k"/> larger than <c>C</c> returns all <c>C</c>
    /// elements of the row, sorted.
    /// </param>
    /// <returns>
    /// One array per row (<c>d0 * ... * dn-2</c> arrays, row-major), each of length <c>min(k, C)</c>, holding
    /// (index along the last axis, value) pairs sorted by value descending; equal values are ordered by
    /// lower index first, and NaN ranks above every number.
    /// </returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="k"/> is negative.</exception>
    /// <exception cref="ArgumentException">Not float32, or rank 0.</exception>
    public static (int Index, float Value)[][] TopK(this Tensor t, int k)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        var (data, rows, cols) = Rows(t, nameof(TopK));
        int take = Math.Min(k, cols);
        var result = new (int Index, float Value)[rows][];
        for (int r = 0; r < rows; r++)
        {
            var row = data.AsSpan(r * cols, cols);
            var top = new (int Index, float Value)[take];
            if (take > 0) Select(row, top);
            result[r] = top;
        }
        return result;
    }

    /// <summary>Fills <paramref name="top"/> (length 1..C) with the row's largest elements, in order.</summary>
    private static void Select(ReadOnlySpan<float> row, (int Index, float Value)[] top)
    {
        int k = top.Length;
        if (k <= 32)
        {
            // Small k (the usual top-1/top-5 of a classifier): keep a sorted buffer and insert into it, O(C·k)
            // in the worst case but O(C) for typical rows, with no allocation beyond the result.
            int n = 0;
            for (int i = 0; i < row.Length; i++)
            {
                float v = row[i];
                if (n == k && !Before(v, i, top[k - 1].Value, top[k - 1].Index)) continue;
                int pos = n < k ? n++ : k - 1;
                while (pos > 0 && Before(v, i, top[pos - 1].Value, top[pos - 1].Index))
                {
                    top[pos] = top[pos - 1];
                    pos--;
                }
                top[pos] = (i, v);
            }
        }
        else
        {
            var all = new (int Index, float Value)[row.Length];
            for (int i = 0; i < row.Length; i++) all[i] = (i, row[i]);
            Array.Sort(all, static (a, b) => Before(a.Value, a.Index, b.Value, b.Index) ? -1 : Before(b.Value, b.Index, a.Value, a.Index) ? 1 : 0);
            Array.Copy(all, top, top.Length);
        }
    }

    /// <summary>The ranking order: does (<paramref name="a"/>, at <paramref name="ia"/>) come before (<paramref name="b"/>, at <paramref name="ib"/>)?</summary>
    private static bool Before(float a, int ia, float b, int ib)
    {
        bool aNaN = float.IsNaN(a), bNaN = float.IsNaN(b);
        if (aNaN != bNaN) return aNaN;
        if (!aNaN && a != b) return a > b;
        return ia < ib;
    }

    private static (float[] Data, int Rows, int Cols) Rows(Tensor t, string op)
    {
        ArgumentNullException.ThrowIfNull(t);
        if (t.DataType != DataType.Float32)
            throw new ArgumentException($"{op} needs a Float32 tensor; got {t.DataType} {Shape.Format(t.Shape)}.", nameof(t));
        if (t.Rank == 0)
            throw new ArgumentException($"{op} works along the last axis; a rank-0 tensor has none.", nameof(t));
        int cols = t.Shape[^1];
        int rows = cols == 0 ? (int)Shape.Size(t.Shape.AsSpan(0, t.Rank - 1)) : t.Length / cols;
        return ((float[])t.Data, rows, cols);
    }
}
