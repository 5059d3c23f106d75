using MobileNetSharp.Graph;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels;

public static partial class Elementwise
{
    private const int MaxRank = 8;

    /// <summary>
    /// y = a (op) b with NumPy multidirectional broadcasting over row-major tensors of rank ≤ 8 (shapes
    /// right-aligned, size-1 dimensions stretch). The shapes are first collapsed — size-1 dimensions dropped,
    /// neighbours merged when both operands walk them contiguously — so equal shapes become one flat call,
    /// a scalar operand one span-scalar call, and "inner broadcast" ([N,1,1,C] x [N,H,W,C] in NHWC,
    /// [N,C,1,1] x [N,C,H,W] in NCHW, a per-channel [C]) a loop of TensorPrimitives calls over rows.
    /// y may alias a or b only when that operand already has y's shape.
    /// </summary>
    public static void Binary(BinaryKind kind, ReadOnlySpan<float> a, ReadOnlySpan<int> aShape, ReadOnlySpan<float> b, ReadOnlySpan<int> bShape,
        Span<float> y, ReadOnlySpan<int> yShape)
    {
        int rank = Math.Max(1, yShape.Length);
        if (yShape.Length > MaxRank || aShape.Length > yShape.Length || bShape.Length > yShape.Length)
            throw new ArgumentException($"Binary {kind}: ranks a={aShape.Length}, b={bShape.Length}, y={yShape.Length} (y must be the broadcast shape, rank ≤ {MaxRank}).");

        Span<int> dims = stackalloc int[MaxRank];
        Span<long> sa = stackalloc long[MaxRank], sb = stackalloc long[MaxRank];
        long na = Strides(aShape, yShape, sa, kind), nb = Strides(bShape, yShape, sb, kind);
        long ny = 1;
        for (int i = 0; i < rank; i++)
        {
            dims[i] = yShape.Length == 0 ? 1 : yShape[i];
            ny *= dims[i];
        }
        if (a.Length < na || b.Length < nb || y.Length < ny)
            throw new ArgumentException($"Binary {kind}: buffers ({a.Length}, {b.Length}, {y.Length}) smaller than shapes ({na}, {nb}, {ny}).");
        if (ny == 0) return;

        // Collapse into as few dimensions as possible, innermost last.
        int r = 0;
        for (int i = 0; i < rank; i++)
        {
            if (dims[i] == 1) continue;
            if (r > 0 && sa[r - 1] == sa[i] * dims[i] && sb[r - 1] == sb[i] * dims[i])
            {
                dims[r - 1] *= dims[i];
                sa[r - 1] = sa[i];
                sb[r - 1] = sb[i];
                continue;
            }
            dims[r] = dims[i]; sa[r] = sa[i]; sb[r] = sb[i];
            r++;
        }
        if (r == 0) { dims[0] = 1; sa[0] = 0; sb[0] = 0; r = 1; }

        int inner = dims[r - 1];
        bool aRow = sa[r - 1] != 0, bRow = sb[r - 1] != 0;
        Span<int> index = stackalloc int[MaxRank];
        index.Clear();
        if (r >= 2 && aRow && bRow && inner <= PatternFloats
            && ((sa[r - 2] == 0 && sb[r - 2] == inner) || (sb[r - 2] == 0 && sa[r - 2] == inner)))
        {
            InnerBroadcast(kind, a, b, y, ny, dims, sa, sb, r, index);
            return;
        }
        long oa = 0, ob = 0;
        for (long oy = 0; oy < ny; oy += inner)
        {
            Row(kind, aRow ? a.Slice((int)oa, inner) : a.Slice((int)oa, 1), aRow, bRow ? b.Slice((int)ob, inner) : b.Slice((int)ob, 1), bRow,
                y.Slice((int)oy, inner));
            // Odometer over the outer dimensions.
            for (int d = r - 2; d >= 0; d--)
            {
                oa += sa[d];
                ob += sb[d];
                if (++index[d] < dims[d]) break;
                oa -= sa[d] * dims[d];
                ob -= sb[d] * dims[d];
                index[d] = 0;
            }
        }
    }

    /// <summary>Floats of the tiled broadcast row used by <see cref="InnerBroadcast"/> (4 KiB of stack).</summary>
    private const int PatternFloats = 1024;

    /// <summary>
    /// The "inner broadcast" with short rows: over dims [r-2, r-1] one operand is a contiguous block of
    /// dims[r-2] rows and the other repeats one row of <c>inner</c> values (e.g. [1,H,W,C] x [1,1,1,C] in NHWC
    /// with a small C). The repeated row is tiled into a buffer of whole rows close to
    /// <see cref="PatternFloats"/> floats, so each TensorPrimitives call covers many rows instead of one.
    /// </summary>
    private static void InnerBroadcast(BinaryKind kind, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y, long ny,
        Span<int> dims, Span<long> sa, Span<long> sb, int r, Span<int> index)
    {
        int inner = dims[r - 1];
        bool aRepeats = sa[r - 2] == 0;
        int reps = PatternFloats / inner, period = reps * inner;
        long block = (long)dims[r - 2] * inner;
        Span<float> pattern = stackalloc float[PatternFloats];
        long oa = 0, ob = 0;
        for (long oy = 0; oy < ny; oy += block)
        {
            ReadOnlySpan<float> row = aRepeats ? a.Slice((int)oa, inner) : b.Slice((int)ob, inner);
            for (int k = 0; k < reps; k++) row.CopyTo(pattern.Slice(k * inner));
            ReadOnlySpan<float> full = aRepeats ? b.Slice((int)ob, (int)block) : a.Slice((int)oa, (int)block);
            Span<float> target = y.Slice((int)oy, (int)block);
            for (int off = 0; off < block; off += period)
            {
                int length = (int)Math.Min(period, block - off);
                ReadOnlySpan<float> tiled = pattern[..length], part = full.Slice(off, length);
                if (kind is BinaryKind.Pow or BinaryKind.Max or BinaryKind.Min) Row(kind, aRepeats ? tiled : part, true, aRepeats ? part : tiled, true, target.Slice(off, length));
                else PairKernel.Run(kind, aRepeats ? tiled : part, aRepeats ? part : tiled, target.Slice(off, length));
            }
            if (r == 2) break;
            // Odometer over the dimensions outside the two collapsed ones.
            for (int d = r - 3; d >= 0; d--)
            {
                oa += sa[d];
                ob += sb[d];
                if (++index[d] < dims[d]) break;
                oa -= sa[d] * dims[d];
                ob -= sb[d] * dims[d];
                index[d] = 0;
            }
        }
    }

    /// <summary>Strides of an operand in y's index space (0 where it broadcasts); returns its element count.</summary>
    private static long Strides(ReadOnlySpan<int> shape, ReadOnlySpan<int> yShape, Span<long> strides, BinaryKind kind)
    {
        int rank = Math.Max(1, yShape.Length), offset = yShape.Length - shape.Length;
        long stride = 1;
        for (int i = rank - 1; i >= 0; i--)
        {
            int yd = yShape.Length == 0 ? 1 : yShape[i];
            int d = i - offset >= 0 && shape.Length > 0 ? shape[i - offset] : 1;
            if (d != yd && d != 1) throw new ArgumentException($"Binary {kind}: shape [{string.Join(",", shape.ToArray())}] does not broadcast to [{string.Join(",", yShape.ToArray())}].");
            strides[i] = d == 1 ? 0 : stride;
            stride *= d;
        }
        return stride;
    }

    /// <summary>One innermost row: each side is a full row or a single broadcast value.</summary>
    private static void Row(BinaryKind kind, ReadOnlySpan<float> a, bool aRow, ReadOnlySpan<float> b, bool bRow, Span<float> y)
    {
        if (!aRow && !bRow)
        {
            y.Fill(Scalar(kind, a[0], b[0]));
            return;
        }
        if (aRow && bRow && kind is BinaryKind.Add or BinaryKind.Sub or BinaryKind.Mul or BinaryKind.Div)
        {
            PairKernel.Run(kind, a, b, y);
            return;
        }
        switch (kind)
        {
            case BinaryKind.Add:
                if (aRow && bRow) TensorPrimitives.Add(a, b, y);
                else if (aRow) TensorPrimitives.Add(a, b[0], y);
                else TensorPrimitives.Add(b, a[0], y);
                break;
            case BinaryKind.Sub:
                if (aRow && bRow) TensorPrimitives.Subtract(a, b, y);
                else if (aRow) TensorPrimitives.Subtract(a, b[0], y);
                else TensorPrimitives.Subtract(a[0], b, y);
                break;
            case BinaryKind.Mul:
                if (aRow && bRow) TensorPrimitives.Multiply(a, b, y);
                else if (aRow) TensorPrimitives.Multiply(a, b[0], y);
                else TensorPrimitives.Multiply(b, a[0], y);
                break;
            case BinaryKind.Div:
                if (aRow && bRow) TensorPrimitives.Divide(a, b, y);
                else if (aRow) TensorPrimitives.Divide(a, b[0], y);
                else TensorPrimitives.Divide(a[0], b, y);
                break;
            case BinaryKind.Max:
                if (aRow && bRow) TensorPrimitives.Max(a, b, y);
                else if (aRow) TensorPrimitives.Max(a, b[0], y);
                else TensorPrimitives.Max(b, a[0], y);
                break;
            case BinaryKind.Min:
                if (aRow && bRow) TensorPrimitives.Min(a, b, y);
                else if (aRow) TensorPrimitives.Min(a, b[0], y);
                else TensorPrimitives.Min(b, a[0], y);
                break;
            case BinaryKind.Pow:
                if (aRow && bRow) TensorPrimitives.Pow(a, b, y);
                else if (aRow) TensorPrimitives.Pow(a, b[0], y);
                else TensorPrimitives.Pow(a[0], b, y);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown binary operator.");
        }
    }

    private static float Scalar(BinaryKind kind, float a, float b) => kind switch
    {
        BinaryKind.Add => a + b,
        BinaryKind.Sub => a - b,
        BinaryKind.Mul => a * b,
        BinaryKind.Div => a / b,
        BinaryKind.Max => MathF.Max(a, b),
        BinaryKind.Min => MathF.Min(a, b),
        BinaryKind.Pow => MathF.Pow(a, b),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown binary operator."),
    };
}

/// <summary>y = a (op) b over equal-length spans with the engine's own vector loop, decided once per call. Max/Min here
/// use the native (non-NaN-propagating) instructions, so callers needing IEEE NaN semantics use TensorPrimitives.</summary>
internal static unsafe class PairKernel
{
    public static void Run(BinaryKind kind, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        fixed (float* pa = a, pb = b, py = y)
        {
            var body = new Body { A = pa, B = pb, Y = py, Length = y.Length < a.Length ? y.Length : a.Length, Kind = kind };
            KernelDispatch.Run(Isa.Best, ref body);
        }
    }

    private struct Body : IWidthBody
    {
        public float* A, B, Y;
        public int Length;
        public BinaryKind Kind;

        public readonly void Invoke<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            switch (Kind)
            {
                case BinaryKind.Add: Loop<TS, TV, AddOp>(); break;
                case BinaryKind.Sub: Loop<TS, TV, SubOp>(); break;
                case BinaryKind.Mul: Loop<TS, TV, MulOp>(); break;
                case BinaryKind.Div: Loop<TS, TV, DivOp>(); break;
                case BinaryKind.Max: Loop<TS, TV, MaxOp>(); break;
                case BinaryKind.Min: Loop<TS, TV, MinOp>(); break;
                default: throw new ArgumentOutOfRangeException(nameof(Kind), Kind, "Unsupported operator.");
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void Loop<TS, TV, TO>() where TS : unmanaged, ISimd<TV> where TV : unmanaged where TO : unmanaged, IPairOp
        {
            int w = TS.Count, n = Length, i = 0;
            for (; i + 2 * w <= n; i += 2 * w)
            {
                TS.Store(Y + i, TO.Apply<TS, TV>(TS.Load(A + i), TS.Load(B + i)));
                TS.Store(Y + i + w, TO.Apply<TS, TV>(TS.Load(A + i + w), TS.Load(B + i + w)));
            }
            for (; i < n; i += w)
            {
                int lanes = Math.Min(w, n - i);
                TS.StorePartial(Y + i, TO.Apply<TS, TV>(TS.LoadPartial(A + i, lanes), TS.LoadPartial(B + i, lanes)), lanes);
            }
        }
    }

    private interface IPairOp { static abstract TV Apply<TS, TV>(TV a, TV b) where TS : unmanaged, ISimd<TV> where TV : unmanaged; }
    private readonly struct AddOp : IPairOp { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static TV Apply<TS, TV>(TV a, TV b) where TS : unmanaged, ISimd<TV> where TV : unmanaged => TS.Add(a, b); }
    private readonly struct SubOp : IPairOp { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static TV Apply<TS, TV>(TV a, TV b) where TS : unmanaged, ISimd<TV> where TV : unmanaged => TS.Sub(a, b); }
    private readonly struct MulOp : IPairOp { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static TV Apply<TS, TV>(TV a, TV b) where TS : unmanaged, ISimd<TV> where TV : unmanaged => TS.Mul(a, b); }
    private readonly struct DivOp : IPairOp { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static TV Apply<TS, TV>(TV a, TV b) where TS : unmanaged, ISimd<TV> where TV : unmanaged => TS.Div(a, b); }
    private readonly struct MaxOp : IPairOp { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static TV Apply<TS, TV>(TV a, TV b) where TS : unmanaged, ISimd<TV> where TV : unmanaged => TS.Max(a, b); }
    private readonly struct MinOp : IPairOp { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static TV Apply<TS, TV>(TV a, TV b) where TS : unmanaged, ISimd<TV> where TV : unmanaged => TS.Min(a, b); }
}
