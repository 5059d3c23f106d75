using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tensors;

/// <summary>Element-wise arithmetic on constant tensors (NumPy broadcasting), for load-time evaluation.</summary>
internal static class TensorArithmetic
{
    public static Tensor Binary(BinaryKind kind, Tensor a, Tensor b)
    {
        if (a.DataType != b.DataType) throw new ArgumentException($"{kind} operands have different types ({a.DataType}, {b.DataType}).");
        var shape = Shape.Broadcast(a.Shape, b.Shape);
        var ma = TensorIndexing.BroadcastMap(a.Shape, shape);
        var mb = TensorIndexing.BroadcastMap(b.Shape, shape);
        return (a.Data, b.Data) switch
        {
            (float[] x, float[] y) => new Tensor(a.DataType, shape, Apply(x, y, ma, mb, (p, q) => Float(kind, p, q))),
            (long[] x, long[] y) => new Tensor(a.DataType, shape, Apply(x, y, ma, mb, (p, q) => Integer(kind, p, q))),
            (int[] x, int[] y) => new Tensor(a.DataType, shape, Apply(x, y, ma, mb, (p, q) => (int)Integer(kind, p, q))),
            _ => throw new ArgumentException($"{kind} on {a.DataType} is not supported at load time."),
        };
    }

    /// <summary>ONNX Cast between our element types (float to integer truncates toward zero).</summary>
    public static Tensor Cast(Tensor t, DataType to)
    {
        if (t.DataType == to) return t;
        int n = t.Length;
        Array r = to switch
        {
            DataType.Float32 => Convert(t, n, v => (float)v, v => v),
            DataType.Int64 => Convert(t, n, v => v, v => unchecked((long)v)),
            DataType.Int32 => Convert(t, n, v => unchecked((int)v), v => unchecked((int)v)),
            DataType.UInt8 => Convert(t, n, v => unchecked((byte)v), v => unchecked((byte)v)),
            DataType.Int8 => Convert(t, n, v => unchecked((sbyte)v), v => unchecked((sbyte)v)),
            DataType.Bool => Convert(t, n, v => v != 0, v => v != 0),
            _ => throw new ArgumentException($"Cast to {to} is not supported."),
        };
        return new Tensor(to, t.Shape, r);
    }

    /// <summary>
    /// Integer (or bool) values widened to int64, dispatched on DataType: the CLR lets an sbyte[] pass as a
    /// byte[], so Tensor.ToInt64Array's array-type switch reads INT8 -1 as 255.
    /// </summary>
    public static long[] Int64s(Tensor t) => t.DataType switch
    {
        DataType.Int8 => Array.ConvertAll((sbyte[])t.Data, v => (long)v),
        DataType.UInt8 => Array.ConvertAll((byte[])t.Data, v => (long)v),
        _ => t.ToInt64Array(),
    };

    private static T[] Convert<T>(Tensor t, int n, Func<long, T> fromInteger, Func<float, T> fromFloat)
    {
        var r = new T[n];
        if (t.Data is float[] f) for (int i = 0; i < n; i++) r[i] = fromFloat(f[i]);
        else
        {
            var l = Int64s(t);
            for (int i = 0; i < n; i++) r[i] = fromInteger(l[i]);
        }
        return r;
    }

    private static T[] Apply<T>(T[] x, T[] y, int[] mx, int[] my, Func<T, T, T> f)
    {
        var r = new T[mx.Length];
        for (int i = 0; i < r.Length; i++) r[i] = f(x[mx[i]], y[my[i]]);
        return r;
    }

    private static float Float(BinaryKind kind, float p, float q) => kind switch
    {
        BinaryKind.Add => p + q,
        BinaryKind.Sub => p - q,
        BinaryKind.Mul => p * q,
        BinaryKind.Div => p / q,
        BinaryKind.Max => MathF.Max(p, q),
        BinaryKind.Min => MathF.Min(p, q),
        BinaryKind.Pow => MathF.Pow(p, q),
        _ => throw new ArgumentException($"Unknown operator {kind}."),
    };

    /// <summary>Integer semantics of ORT: wrap-around, division truncates, and division by zero is an error.</summary>
    private static long Integer(BinaryKind kind, long p, long q) => kind switch
    {
        BinaryKind.Add => unchecked(p + q),
        BinaryKind.Sub => unchecked(p - q),
        BinaryKind.Mul => unchecked(p * q),
        BinaryKind.Div => q == 0 ? throw new ArgumentException("Integer division by zero.")
            : q == -1 ? unchecked(-p) : p / q,
        BinaryKind.Max => Math.Max(p, q),
        BinaryKind.Min => Math.Min(p, q),
        BinaryKind.Pow => (long)Math.Pow(p, q),
        _ => throw new ArgumentException($"Unknown operator {kind}."),
    };
}
