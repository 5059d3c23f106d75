namespace MobileNetSharp.Kernels;

/// <summary>
/// One innermost row of a broadcast loop. <c>o0..o2</c> are element offsets of each operand's row start,
/// <c>row0..row2</c> say whether that operand advances along the row (false: one value repeated), and
/// <c>y</c> is the output offset of a row of <c>length</c> elements.
/// </summary>
internal interface IBroadcastRows
{
    void Row(long y, long o0, bool row0, long o1, bool row1, long o2, bool row2, int length);
}

/// <summary>
/// NumPy multidirectional broadcasting (ONNX "Broadcasting in ONNX", docs/Broadcasting.md) for up to three
/// operands over a row-major output of rank ≤ 8, generic over the element type because it only deals in
/// offsets. Shapes are right-aligned; size-1 dimensions stretch. Dimensions are collapsed first (size-1
/// output dimensions dropped, neighbours merged while every operand walks them contiguously or broadcasts
/// both), so equal shapes become one row and per-channel operands rows of the channel run; the body then
/// runs once per innermost row. Same scheme as <see cref="Elementwise.Binary"/>, for any element type and
/// operand count.
/// </summary>
internal static class Broadcasting
{
    public const int MaxRank = 8;

    /// <summary>Validates the shapes and buffer lengths and runs <paramref name="body"/> over the collapsed rows.
    /// Unused operands pass an empty shape with length 1 (a scalar) and are ignored by the body.</summary>
    public static void Run<TBody>(string op, ReadOnlySpan<int> yShape, long yLength,
        ReadOnlySpan<int> s0, long n0, ReadOnlySpan<int> s1, long n1, ReadOnlySpan<int> s2, long n2, ref TBody body)
        where TBody : IBroadcastRows, allows ref struct
    {
        int rank = Math.Max(1, yShape.Length);
        if (yShape.Length > MaxRank || s0.Length > yShape.Length || s1.Length > yShape.Length || s2.Length > yShape.Length)
            throw new ArgumentException($"{op}: operand ranks {s0.Length}, {s1.Length}, {s2.Length} exceed the output rank {yShape.Length} (≤ {MaxRank}).");
        Span<int> dims = stackalloc int[MaxRank];
        Span<long> st0 = stackalloc long[MaxRank], st1 = stackalloc long[MaxRank], st2 = stackalloc long[MaxRank];
        long c0 = Strides(op, s0, yShape, st0), c1 = Strides(op, s1, yShape, st1), c2 = Strides(op, s2, yShape, st2);
        long ny = 1;
        for (int i = 0; i < rank; i++)
        {
            dims[i] = yShape.Length == 0 ? 1 : yShape[i];
            if (dims[i] < 0) throw new ArgumentException($"{op}: negative output dimension.");
            ny *= dims[i];
        }
        if (n0 < c0 || n1 < c1 || n2 < c2 || yLength < ny)
            throw new ArgumentException($"{op}: buffers ({n0}, {n1}, {n2}, {yLength}) smaller than their shapes ({c0}, {c1}, {c2}, {ny}).");
        if (ny == 0) return;
        if (ny > int.MaxValue) throw new ArgumentException($"{op}: {ny} output elements exceed a span.");

        int r = 0;
        for (int i = 0; i < rank; i++)
        {
            if (dims[i] == 1) continue;
            if (r > 0 && st0[r - 1] == st0[i] * dims[i] && st1[r - 1] == st1[i] * dims[i] && st2[r - 1] == st2[i] * dims[i])
            {
                dims[r - 1] *= dims[i];
                st0[r - 1] = st0[i]; st1[r - 1] = st1[i]; st2[r - 1] = st2[i];
                continue;
            }
            dims[r] = dims[i]; st0[r] = st0[i]; st1[r] = st1[i]; st2[r] = st2[i];
            r++;
        }
        if (r == 0) { dims[0] = 1; st0[0] = st1[0] = st2[0] = 0; r = 1; }

        int inner = dims[r - 1];
        bool row0 = st0[r - 1] != 0, row1 = st1[r - 1] != 0, row2 = st2[r - 1] != 0;
        Span<int> index = stackalloc int[MaxRank];
        index.Clear();
        long o0 = 0, o1 = 0, o2 = 0;
        for (long oy = 0; oy < ny; oy += inner)
        {
            body.Row(oy, o0, row0, o1, row1, o2, row2, inner);
            for (int d = r - 2; d >= 0; d--)
            {
                o0 += st0[d]; o1 += st1[d]; o2 += st2[d];
                if (++index[d] < dims[d]) break;
                o0 -= st0[d] * dims[d]; o1 -= st1[d] * dims[d]; o2 -= st2[d] * dims[d];
                index[d] = 0;
            }
        }
    }

    /// <summary>Strides of an operand in the output's index space (0 where it broadcasts); returns its element count.</summary>
    private static long Strides(string op, ReadOnlySpan<int> shape, ReadOnlySpan<int> yShape, Span<long> strides)
    {
        int rank = Math.Max(1, yShape.Length), offset = yShape.Length - shape.Length;
        long stride = 1;
        for (int i = rank - 1; i >= 0; i--)
        {
            int yd = yShape.Length == 0 ? 1 : yShape[i];
            int d = i - offset >= 0 && shape.Length > 0 ? shape[i - offset] : 1;
            if (d != yd && d != 1)
                throw new ArgumentException($"{op}: shape [{string.Join(",", shape.ToArray())}] does not broadcast to [{string.Join(",", yShape.ToArray())}].");
            strides[i] = d == 1 ? 0 : stride;
            stride *= d;
        }
        return stride;
    }

    /// <summary>Element count of a shape (1 for rank 0).</summary>
    public static long Count(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (int d in shape) n *= d;
        return n;
    }
}
