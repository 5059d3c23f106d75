using System.Runtime.CompilerServices;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels;

/// <summary>
/// A 2-D transposed convolution (ONNX "ConvTranspose") over NHWC activations, created once (weights repacked) and
/// run many times without allocating or scratch.
/// <para>
/// Direct output-stationary form: output pixel (oy, ox) gathers the input pixels (iy, ix) with
/// oy = iy · StrideH + ky · DilationH - PadTop (and likewise for x); for each such tap it accumulates
/// Σ_ic x[iy, ix, ic] · W[ic, oc, ky, kx] for a block of output channels held in registers (four vectors, then
/// single vectors with a masked tail), the input value broadcast, the weights repacked once as
/// [group][ky][kx][ic][oc] so the channel block is a contiguous load. No column buffer and no scatter-add:
/// every output is written once, so rows split across <see cref="Workers"/> without conflicts.
/// </para>
/// </summary>
public sealed unsafe class ConvTranspose2dOperator
{
    /// <summary>Most kernel taps supported (the per-pixel tap lists live on the stack).</summary>
    public const int MaxKernelTaps = 4096;

    private readonly IsaLevel _isa;
    private readonly float[] _packed; // pinned
    private readonly float[] _bias;   // pinned, OutC (zeros when none)

    /// <param name="weights">ONNX order [InC, OutC / Groups, KernelH, KernelW].</param>
    /// <param name="bias">OutC values, or empty.</param>
    public ConvTranspose2dOperator(ConvTranspose2dGeometry geometry, ReadOnlySpan<float> weights, ReadOnlySpan<float> bias, IsaLevel? isa = null)
    {
        Geometry = geometry with { Batch = 1 };
        Geometry.Validate();
        ConvTranspose2dGeometry g = Geometry;
        if ((long)g.KernelH * g.KernelW > MaxKernelTaps)
            throw new ArgumentException($"ConvTranspose: a {g.KernelH}x{g.KernelW} kernel has more than {MaxKernelTaps} taps.", nameof(geometry));
        if (weights.Length != g.WeightLength)
            throw new ArgumentException($"ConvTranspose: expected {g.WeightLength} weights [InC, OutC/groups, kH, kW] for {geometry}, got {weights.Length}.", nameof(weights));
        if (!bias.IsEmpty && bias.Length != g.OutC)
            throw new ArgumentException($"ConvTranspose: expected {g.OutC} bias values or none, got {bias.Length}.", nameof(bias));
        _isa = Isa.Resolve(isa);
        int icg = g.InCPerGroup, ocg = g.OutCPerGroup, kh = g.KernelH, kw = g.KernelW;
        _packed = GC.AllocateArray<float>((int)g.WeightLength, pinned: true);
        for (int ic = 0; ic < g.InC; ic++)
        {
            int grp = ic / icg, icl = ic % icg;
            for (int oc = 0; oc < ocg; oc++)
                for (int ky = 0; ky < kh; ky++)
                    for (int kx = 0; kx < kw; kx++)
                        _packed[((((long)grp * kh + ky) * kw + kx) * icg + icl) * ocg + oc] = weights[(int)((((long)ic * ocg + oc) * kh + ky) * kw + kx)];
        }
        _bias = GC.AllocateArray<float>(g.OutC, pinned: true);
        if (!bias.IsEmpty) bias.CopyTo(_bias);
    }

    /// <summary>The geometry this operator was built for, with Batch normalised to 1 (batch is a Run argument).</summary>
    public ConvTranspose2dGeometry Geometry { get; }

    /// <summary>output = convtranspose(input) + bias; input [batch, InH, InW, InC], output [batch, OutH, OutW, OutC], NHWC.
    /// The output must not overlap the input.</summary>
    public void Run(int batch, ReadOnlySpan<float> input, Span<float> output, Workers workers)
    {
        ConvTranspose2dGeometry g = Geometry with { Batch = batch };
        if (batch < 1) throw new ArgumentException($"ConvTranspose: batch must be positive, got {batch}.", nameof(batch));
        g.Validate();
        if (input.Length < g.InputLength || output.Length < g.OutputLength)
            throw new ArgumentException($"ConvTranspose: buffers ({input.Length}, {output.Length}) smaller than ({g.InputLength}, {g.OutputLength}) for batch {batch}.");
        fixed (float* x = input, y = output, w = _packed, b = _bias)
        {
            Args args = new() { X = x, Y = y, W = w, Bias = b, G = g, Rows = batch * g.OutH, Isa = _isa };
            args.Chunks = workers.Count == 1 || g.OutputLength < (1 << 12) ? 1 : Math.Min(args.Rows, workers.Count * 4);
            workers.For(args.Chunks, &Task, &args);
        }
    }

    private struct Args
    {
        public float* X, Y, W, Bias;
        public ConvTranspose2dGeometry G;
        public int Rows, Chunks;
        public IsaLevel Isa;
    }

    private static void Task(void* context, int index)
    {
        Args* a = (Args*)context;
        var body = new Body { A = a };
        (body.Row0, body.Row1) = Workers.Split(a->Rows, a->Chunks, index);
        KernelDispatch.Run(a->Isa, ref body);
    }

    private struct Body : IWidthBody
    {
        public Args* A;
        public int Row0, Row1;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            Args* a = A;
            ConvTranspose2dGeometry g = a->G;
            int kh = g.KernelH, kw = g.KernelW, icg = g.InCPerGroup, ocg = g.OutCPerGroup, w = TS.Count;
            int outW = g.OutW;
            // Valid taps of the current row / pixel: kernel index and input index.
            int* kys = stackalloc int[kh];
            int* iys = stackalloc int[kh];
            int* kxs = stackalloc int[kw];
            int* ixs = stackalloc int[kw];
            // Per pair of valid taps: input pixel offset and packed weight offset (for the current pixel).
            int pairsMax = kh * kw;
            long* xOff = stackalloc long[pairsMax];
            long* wOff = stackalloc long[pairsMax];
            // The column taps do not depend on the row: found once per chunk (a 64-bit division per tap and pixel otherwise
            // costs more than a narrow head's arithmetic), when the table is small enough for the stack.
            bool table = (long)outW * kw <= 4096;
            int* tableK = stackalloc int[table ? outW * kw : 0];
            int* tableI = stackalloc int[table ? outW * kw : 0];
            int* tableN = stackalloc int[table ? outW : 0];
            if (table)
                for (int ox = 0; ox < outW; ox++)
                    tableN[ox] = Taps(ox, g.PadLeft, g.StrideW, g.DilationW, kw, g.InW, tableK + ox * kw, tableI + ox * kw);
            for (int row = Row0; row < Row1; row++)
            {
                int n = row / g.OutH, oy = row % g.OutH;
                int ny = Taps(oy, g.PadTop, g.StrideH, g.DilationH, kh, g.InH, kys, iys);
                float* image = a->X + (long)n * g.InH * g.InW * g.InC;
                for (int ox = 0; ox < outW; ox++)
                {
                    int* kx = kxs, ix = ixs;
                    int nx;
                    if (table) { nx = tableN[ox]; kx = tableK + ox * kw; ix = tableI + ox * kw; }
                    else nx = Taps(ox, g.PadLeft, g.StrideW, g.DilationW, kw, g.InW, kxs, ixs);
                    int pairs = 0;
                    for (int i = 0; i < ny; i++)
                        for (int j = 0; j < nx; j++)
                        {
                            xOff[pairs] = ((long)iys[i] * g.InW + ix[j]) * g.InC;
                            wOff[pairs] = ((long)kys[i] * kw + kx[j]) * icg * ocg;
                            pairs++;
                        }
                    float* y = a->Y + ((long)row * outW + ox) * g.OutC;
                    for (int grp = 0; grp < g.Groups; grp++)
                    {
                        float* xg = image + grp * icg;
                        float* wg = a->W + (long)grp * kh * kw * icg * ocg;
                        float* yg = y + grp * ocg;
                        float* bg = a->Bias + grp * ocg;
                        if (ocg < w)
                        {
                            // Narrower than one vector (a mask or RGB head): masked loads per input channel cost more than the
                            // arithmetic, so plain scalar dot products over the input channels.
                            BlockNarrow<TS, TV>(xg, wg, yg, bg, xOff, wOff, pairs, icg, ocg);
                            continue;
                        }
                        int oc = 0;
                        for (; oc + 4 * w <= ocg; oc += 4 * w)
                            Block4<TS, TV>(xg, wg + oc, yg + oc, bg + oc, xOff, wOff, pairs, icg, ocg);
                        for (; oc < ocg; oc += w)
                        {
                            int lanes = Math.Min(w, ocg - oc);
                            if (lanes == w) Block1<TS, TV, AllLanes>(xg, wg + oc, yg + oc, bg + oc, xOff, wOff, pairs, icg, ocg, w);
                            else Block1<TS, TV, FirstLanes>(xg, wg + oc, yg + oc, bg + oc, xOff, wOff, pairs, icg, ocg, lanes);
                        }
                    }
                }
            }
        }

        /// <summary>The kernel taps k (and input indices i) that reach output index o: o + pad - k·d = i·s, 0 ≤ i &lt; size.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static int Taps(int o, int pad, int stride, int dilation, int kernel, int size, int* ks, int* iis)
        {
            int count = 0;
            for (int k = 0; k < kernel; k++)
            {
                long t = (long)o + pad - (long)k * dilation;
                if (t < 0 || t % stride != 0) continue;
                long i = t / stride;
                if (i >= size) continue;
                ks[count] = k;
                iis[count++] = (int)i;
            }
            return count;
        }

        /// <summary>All <paramref name="ocg"/> (&lt; one vector) outputs of a pixel, one scalar accumulator chain per output over pairs and input channels.</summary>
        private static void BlockNarrow<TS, TV>(float* x, float* wBase, float* y, float* bias, long* xOff, long* wOff, int pairs, int icg, int ocg)
            where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            if (ocg == 1)
            {
                // One output (a mask head): the packed weights of a tap are contiguous over the input channels, as is the
                // input pixel, so each tap is a vector dot product.
                float acc = bias[0];
                for (int p = 0; p < pairs; p++) acc += Dot<TS, TV>(x + xOff[p], wBase + wOff[p], icg);
                y[0] = acc;
                return;
            }
            for (int oc = 0; oc < ocg; oc++)
            {
                float a0 = bias[oc], a1 = 0;
                for (int p = 0; p < pairs; p++)
                {
                    float* xp = x + xOff[p];
                    float* wp = wBase + wOff[p] + oc;
                    int ic = 0;
                    for (; ic + 2 <= icg; ic += 2)
                    {
                        a0 += xp[ic] * wp[(long)ic * ocg];
                        a1 += xp[ic + 1] * wp[(long)(ic + 1) * ocg];
                    }
                    if (ic < icg) a0 += xp[ic] * wp[(long)ic * ocg];
                }
                y[oc] = a0 + a1;
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float Dot<TS, TV>(float* a, float* b, int n) where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            int w = TS.Count, i = 0;
            TV s0 = TS.Zero, s1 = TS.Zero;
            for (; i + 2 * w <= n; i += 2 * w)
            {
                s0 = TS.Fma(TS.Load(a + i), TS.Load(b + i), s0);
                s1 = TS.Fma(TS.Load(a + i + w), TS.Load(b + i + w), s1);
            }
            if (i + w <= n) { s0 = TS.Fma(TS.Load(a + i), TS.Load(b + i), s0); i += w; }
            float sum = TS.Sum(TS.Add(s0, s1));
            for (; i < n; i++) sum += a[i] * b[i];
            return sum;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Block4<TS, TV>(float* x, float* wBase, float* y, float* bias, long* xOff, long* wOff, int pairs, int icg, int ocg)
            where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            int w = TS.Count;
            TV a0 = TS.Load(bias), a1 = TS.Load(bias + w), a2 = TS.Load(bias + 2 * w), a3 = TS.Load(bias + 3 * w);
            for (int p = 0; p < pairs; p++)
            {
                float* xp = x + xOff[p];
                float* wp = wBase + wOff[p];
                for (int ic = 0; ic < icg; ic++, wp += ocg)
                {
                    TV v = TS.Splat(xp[ic]);
                    a0 = TS.Fma(v, TS.Load(wp), a0);
                    a1 = TS.Fma(v, TS.Load(wp + w), a1);
                    a2 = TS.Fma(v, TS.Load(wp + 2 * w), a2);
                    a3 = TS.Fma(v, TS.Load(wp + 3 * w), a3);
                }
            }
            TS.Store(y, a0); TS.Store(y + w, a1); TS.Store(y + 2 * w, a2); TS.Store(y + 3 * w, a3);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Block1<TS, TV, TL>(float* x, float* wBase, float* y, float* bias, long* xOff, long* wOff, int pairs, int icg, int ocg, int lanes)
            where TS : unmanaged, ISimd<TV> where TV : unmanaged where TL : unmanaged, ILanes
        {
            TV a0 = TL.Load<TS, TV>(bias, lanes), a1 = TS.Zero;
            for (int p = 0; p < pairs; p++)
            {
                float* xp = x + xOff[p];
                float* wp = wBase + wOff[p];
                int ic = 0;
                for (; ic + 2 <= icg; ic += 2, wp += 2 * ocg)
                {
                    a0 = TS.Fma(TS.Splat(xp[ic]), TL.Load<TS, TV>(wp, lanes), a0);
                    a1 = TS.Fma(TS.Splat(xp[ic + 1]), TL.Load<TS, TV>(wp + ocg, lanes), a1);
                }
                if (ic < icg) a0 = TS.Fma(TS.Splat(xp[ic]), TL.Load<TS, TV>(wp, lanes), a0);
            }
            TL.Store<TS, TV>(y, TS.Add(a0, a1), lanes);
        }
    }
}
