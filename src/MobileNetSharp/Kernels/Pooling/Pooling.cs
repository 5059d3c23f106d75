using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels;

/// <summary>
/// Pooling over NHWC tensors, vectorized over channels at <see cref="Isa.Best"/>. Windows come from a
/// <see cref="Conv2dGeometry"/> (kernel, strides, dilations, pads; InC == OutC; Groups ignored).
/// </summary>
public static unsafe class Pooling
{
    /// <summary>Max over the window's cells inside the input (padding never wins). A window entirely in the
    /// padding yields -infinity.</summary>
    public static void MaxPool2d(in Conv2dGeometry g, int batch, ReadOnlySpan<float> input, Span<float> output, Workers workers) =>
        Run(g, batch, input, output, workers, max: true, countIncludePad: false, 0, 0);

    /// <summary>
    /// Average over the window (ONNX AveragePool). Cells inside the input always count. With
    /// <paramref name="countIncludePad"/> the divisor also counts cells in the declared padding, but never
    /// cells beyond it. ceil_mode contract: the caller enlarges g.PadBottom / g.PadRight so g.OutH/OutW are
    /// the ceil-mode sizes, and passes by how much in <paramref name="ceilExtraBottom"/> /
    /// <paramref name="ceilExtraRight"/>; those extra rows/columns are outside the declared padding and are
    /// excluded from every divisor (as ONNX Runtime and PyTorch do).
    /// </summary>
    public static void AveragePool2d(in Conv2dGeometry g, bool countIncludePad, int batch, ReadOnlySpan<float> input, Span<float> output,
        Workers workers, int ceilExtraBottom = 0, int ceilExtraRight = 0)
    {
        if (ceilExtraBottom < 0 || ceilExtraBottom > g.PadBottom || ceilExtraRight < 0 || ceilExtraRight > g.PadRight)
            throw new ArgumentException("The ceil-mode extra padding must be between 0 and the bottom/right padding.");
        Run(g, batch, input, output, workers, max: false, countIncludePad, ceilExtraBottom, ceilExtraRight);
    }

    /// <summary>output[n, c] = mean over the spatial positions of input[n, s, c] (NHWC, spatial = H*W).</summary>
    public static void GlobalAveragePool(int batch, int spatial, int channels, ReadOnlySpan<float> input, Span<float> output)
    {
        GlobalMaxOrSum(batch, spatial, channels, input, output, max: false);
        TensorPrimitives.Multiply(output[..(batch * channels)], 1f / spatial, output);
    }

    /// <summary>output[n, c] = max over the spatial positions of input[n, s, c].</summary>
    public static void GlobalMaxPool(int batch, int spatial, int channels, ReadOnlySpan<float> input, Span<float> output) =>
        GlobalMaxOrSum(batch, spatial, channels, input, output, max: true);

    private static void GlobalMaxOrSum(int batch, int spatial, int channels, ReadOnlySpan<float> input, Span<float> output, bool max)
    {
        if (batch < 1 || spatial < 1 || channels < 1) throw new ArgumentException($"Global pooling needs positive sizes, got {batch}x{spatial}x{channels}.");
        if (input.Length < (long)batch * spatial * channels || output.Length < (long)batch * channels)
            throw new ArgumentException("Global pooling buffers are too small.");
        for (int n = 0; n < batch; n++)
        {
            ReadOnlySpan<float> image = input.Slice(n * spatial * channels, spatial * channels);
            Span<float> y = output.Slice(n * channels, channels);
            image[..channels].CopyTo(y);
            for (int s = 1; s < spatial; s++)
            {
                ReadOnlySpan<float> row = image.Slice(s * channels, channels);
                if (max) TensorPrimitives.Max(y, row, y);
                else TensorPrimitives.Add(y, row, y);
            }
        }
    }

    private struct Args
    {
        public float* Input, Output;
        public Conv2dGeometry G;
        public bool Max, CountIncludePad;
        public int ValidBottom, ValidRight; // exclusive bounds of the region whose cells count with countIncludePad
        public int Rows, Chunks;
    }

    private static void Run(in Conv2dGeometry g, int batch, ReadOnlySpan<float> input, Span<float> output, Workers workers,
        bool max, bool countIncludePad, int extraBottom, int extraRight)
    {
        (g with { Batch = 1, OutC = g.InC, Groups = 1 }).Validate();
        long inLength = (long)batch * g.InH * g.InW * g.InC, outLength = (long)batch * g.OutH * g.OutW * g.InC;
        if (batch < 1 || input.Length < inLength || output.Length < outLength)
            throw new ArgumentException($"Pooling buffers too small for batch {batch} of {g}.");
        fixed (float* x = input, y = output)
        {
            Args args = new()
            {
                Input = x, Output = y, G = g, Max = max, CountIncludePad = countIncludePad,
                ValidBottom = g.InH + g.PadBottom - extraBottom, ValidRight = g.InW + g.PadRight - extraRight,
                Rows = batch * g.OutH,
            };
            args.Chunks = workers.Count == 1 || outLength < (1 << 14) ? 1 : Math.Min(args.Rows, workers.Count * 4);
            workers.For(args.Chunks, &Task, &args);
        }
    }

    private static void Task(void* context, int index)
    {
        Args* args = (Args*)context;
        var body = new Body { Args = args };
        (body.Row0, body.Row1) = Workers.Split(args->Rows, args->Chunks, index);
        KernelDispatch.Run(Isa.Best, ref body);
    }

    private struct Body : IWidthBody
    {
        public Args* Args;
        public int Row0, Row1;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            Args* a = Args;
            Conv2dGeometry g = a->G;
            int c = g.InC, w = TS.Count;
            for (int row = Row0; row < Row1; row++)
            {
                int n = row / g.OutH, oy = row % g.OutH;
                float* image = a->Input + (long)n * g.InH * g.InW * c;
                for (int ox = 0; ox < g.OutW; ox++)
                {
                    int iy0 = oy * g.StrideH - g.PadTop, ix0 = ox * g.StrideW - g.PadLeft;
                    float* y = a->Output + ((long)row * g.OutW + ox) * c;
                    float scale = a->Max ? 1f : 1f / Divisor(a, iy0, ix0);
                    for (int cc = 0; cc < c; cc += w)
                    {
                        int lanes = Math.Min(w, c - cc);
                        TV acc = TS.Splat(a->Max ? float.NegativeInfinity : 0f);
                        for (int ky = 0; ky < g.KernelH; ky++)
                        {
                            int iy = iy0 + ky * g.DilationH;
                            if ((uint)iy >= (uint)g.InH) continue;
                            for (int kx = 0; kx < g.KernelW; kx++)
                            {
                                int ix = ix0 + kx * g.DilationW;
                                if ((uint)ix >= (uint)g.InW) continue;
                                float* p = image + ((long)iy * g.InW + ix) * c + cc;
                                TV v = lanes == w ? TS.Load(p) : TS.LoadPartial(p, lanes);
                                acc = a->Max ? TS.Max(acc, v) : TS.Add(acc, v);
                            }
                        }
                        if (!a->Max) acc = TS.Mul(acc, TS.Splat(scale));
                        if (lanes == w) TS.Store(y + cc, acc);
                        else TS.StorePartial(y + cc, acc, lanes);
                    }
                }
            }
        }

        private static int Divisor(Args* a, int iy0, int ix0)
        {
            Conv2dGeometry g = a->G;
            int lowY = a->CountIncludePad ? -g.PadTop : 0, highY = a->CountIncludePad ? a->ValidBottom : g.InH;
            int lowX = a->CountIncludePad ? -g.PadLeft : 0, highX = a->CountIncludePad ? a->ValidRight : g.InW;
            int rows = 0, cols = 0;
            for (int ky = 0; ky < g.KernelH; ky++)
            {
                int iy = iy0 + ky * g.DilationH;
                if (iy >= lowY && iy < highY) rows++;
            }
            for (int kx = 0; kx < g.KernelW; kx++)
            {
                int ix = ix0 + kx * g.DilationW;
                if (ix >= lowX && ix < highX) cols++;
            }
            return Math.Max(1, rows * cols);
        }
    }
}
