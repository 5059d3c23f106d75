using System.Numerics.Tensors;

namespace MobileNetSharp.Kernels;

public static partial class Elementwise
{
    /// <summary>
    /// ONNX PRelu (opset 9/16): y = x ≥ 0 ? x : slope · x, computed as max(x, 0) + slope · min(x, 0), with the
    /// slope unidirectionally broadcast to x (NumPy rules, right-aligned; y has x's shape). Any layout: a
    /// per-channel slope is [C, 1, 1] against NCHW x [N, C, H, W] (rows of H·W with one slope each) or [C]
    /// against NHWC x [N, H, W, C] (rows of C against the slope row). x may alias y.
    /// </summary>
    public static void PRelu(ReadOnlySpan<float> x, ReadOnlySpan<int> xShape, ReadOnlySpan<float> slope, ReadOnlySpan<int> slopeShape, Span<float> y)
    {
        var body = new PReluRows { X = x, Slope = slope, Y = y };
        Broadcasting.Run("PRelu", xShape, y.Length, xShape, x.Length, slopeShape, slope.Length, [], 1, ref body);
    }

    private ref struct PReluRows : IBroadcastRows
    {
        public ReadOnlySpan<float> X, Slope;
        public Span<float> Y;

        public readonly void Row(long y, long o0, bool row0, long o1, bool row1, long o2, bool row2, int length)
        {
            const int Chunk = 512;
            Span<float> t = stackalloc float[Chunk];
            for (int start = 0; start < length; start += Chunk)
            {
                int n = Math.Min(Chunk, length - start);
                ReadOnlySpan<float> xs = row0 ? X.Slice((int)o0 + start, n) : X.Slice((int)o0, 1);
                Span<float> ys = Y.Slice((int)y + start, n), ts = t[..n];
                if (!row0)
                {
                    float v = xs[0];
                    ys.Fill(v >= 0 || float.IsNaN(v) ? v : v * Slope[(int)o1]);
                    if (row1) for (int i = 0; i < n; i++) ys[i] = v >= 0 || float.IsNaN(v) ? v : v * Slope[(int)o1 + start + i];
                    continue;
                }
                TensorPrimitives.Min(xs, 0f, ts);   // before ys is written: x may alias y
                TensorPrimitives.Max(xs, 0f, ys);
                if (row1) TensorPrimitives.MultiplyAdd(ts, Slope.Slice((int)o1 + start, n), ys, ys);
                else TensorPrimitives.MultiplyAdd(ts, Slope[(int)o1], ys, ys);
            }
        }
    }
}
