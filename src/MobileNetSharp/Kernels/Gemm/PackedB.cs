namespace MobileNetSharp.Kernels.Gemm;

/// <summary>
/// The constant right-hand side of a GEMM, packed once into column panels for one vector width W.
/// Panel p covers columns [p*2W, p*2W + width) and is stored as its bias row followed by K rows, each
/// row <c>Stride</c> floats (2W, or W for a last panel of at most W columns), zero-padded past N.
/// So the micro-kernel reads B and the bias with full-vector loads and a unit-stride pointer walk.
/// The buffer is pinned and 64-byte aligned (<see cref="AlignedFloats"/>) so kernels keep a raw pointer to it.
/// </summary>
internal sealed unsafe class PackedB
{
    private readonly AlignedFloats _data;

    /// <param name="b">element (k, n) is b[k * strideK + n * strideN].</param>
    /// <param name="bias">N values, or empty for zero bias.</param>
    public PackedB(ReadOnlySpan<float> b, int k, int n, int strideK, int strideN, ReadOnlySpan<float> bias, int width)
    {
        if (!bias.IsEmpty && bias.Length != n) throw new ArgumentException($"Bias has {bias.Length} values, expected {n}.", nameof(bias));
        K = k;
        N = n;
        Width = width;
        PanelCount = PanelCountFor(n, width);
        PanelFloats = PanelFloatsFor(k, width);
        _data = new AlignedFloats(PanelFloats * PanelCount);
        Pack(b, k, n, strideK, strideN, bias, width, _data.Span);
    }

    /// <summary>
    /// Packs new values of the same K x N matrix into this packing's own buffer (for weights that change on every
    /// run: a training step's). Only for a packing its caller owns alone: a run reading it meanwhile would see a mix.
    /// </summary>
    /// <exception cref="ArgumentException">The bias is neither empty nor N long, or b is shorter than its strides say.</exception>
    public void Repack(ReadOnlySpan<float> b, int strideK, int strideN, ReadOnlySpan<float> bias)
    {
        if (!bias.IsEmpty && bias.Length != N) throw new ArgumentException($"Bias has {bias.Length} values, expected {N}.", nameof(bias));
        Pack(b, K, N, strideK, strideN, bias, Width, _data.Span);
    }

    /// <summary>Panels of 2·width columns that cover n columns.</summary>
    public static int PanelCountFor(int n, int width) => (n + 2 * width - 1) / (2 * width);

    /// <summary>Floats one panel takes: its bias row and K rows of 2·width.</summary>
    public static long PanelFloatsFor(int k, int width) => ((long)k + 1) * 2 * width;

    /// <summary>
    /// Writes the panels of b (element (k, n) at b[k * strideK + n * strideN]) into dest, which holds at least
    /// PanelCountFor(n, width) · PanelFloatsFor(k, width) floats; for callers that pack into a pooled buffer per call.
    /// Padding columns are zero, so the micro-kernel's full-vector loads add nothing.
    /// </summary>
    public static void Pack(ReadOnlySpan<float> b, int k, int n, int strideK, int strideN, ReadOnlySpan<float> bias, int width, Span<float> dest)
    {
        if (k < 0 || n < 0 || strideK < 0 || strideN < 0) throw new ArgumentException($"Packing B: sizes and strides must be non-negative, got k {k}, n {n}, strides {strideK}, {strideN}.");
        int panelCount = PanelCountFor(n, width);
        long panelFloats = PanelFloatsFor(k, width);
        for (int p = 0; p < panelCount; p++)
        {
            int n0 = p * 2 * width, cols = Math.Min(2 * width, n - n0), stride = cols <= width ? width : 2 * width;
            Span<float> panel = dest.Slice((int)(p * panelFloats), (int)panelFloats);
            panel.Clear();
            if (!bias.IsEmpty) bias.Slice(n0, cols).CopyTo(panel);
            if (strideN == 1)
            {
                // Row-major B: each packed row is one contiguous copy.
                for (int kk = 0; kk < k; kk++) b.Slice(kk * strideK + n0, cols).CopyTo(panel.Slice(stride * (kk + 1), cols));
                continue;
            }
            // Any other layout (OIHW weights: k = input channel, strideK = 1), element by element. Pointers, because
            // checked indexing made this most of a model's load time (MobileNetV2: 26 ms of ~50).
            long last = (long)(k - 1) * strideK + (long)(n0 + cols - 1) * strideN;
            if (k > 0 && (last >= b.Length || last < 0)) throw new ArgumentException($"B has {b.Length} values; element ({k - 1}, {n0 + cols - 1}) is past them.", nameof(b));
            fixed (float* pb = b, pd = panel)
                for (int j = 0; j < cols; j++)
                {
                    float* src = pb + (long)(n0 + j) * strideN, dst = pd + stride + j;
                    for (int kk = 0; kk < k; kk++, src += strideK, dst += stride) *dst = *src;
                }
        }
    }

    public int K { get; }
    public int N { get; }
    /// <summary>Floats per vector this packing was made for.</summary>
    public int Width { get; }
    public int PanelCount { get; }
    public long PanelFloats { get; }
    public float* Data => _data.Pointer;

    /// <summary>Valid columns in panel p.</summary>
    public int PanelWidth(int p) => Math.Min(2 * Width, N - p * 2 * Width);
    /// <summary>Floats per packed row of panel p: 2W, or W when the panel is narrow enough for one vector.</summary>
    public int PanelStride(int p) => PanelWidth(p) <= Width ? Width : 2 * Width;
}
