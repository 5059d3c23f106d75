using MobileNetSharp.Graph;
using System.Runtime.CompilerServices;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels.Conv;

/// <summary>
/// Direct 3x3 convolution for the network stem (few input channels, e.g. RGB), any stride and padding,
/// one group. Weights are packed [tap*InC + ic][OutC padded to 32], so the kernel broadcasts one input
/// value and multiplies it into two output-channel vectors for four output pixels at a time (8
/// accumulators). No im2col buffer: with 3 input channels the unfolded rows would cost more memory
/// traffic than the arithmetic. Border pixels take a bounds-checked per-pixel path.
/// </summary>
internal sealed unsafe class StemConvolution
{
    private const int MaxInC = 4;
    private readonly Conv2dGeometry _g;
    private readonly AlignedFloats _packed;   // weights, then a bias row
    private readonly int[] _offsets;    // input offset of each (tap, ic) relative to the window origin
    private readonly int _cPad;
    private readonly IsaLevel _isa;

    public static bool Supports(in Conv2dGeometry g) =>
        g.Groups == 1 && g.InC <= MaxInC && g.KernelH == 3 && g.KernelW == 3 && g.DilationH == 1 && g.DilationW == 1;

    public StemConvolution(in Conv2dGeometry g, ReadOnlySpan<float> weightsOihw, ReadOnlySpan<float> bias, IsaLevel isa)
    {
        _g = g;
        _isa = isa;
        _cPad = (g.OutC + 31) & ~31;
        int taps = 9 * g.InC;
        _packed = new AlignedFloats((taps + 1) * _cPad);
        _offsets = Offsets(g);
        Pack(weightsOihw, bias);
    }

    /// <summary>Weights [(ky, kx, ic)][oc] (outputs padded to 32 with zeros), then the bias row (zeros without a bias).</summary>
    private void Pack(ReadOnlySpan<float> weightsOihw, ReadOnlySpan<float> bias)
    {
        var g = _g;
        int taps = 9 * g.InC;
        if (weightsOihw.Length != g.OutC * taps || (!bias.IsEmpty && bias.Length != g.OutC))
            throw new ArgumentException($"Stem weights: {weightsOihw.Length} values and {bias.Length} bias values for {g.OutC} x {g.InC} x 3 x 3.");
        Span<float> packed = _packed.Span;
        packed.Slice(taps * _cPad, _cPad).Clear();
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++)
                for (int ic = 0; ic < g.InC; ic++)
                {
                    int t = (ky * 3 + kx) * g.InC + ic;
                    for (int oc = 0; oc < g.OutC; oc++)
                        packed[t * _cPad + oc] = weightsOihw[((oc * g.InC + ic) * 3 + ky) * 3 + kx];
                }
        for (int oc = 0; oc < bias.Length; oc++) packed[taps * _cPad + oc] = bias[oc];
    }

    /// <summary>
    /// New weights and bias packed into this convolution's own buffer (a training step's weights change every run).
    /// Only for an instance its caller owns alone: <see cref="Resized"/> copies share the buffer.
    /// </summary>
    /// <exception cref="ArgumentException">The weights are not OutC x InC x 3 x 3, or the bias neither empty nor OutC long.</exception>
    internal void Repack(ReadOnlySpan<float> weightsOihw, ReadOnlySpan<float> bias) => Pack(weightsOihw, bias);

    /// <summary>The same packed weights for another input size (plans for other H x W share them).</summary>
    private StemConvolution(StemConvolution source, in Conv2dGeometry g) =>
        (_g, _isa, _cPad, _packed, _offsets) = (g, source._isa, source._cPad, source._packed, Offsets(g));

    /// <summary>This convolution at another input size (same kernel, strides, pads and channels), sharing the packed weights.</summary>
    public StemConvolution Resized(in Conv2dGeometry g) => new(this, g);

    /// <summary>Input offset of each (tap, ic) relative to the window origin: depends on the input width.</summary>
    private static int[] Offsets(in Conv2dGeometry g)
    {
        var offsets = GC.AllocateArray<int>(9 * g.InC, pinned: true);
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++)
                for (int ic = 0; ic < g.InC; ic++)
                    offsets[(ky * 3 + kx) * g.InC + ic] = (ky * g.InW + kx) * g.InC + ic;
        return offsets;
    }

    private struct Args
    {
        public float* Input, Output, Residual, Weights, Bias;
        public int* Offsets;
        public Conv2dGeometry G;
        public int CPad, Taps, Rows, Chunks;
        public Activation Activation;
        public IsaLevel Isa;
    }

    public void Run(int batch, float* input, float* output, float* residual, in Activation activation, Workers workers)
    {
        float* w = _packed.Pointer;
        fixed (int* offsets = _offsets)
        {
            int taps = 9 * _g.InC;
            Args args = new()
            {
                Input = input, Output = output, Residual = residual, Weights = w, Bias = w + taps * _cPad,
                Offsets = offsets, G = _g, CPad = _cPad, Taps = taps, Rows = batch * _g.OutH, Activation = activation, Isa = _isa,
            };
            args.Chunks = workers.Count == 1 ? 1 : Math.Min(args.Rows, workers.Count * 4);
            workers.For(args.Chunks, &Task, &args);
        }
        GC.KeepAlive(_packed); // the kernels hold a raw pointer into it
    }

    private static void Task(void* context, int index)
    {
        Args* args = (Args*)context;
        var body = new Body { Args = args };
        (body.Row0, body.Row1) = Workers.Split(args->Rows, args->Chunks, index);
        KernelDispatch.Run(args->Isa, args->Activation.Kind, ref body);
    }

    private struct Body : IKernelBody
    {
        public Args* Args;
        public int Row0, Row1;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke<TS, TV, TA>() where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
        {
            Args* a = Args;
            ref readonly Conv2dGeometry g = ref a->G;
            int w = TS.Count;
            TV alpha = TS.Splat(a->Activation.Alpha), beta = TS.Splat(a->Activation.Beta);
            int oxL = Math.Min((g.PadLeft + g.StrideW - 1) / g.StrideW, g.OutW);
            int span = g.InW - 3 + g.PadLeft;
            int oxR = Math.Max(oxL, Math.Min(span < 0 ? 0 : span / g.StrideW + 1, g.OutW));
            for (int row = Row0; row < Row1; row++)
            {
                int n = row / g.OutH, oy = row % g.OutH;
                int iy0 = oy * g.StrideH - g.PadTop;
                bool interiorRow = iy0 >= 0 && iy0 + 2 < g.InH;
                int left = interiorRow ? oxL : g.OutW, right = interiorRow ? oxR : g.OutW;
                for (int ox = 0; ox < left; ox++) Pixel<TS, TV, TA>(a, n, oy, ox, alpha, beta);
                int ox4 = left;
                if (g.OutC <= w)
                {
                    // One vector covers every output channel: eight pixels at a time keep eight FMA chains busy
                    // instead of computing a second, empty channel vector.
                    for (; ox4 + 8 <= right; ox4 += 8)
                    {
                        float* origin = a->Input + (((long)n * g.InH + iy0) * g.InW + ox4 * g.StrideW - g.PadLeft) * g.InC;
                        Block8<TS, TV, TA>(a, origin, ((long)row * g.OutW + ox4) * g.OutC, alpha, beta);
                    }
                }
                for (; ox4 + 4 <= right; ox4 += 4)
                {
                    float* origin = a->Input + (((long)n * g.InH + iy0) * g.InW + ox4 * g.StrideW - g.PadLeft) * g.InC;
                    long o = ((long)row * g.OutW + ox4) * g.OutC;
                    for (int cc = 0; cc < g.OutC; cc += 2 * w)
                        Block4<TS, TV, TA>(a, origin, o + cc, cc, alpha, beta);
                }
                for (int ox = ox4; ox < g.OutW; ox++) Pixel<TS, TV, TA>(a, n, oy, ox, alpha, beta);
            }
        }
    }

    /// <summary>Eight interior pixels x one channel vector (OutC ≤ W).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block8<TS, TV, TA>(Args* a, float* origin, long o, TV alpha, TV beta)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
    {
        nint step = (nint)a->G.StrideW * a->G.InC, cPad = a->CPad;
        TV bias = TS.Load(a->Bias);
        TV c0 = bias, c1 = bias, c2 = bias, c3 = bias, c4 = bias, c5 = bias, c6 = bias, c7 = bias;
        float* wp = a->Weights;
        int* offsets = a->Offsets;
        for (int t = 0; t < a->Taps; t++, wp += cPad)
        {
            TV wt = TS.Load(wp);
            float* x = origin + offsets[t];
            c0 = TS.Fma(TS.Splat(x[0]), wt, c0);
            c1 = TS.Fma(TS.Splat(x[step]), wt, c1);
            c2 = TS.Fma(TS.Splat(x[2 * step]), wt, c2);
            c3 = TS.Fma(TS.Splat(x[3 * step]), wt, c3);
            c4 = TS.Fma(TS.Splat(x[4 * step]), wt, c4);
            c5 = TS.Fma(TS.Splat(x[5 * step]), wt, c5);
            c6 = TS.Fma(TS.Splat(x[6 * step]), wt, c6);
            c7 = TS.Fma(TS.Splat(x[7 * step]), wt, c7);
        }
        int outC = a->G.OutC;
        float* y = a->Output + o;
        float* r = a->Residual == null ? null : a->Residual + o;
        StoreLanes<TS, TV, TA>(y, r, c0, outC, alpha, beta);
        StoreLanes<TS, TV, TA>(y + outC, r == null ? null : r + outC, c1, outC, alpha, beta);
        StoreLanes<TS, TV, TA>(y + 2 * outC, r == null ? null : r + 2 * outC, c2, outC, alpha, beta);
        StoreLanes<TS, TV, TA>(y + 3 * outC, r == null ? null : r + 3 * outC, c3, outC, alpha, beta);
        StoreLanes<TS, TV, TA>(y + 4 * outC, r == null ? null : r + 4 * outC, c4, outC, alpha, beta);
        StoreLanes<TS, TV, TA>(y + 5 * outC, r == null ? null : r + 5 * outC, c5, outC, alpha, beta);
        StoreLanes<TS, TV, TA>(y + 6 * outC, r == null ? null : r + 6 * outC, c6, outC, alpha, beta);
        StoreLanes<TS, TV, TA>(y + 7 * outC, r == null ? null : r + 7 * outC, c7, outC, alpha, beta);
    }

    /// <summary>Four interior pixels x two channel vectors starting at output channel cc.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block4<TS, TV, TA>(Args* a, float* origin, long o, int cc, TV alpha, TV beta)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
    {
        nint w = TS.Count, step = (nint)a->G.StrideW * a->G.InC, cPad = a->CPad;
        TV bias0 = TS.Load(a->Bias + cc), bias1 = TS.Load(a->Bias + cc + w);
        TV c00 = bias0, c01 = bias1, c10 = bias0, c11 = bias1, c20 = bias0, c21 = bias1, c30 = bias0, c31 = bias1;
        float* wp = a->Weights + cc;
        int* offsets = a->Offsets;
        for (int t = 0; t < a->Taps; t++)
        {
            TV w0 = TS.Load(wp), w1 = TS.Load(wp + w);
            wp += cPad;
            float* x = origin + offsets[t];
            TV v = TS.Splat(x[0]);
            c00 = TS.Fma(v, w0, c00); c01 = TS.Fma(v, w1, c01);
            v = TS.Splat(x[step]);
            c10 = TS.Fma(v, w0, c10); c11 = TS.Fma(v, w1, c11);
            v = TS.Splat(x[2 * step]);
            c20 = TS.Fma(v, w0, c20); c21 = TS.Fma(v, w1, c21);
            v = TS.Splat(x[3 * step]);
            c30 = TS.Fma(v, w0, c30); c31 = TS.Fma(v, w1, c31);
        }
        int outC = a->G.OutC;
        int n0 = Math.Min((int)w, outC - cc), n1 = Math.Min((int)w, outC - cc - (int)w);
        Store<TS, TV, TA>(a, o, cc, n0, n1, c00, c01, alpha, beta);
        Store<TS, TV, TA>(a, o + outC, cc, n0, n1, c10, c11, alpha, beta);
        Store<TS, TV, TA>(a, o + 2 * outC, cc, n0, n1, c20, c21, alpha, beta);
        Store<TS, TV, TA>(a, o + 3 * outC, cc, n0, n1, c30, c31, alpha, beta);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store<TS, TV, TA>(Args* a, long o, int cc, int n0, int n1, TV v0, TV v1, TV alpha, TV beta)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
    {
        StoreLanes<TS, TV, TA>(a->Output + o, a->Residual == null ? null : a->Residual + o, v0, n0, alpha, beta);
        if (n1 > 0) StoreLanes<TS, TV, TA>(a->Output + o + TS.Count, a->Residual == null ? null : a->Residual + o + TS.Count, v1, n1, alpha, beta);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreLanes<TS, TV, TA>(float* y, float* r, TV v, int lanes, TV alpha, TV beta)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
    {
        bool full = lanes == TS.Count;
        if (r != null) v = TS.Add(v, full ? TS.Load(r) : TS.LoadPartial(r, lanes));
        v = TA.Apply<TS, TV>(v, alpha, beta);
        if (full) TS.Store(y, v);
        else TS.StorePartial(y, v, lanes);
    }

    /// <summary>One output pixel, all channels, skipping taps in the padding.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Pixel<TS, TV, TA>(Args* a, int n, int oy, int ox, TV alpha, TV beta)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
    {
        ref readonly Conv2dGeometry g = ref a->G;
        int w = TS.Count;
        int iy0 = oy * g.StrideH - g.PadTop, ix0 = ox * g.StrideW - g.PadLeft;
        long o = (((long)n * g.OutH + oy) * g.OutW + ox) * g.OutC;
        for (int cc = 0; cc < g.OutC; cc += w)
        {
            TV acc = TS.Load(a->Bias + cc);
            for (int ky = 0; ky < 3; ky++)
            {
                int iy = iy0 + ky;
                if ((uint)iy >= (uint)g.InH) continue;
                for (int kx = 0; kx < 3; kx++)
                {
                    int ix = ix0 + kx;
                    if ((uint)ix >= (uint)g.InW) continue;
                    float* x = a->Input + (((long)n * g.InH + iy) * g.InW + ix) * g.InC;
                    float* wt = a->Weights + (ky * 3 + kx) * g.InC * a->CPad + cc;
                    for (int ic = 0; ic < g.InC; ic++)
                        acc = TS.Fma(TS.Splat(x[ic]), TS.Load(wt + ic * a->CPad), acc);
                }
            }
            StoreLanes<TS, TV, TA>(a->Output + o + cc, a->Residual == null ? null : a->Residual + o + cc, acc, Math.Min(w, g.OutC - cc), alpha, beta);
        }
    }
}
