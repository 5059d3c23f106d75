namespace MobileNetSharp.Kernels;

/// <summary>
/// Shapes of a convolution or pooling window over any number of spatial axes, on the plain
/// N, C, spatial... layout (NCW, NCHW, NCDHW). Pads are ONNX's order: all begins, then all ends.
/// Output sizes follow ONNX, ceil mode included: the last window may hang over the end but must start
/// inside the input plus its begin padding. The constructor validates and throws ArgumentException.
/// <para>
/// It also tabulates, once, which kernel taps of each output coordinate land inside the input, per axis;
/// the kernels walk those ranges instead of testing every tap against the borders.
/// </para>
/// </summary>
public sealed class NdGeometry
{
    public int Batch { get; }
    public int InChannels { get; }
    public int OutChannels { get; }
    public int Groups { get; }
    public bool CeilMode { get; }
    public int[] InSize { get; }
    public int[] OutSize { get; }
    public int[] Kernel { get; }
    public int[] Strides { get; }
    public int[] Dilations { get; }
    /// <summary>Begin pads of every axis, then end pads (as declared; ceil mode adds no padding here).</summary>
    public int[] Pads { get; }

    public int Rank => InSize.Length;
    public int InCPerGroup => InChannels / Groups;
    public int OutCPerGroup => OutChannels / Groups;
    public int InPlane { get; }
    public int OutPlane { get; }
    public int KernelVolume { get; }
    public long InputLength => (long)Batch * InChannels * InPlane;
    public long OutputLength => (long)Batch * OutChannels * OutPlane;
    /// <summary>Weights are [OutChannels, InChannels/Groups, kernel...].</summary>
    public long WeightLength => (long)OutChannels * InCPerGroup * KernelVolume;

    // Per axis and output coordinate: the taps [TapBegin, TapEnd) that read inside the input, and how many
    // taps read inside the input or its declared padding (the count_include_pad divisor).
    internal int[][] TapBegin { get; }
    internal int[][] TapEnd { get; }
    internal int[][] PaddedTaps { get; }
    /// <summary>Elements between consecutive indices of each spatial axis within one plane.</summary>
    internal int[] InStride { get; }
    /// <summary>For tap k of the last axis, the output coordinates [LastOutBegin[k], LastOutEnd[k]) it reads inside the input.</summary>
    internal int[] LastOutBegin { get; }
    internal int[] LastOutEnd { get; }

    public NdGeometry(int batch, int inChannels, int outChannels, int[] inSize, int[] kernel, int[] strides, int[] dilations,
        int[] pads, int groups = 1, bool ceilMode = false)
    {
        int rank = inSize.Length;
        if (rank < 1) throw new ArgumentException("A window needs at least one spatial axis.");
        if (kernel.Length != rank || strides.Length != rank || dilations.Length != rank || pads.Length != 2 * rank)
            throw new ArgumentException($"For {rank} spatial axes expected {rank} kernel sizes, strides and dilations and {2 * rank} pads, "
                + $"got {kernel.Length}, {strides.Length}, {dilations.Length} and {pads.Length}.");
        (Batch, InChannels, OutChannels, Groups, CeilMode) = (batch, inChannels, outChannels, groups, ceilMode);
        (InSize, Kernel, Strides, Dilations, Pads) = ((int[])inSize.Clone(), (int[])kernel.Clone(), (int[])strides.Clone(),
            (int[])dilations.Clone(), (int[])pads.Clone());
        if (batch < 1 || inChannels < 1 || outChannels < 1 || inSize.Any(s => s < 1))
            throw new ArgumentException($"Dimensions must be positive: batch {batch}, channels {inChannels}->{outChannels}, input {Format(inSize)}.");
        if (kernel.Any(v => v < 1) || strides.Any(v => v < 1) || dilations.Any(v => v < 1))
            throw new ArgumentException($"Kernel {Format(kernel)}, strides {Format(strides)} and dilations {Format(dilations)} must be positive.");
        if (pads.Any(p => p < 0)) throw new ArgumentException($"Pads {Format(pads)} must be non-negative.");
        if (groups < 1 || inChannels % groups != 0 || outChannels % groups != 0)
            throw new ArgumentException($"Groups ({groups}) must divide input ({inChannels}) and output ({outChannels}) channels.");

        OutSize = new int[rank];
        for (int d = 0; d < rank; d++) OutSize[d] = OutputSize(d);
        if (OutSize.Any(o => o < 1))
            throw new ArgumentException($"The input {Format(inSize)} is too small for kernel {Format(kernel)} with strides {Format(strides)}, "
                + $"dilations {Format(dilations)} and pads {Format(pads)}.");
        InPlane = Product(InSize, "input");
        OutPlane = Product(OutSize, "output");
        KernelVolume = Product(Kernel, "kernel");
        if (InputLength > int.MaxValue || OutputLength > int.MaxValue || WeightLength > int.MaxValue)
            throw new ArgumentException("Tensors of more than 2^31 elements are not supported.");

        InStride = new int[rank];
        for (int d = rank - 1, s = 1; d >= 0; s *= InSize[d--]) InStride[d] = s;
        (TapBegin, TapEnd, PaddedTaps) = (new int[rank][], new int[rank][], new int[rank][]);
        for (int d = 0; d < rank; d++) TabulateTaps(d);
        int last = rank - 1, kLast = Kernel[last];
        (LastOutBegin, LastOutEnd) = (new int[kLast], new int[kLast]);
        for (int k = 0; k < kLast; k++)
        {
            // 0 <= o*s - pad + k*dilation < in, solved for o (closed forms, so absurd sizes cannot stall a load).
            long s = Strides[last], shift = Pads[last] - (long)k * Dilations[last];
            long begin = shift <= 0 ? 0 : (shift + s - 1) / s;
            long end = InSize[last] - 1 + shift < 0 ? 0 : Math.Min(OutSize[last], (InSize[last] - 1 + shift) / s + 1);
            (LastOutBegin[k], LastOutEnd[k]) = begin < end ? ((int)begin, (int)end) : (0, 0);
        }
    }

    /// <summary>Output rows: every output coordinate but the last axis's.</summary>
    internal int Rows => OutPlane / OutSize[^1];

    /// <summary>Advances row coordinates (every axis but the last) to the next row in row-major order.</summary>
    internal void NextRow(Span<int> row)
    {
        for (int d = row.Length - 1; d >= 0; d--)
        {
            if (++row[d] < OutSize[d]) return;
            row[d] = 0;
        }
    }

    /// <summary>Sets <paramref name="tap"/> to the row's first tap (axes but the last) inside the input; false when there is none.</summary>
    internal bool FirstTap(ReadOnlySpan<int> row, Span<int> tap)
    {
        for (int d = 0; d < row.Length; d++)
        {
            if (TapBegin[d][row[d]] >= TapEnd[d][row[d]]) return false;
            tap[d] = TapBegin[d][row[d]];
        }
        return true;
    }

    /// <summary>Advances <paramref name="tap"/> to the row's next tap inside the input; false after the last.</summary>
    internal bool NextTap(ReadOnlySpan<int> row, Span<int> tap)
    {
        for (int d = row.Length - 1; d >= 0; d--)
        {
            if (++tap[d] < TapEnd[d][row[d]]) return true;
            tap[d] = TapBegin[d][row[d]];
        }
        return false;
    }

    /// <summary>The tap's row-major index over the kernel's axes but the last, and the plane offset of the input row it reads.</summary>
    internal (int Index, int Offset) Locate(ReadOnlySpan<int> row, ReadOnlySpan<int> tap)
    {
        int index = 0, offset = 0;
        for (int d = 0; d < row.Length; d++)
        {
            index = index * Kernel[d] + tap[d];
            offset += InputIndex(d, row[d], tap[d]) * InStride[d];
        }
        return (index, offset);
    }

    /// <summary>Input index of tap <paramref name="k"/> of output coordinate <paramref name="o"/> on axis <paramref name="d"/> (may be in the padding).</summary>
    internal int InputIndex(int d, int o, int k) => o * Strides[d] - Pads[d] + k * Dilations[d];

    private int OutputSize(int d) =>
        Window.OutputSize(InSize[d], Pads[d], Pads[Rank + d], Kernel[d], Strides[d], Dilations[d], CeilMode);

    private void TabulateTaps(int d)
    {
        int outSize = OutSize[d], k = Kernel[d], inSize = InSize[d], padEnd = Pads[Rank + d];
        long dilation = Dilations[d];
        var (begin, end, padded) = (new int[outSize], new int[outSize], new int[outSize]);
        for (int o = 0; o < outSize; o++)
        {
            // Taps t with 0 <= start + t*dilation < in; a window never starts before the begin padding, so
            // those in input or padding are the ones below in + padEnd.
            long start = (long)o * Strides[d] - Pads[d];
            long first = start >= 0 ? 0 : (-start + dilation - 1) / dilation;
            long stop = inSize - 1 - start < 0 ? 0 : Math.Min(k, (inSize - 1 - start) / dilation + 1);
            (begin[o], end[o]) = first < stop ? ((int)first, (int)stop) : (0, 0);
            long reach = inSize + (long)padEnd - start;
            padded[o] = reach <= 0 ? 0 : (int)Math.Min(k, (reach + dilation - 1) / dilation);
        }
        (TapBegin[d], TapEnd[d], PaddedTaps[d]) = (begin, end, padded);
    }

    private static int Product(int[] sizes, string what)
    {
        long p = 1;
        foreach (int s in sizes)
            if ((p *= s) > int.MaxValue) throw new ArgumentException($"The {what} extent {Format(sizes)} has more than 2^31 elements.");
        return (int)p;
    }

    private static string Format(int[] v) => "[" + string.Join(",", v) + "]";

    public override string ToString() =>
        $"{Batch}x{InChannels}x{Format(InSize)} -> {OutChannels}x{Format(OutSize)}, kernel {Format(Kernel)}, strides {Format(Strides)}, "
        + $"dilations {Format(Dilations)}, pads {Format(Pads)}, groups {Groups}{(CeilMode ? ", ceil" : "")}";
}
