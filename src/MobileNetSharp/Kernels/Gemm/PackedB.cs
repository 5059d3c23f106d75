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
        PanelCount = (n + 2 * width - 1) / (2 * width);
        PanelFloats = (long)(k + 1) * 2 * width;
        _data = new AlignedFloats(PanelFloats * PanelCount);
        Span<float> data = _data.Span;
        for (int p = 0; p < PanelCount; p++)
        {
            int n0 = p * 2 * width, cols = PanelWidth(p), stride = PanelStride(p);
            Span<float> panel = data[(int)(p * PanelFloats)..];
            for (int j = 0; j < cols; j++)
            {
                if (!bias.IsEmpty) panel[j] = bias[n0 + j];
                for (int kk = 0; kk < k; kk++)
                    panel[stride * (kk + 1) + j] = b[kk * strideK + (n0 + j) * strideN];
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
