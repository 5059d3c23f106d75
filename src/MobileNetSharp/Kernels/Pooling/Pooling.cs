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
        // batch x channels values (a few thousand at most): a plain loop, the same products as TensorPrimitives.Multiply,
        // whose generic vector path took 5-10 ms of JIT inside MobileNetV3's first runs (squeeze-excite pools).
        float scale = 1f / spatial;
        var means = output[..(batch * channels)];
        for (int i = 0; i < means.Length; i++) means[i] *= scale;
    }

    /// <summary>output[n, c] = max over the spatial positions of input[n, s, c].</summary>
    public static void GlobalMaxPool(int batch, int spatial, int channels, ReadOnlySpan<float> input, Span<float> output) =>
        GlobalMaxOrSum(batch, spatial, channels, input, output, max: true);

    private static void GlobalMaxOrSum(int batch, int spatial, int channels, ReadOnlySpan<float> input, Span<float> output, bool max)
    {
        if (batch < 1 || spatial < 1 || channels < 1) throw new ArgumentException($"Global pooling needs positive sizes, got {batch}x{spatial}x{channels}.");
        if (input.Length < (long)batch * spatial * channels || output.Length < (long)batch * channels)
            throw new ArgumentException("Global pooling buffers are too small.");
        fixed (float* x = input, y = output)
        {
            var body = new GlobalBody { Input = x, Output = y, Batch = batch, Spatial = spatial, Channels = channels, Max = max };
            KernelDispatch.Run(Isa.Best, ref body);
        }
    }

    /// <summary>
    /// Global sum/max over NHWC without a call per pixel. When the channel count divides the vector width the
    /// image is one contiguous run whose lane i always holds channel i % C: it is reduced with whole vectors
    /// (four independent accumulators) and the lanes folded at the end. Otherwise channel blocks of up to
    /// four vectors stay in registers while the pixels stream past.
    /// </summary>
    private struct GlobalBody : IWidthBody
    {
        public float* Input, Output;
        public int Batch, Spatial, Channels;
        public bool Max;

        public readonly void Invoke<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            if (Max) Reduce<TS, TV, MaxReduce>();
            else Reduce<TS, TV, SumReduce>();
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void Reduce<TS, TV, TR>() where TS : unmanaged, ISimd<TV> where TV : unmanaged where TR : unmanaged, IReduceOp
        {
            int w = TS.Count, c = Channels, s = Spatial;
            long plane = (long)s * c;
            float* lanes = stackalloc float[64];
            for (int n = 0; n < Batch; n++)
            {
                float* x = Input + n * plane;
                float* y = Output + (long)n * c;
                if (w % c == 0 && plane >= w)
                {
                    // Contiguous: every vector covers w / c whole pixels.
                    TV a0 = TS.Load(x), a1 = TR.Identity<TS, TV>(), a2 = a1, a3 = a1;
                    long i = w, full = plane - plane % w;
                    for (; i + 4 * w <= full; i += 4 * w)
                    {
                        a0 = TR.Apply<TS, TV>(a0, TS.Load(x + i));
                        a1 = TR.Apply<TS, TV>(a1, TS.Load(x + i + w));
                        a2 = TR.Apply<TS, TV>(a2, TS.Load(x + i + 2 * w));
                        a3 = TR.Apply<TS, TV>(a3, TS.Load(x + i + 3 * w));
                    }
                    for (; i < full; i += w) a0 = TR.Apply<TS, TV>(a0, TS.Load(x + i));
                    a0 = TR.Apply<TS, TV>(TR.Apply<TS, TV>(a0, a1), TR.Apply<TS, TV>(a2, a3));
                    TS.Store(lanes, a0);
                    for (int ch = 0; ch < c; ch++)
                    {
                        float v = lanes[ch];
                        for (int l = ch + c; l < w; l += c) v = TR.Apply(v, lanes[l]);
                        for (long t = full + ch; t < plane; t += c) v = TR.Apply(v, x[t]); // leftover pixels
                        y[ch] = v;
                    }
                    continue;
                }
                int cc = 0;
                for (; cc + 4 * w <= c; cc += 4 * w)
                {
                    float* p = x + cc;
                    TV a0 = TS.Load(p), a1 = TS.Load(p + w), a2 = TS.Load(p + 2 * w), a3 = TS.Load(p + 3 * w);
                    for (int i = 1; i < s; i++)
                    {
                        p += c;
                        a0 = TR.Apply<TS, TV>(a0, TS.Load(p));
                        a1 = TR.Apply<TS, TV>(a1, TS.Load(p + w));
                        a2 = TR.Apply<TS, TV>(a2, TS.Load(p + 2 * w));
                        a3 = TR.Apply<TS, TV>(a3, TS.Load(p + 3 * w));
                    }
                    TS.Store(y + cc, a0); TS.Store(y + cc + w, a1); TS.Store(y + cc + 2 * w, a2); TS.Store(y + cc + 3 * w, a3);
                }
                for (; cc < c; cc += w)
                {
                    int count = Math.Min(w, c - cc);
                    float* p = x + cc;
                    // Two accumulators over alternate pixels.
                    TV a0 = TS.LoadPartial(p, count), a1 = TR.Identity<TS, TV>();
                    int i = 1;
                    for (; i + 2 <= s; i += 2, p += 2 * c)
                    {
                        a0 = TR.Apply<TS, TV>(a0, TS.LoadPartial(p + c, count));
                        a1 = TR.Apply<TS, TV>(a1, TS.LoadPartial(p + 2 * c, count));
                    }
                    if (i < s) a0 = TR.Apply<TS, TV>(a0, TS.LoadPartial(p + c, count));
                    TS.StorePartial(y + cc, TR.Apply<TS, TV>(a0, a1), count);
                }
            }
        }
    }

    private interface IReduceOp
    {
        static abstract TV Apply<TS, TV>(TV a, TV b) where TS : unmanaged, ISimd<TV> where TV : unmanaged;
        static abstract float Apply(float a, float b);
        static abstract TV Identity<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged;
    }

    private readonly struct SumReduce : IReduceOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Apply<TS, TV>(TV a, TV b) where TS : unmanaged, ISimd<TV> where TV : unmanaged => TS.Add(a, b);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Apply(float a, float b) => a + b;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Identity<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged => TS.Zero;
    }

    private readonly struct MaxReduce : IReduceOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Apply<TS, TV>(TV a, TV b) where TS : unmanaged, ISimd<TV> where TV : unmanaged => TS.Max(a, b);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Apply(float a, float b) => MathF.Max(a, b);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Identity<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged => TS.Splat(float.NegativeInfinity);
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
                        // Only the taps that land inside the input: a hostile window far larger than the image
                        // then costs what the image costs, not what the window declares.
                        var (ky0, ky1) = Taps(iy0, g.KernelH, g.DilationH, 0, g.InH);
                        var (kx0, kx1) = Taps(ix0, g.KernelW, g.DilationW, 0, g.InW);
                        for (int ky = ky0; ky < ky1; ky++)
                        {
                            int iy = iy0 + ky * g.DilationH;
                            for (int kx = kx0; kx < kx1; kx++)
                            {
                                int ix = ix0 + kx * g.DilationW;
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
            var (y0, y1) = Taps(iy0, g.KernelH, g.DilationH, lowY, highY);
            var (x0, x1) = Taps(ix0, g.KernelW, g.DilationW, lowX, highX);
            return Math.Max(1, (y1 - y0) * (x1 - x0));
        }
    }

    /// <summary>
    /// The taps k in [Lo, Hi) of a window starting at <paramref name="origin"/> whose positions origin + k * dilation
    /// lie in [<paramref name="low"/>, <paramref name="high"/>); an empty range when none does. Computed in 64 bits.
    /// </summary>
    internal static (int Lo, int Hi) Taps(int origin, int kernel, int dilation, int low, int high)
    {
        long lo = origin >= low ? 0 : ((long)low - origin + dilation - 1) / dilation;
        long hi = origin >= high ? 0 : ((long)high - 1 - origin) / dilation + 1;
        lo = Math.Min(lo, kernel);
        hi = Math.Clamp(hi, lo, kernel);
        return ((int)lo, (int)hi);
    }
}
