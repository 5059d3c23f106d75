using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileNetSharp.Kernels;

/// <summary>The comparison operators of ONNX (Equal, Less, LessOrEqual, Greater, GreaterOrEqual).</summary>
public enum CompareKind { Equal, Less, LessOrEqual, Greater, GreaterOrEqual }

/// <summary>The binary boolean operators of ONNX (And, Or, Xor).</summary>
public enum LogicalKind { And, Or, Xor }

public static partial class Elementwise
{
    /// <summary>
    /// y = a (op) b as bool with NumPy multidirectional broadcasting (row-major, rank ≤ 8; y must have the broadcast
    /// shape), over any numeric element type (float and long are what ONNX models use). IEEE semantics: every
    /// comparison with NaN is false. Rows are compared a Vector256 at a time where it is accelerated, the lane
    /// masks turned into bool bytes with one bit deposit.
    /// </summary>
    public static void Compare<T>(CompareKind kind, ReadOnlySpan<T> a, ReadOnlySpan<int> aShape, ReadOnlySpan<T> b, ReadOnlySpan<int> bShape,
        Span<bool> y, ReadOnlySpan<int> yShape) where T : unmanaged, INumber<T>
    {
        // a > b is b < a: only three operators remain, with the operands swapped.
        bool swap = kind is CompareKind.Greater or CompareKind.GreaterOrEqual;
        var body = new CompareRows<T>
        {
            A = swap ? b : a, B = swap ? a : b, Y = y,
            Kind = kind switch { CompareKind.Greater => CompareKind.Less, CompareKind.GreaterOrEqual => CompareKind.LessOrEqual, _ => kind },
        };
        if (swap) Broadcasting.Run(kind.ToString(), yShape, y.Length, bShape, b.Length, aShape, a.Length, [], 1, ref body);
        else Broadcasting.Run(kind.ToString(), yShape, y.Length, aShape, a.Length, bShape, b.Length, [], 1, ref body);
    }

    /// <summary>ONNX Where: output = condition ? x : y, all three broadcast together (NumPy rules; output has the
    /// broadcast shape, rank ≤ 8), any element type.</summary>
    public static void Where<T>(ReadOnlySpan<bool> condition, ReadOnlySpan<int> conditionShape, ReadOnlySpan<T> x, ReadOnlySpan<int> xShape,
        ReadOnlySpan<T> y, ReadOnlySpan<int> yShape, Span<T> output, ReadOnlySpan<int> outputShape) where T : unmanaged
    {
        var body = new WhereRows<T> { C = condition, X = x, Y = y, Out = output };
        Broadcasting.Run("Where", outputShape, output.Length, conditionShape, condition.Length, xShape, x.Length, yShape, y.Length, ref body);
    }

    /// <summary>ONNX And/Or/Xor over bool tensors with NumPy broadcasting. Bools must be 0 or 1 bytes (as .NET writes them).</summary>
    public static void Logical(LogicalKind kind, ReadOnlySpan<bool> a, ReadOnlySpan<int> aShape, ReadOnlySpan<bool> b, ReadOnlySpan<int> bShape,
        Span<bool> y, ReadOnlySpan<int> yShape)
    {
        var body = new LogicalRows
        {
            A = MemoryMarshal.AsBytes(a), B = MemoryMarshal.AsBytes(b), Y = MemoryMarshal.AsBytes(y), Kind = kind,
        };
        Broadcasting.Run(kind.ToString(), yShape, y.Length, aShape, a.Length, bShape, b.Length, [], 1, ref body);
    }

    /// <summary>ONNX Not: y = !x. x may alias y.</summary>
    public static void Not(ReadOnlySpan<bool> x, Span<bool> y)
    {
        if (y.Length < x.Length) throw new ArgumentException($"Not: output has {y.Length} elements, input {x.Length}.", nameof(y));
        TensorPrimitives.Xor(MemoryMarshal.AsBytes(x), (byte)1, MemoryMarshal.AsBytes(y[..x.Length]));
    }

    private ref struct CompareRows<T> : IBroadcastRows where T : unmanaged, INumber<T>
    {
        public ReadOnlySpan<T> A, B;
        public Span<bool> Y;
        public CompareKind Kind;

        public readonly void Row(long y, long o0, bool row0, long o1, bool row1, long o2, bool row2, int length)
        {
            ref T a = ref Unsafe.Add(ref MemoryMarshal.GetReference(A), (nint)o0);
            ref T b = ref Unsafe.Add(ref MemoryMarshal.GetReference(B), (nint)o1);
            ref bool r = ref Unsafe.Add(ref MemoryMarshal.GetReference(Y), (nint)y);
            switch (Kind)
            {
                case CompareKind.Equal: CompareRow<T, EqualOp>(ref a, row0, ref b, row1, ref r, length); break;
                case CompareKind.Less: CompareRow<T, LessOp>(ref a, row0, ref b, row1, ref r, length); break;
                default: CompareRow<T, LessOrEqualOp>(ref a, row0, ref b, row1, ref r, length); break;
            }
        }
    }

    private interface ICompareOp
    {
        static abstract bool Apply<T>(T a, T b) where T : unmanaged, INumber<T>;
        static abstract Vector256<T> Apply<T>(Vector256<T> a, Vector256<T> b) where T : unmanaged, INumber<T>;
    }

    private readonly struct EqualOp : ICompareOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static bool Apply<T>(T a, T b) where T : unmanaged, INumber<T> => a == b;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Apply<T>(Vector256<T> a, Vector256<T> b) where T : unmanaged, INumber<T> => Vector256.Equals(a, b);
    }

    private readonly struct LessOp : ICompareOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static bool Apply<T>(T a, T b) where T : unmanaged, INumber<T> => a < b;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Apply<T>(Vector256<T> a, Vector256<T> b) where T : unmanaged, INumber<T> => Vector256.LessThan(a, b);
    }

    private readonly struct LessOrEqualOp : ICompareOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static bool Apply<T>(T a, T b) where T : unmanaged, INumber<T> => a <= b;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Apply<T>(Vector256<T> a, Vector256<T> b) where T : unmanaged, INumber<T> => Vector256.LessThanOrEqual(a, b);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void CompareRow<T, TC>(ref T a, bool aRow, ref T b, bool bRow, ref bool y, int n) where T : unmanaged, INumber<T> where TC : ICompareOp
    {
        int i = 0;
        int w = Vector256<T>.Count;
        if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported && (w == 8 || w == 4))
        {
            Vector256<T> sa = Vector256.Create(a), sb = Vector256.Create(b);
            for (; i + w <= n; i += w)
            {
                Vector256<T> va = aRow ? Vector256.LoadUnsafe(ref a, (nuint)i) : sa;
                Vector256<T> vb = bRow ? Vector256.LoadUnsafe(ref b, (nuint)i) : sb;
                uint bits = TC.Apply(va, vb).ExtractMostSignificantBits();
                ref byte target = ref Unsafe.As<bool, byte>(ref Unsafe.Add(ref y, i));
                if (w == 8) Unsafe.WriteUnaligned(ref target, SpreadBits8(bits));
                else Unsafe.WriteUnaligned(ref target, (uint)SpreadBits8(bits));
            }
        }
        for (; i < n; i++)
            Unsafe.Add(ref y, i) = TC.Apply(aRow ? Unsafe.Add(ref a, i) : a, bRow ? Unsafe.Add(ref b, i) : b);
    }

    /// <summary>Bit j of <paramref name="bits"/> (j &lt; 8) becomes byte j (0 or 1) of the result.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong SpreadBits8(uint bits)
    {
        if (Bmi2.X64.IsSupported) return Bmi2.X64.ParallelBitDeposit(bits, 0x0101010101010101UL);
        ulong r = 0;
        for (int j = 0; j < 8; j++) r |= (ulong)((bits >> j) & 1) << (8 * j);
        return r;
    }

    private ref struct WhereRows<T> : IBroadcastRows where T : unmanaged
    {
        public ReadOnlySpan<bool> C;
        public ReadOnlySpan<T> X, Y;
        public Span<T> Out;

        public readonly void Row(long y, long o0, bool row0, long o1, bool row1, long o2, bool row2, int length)
        {
            Span<T> output = Out.Slice((int)y, length);
            if (!row0)
            {
                // One condition for the whole row: a copy or a fill.
                bool pick = C[(int)o0];
                bool row = pick ? row1 : row2;
                ReadOnlySpan<T> source = pick ? X : Y;
                int offset = (int)(pick ? o1 : o2);
                if (row) source.Slice(offset, length).CopyTo(output);
                else output.Fill(source[offset]);
                return;
            }
            ReadOnlySpan<bool> c = C.Slice((int)o0, length);
            ref T x = ref Unsafe.Add(ref MemoryMarshal.GetReference(X), (nint)o1);
            ref T v = ref Unsafe.Add(ref MemoryMarshal.GetReference(Y), (nint)o2);
            for (int i = 0; i < output.Length; i++)
                output[i] = c[i] ? (row1 ? Unsafe.Add(ref x, i) : x) : (row2 ? Unsafe.Add(ref v, i) : v);
        }
    }

    private ref struct LogicalRows : IBroadcastRows
    {
        public ReadOnlySpan<byte> A, B;
        public Span<byte> Y;
        public LogicalKind Kind;

        public readonly void Row(long y, long o0, bool row0, long o1, bool row1, long o2, bool row2, int length)
        {
            Span<byte> output = Y.Slice((int)y, length);
            if (row0 && row1)
            {
                ReadOnlySpan<byte> a = A.Slice((int)o0, length), b = B.Slice((int)o1, length);
                if (Kind == LogicalKind.And) TensorPrimitives.BitwiseAnd(a, b, output);
                else if (Kind == LogicalKind.Or) TensorPrimitives.BitwiseOr(a, b, output);
                else TensorPrimitives.Xor(a, b, output);
                return;
            }
            if (!row0 && !row1)
            {
                output.Fill(Scalar(A[(int)o0], B[(int)o1]));
                return;
            }
            ReadOnlySpan<byte> rowSpan = row0 ? A.Slice((int)o0, length) : B.Slice((int)o1, length);
            byte s = row0 ? B[(int)o1] : A[(int)o0];
            if (Kind == LogicalKind.And) TensorPrimitives.BitwiseAnd(rowSpan, s, output);
            else if (Kind == LogicalKind.Or) TensorPrimitives.BitwiseOr(rowSpan, s, output);
            else TensorPrimitives.Xor(rowSpan, s, output);
        }

        private readonly byte Scalar(byte a, byte b) => Kind switch
        {
            LogicalKind.And => (byte)(a & b),
            LogicalKind.Or => (byte)(a | b),
            _ => (byte)(a ^ b),
        };
    }
}
