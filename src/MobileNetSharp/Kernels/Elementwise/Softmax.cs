using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels;

public static unsafe partial class Elementwise
{
    /// <summary>Softmax over the last axis of [rows, cols], stable: exp(x - max(row)) / sum.</summary>
    public static void Softmax(ReadOnlySpan<float> x, Span<float> y, int rows, int cols)
    {
        CheckRows(x, y, rows, cols);
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<float> xr = x.Slice(r * cols, cols);
            Span<float> yr = y.Slice(r * cols, cols);
            float max = TensorPrimitives.Max(xr);
            TensorPrimitives.Subtract(xr, max, yr);
            TensorPrimitives.Exp(yr, yr);
            TensorPrimitives.Multiply(yr, 1f / TensorPrimitives.Sum(yr), yr);
        }
    }

    /// <summary>LogSoftmax over the last axis: x - max - log(sum(exp(x - max))). x may alias y.</summary>
    public static void LogSoftmax(ReadOnlySpan<float> x, Span<float> y, int rows, int cols)
    {
        CheckRows(x, y, rows, cols);
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<float> xr = x.Slice(r * cols, cols);
            float max = TensorPrimitives.Max(xr);
            float sum;
            fixed (float* p = xr)
            {
                var body = new SumExpBody { X = p, Length = cols, Shift = max };
                KernelDispatch.Run(Isa.Best, ref body);
                sum = body.Result;
            }
            TensorPrimitives.Subtract(xr, max + MathF.Log(sum), y.Slice(r * cols, cols));
        }
    }

    private static void CheckRows(ReadOnlySpan<float> x, Span<float> y, int rows, int cols)
    {
        if (rows < 0 || cols < 1) throw new ArgumentException($"Softmax needs rows ≥ 0 and cols ≥ 1, got {rows}x{cols}.");
        if (x.Length < (long)rows * cols || y.Length < (long)rows * cols) throw new ArgumentException("Softmax buffers are too small.");
    }

    /// <summary>sum(exp(x - shift)) without writing anything, so LogSoftmax can run in place.</summary>
    private struct SumExpBody : IWidthBody
    {
        public float* X;
        public int Length;
        public float Shift;
        public float Result;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Invoke<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            TV shift = TS.Splat(Shift), acc = TS.Zero;
            int i = 0;
            for (; i + TS.Count <= Length; i += TS.Count) acc = TS.Add(acc, TS.Exp(TS.Sub(TS.Load(X + i), shift)));
            float sum = TS.Sum(acc);
            for (; i < Length; i++) sum += MathF.Exp(X[i] - Shift);
            Result = sum;
        }
    }
}
