using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace MobileNetSharp.Kernels;

/// <summary>
/// Max and average pooling over any number of spatial axes on the plain N, C, spatial... layout, with
/// ONNX semantics (dilations, ceil mode, count_include_pad). Like <see cref="NdConvolution"/> it works
/// a plane (one image, one channel) per task and a run of the last axis at a time, vectorized at stride 1.
/// </summary>
public static unsafe class NdPooling
{
    /// <summary>Max over the window's cells inside the input (padding never wins); a window with none yields -infinity.</summary>
    public static void Max(NdGeometry g, ReadOnlySpan<float> input, Span<float> output, Workers workers) =>
        Run(g, input, output, workers, max: true, countIncludePad: false);

    /// <summary>
    /// Average over the window's cells inside the input. The divisor counts those cells, or with
    /// <paramref name="countIncludePad"/> also the cells in the declared padding, but never the cells
    /// a ceil-mode window hangs past it (as ONNX Runtime and PyTorch do).
    /// </summary>
    public static void Average(NdGeometry g, bool countIncludePad, ReadOnlySpan<float> input, Span<float> output, Workers workers) =>
        Run(g, input, output, workers, max: false, countIncludePad);

    private static void Run(NdGeometry g, ReadOnlySpan<float> input, Span<float> output, Workers workers, bool max, bool countIncludePad)
    {
        if (g.InChannels != g.OutChannels) throw new ArgumentException($"Pooling keeps the channel count, but the geometry maps {g.InChannels} to {g.OutChannels}.");
        if (input.Length < g.InputLength || output.Length < g.OutputLength)
            throw new ArgumentException($"Pooling {g} needs {g.InputLength} inputs and {g.OutputLength} outputs; got {input.Length} and {output.Length}.");
        fixed (float* x = input, y = output)
        {
            var ctx = new Context { G = g, X = x, Y = y, Max = max, CountIncludePad = countIncludePad };
            var pool = g.OutputLength * g.KernelVolume < (1 << 16) ? Workers.Single : workers;
            pool.For(g.Batch * g.InChannels, &Plane, Unsafe.AsPointer(ref ctx));
        }
    }

    // Lives on the caller's stack for the duration of the (synchronous) loop.
    private struct Context
    {
        public NdGeometry G;
        public float* X, Y;
        public bool Max, CountIncludePad;
    }

    private static void Plane(void* context, int task)
    {
        ref var c = ref Unsafe.AsRef<Context>(context);
        var g = c.G;
        int last = g.Rank - 1, width = g.OutSize[last], kLast = g.Kernel[last], stride = g.Strides[last];
        float* x = c.X + (long)task * g.InPlane, y = c.Y + (long)task * g.OutPlane;
        new Span<float>(y, g.OutPlane).Fill(c.Max ? float.NegativeInfinity : 0f);
        Span<int> row = stackalloc int[last], tap = stackalloc int[last];
        for (int r = 0; r < g.Rows; r++, g.NextRow(row))
        {
            float* yRow = y + (long)r * width;
            if (g.FirstTap(row, tap))
            {
                do
                {
                    float* xRow = x + g.Locate(row, tap).Offset;
                    for (int k = 0; k < kLast; k++)
                    {
                        int lo = g.LastOutBegin[k], count = g.LastOutEnd[k] - lo;
                        if (count <= 0) continue;
                        float* src = xRow + g.InputIndex(last, lo, k);
                        var dst = new Span<float>(yRow + lo, count);
                        if (stride == 1 && c.Max) TensorPrimitives.Max(dst, new ReadOnlySpan<float>(src, count), dst);
                        else if (stride == 1) TensorPrimitives.Add(dst, new ReadOnlySpan<float>(src, count), dst);
                        else if (c.Max) for (int i = 0; i < count; i++) dst[i] = MathF.Max(dst[i], src[(long)i * stride]);
                        else for (int i = 0; i < count; i++) dst[i] += src[(long)i * stride];
                    }
                } while (g.NextTap(row, tap));
            }
            if (!c.Max) Divide(g, row, yRow, c.CountIncludePad);
        }
    }

    /// <summary>The divisor is separable: per axis, the taps that count for that output coordinate.</summary>
    private static void Divide(NdGeometry g, ReadOnlySpan<int> row, float* yRow, bool countIncludePad)
    {
        int last = g.Rank - 1;
        long outer = 1;
        for (int d = 0; d < last; d++) outer *= Counted(g, d, row[d], countIncludePad);
        for (int o = 0; o < g.OutSize[last]; o++) yRow[o] /= outer * Counted(g, last, o, countIncludePad);
    }

    private static int Counted(NdGeometry g, int axis, int o, bool countIncludePad) =>
        countIncludePad ? g.PaddedTaps[axis][o] : g.TapEnd[axis][o] - g.TapBegin[axis][o];
}
