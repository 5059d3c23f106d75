using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels;

/// <summary>
/// Gradients of <see cref="Pooling"/> on NHWC tensors: x [N, H, W, C], dy [N, OH, OW, C], dx [N, H, W, C], with the
/// window geometry as <see cref="Pooling"/> takes it (a <see cref="Conv2dGeometry"/> whose Batch is N, InC the channel
/// count; OutC and Groups are ignored). Vectorized over channels. dx is written: each image's dx is zeroed and the
/// window gradients are scattered into it, one image per task, so no two threads touch one element.
/// <para>
/// Ties in max pooling send the gradient to the FIRST maximal tap in (ky, kx) scan order, over the taps that land
/// inside the input (padding never wins, as in the forward). PyTorch's max_pool2d records the first maximum too.
/// Average pooling divides by the forward's divisor: ONNX AveragePool / PyTorch avg_pool2d with count_include_pad,
/// without ceil-mode extras.
/// </para>
/// </summary>
public static unsafe class PoolingBackward
{
    /// <summary>dx [N, H, W, C] from x [N, H, W, C] and dy [N, OH, OW, C]: each window's dy goes to its first maximal input cell.</summary>
    /// <exception cref="ArgumentException">An invalid geometry or a buffer shorter than its shape.</exception>
    public static void MaxPool2d(in Conv2dGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx, Workers? workers = null) =>
        MaxPool2d(g, x, dy, dx, workers, null);

    /// <summary><see cref="MaxPool2d(in Conv2dGeometry, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, Workers?)"/> at a chosen ISA (tests sweep it).</summary>
    internal static void MaxPool2d(in Conv2dGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx, Workers? workers, IsaLevel? isa)
    {
        var pg = Check(g, "Max pool backward");
        if (x.Length < pg.InputLength || dy.Length < pg.OutputLength || dx.Length < pg.InputLength)
            throw new ArgumentException($"Max pool backward: x ({x.Length}), dy ({dy.Length}) and dx ({dx.Length}) need {pg.InputLength}, {pg.OutputLength} and {pg.InputLength} values.");
        Run(pg, x, dy, dx, max: true, countIncludePad: false, workers, isa);
    }

    /// <summary>
    /// dx [N, H, W, C] from dy [N, OH, OW, C]: each window's dy / divisor is added to every input cell of the window.
    /// The divisor counts the window's cells inside the input, plus (with <paramref name="countIncludePad"/>) those
    /// in the declared padding, exactly as the forward <see cref="Pooling.AveragePool2d"/>.
    /// </summary>
    /// <exception cref="ArgumentException">An invalid geometry or a buffer shorter than its shape.</exception>
    public static void AveragePool2d(in Conv2dGeometry g, bool countIncludePad, ReadOnlySpan<float> dy, Span<float> dx, Workers? workers = null) =>
        AveragePool2d(g, countIncludePad, dy, dx, workers, null);

    /// <summary><see cref="AveragePool2d(in Conv2dGeometry, bool, ReadOnlySpan{float}, Span{float}, Workers?)"/> at a chosen ISA (tests sweep it).</summary>
    internal static void AveragePool2d(in Conv2dGeometry g, bool countIncludePad, ReadOnlySpan<float> dy, Span<float> dx, Workers? workers, IsaLevel? isa)
    {
        var pg = Check(g, "Average pool backward");
        if (dy.Length < pg.OutputLength || dx.Length < pg.InputLength)
            throw new ArgumentException($"Average pool backward: dy ({dy.Length}) and dx ({dx.Length}) need {pg.OutputLength} and {pg.InputLength} values.");
        Run(pg, default, dy, dx, max: false, countIncludePad, workers, isa);
    }

    /// <summary>dx [N, spatial, C] = dy [N, C] / spatial at every position (the gradient of <see cref="Pooling.GlobalAveragePool"/>).</summary>
    /// <exception cref="ArgumentException">A size below 1 or a buffer shorter than its shape.</exception>
    public static void GlobalAveragePool(int batch, int spatial, int channels, ReadOnlySpan<float> dy, Span<float> dx) =>
        GlobalAveragePool(batch, spatial, channels, dy, dx, Workers.Single);

    /// <summary>The same, images split between <paramref name="workers"/> when dx is large (a head's [64, 4x4, 1280] is 5 MB).</summary>
    public static unsafe void GlobalAveragePool(int batch, int spatial, int channels, ReadOnlySpan<float> dy, Span<float> dx, Workers workers)
    {
        CheckGlobal(batch, spatial, channels, dy.Length, dx.Length, "Global average pool backward");
        fixed (float* pdy = dy, pdx = dx)
        {
            var body = new AverageGrad { Dy = pdy, Dx = pdx, Spatial = spatial, Channels = channels };
            // In images: one chunk element is one image, worth spatial x channels floats.
            if ((long)batch * spatial * channels < Chunked.MinParallel) body.Invoke(0, batch);
            else Chunked.Run(workers, batch, ref body, elementSize: spatial * channels * sizeof(float));
        }
    }

    private unsafe struct AverageGrad : IChunkBody
    {
        public float* Dy, Dx;
        public int Spatial, Channels;

        public readonly void Invoke(long start, long count)
        {
            float scale = 1f / Spatial; // the forward's factor
            for (long n = start; n < start + count; n++)
            {
                var row = new Span<float>(Dx + n * Spatial * Channels, Channels);
                TensorPrimitives.Multiply(new ReadOnlySpan<float>(Dy + n * Channels, Channels), scale, row);
                for (int s = 1; s < Spatial; s++) row.CopyTo(new Span<float>(Dx + (n * Spatial + s) * Channels, Channels));
            }
        }
    }

    /// <summary>dx [N, spatial, C]: dy [N, C] at the first position holding channel c's maximum of x [N, spatial, C], 0 elsewhere.</summary>
    /// <exception cref="ArgumentException">A size below 1 or a buffer shorter than its shape.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void GlobalMaxPool(int batch, int spatial, int channels, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx)
    {
        CheckGlobal(batch, spatial, channels, dy.Length, dx.Length, "Global max pool backward");
        if (x.Length < (long)batch * spatial * channels)
            throw new ArgumentException($"Global max pool backward: x ({x.Length}) needs [{batch}, {spatial}, {channels}] values.");
        dx[..(batch * spatial * channels)].Clear();
        var best = new float[channels];
        var at = new int[channels];
        for (int n = 0; n < batch; n++)
        {
            var image = x.Slice(n * spatial * channels, spatial * channels);
            image[..channels].CopyTo(best);
            Array.Clear(at);
            for (int s = 1; s < spatial; s++)
            {
                var px = image.Slice(s * channels, channels);
                for (int c = 0; c < channels; c++)
                    if (px[c] > best[c]) { best[c] = px[c]; at[c] = s; } // strictly greater: the first maximum keeps it
            }
            for (int c = 0; c < channels; c++) dx[(n * spatial + at[c]) * channels + c] = dy[n * channels + c];
        }
    }

    private static void CheckGlobal(int batch, int spatial, int channels, int dyLength, int dxLength, string op)
    {
        if (batch < 1 || spatial < 1 || channels < 1) throw new ArgumentException($"{op}: sizes must be positive, got {batch}x{spatial}x{channels}.");
        if (dyLength < (long)batch * channels || dxLength < (long)batch * spatial * channels)
            throw new ArgumentException($"{op}: dy ({dyLength}) and dx ({dxLength}) need [{batch}, {channels}] and [{batch}, {spatial}, {channels}] values.");
    }

    private static Conv2dGeometry Check(in Conv2dGeometry g, string op)
    {
        var pg = g with { OutC = g.InC, Groups = 1 };
        try { pg.Validate(); }
        catch (ArgumentException e) { throw new ArgumentException($"{op}: {e.Message}", e); }
        return pg;
    }

    private struct Args
    {
        public float* X, Dy, Dx;
        public Conv2dGeometry G;
        public bool Max, CountIncludePad;
        public IsaLevel Isa;
    }

    private static void Run(in Conv2dGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx, bool max, bool countIncludePad,
        Workers? workers, IsaLevel? isa)
    {
        workers ??= Workers.Single;
        fixed (float* px = x, pdy = dy, pdx = dx)
        {
            var args = new Args { X = px, Dy = pdy, Dx = pdx, G = g, Max = max, CountIncludePad = countIncludePad, Isa = Isa.Resolve(isa) };
            if (workers.Count == 1 || g.InputLength < (1 << 14)) for (int n = 0; n < g.Batch; n++) Task(&args, n);
            else workers.For(g.Batch, &Task, &args);
        }
    }

    private static void Task(void* context, int n)
    {
        var a = (Args*)context;
        var body = new Body { A = a, Image = n };
        KernelDispatch.Run(a->Isa, ref body);
    }

    private struct Body : IWidthBody
    {
        public Args* A;
        public int Image;

        public readonly void Invoke<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            if (A->Max) MaxImage<TS, TV>();
            else AverageImage<TS, TV>();
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void MaxImage<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            Conv2dGeometry g = A->G;
            int C = g.InC, w = TS.Count, KW = g.KernelW;
            long plane = (long)g.InH * g.InW * C;
            float* x = A->X + Image * plane, dx = A->Dx + Image * plane;
            float* dyImage = A->Dy + (long)Image * g.OutH * g.OutW * C;
            new Span<float>(dx, checked((int)plane)).Clear();
            float* lanesY = stackalloc float[16], lanesX = stackalloc float[16];
            for (int oy = 0; oy < g.OutH; oy++)
            {
                int iy0 = oy * g.StrideH - g.PadTop;
                var (ky0, ky1) = Pooling.Taps(iy0, g.KernelH, g.DilationH, 0, g.InH);
                for (int ox = 0; ox < g.OutW; ox++)
                {
                    int ix0 = ox * g.StrideW - g.PadLeft;
                    var (kx0, kx1) = Pooling.Taps(ix0, KW, g.DilationW, 0, g.InW);
                    if (ky0 == ky1 || kx0 == kx1) continue; // a window entirely in the padding: no input cell
                    float* dyp = dyImage + ((long)oy * g.OutW + ox) * C;
                    for (int c0 = 0; c0 < C; c0 += w)
                    {
                        int n = Math.Min(w, C - c0);
                        bool whole = n == w;
                        // Running maximum and the (ky, kx) holding it, as floats (exact for any real kernel size; two
                        // selects instead of a division per lane at the scatter); strictly greater replaces, so the
                        // first maximal tap in scan order wins. The first tap always counts (-infinity or NaN included):
                        // bestKy < 0 until then.
                        TV best = TS.Splat(float.NegativeInfinity), bestKy = TS.Splat(-1f), bestKx = TS.Zero, one = TS.Splat(1f);
                        for (int ky = ky0; ky < ky1; ky++)
                        {
                            float* row = x + (long)(iy0 + ky * g.DilationH) * g.InW * C + c0;
                            TV kyv = TS.Splat(ky);
                            for (int kx = kx0; kx < kx1; kx++)
                            {
                                float* p = row + (long)(ix0 + kx * g.DilationW) * C;
                                TV v = whole ? TS.Load(p) : TS.LoadPartial(p, n);
                                TV take = TS.GreaterSelect(v, best, one, TS.GreaterSelect(TS.Zero, bestKy, one, TS.Zero));
                                bestKy = TS.GreaterSelect(take, TS.Zero, kyv, bestKy);
                                bestKx = TS.GreaterSelect(take, TS.Zero, TS.Splat(kx), bestKx);
                                best = TS.GreaterSelect(take, TS.Zero, v, best);
                            }
                        }
                        TS.Store(lanesY, bestKy);
                        TS.Store(lanesX, bestKx);
                        for (int l = 0; l < n; l++)
                        {
                            long at = ((long)(iy0 + (int)lanesY[l] * g.DilationH) * g.InW + ix0 + (int)lanesX[l] * g.DilationW) * C + c0 + l;
                            dx[at] += dyp[c0 + l];
                        }
                    }
                }
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void AverageImage<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            Conv2dGeometry g = A->G;
            int C = g.InC, w = TS.Count, full = C - C % w, tail = C - full;
            long plane = (long)g.InH * g.InW * C;
            float* dx = A->Dx + Image * plane;
            float* dyImage = A->Dy + (long)Image * g.OutH * g.OutW * C;
            new Span<float>(dx, checked((int)plane)).Clear();
            bool include = A->CountIncludePad;
            for (int oy = 0; oy < g.OutH; oy++)
            {
                int iy0 = oy * g.StrideH - g.PadTop;
                var (ky0, ky1) = Pooling.Taps(iy0, g.KernelH, g.DilationH, 0, g.InH);
                var (dy0, dy1) = include ? Pooling.Taps(iy0, g.KernelH, g.DilationH, -g.PadTop, g.InH + g.PadBottom) : (ky0, ky1);
                for (int ox = 0; ox < g.OutW; ox++)
                {
                    int ix0 = ox * g.StrideW - g.PadLeft;
                    var (kx0, kx1) = Pooling.Taps(ix0, g.KernelW, g.DilationW, 0, g.InW);
                    var (dx0, dx1) = include ? Pooling.Taps(ix0, g.KernelW, g.DilationW, -g.PadLeft, g.InW + g.PadRight) : (kx0, kx1);
                    TV scale = TS.Splat(1f / Math.Max(1, (dy1 - dy0) * (dx1 - dx0))); // the forward's divisor
                    float* dyp = dyImage + ((long)oy * g.OutW + ox) * C;
                    for (int ky = ky0; ky < ky1; ky++)
                    {
                        float* row = dx + (long)(iy0 + ky * g.DilationH) * g.InW * C;
                        for (int kx = kx0; kx < kx1; kx++)
                        {
                            float* p = row + (long)(ix0 + kx * g.DilationW) * C;
                            for (int c0 = 0; c0 < full; c0 += w) TS.Store(p + c0, TS.Fma(TS.Load(dyp + c0), scale, TS.Load(p + c0)));
                            if (tail > 0) TS.StorePartial(p + full, TS.Fma(TS.LoadPartial(dyp + full, tail), scale, TS.LoadPartial(p + full, tail)), tail);
                        }
                    }
                }
            }
        }
    }
}
