using MobileNetSharp.Graph;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace MobileNetSharp.Kernels;

/// <summary>
/// Direct convolution over any number of spatial axes on the plain N, C, spatial... layout, with
/// ONNX's [M, C/groups, kernel...] weights as they are. Off the MobileNet hot path (3-D and other
/// non-2-D convolutions), so it favours plainness: each output plane (one image, one output channel)
/// is a task; for every output row, in-input tap and input channel, one weight scales a run of input
/// along the last axis into the output row, a vector multiply-add when that axis has stride 1.
/// </summary>
public static unsafe class NdConvolution
{
    /// <summary>output = act(conv(input, weights) + bias); <paramref name="bias"/> may be empty.</summary>
    public static void Run(NdGeometry g, ReadOnlySpan<float> input, ReadOnlySpan<float> weights, ReadOnlySpan<float> bias,
        Activation activation, Span<float> output, Workers workers)
    {
        if (input.Length < g.InputLength || output.Length < g.OutputLength || weights.Length != g.WeightLength)
            throw new ArgumentException($"Convolution {g} needs {g.InputLength} inputs, {g.WeightLength} weights and {g.OutputLength} outputs; "
                + $"got {input.Length}, {weights.Length} and {output.Length}.");
        if (!bias.IsEmpty && bias.Length != g.OutChannels)
            throw new ArgumentException($"Bias has {bias.Length} values for {g.OutChannels} output channels.");
        fixed (float* x = input, w = weights, b = bias, y = output)
        {
            var ctx = new Context { G = g, X = x, W = w, B = bias.IsEmpty ? null : b, Y = y, Activation = activation };
            // Waking threads costs more than a toy convolution computes.
            var pool = g.OutputLength * g.InCPerGroup * g.KernelVolume < (1 << 16) ? Workers.Single : workers;
            pool.For(g.Batch * g.OutChannels, &Plane, Unsafe.AsPointer(ref ctx));
        }
    }

    // Lives on the caller's stack for the duration of the (synchronous) loop.
    private struct Context
    {
        public NdGeometry G;
        public float* X, W, B, Y;
        public Activation Activation;
    }

    private static void Plane(void* context, int task)
    {
        ref var c = ref Unsafe.AsRef<Context>(context);
        var g = c.G;
        int n = task / g.OutChannels, oc = task % g.OutChannels, cpg = g.InCPerGroup, group = oc / g.OutCPerGroup;
        int last = g.Rank - 1, width = g.OutSize[last], kLast = g.Kernel[last], stride = g.Strides[last];
        float* y = c.Y + (long)task * g.OutPlane;
        float* x = c.X + ((long)n * g.InChannels + (long)group * cpg) * g.InPlane;
        float* w = c.W + (long)oc * cpg * g.KernelVolume;
        new Span<float>(y, g.OutPlane).Fill(c.B == null ? 0f : c.B[oc]);
        Span<int> row = stackalloc int[last], tap = stackalloc int[last];
        for (int r = 0; r < g.Rows; r++, g.NextRow(row))
        {
            if (!g.FirstTap(row, tap)) continue;
            float* yRow = y + (long)r * width;
            do
            {
                var (t, offset) = g.Locate(row, tap);
                for (int ic = 0; ic < cpg; ic++)
                {
                    float* xRow = x + (long)ic * g.InPlane + offset;
                    float* wTaps = w + (long)ic * g.KernelVolume + (long)t * kLast;
                    for (int k = 0; k < kLast; k++)
                    {
                        int lo = g.LastOutBegin[k], count = g.LastOutEnd[k] - lo;
                        if (count <= 0) continue;
                        float* src = xRow + g.InputIndex(last, lo, k);
                        float* dst = yRow + lo;
                        float wk = wTaps[k];
                        if (stride == 1)
                            TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(src, count), wk, new ReadOnlySpan<float>(dst, count), new Span<float>(dst, count));
                        else
                            for (int i = 0; i < count; i++) dst[i] += wk * src[(long)i * stride];
                    }
                }
            } while (g.NextTap(row, tap));
        }
        if (!c.Activation.IsNone) Elementwise.Apply(c.Activation, new ReadOnlySpan<float>(y, g.OutPlane), new Span<float>(y, g.OutPlane));
    }
}
