using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileNetSharp.Kernels.Int8;

/// <summary>Everything one int8 depthwise call needs, on the caller's stack, shared with the workers by pointer.</summary>
internal unsafe struct Int8DepthwiseArgs
{
    public byte* Input, Output;
    public int InH, InW, C, OutH, OutW, KH, KW, SH, SW, PadTop, PadLeft;
    public int ZeroPointX;
    public int* Pairs, Wide;
    /// <summary>Per call, in the kernel's channel order, ChannelStride each: bias - zpX · sum_t W (int32, wrapping) and the multipliers (0 past C).</summary>
    public int* Init;
    public float* Multipliers;
    public float Lower, Upper;
    public int ZeroPointY;
    public byte MinByte, MaxByte;
    public bool ClampAfterRounding;
    public bool HardSwish; public float OutputScale, HardSwishAlpha, HardSwishBeta;
    public Int8Path Path;
    /// <summary>Padded columns a window row spans: (OutW - 1) · SW + KW; the padded row starts at input column -PadLeft.</summary>
    public int PaddedW;
    public int Stride, Taps, PairCount;
    public int Rows, Chunks;
    /// <summary>Bytes of scratch one task rents (see <see cref="QuantizedDepthwise"/>'s task layout).</summary>
    public long ScratchBytes;
}

/// <summary>
/// Int8 depthwise convolution over NHWC: ONNX QLinearConv with group = C (one input channel per output channel,
/// channel multiplier 1), a uint8 input, symmetric int8 weights (zero point 0) and a uint8 output, requantized the
/// way ONNX Runtime's MLAS does it (<see cref="Requantization"/>, the same epilogue as <see cref="QuantizedGemm"/>).
/// For each output (n, oy, ox, c):
/// <code>
/// acc = sum_{ky,kx} ((int)X[n, iy, ix, c] - zpX) · (int)W[c, 0, ky, kx]  +  bias[c]      int32
///       iy = oy·SH - padTop + ky, ix = ox·SW - padLeft + kx; a tap outside the input adds 0
/// f   = (float)acc · M[c];  f = min(max(f, Min - zpY), Max - zpY)
/// Y   = (byte)(roundHalfToEven(f) + zpY)
/// </code>
/// Every product and pair sum is exact (|x - zpX| ≤ 255, |w| ≤ 128); only a bias near the int32 limits can wrap,
/// which the contract defines as wrapping, as ONNX Runtime's int32 accumulators do.
/// <para>
/// Design. Each task owns a range of output rows (rows of all images, so batch and height split alike) and keeps
/// a ring of KH input rows copied into a zero-point-padded layout: PaddedW = (OutW - 1)·SW + KW columns starting
/// at input column -padLeft, each pixel ChannelStride bytes (C rounded up to 32), columns outside the input
/// filled with zpX; window rows outside the input point at one row filled with zpX. Padding then holds the value
/// zpX, i.e. contributes (zpX - zpX)·w = 0 as the contract says, so every output pixel, border or not, runs the
/// same branch-free code, and zpX folds into the accumulator's start value: acc = bias - zpX·sum_t W + sum_t x·W.
/// Each input row is copied once per task (a pass of C bytes per pixel, against KH·KW multiply-adds per byte).
/// </para>
/// <para>
/// Kernels, chosen once per call from the ISA level (<see cref="QuantizedGemm.PathFor"/>):
/// AVX2 (Vector256, and Vector512, which has no kernel of its own): 32 channels per step. Two taps' 32 bytes
/// are interleaved byte by byte and zero-extended (four in-lane unpacks) into int16 pairs, which vpmaddwd
/// multiplies with the packed weight pairs exactly (vpmaddubsw is not used: its int16 pair sum saturates);
/// that is half the multiplies of widening each tap to int32 for vpmulld, which the Vector128 path does.
/// Vector128 (SSE and Arm NEON, portable API): 16 channels per step, each tap widened to int32 and multiplied
/// with vpmulld-style 32-bit products. Scalar: one channel at a time in the contract's order.
/// VNNI seam: with AVX-VNNI the vpmaddwd + vpaddd pair becomes one vpdpwssd (<c>AvxVnni.MultiplyWideningAndAdd</c>)
/// with the same packing; not written, the development machine (Zen 3) has no VNNI.
/// </para>
/// <para>
/// Sources: ONNX QLinearConv (onnx.ai operator spec, group = C); ONNX Runtime MLAS MlasRequantizeOutput for the
/// float-multiplier requantization; the zero-point-filled padding is XNNPACK's and MLAS's depthwise approach.
/// </para>
/// </summary>
public static unsafe class QuantizedDepthwise
{
    /// <summary>Below this many multiply-adds, waking other threads costs more than it saves.</summary>
    private const long ParallelThreshold = 1 << 16;

    /// <summary>
    /// Y = requantize(depthwise(X, W) + bias).
    /// </summary>
    /// <param name="geometry">Batch, InH, InW, InC = OutC = C, KernelH/W, strides, pads (any, asymmetric allowed),
    /// dilation 1, Groups = C. Output size is geometry.OutH x geometry.OutW.</param>
    /// <param name="input">uint8 X, NHWC [Batch, InH, InW, C], at least <see cref="Conv2dGeometry.InputLength"/> bytes.</param>
    /// <param name="inputZeroPoint">zpX; padding counts as this value.</param>
    /// <param name="weights">The packed weights (C, KH, KW from ONNX [C, 1, KH, KW]).</param>
    /// <param name="requantization">Per-channel multipliers, bias, output zero point and clamp for C channels.</param>
    /// <param name="output">uint8 Y, NHWC [Batch, OutH, OutW, C]; the first <see cref="Conv2dGeometry.OutputLength"/> bytes are written.</param>
    /// <param name="workers">The thread pool; <see cref="Workers.Single"/> runs on the caller. The bytes do not depend on it.</param>
    /// <param name="isa">null for <see cref="Isa.Best"/>. Vector512 runs the 256-bit kernel.</param>
    /// <exception cref="ArgumentException">An invalid geometry (<see cref="Conv2dGeometry.Validate"/>), a geometry
    /// that is not depthwise (OutC or Groups other than InC), a dilation other than 1, weights or requantization for
    /// another channel count or kernel size, or an input or output span too short.</exception>
    public static void Run(in Conv2dGeometry geometry, ReadOnlySpan<byte> input, byte inputZeroPoint, PackedInt8DepthwiseWeights weights,
        Requantization requantization, Span<byte> output, Workers workers, IsaLevel? isa = null)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(requantization);
        ArgumentNullException.ThrowIfNull(workers);
        Validate(geometry, weights, requantization);
        if (input.Length < geometry.InputLength)
            throw new ArgumentException($"Int8 depthwise: input has {input.Length} bytes, [{geometry.Batch}, {geometry.InH}, {geometry.InW}, {geometry.InC}] needs {geometry.InputLength}.", nameof(input));
        if (output.Length < geometry.OutputLength)
            throw new ArgumentException($"Int8 depthwise: output has {output.Length} bytes, [{geometry.Batch}, {geometry.OutH}, {geometry.OutW}, {geometry.OutC}] needs {geometry.OutputLength}.", nameof(output));
        fixed (byte* px = input, py = output)
            Run(Isa.Resolve(isa), geometry, px, inputZeroPoint, weights, requantization, py, workers);
    }

    /// <summary>Throws <see cref="ArgumentException"/> unless the geometry, weights and requantization fit together.</summary>
    internal static void Validate(in Conv2dGeometry g, PackedInt8DepthwiseWeights weights, Requantization requantization)
    {
        g.Validate();
        if (g.OutC != g.InC || g.Groups != g.InC)
            throw new ArgumentException($"Int8 depthwise: needs OutC = Groups = InC (one channel per group, multiplier 1), got InC {g.InC}, OutC {g.OutC}, Groups {g.Groups}.", nameof(g));
        if (g.DilationH != 1 || g.DilationW != 1)
            throw new ArgumentException($"Int8 depthwise: dilation {g.DilationH}x{g.DilationW} is not supported, only 1.", nameof(g));
        if (weights.Channels != g.InC || weights.KernelH != g.KernelH || weights.KernelW != g.KernelW)
            throw new ArgumentException($"Int8 depthwise: weights are for {weights.Channels} channels and a {weights.KernelH}x{weights.KernelW} kernel, the geometry has {g.InC} channels and a {g.KernelH}x{g.KernelW} kernel.", nameof(weights));
        if (requantization.Channels != g.InC)
            throw new ArgumentException($"Int8 depthwise: requantization is for {requantization.Channels} channels, the geometry has {g.InC}.", nameof(requantization));
        if (ScratchBytes(g, weights.ChannelStride, weights.Taps, weights.PairCount) > Array.MaxLength)
            throw new ArgumentException($"Int8 depthwise: a {g.KernelH}x{g.KernelW} window over {g.OutW} output columns of {g.InC} channels needs more scratch than one array holds.", nameof(g));
    }

    /// <summary>The unchecked entry for compiled plans: geometry, weights and buffers already validated by the caller.</summary>
    internal static void Run(IsaLevel isa, in Conv2dGeometry g, byte* input, byte inputZeroPoint, PackedInt8DepthwiseWeights weights,
        Requantization requantization, byte* output, Workers workers) =>
        Run(QuantizedGemm.PathFor(isa), g, input, inputZeroPoint, weights, requantization, output, workers);

    internal static void Run(Int8Path path, in Conv2dGeometry g, byte* input, byte inputZeroPoint, PackedInt8DepthwiseWeights weights,
        Requantization requantization, byte* output, Workers workers)
    {
        int stride = weights.ChannelStride;
        // The start values and multipliers, once per call (zpX is per call) in the order the kernel's accumulators
        // hold the channels; on the stack up to 2048 channels, else from the pool.
        int[]? rented = stride > 2048 ? ArrayPool<int>.Shared.Rent(2 * stride) : null;
        int* onStack = stackalloc int[rented == null ? 2 * stride : 0];
        try
        {
            fixed (int* heap = rented)
            fixed (float* multipliers = requantization.PaddedMultipliers)
            fixed (int* bias = requantization.PaddedBias)
            {
                int* init = rented == null ? onStack : heap;
                float* mult = (float*)(init + stride);
                int* sums = weights.Sums;
                int c = g.InC;
                for (int cb = 0; cb < stride; cb += PackedInt8DepthwiseWeights.BlockChannels)
                    for (int j = 0; j < PackedInt8DepthwiseWeights.BlockChannels; j++)
                    {
                        int ch = cb + j, slot = path == Int8Path.Avx2 ? cb + PackedInt8DepthwiseWeights.PairSlots[j] : ch;
                        init[slot] = ch < c ? unchecked(bias[ch] - inputZeroPoint * sums[ch]) : 0;
                        mult[slot] = ch < c ? multipliers[ch] : 0f;
                    }
                Int8DepthwiseArgs args = new()
                {
                    Input = input, Output = output,
                    InH = g.InH, InW = g.InW, C = c, OutH = g.OutH, OutW = g.OutW, KH = g.KernelH, KW = g.KernelW,
                    SH = g.StrideH, SW = g.StrideW, PadTop = g.PadTop, PadLeft = g.PadLeft,
                    ZeroPointX = inputZeroPoint,
                    Pairs = weights.Pairs, Wide = weights.Wide, Init = init, Multipliers = mult,
                    Lower = requantization.LowerBound, Upper = requantization.UpperBound, ZeroPointY = requantization.OutputZeroPoint,
                    MinByte = requantization.Min, MaxByte = requantization.Max, ClampAfterRounding = requantization.ClampAfterRounding,
                    HardSwish = requantization.HardSwish, OutputScale = requantization.OutputScale,
                    HardSwishAlpha = requantization.HardSwishAlpha, HardSwishBeta = requantization.HardSwishBeta,
                    Path = path, PaddedW = (g.OutW - 1) * g.StrideW + g.KernelW,
                    Stride = stride, Taps = weights.Taps, PairCount = weights.PairCount,
                    Rows = g.Batch * g.OutH,
                };
                args.ScratchBytes = ScratchBytes(g, args.Stride, args.Taps, args.PairCount);
                long work = (long)args.Rows * g.OutW * c * args.Taps;
                // A task copies its first window's KH input rows before it computes a row, so tasks of very few rows
                // cost more in copies than they save (7x7 maps: 8 tasks of one row ran slower at 2 threads than 1):
                // at least 4 output rows a task, up to 4 tasks per thread.
                args.Chunks = workers.Count == 1 || work < ParallelThreshold ? 1
                    : Math.Min(args.Rows, Math.Min(workers.Count * 4, Math.Max(workers.Count, args.Rows / 4)));
                if (args.Chunks == 1) Task(&args, 0);
                else workers.For(args.Chunks, &Task, &args);
            }
        }
        finally
        {
            if (rented != null) ArrayPool<int>.Shared.Return(rented);
        }
        GC.KeepAlive(weights); // the tasks read its pinned buffer through raw pointers
    }

    /// <summary>
    /// One task's scratch, in order (each part 64-byte aligned): KH ring rows and one zero-point row of
    /// PaddedW · ChannelStride bytes; the ring's row tags (KH longs); the tap pointers of the current output row
    /// (Taps) and the two pointer lists of the tap pairs (2 · PairCount).
    /// </summary>
    private static long ScratchBytes(in Conv2dGeometry g, int stride, int taps, int pairs)
    {
        long row = Align((long)((g.OutW - 1) * (long)g.StrideW + g.KernelW) * stride);
        return 64 + row * (g.KernelH + 1) + Align(8L * g.KernelH) + Align(8L * (taps + 2L * pairs));
    }

    private static long Align(long bytes) => (bytes + 63) & ~63L;

    private static void Task(void* context, int index)
    {
        Int8DepthwiseArgs* g = (Int8DepthwiseArgs*)context;
        (int r0, int r1) = Workers.Split(g->Rows, g->Chunks, index);
        if (r0 >= r1) return;
        byte[] rented = ArrayPool<byte>.Shared.Rent((int)g->ScratchBytes);
        try
        {
            fixed (byte* raw = rented)
            {
                byte* p = (byte*)Align((long)raw);
                int stride = g->Stride;
                long rowBytes = Align((long)g->PaddedW * stride);
                byte* ring = p; p += rowBytes * g->KH;
                byte* zpRow = p; p += rowBytes;
                long* tags = (long*)p; p += Align(8L * g->KH);
                byte** taps = (byte**)p;
                byte** tapA = taps + g->Taps, tapB = tapA + g->PairCount;
                int* init = g->Init;
                float* mult = g->Multipliers;

                new Span<byte>(zpRow, checked((int)rowBytes)).Fill((byte)g->ZeroPointX);
                for (int k = 0; k < g->KH; k++) tags[k] = -1;

                for (int row = r0; row < r1; row++)
                {
                    int n = row / g->OutH, oy = row % g->OutH;
                    for (int ky = 0; ky < g->KH; ky++)
                    {
                        int iy = oy * g->SH - g->PadTop + ky;
                        byte* source;
                        if ((uint)iy >= (uint)g->InH) source = zpRow;
                        else
                        {
                            // Rows of one window are KH consecutive indices, so iy mod KH never collides within it.
                            int slot = iy % g->KH;
                            source = ring + slot * rowBytes;
                            long tag = (long)n * g->InH + iy;
                            if (tags[slot] != tag)
                            {
                                CopyRow(g, g->Input + ((long)n * g->InH + iy) * g->InW * g->C, source);
                                tags[slot] = tag;
                            }
                        }
                        for (int kx = 0; kx < g->KW; kx++) taps[ky * g->KW + kx] = source + (long)kx * stride;
                    }
                    for (int q = 0; q < g->PairCount; q++)
                    {
                        tapA[q] = taps[2 * q];
                        tapB[q] = 2 * q + 1 < g->Taps ? taps[2 * q + 1] : taps[2 * q]; // the missing tap's weight is 0
                    }
                    byte* y = g->Output + (long)row * g->OutW * g->C;
                    switch (g->Path)
                    {
                        case Int8Path.Avx2: RowAvx2(g, tapA, tapB, init, mult, y); break;
                        case Int8Path.Sse2 or Int8Path.Portable128: RowV128(g, taps, init, mult, y); break;
                        default: RowScalar(g, taps, init, mult, y); break;
                    }
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>Input row <paramref name="src"/> (InW pixels of C bytes) into padded row <paramref name="dst"/>: PaddedW pixels of
    /// ChannelStride bytes from input column -PadLeft, zpX outside the input. The channels past C are left as they are
    /// (their weights are 0).</summary>
    private static void CopyRow(Int8DepthwiseArgs* g, byte* src, byte* dst)
    {
        int c = g->C, stride = g->Stride, wp = g->PaddedW;
        int x0 = Math.Min(g->PadLeft, wp);                       // padded columns [x0, x1) hold input columns
        int x1 = Math.Max(x0, Math.Min(wp, g->PadLeft + g->InW));
        byte zp = (byte)g->ZeroPointX;
        if (x0 > 0) new Span<byte>(dst, x0 * stride).Fill(zp);
        byte* s = src + (long)(x0 - g->PadLeft) * c;
        if (c == stride) Buffer.MemoryCopy(s, dst + (long)x0 * stride, (long)(x1 - x0) * c, (long)(x1 - x0) * c);
        else if (c == 16)
            for (int x = x0; x < x1; x++, s += c) Vector128.Store(Vector128.Load(s), dst + (long)x * stride); // a call per pixel cost more than the copy
        else
            for (int x = x0; x < x1; x++, s += c) Unsafe.CopyBlockUnaligned(dst + (long)x * stride, s, (uint)c);
        if (wp > x1) new Span<byte>(dst + (long)x1 * stride, (wp - x1) * stride).Fill(zp);
    }

    /// <summary>
    /// One output row with AVX2, 32 channels per step: for each tap pair, the two taps' bytes interleaved and
    /// zero-extended to int16 pairs (channel order 0-3|16-19, 4-7|20-23, 8-11|24-27, 12-15|28-31 in the four
    /// accumulators), vpmaddwd with the packed weight pairs, vpaddd.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RowAvx2(Int8DepthwiseArgs* g, byte** tapA, byte** tapB, int* init, float* mult, byte* y)
    {
        int c = g->C, stride = g->Stride, pairs = g->PairCount, outW = g->OutW;
        nint step = (nint)g->SW * stride;
        var e = new EpilogueAvx2(g);
        Vector256<byte> zero = Vector256<byte>.Zero;
        // Channel blocks outside, pixels inside: one block's weight pairs, start values and multipliers (under 1 KB for
        // a 3x3) stay in L1 while the pixels stream by, instead of all channels' weights being re-read per pixel
        // (19 KB at 960 channels, which with the pixel's own 9 · 960 input bytes overflowed L1).
        for (int cb = 0; cb < stride; cb += 32)
        {
            byte* yb = y + cb;
            int* ib = init + cb;
            float* m = mult + cb;
            int count = Math.Min(32, c - cb);
            int ox = 0;
            // Two outputs at a time: each weight pair vector and tap pointer is loaded once for both, halving the
            // weight loads (a 3x3 per output and block: 20 -> 10, next to 10 input loads and 30 shuffles).
            for (; ox + 2 <= outW; ox += 2, yb += 2 * c)
            {
                nint at = ox * step + cb;
                Vector256<int> a0 = Avx.LoadVector256(ib), a1 = Avx.LoadVector256(ib + 8), a2 = Avx.LoadVector256(ib + 16), a3 = Avx.LoadVector256(ib + 24);
                Vector256<int> b0 = a0, b1 = a1, b2 = a2, b3 = a3;
                int* w = g->Pairs + cb;
                for (int q = 0; q < pairs; q++, w += stride)
                {
                    byte* pa = tapA[q] + at, pb = tapB[q] + at;
                    Vector256<byte> xa = Avx.LoadVector256(pa), xb = Avx.LoadVector256(pb);
                    Vector256<byte> ya = Avx.LoadVector256(pa + step), yb2 = Avx.LoadVector256(pb + step);
                    Vector256<byte> lo = Avx2.UnpackLow(xa, xb), hi = Avx2.UnpackHigh(xa, xb);
                    Vector256<byte> lo2 = Avx2.UnpackLow(ya, yb2), hi2 = Avx2.UnpackHigh(ya, yb2);
                    // (Seam: with AVX-VNNI each MultiplyAddAdjacent + Add pair is one AvxVnni.MultiplyWideningAndAdd.)
                    Vector256<short> w0 = Avx.LoadVector256(w).AsInt16(), w1 = Avx.LoadVector256(w + 8).AsInt16();
                    a0 = Avx2.Add(a0, Avx2.MultiplyAddAdjacent(Avx2.UnpackLow(lo, zero).AsInt16(), w0));
                    b0 = Avx2.Add(b0, Avx2.MultiplyAddAdjacent(Avx2.UnpackLow(lo2, zero).AsInt16(), w0));
                    a1 = Avx2.Add(a1, Avx2.MultiplyAddAdjacent(Avx2.UnpackHigh(lo, zero).AsInt16(), w1));
                    b1 = Avx2.Add(b1, Avx2.MultiplyAddAdjacent(Avx2.UnpackHigh(lo2, zero).AsInt16(), w1));
                    Vector256<short> w2 = Avx.LoadVector256(w + 16).AsInt16(), w3 = Avx.LoadVector256(w + 24).AsInt16();
                    a2 = Avx2.Add(a2, Avx2.MultiplyAddAdjacent(Avx2.UnpackLow(hi, zero).AsInt16(), w2));
                    b2 = Avx2.Add(b2, Avx2.MultiplyAddAdjacent(Avx2.UnpackLow(hi2, zero).AsInt16(), w2));
                    a3 = Avx2.Add(a3, Avx2.MultiplyAddAdjacent(Avx2.UnpackHigh(hi, zero).AsInt16(), w3));
                    b3 = Avx2.Add(b3, Avx2.MultiplyAddAdjacent(Avx2.UnpackHigh(hi2, zero).AsInt16(), w3));
                }
                Store(yb, e.Bytes(a0, a1, a2, a3, m), count);
                Store(yb + c, e.Bytes(b0, b1, b2, b3, m), count);
            }
            if (ox < outW)
            {
                nint at = ox * step + cb;
                Vector256<int> a0 = Avx.LoadVector256(ib), a1 = Avx.LoadVector256(ib + 8), a2 = Avx.LoadVector256(ib + 16), a3 = Avx.LoadVector256(ib + 24);
                int* w = g->Pairs + cb;
                for (int q = 0; q < pairs; q++, w += stride)
                {
                    Vector256<byte> xa = Avx.LoadVector256(tapA[q] + at);
                    Vector256<byte> xb = Avx.LoadVector256(tapB[q] + at);
                    Vector256<byte> lo = Avx2.UnpackLow(xa, xb), hi = Avx2.UnpackHigh(xa, xb);
                    a0 = Avx2.Add(a0, Avx2.MultiplyAddAdjacent(Avx2.UnpackLow(lo, zero).AsInt16(), Avx.LoadVector256(w).AsInt16()));
                    a1 = Avx2.Add(a1, Avx2.MultiplyAddAdjacent(Avx2.UnpackHigh(lo, zero).AsInt16(), Avx.LoadVector256(w + 8).AsInt16()));
                    a2 = Avx2.Add(a2, Avx2.MultiplyAddAdjacent(Avx2.UnpackLow(hi, zero).AsInt16(), Avx.LoadVector256(w + 16).AsInt16()));
                    a3 = Avx2.Add(a3, Avx2.MultiplyAddAdjacent(Avx2.UnpackHigh(hi, zero).AsInt16(), Avx.LoadVector256(w + 24).AsInt16()));
                }
                Store(yb, e.Bytes(a0, a1, a2, a3, m), count);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(byte* y, Vector256<byte> bytes, int count)
    {
        if (count == 32) Avx.Store(y, bytes);
        else StorePartial(y, bytes, count);
    }

    /// <summary>
    /// The requantization of 32 accumulators (in the pair order) to 32 bytes in channel order, as
    /// <see cref="Int8MicroKernel"/>'s AVX2 epilogue: when every multiplier is below 1 the clamp moves after rounding,
    /// onto the bytes (same result, see <see cref="Requantization.ClampAfterRounding"/>); otherwise clamp in float
    /// first. cvtps2dq rounds half to even under the default MXCSR.
    /// </summary>
    private readonly struct EpilogueAvx2
    {
        private readonly Vector256<float> _lower, _upper;
        private readonly Vector256<short> _zeroPoint;
        private readonly Vector256<byte> _min, _max;
        private readonly bool _clampBytes, _hardSwish;
        private readonly Vector256<float> _outputScale, _alpha, _beta;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public EpilogueAvx2(Int8DepthwiseArgs* g)
        {
            _hardSwish = g->HardSwish;
            _outputScale = Vector256.Create(g->OutputScale);
            _alpha = Vector256.Create(g->HardSwishAlpha);
            _beta = Vector256.Create(g->HardSwishBeta);
            _lower = Vector256.Create(g->Lower);
            _upper = Vector256.Create(g->Upper);
            _zeroPoint = Vector256.Create((short)g->ZeroPointY);
            _min = Vector256.Create(g->MinByte);
            _max = Vector256.Create(g->MaxByte);
            _clampBytes = g->ClampAfterRounding;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<byte> Bytes(Vector256<int> a0, Vector256<int> a1, Vector256<int> a2, Vector256<int> a3, float* m)
        {
            if (_clampBytes)
            {
                Vector256<short> s01 = Avx2.AddSaturate(Avx2.PackSignedSaturate(Round(a0, m), Round(a1, m + 8)), _zeroPoint);
                Vector256<short> s23 = Avx2.AddSaturate(Avx2.PackSignedSaturate(Round(a2, m + 16), Round(a3, m + 24)), _zeroPoint);
                return Avx2.Min(Avx2.Max(Avx2.PackUnsignedSaturate(s01, s23), _min), _max);
            }
            else
            {
                Vector256<short> s01 = Avx2.Add(Avx2.PackSignedSaturate(ClampRound(a0, m), ClampRound(a1, m + 8)), _zeroPoint);
                Vector256<short> s23 = Avx2.Add(Avx2.PackSignedSaturate(ClampRound(a2, m + 16), ClampRound(a3, m + 24)), _zeroPoint);
                return Avx2.PackUnsignedSaturate(s01, s23);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<int> Round(Vector256<int> acc, float* m) =>
            Avx.ConvertToVector256Int32(Avx.Multiply(Avx.ConvertToVector256Single(acc), Avx.LoadVector256(m)));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private Vector256<int> ClampRound(Vector256<int> acc, float* m)
        {
            Vector256<float> f = Avx.Multiply(Avx.ConvertToVector256Single(acc), Avx.LoadVector256(m));
            if (_hardSwish)
            {
                // v · min(max(alpha·v + beta, 0), 1), then QuantizeLinear's division (Requantization.WithHardSwish).
                Vector256<float> gate = Avx.Min(Avx.Max(Fma.MultiplyAdd(_alpha, f, _beta), Vector256<float>.Zero), Vector256.Create(1f));
                f = Avx.Divide(Avx.Multiply(f, gate), _outputScale);
            }
            return Avx.ConvertToVector256Int32(Avx.Min(Avx.Max(f, _lower), _upper));
        }
    }

    /// <summary>
    /// One output row with portable Vector128 (SSE4.1 on x86, NEON on Arm), 16 channels per step: each tap's bytes
    /// widened to int32 and multiplied by the wide weights (32-bit products), then the contract's epilogue.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RowV128(Int8DepthwiseArgs* g, byte** taps, int* init, float* mult, byte* y)
    {
        int c = g->C, stride = g->Stride, count = g->Taps, outW = g->OutW;
        nint step = (nint)g->SW * stride;
        Vector128<float> lower = Vector128.Create(g->Lower), upper = Vector128.Create(g->Upper);
        Vector128<int> zpY = Vector128.Create(g->ZeroPointY);
        for (int ox = 0; ox < outW; ox++, y += c)
        {
            nint off = ox * step;
            for (int cb = 0; cb < stride; cb += 16)
            {
                Vector128<int> a0 = Vector128.Load(init + cb), a1 = Vector128.Load(init + cb + 4);
                Vector128<int> a2 = Vector128.Load(init + cb + 8), a3 = Vector128.Load(init + cb + 12);
                int* w = g->Wide + cb;
                nint at = off + cb;
                for (int t = 0; t < count; t++, w += stride)
                {
                    // WidenLower/WidenUpper: the tuple-returning Widen is not accelerated in .NET 10.
                    var codes = Vector128.Load(taps[t] + at);
                    Vector128<ushort> lo = Vector128.WidenLower(codes), hi = Vector128.WidenUpper(codes);
                    Vector128<uint> x0 = Vector128.WidenLower(lo), x1 = Vector128.WidenUpper(lo);
                    Vector128<uint> x2 = Vector128.WidenLower(hi), x3 = Vector128.WidenUpper(hi);
                    a0 += x0.AsInt32() * Vector128.Load(w);
                    a1 += x1.AsInt32() * Vector128.Load(w + 4);
                    a2 += x2.AsInt32() * Vector128.Load(w + 8);
                    a3 += x3.AsInt32() * Vector128.Load(w + 12);
                }
                Vector128<int> q0 = RoundV128(g, a0, mult + cb, lower, upper) + zpY;
                Vector128<int> q1 = RoundV128(g, a1, mult + cb + 4, lower, upper) + zpY;
                Vector128<int> q2 = RoundV128(g, a2, mult + cb + 8, lower, upper) + zpY;
                Vector128<int> q3 = RoundV128(g, a3, mult + cb + 12, lower, upper) + zpY;
                // Values are in [0, 255]: narrowing cannot lose anything.
                Vector128<byte> bytes = Vector128.Narrow(Vector128.Narrow(q0.AsUInt32(), q1.AsUInt32()), Vector128.Narrow(q2.AsUInt32(), q3.AsUInt32()));
                if (cb + 16 <= c) bytes.Store(y + cb);
                else for (int i = 0; i < c - cb; i++) y[cb + i] = bytes.GetElement(i);
            }
        }
    }

    /// <summary>
    /// float multiply, clamp in float, round half to even (the contract's order; no shortcut on this path). The Native
    /// min, max and conversion: the product is finite and clamped into int range, so the IEEE and saturating forms'
    /// fix-ups (slow on x86) would change nothing.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> RoundV128(Int8DepthwiseArgs* g, Vector128<int> acc, float* m, Vector128<float> lower, Vector128<float> upper)
    {
        Vector128<float> f = Vector128.ConvertToSingle(acc) * Vector128.Load(m);
        if (g->HardSwish)
        {
            Vector128<float> gate = Vector128.MinNative(Vector128.MaxNative(Vector128.FusedMultiplyAdd(Vector128.Create(g->HardSwishAlpha), f,
                Vector128.Create(g->HardSwishBeta)), Vector128<float>.Zero), Vector128.Create(1f));
            f = f * gate / Vector128.Create(g->OutputScale);
        }
        return Vector128.ConvertToInt32Native(Vector128.Round(Vector128.MinNative(Vector128.MaxNative(f, lower), upper)));
    }

    /// <summary>One output row one value at a time, in the contract's order of operations.</summary>
    private static void RowScalar(Int8DepthwiseArgs* g, byte** taps, int* init, float* mult, byte* y)
    {
        int c = g->C, stride = g->Stride, count = g->Taps;
        nint step = (nint)g->SW * stride;
        for (int ox = 0; ox < g->OutW; ox++, y += c)
        {
            nint off = ox * step;
            for (int ch = 0; ch < c; ch++)
            {
                int acc = init[ch];
                int* w = g->Wide + ch;
                for (int t = 0; t < count; t++, w += stride) acc += taps[t][off + ch] * *w;
                y[ch] = g->HardSwish
                    ? Int8MicroKernel.RequantizeHardSwishScalar(acc, mult[ch], g->HardSwishAlpha, g->HardSwishBeta, g->OutputScale, g->Lower, g->Upper, g->ZeroPointY)
                    : Int8MicroKernel.RequantizeScalar(acc, mult[ch], g->Lower, g->Upper, g->ZeroPointY);
            }
        }
    }

    /// <summary>The first <paramref name="count"/> (&lt; 32) bytes in 16/8/4-byte pieces, then one at a time: a 16-channel
    /// layer (MobileNetV3's first blocks) stores every pixel this way, and byte by byte it cost a third of the layer.</summary>
    private static void StorePartial(byte* y, Vector256<byte> bytes, int count)
    {
        Vector128<byte> part = bytes.GetLower();
        int i = 0;
        if (count >= 16) { part.Store(y); part = bytes.GetUpper(); i = 16; }
        if (count - i >= 8) { Unsafe.WriteUnaligned(y + i, part.AsUInt64().ToScalar()); part = Sse2.ShiftRightLogical128BitLane(part, 8); i += 8; }
        if (count - i >= 4) { Unsafe.WriteUnaligned(y + i, part.AsUInt32().ToScalar()); part = Sse2.ShiftRightLogical128BitLane(part, 4); i += 4; }
        for (int k = 0; i < count; i++, k++) y[i] = part.GetElement(k);
    }
}
