namespace MobileNetSharp.Kernels;

/// <summary>
/// Everything a 2-D convolution or pooling kernel needs to know about shapes. Tensors are NHWC
/// (channels contiguous) inside the engine; weights arrive in ONNX's OIHW order and are packed
/// by the operator that owns them.
/// </summary>
public readonly record struct Conv2dGeometry(
    int Batch, int InH, int InW, int InC, int OutC,
    int KernelH, int KernelW,
    int StrideH = 1, int StrideW = 1,
    int DilationH = 1, int DilationW = 1,
    int PadTop = 0, int PadLeft = 0, int PadBottom = 0, int PadRight = 0,
    int Groups = 1)
{
    /// <summary>Output height; 0 when the window does not fit (or the geometry is invalid, see <see cref="Validate"/>).</summary>
    public int OutH => Window.OutputSize(InH, PadTop, PadBottom, KernelH, StrideH, DilationH);
    public int OutW => Window.OutputSize(InW, PadLeft, PadRight, KernelW, StrideW, DilationW);
    public int InCPerGroup => InC / Groups;
    public int OutCPerGroup => OutC / Groups;
    public bool IsDepthwise => Groups == InC && Groups > 1 && OutC % Groups == 0;
    public bool IsPointwise => KernelH == 1 && KernelW == 1 && StrideH == 1 && StrideW == 1
        && PadTop == 0 && PadLeft == 0 && PadBottom == 0 && PadRight == 0 && Groups == 1;
    /// <summary>
    /// A small convolution of the same kind, for warming up kernels: the same kernel, strides, dilations and group
    /// structure, batch 1, at most 11x11 input pixels (or the kernel's extent), pads of at most the kernel's extent
    /// (wider ones only add outputs that lie wholly in the padding), and at most <paramref name="channels"/> channels
    /// a side (depthwise: keeping the channel multiplier; other groupings: at most 4 groups of at most 8 channels a
    /// side, and still at least 2 input channels a group, so they stay grouped, not depthwise). Few input channels
    /// stay few, so a stem stays a stem.
    /// </summary>
    public Conv2dGeometry Miniature(int channels)
    {
        int extentH = (KernelH - 1) * DilationH + 1, extentW = (KernelW - 1) * DilationW + 1;
        int h = Math.Min(InH, Math.Max(11, extentH));
        int w = Math.Min(InW, Math.Max(11, extentW));
        int inC = InC, outC = OutC, groups = Groups;
        if (IsDepthwise)
        {
            inC = groups = Math.Min(InC, channels);
            outC = inC * (OutC / InC);
        }
        else if (Groups == 1)
        {
            inC = Math.Min(InC, channels);
            outC = Math.Min(OutC, channels);
        }
        else
        {
            groups = Math.Min(Groups, 4);
            inC = groups * Math.Min(InCPerGroup, 8);
            outC = groups * Math.Min(OutCPerGroup, 8);
        }
        return this with
        {
            Batch = 1, InH = h, InW = w, InC = inC, OutC = outC, Groups = groups,
            PadTop = Math.Min(PadTop, extentH), PadBottom = Math.Min(PadBottom, extentH),
            PadLeft = Math.Min(PadLeft, extentW), PadRight = Math.Min(PadRight, extentW),
        };
    }

    public long InputLength => (long)Batch * InH * InW * InC;
    public long OutputLength => (long)Batch * OutH * OutW * OutC;
    /// <summary>Weight count in OIHW: OutC * (InC/Groups) * KH * KW.</summary>
    public long WeightLength => (long)OutC * InCPerGroup * KernelH * KernelW;

    /// <summary>Throws ArgumentException with a readable message when the geometry is impossible.</summary>
    public void Validate()
    {
        if (Batch < 1 || InH < 1 || InW < 1 || InC < 1 || OutC < 1)
            throw new ArgumentException($"Convolution dimensions must be positive: batch {Batch}, input {InH}x{InW}x{InC}, {OutC} output channels.");
        if (KernelH < 1 || KernelW < 1 || StrideH < 1 || StrideW < 1 || DilationH < 1 || DilationW < 1)
            throw new ArgumentException($"Kernel, stride and dilation must be positive: kernel {KernelH}x{KernelW}, stride {StrideH}x{StrideW}, dilation {DilationH}x{DilationW}.");
        if (PadTop < 0 || PadLeft < 0 || PadBottom < 0 || PadRight < 0)
            throw new ArgumentException($"Padding must be non-negative: {PadTop},{PadLeft},{PadBottom},{PadRight}.");
        if (Groups < 1 || InC % Groups != 0 || OutC % Groups != 0) throw new ArgumentException($"Groups ({Groups}) must divide input ({InC}) and output ({OutC}) channels.");
        if (OutH < 1 || OutW < 1) throw new ArgumentException($"The input {InH}x{InW} is too small for a {KernelH}x{KernelW} kernel with stride {StrideH}x{StrideW} and this padding.");
    }
}
