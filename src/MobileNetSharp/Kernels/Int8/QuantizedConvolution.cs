using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MobileNetSharp.Kernels.Int8;

/// <summary>
/// A standard (one group) integer convolution of any kernel, stride, padding and dilation on channels-last uint8
/// tensors: the stem of every MobileNet, and the full convolutions of their standard-convolution twins. Each band
/// of output pixels is unfolded (im2col) into rows of K = KH·KW·C codes, ordered [ky][kx][c], and multiplied by
/// <see cref="QuantizedGemm"/> with the requantization fused, so the arithmetic is exactly the 1x1 kernel's:
/// <code>
/// acc[p, m] = Σ_(ky,kx,c) (x[p; ky,kx,c] - zpX) · w[m, c, ky, kx] + bias[m]      int32
/// y[p, m]   = saturate(roundHalfToEven(acc · x_scale · w_scale[m] / y_scale) + zpY), clamped by the activation
/// </code>
/// A tap outside the image reads zpX, the code of real 0, which is what zero padding of the dequantized input
/// means (ONNX QLinearConv pads with the input zero point).
/// <para>
/// Bands are sized so their unfolded rows stay near 64 KB (in L2 while the GEMM walks them), and run one band per
/// task across the workers; every output element is computed identically whatever the split, so the result does
/// not depend on the thread count.
/// </para>
/// </summary>
public static unsafe class QuantizedConvolution
{
    /// <summary>Target size of one band's unfolded rows.</summary>
    private const int BandBytes = 64 * 1024;

    /// <summary>
    /// Packs OIHW int8 weights [M, C, KH, KW] for <see cref="Run"/>: as a GEMM B of K = KH·KW·C rows in [ky][kx][c]
    /// order, the order <see cref="Run"/> unfolds the input in.
    /// </summary>
    /// <exception cref="ArgumentException">A size below 1, or a weight length that is not M·C·KH·KW.</exception>
    public static PackedInt8Weights PackWeights(ReadOnlySpan<sbyte> oihw, int outC, int inC, int kernelH, int kernelW)
    {
        if (outC < 1 || inC < 1 || kernelH < 1 || kernelW < 1)
            throw new ArgumentException($"Int8 convolution: weights [{outC}, {inC}, {kernelH}, {kernelW}] need every size >= 1.");
        long k = (long)inC * kernelH * kernelW;
        if (oihw.Length != outC * k) throw new ArgumentException($"Int8 convolution: {oihw.Length} weights for [{outC}, {inC}, {kernelH}, {kernelW}].");
        var nk = new sbyte[oihw.Length];
        for (int m = 0; m < outC; m++)
            for (int c = 0; c < inC; c++)
                for (int ky = 0; ky < kernelH; ky++)
                    for (int kx = 0; kx < kernelW; kx++)
                        nk[m * k + ((long)ky * kernelW + kx) * inC + c] = oihw[(int)(((m * (long)inC + c) * kernelH + ky) * kernelW + kx)];
        return PackedInt8Weights.FromNxK(nk, outC, (int)k);
    }

    /// <summary>Checks a geometry against packed weights and requantization.</summary>
    /// <exception cref="ArgumentException">Groups other than 1, or weights or requantization for other sizes.</exception>
    public static void Validate(in Conv2dGeometry g, PackedInt8Weights weights, Requantization requantization)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(requantization);
        g.Validate();
        if (g.Groups != 1) throw new ArgumentException($"Int8 convolution: one group only, got {g.Groups} (depthwise has its own kernel).");
        long k = (long)g.InC * g.KernelH * g.KernelW;
        if (weights.K != k || weights.N != g.OutC)
            throw new ArgumentException($"Int8 convolution: weights are K {weights.K} x N {weights.N}, the geometry needs K {k} x N {g.OutC}.");
        if (requantization.Channels != g.OutC)
            throw new ArgumentException($"Int8 convolution: requantization is for {requantization.Channels} channels, the geometry has {g.OutC}.");
    }

    /// <summary>y = QLinearConv(x) on NHWC uint8 tensors: input [N, H, W, C], output [N, OH, OW, M].</summary>
    /// <exception cref="ArgumentException">See <see cref="Validate"/>; or spans shorter than the geometry's tensors.</exception>
    public static void Run(in Conv2dGeometry g, ReadOnlySpan<byte> input, byte inputZeroPoint, PackedInt8Weights weights,
        Requantization requantization, Span<byte> output, Workers workers, IsaLevel? isa = null)
    {
        ArgumentNullException.ThrowIfNull(workers);
        Validate(g, weights, requantization);
        if (input.Length < g.InputLength) throw new ArgumentException($"Int8 convolution: input has {input.Length} bytes, the geometry needs {g.InputLength}.", nameof(input));
        if (output.Length < g.OutputLength) throw new ArgumentException($"Int8 convolution: output has {output.Length} bytes, the geometry needs {g.OutputLength}.", nameof(output));
        fixed (byte* x = input, y = output)
            Run(Isa.Resolve(isa), g, x, inputZeroPoint, weights, requantization, y, workers);
    }

    /// <summary>
    /// One call's work, on the caller's stack and shared with the worker tasks by pointer; the weights and
    /// requantization are managed objects, so they travel as GCHandles (a class holding them cost a 147-byte
    /// allocation per run, against the engine's zero-allocation steady state).
    /// </summary>
    private struct Job
    {
        public Conv2dGeometry G;
        public byte* X, Y;
        public byte ZeroPoint;
        public Int8Path Path;
        public int K, RowBytes, BandPixels, BandsPerImage;
        public nint Weights, Requantization;
    }

    /// <summary>The unchecked entry for compiled plans: the caller validated the geometry once.</summary>
    internal static void Run(IsaLevel isa, in Conv2dGeometry g, byte* x, byte zeroPoint, PackedInt8Weights weights, Requantization requantization,
        byte* y, Workers workers)
    {
        int k = g.InC * g.KernelH * g.KernelW;
        int pixels = g.OutH * g.OutW;
        Int8Path path = QuantizedGemm.PathFor(isa);
        // The byte-quad GEMM reads K rounded up to 4 from each row (the stem's K is 27): unfolding at that stride
        // saves it a padded copy of every tile.
        int rowBytes = QuantizedGemm.UsesQuads(path, weights) ? QuantizedGemm.QuadRowBytes(weights) : k;
        // Whole 6-row GEMM tiles per band, so only an image's last band has a partial tile.
        int band = Math.Min(pixels, Math.Max(6, BandBytes / rowBytes / 6 * 6));
        var weightsHandle = GCHandle.Alloc(weights);
        var requantizationHandle = GCHandle.Alloc(requantization);
        try
        {
            var job = new Job
            {
                G = g, X = x, Y = y, ZeroPoint = zeroPoint, Path = path, K = k, RowBytes = rowBytes,
                BandPixels = band, BandsPerImage = (pixels + band - 1) / band,
                Weights = GCHandle.ToIntPtr(weightsHandle), Requantization = GCHandle.ToIntPtr(requantizationHandle),
            };
            workers.For(g.Batch * job.BandsPerImage, &Task, &job);
        }
        finally
        {
            weightsHandle.Free();
            requantizationHandle.Free();
        }
    }

    private static void Task(void* context, int index)
    {
        Job* job = (Job*)context;
        var weights = (PackedInt8Weights)GCHandle.FromIntPtr(job->Weights).Target!;
        var requantization = (Requantization)GCHandle.FromIntPtr(job->Requantization).Target!;
        Conv2dGeometry g = job->G;
        int image = index / job->BandsPerImage, pixels = g.OutH * g.OutW;
        int p0 = index % job->BandsPerImage * job->BandPixels, p1 = Math.Min(pixels, p0 + job->BandPixels);
        byte[] rows = ArrayPool<byte>.Shared.Rent((p1 - p0) * job->RowBytes + Vector128<byte>.Count); // slack for Unfold's 16-byte stores
        try
        {
            fixed (byte* columns = rows)
            {
                long imageBytes = (long)g.InH * g.InW * g.InC;
                Unfold(g, job->X + image * imageBytes, imageBytes, job->ZeroPoint, p0, p1, columns, job->RowBytes);
                // Bytes K..RowBytes of each row are left as they are: their weights are 0.
                QuantizedGemm.Run(job->Path, p1 - p0, columns, job->RowBytes, job->ZeroPoint, weights, requantization,
                    job->Y + ((long)image * pixels + p0) * g.OutC, g.OutC, Workers.Single, rowsPadded: true);
            }
        }
        finally { ArrayPool<byte>.Shared.Return(rows); }
    }

    /// <summary>
    /// Output pixels [p0, p1) of one image as rows of K codes, [ky][kx][c], <paramref name="rowBytes"/> apart; taps off
    /// the image are the zero point. Bytes between K and rowBytes are not written.
    /// </summary>
    private static void Unfold(in Conv2dGeometry g, byte* image, long imageBytes, byte zeroPoint, int p0, int p1, byte* columns, int rowBytes)
    {
        // Locals, not g's members: OutW is computed (a division) and the struct's fields are reloaded after every store.
        int c = g.InC, kw = g.KernelW, kh = g.KernelH, inH = g.InH, inW = g.InW, outW = g.OutW;
        int strideH = g.StrideH, strideW = g.StrideW, padTop = g.PadTop, padLeft = g.PadLeft, dilationH = g.DilationH, dilationW = g.DilationW;
        uint span = (uint)(kw * c);
        // A stem's kernel row is 9 bytes: one 16-byte load and store beats a variable-length copy (a memmove call, which
        // made the unfold cost as much as the GEMM). The store's excess is overwritten by the next row or lands in the
        // buffer's slack; the load must stay inside the image.
        bool shortRows = span <= (uint)Vector128<byte>.Count;
        byte* lastSafeLoad = image + imageBytes - Vector128<byte>.Count;
        long inRow = (long)inW * c;
        nint pixelStep = (nint)strideW * c;
        byte** sources = stackalloc byte*[kh];
        byte* dst = columns;
        // Output row by output row: the kernel rows' sources (null above or below the image) are found once per row,
        // and the pixels whose kernel rows all lie inside take a loop of plain 16-byte copies.
        for (int p = p0; p < p1;)
        {
            int oy = p / outW, ox = p % outW, oxEnd = Math.Min(outW, ox + (p1 - p));
            p += oxEnd - ox;
            bool allRows = true;
            for (int ky = 0; ky < kh; ky++)
            {
                int iy = oy * strideH - padTop + ky * dilationH;
                sources[ky] = (uint)iy < (uint)inH ? image + iy * inRow : null;
                allRows &= sources[ky] != null;
            }
            // Columns whose taps are all inside: ix0 = ox·SW - padLeft >= 0 and ix0 + KW <= InW.
            int interiorStart = Math.Max(ox, (padLeft + strideW - 1) / strideW);
            int interiorEnd = Math.Min(oxEnd, inW - kw + padLeft >= 0 ? (inW - kw + padLeft) / strideW + 1 : 0);
            for (; ox < oxEnd; ox++, dst += rowBytes)
            {
                if (ox >= interiorStart && ox < interiorEnd && allRows && shortRows && dilationW == 1 && kh == 3)
                {
                    // The stem's case: three 16-byte copies a pixel, sources advancing by SW·C.
                    byte* s0 = sources[0] + (long)(ox * strideW - padLeft) * c, s1 = sources[1] + (s0 - sources[0]), s2 = sources[2] + (s0 - sources[0]);
                    for (; ox < interiorEnd && s2 <= lastSafeLoad; ox++, dst += rowBytes, s0 += pixelStep, s1 += pixelStep, s2 += pixelStep)
                    {
                        Vector128.Store(Vector128.Load(s0), dst);
                        Vector128.Store(Vector128.Load(s1), dst + span);
                        Vector128.Store(Vector128.Load(s2), dst + 2 * span);
                    }
                    if (ox == oxEnd) break;
                }
                Pixel(dst, ox * strideW - padLeft);
            }
        }

        // One pixel's KH·KW·C codes, [ky][kx][c], any position.
        void Pixel(byte* to, int ix0)
        {
            // Undilated taps of one kernel row are adjacent pixels: one copy of KW·C bytes when all are inside (the
            // stem's 3 channels would otherwise be 9 copies of 3 bytes a pixel).
            bool rowInside = dilationW == 1 && ix0 >= 0 && ix0 + kw <= inW;
            for (int ky = 0; ky < kh; ky++, to += span)
            {
                byte* src = sources[ky];
                if (src == null)
                {
                    Unsafe.InitBlockUnaligned(to, zeroPoint, span);
                    continue;
                }
                if (rowInside)
                {
                    byte* from = src + (long)ix0 * c;
                    if (shortRows && from <= lastSafeLoad) Vector128.Store(Vector128.Load(from), to);
                    else Unsafe.CopyBlockUnaligned(to, from, span);
                    continue;
                }
                for (int kx = 0; kx < kw; kx++)
                {
                    int ix = ix0 + kx * dilationW;
                    if ((uint)ix < (uint)inW) Unsafe.CopyBlockUnaligned(to + kx * c, src + (long)ix * c, (uint)c);
                    else Unsafe.InitBlockUnaligned(to + kx * c, zeroPoint, (uint)c);
                }
            }
        }
    }
}
