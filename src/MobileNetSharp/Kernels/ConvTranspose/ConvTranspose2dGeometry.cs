namespace MobileNetSharp.Kernels;

/// <summary>ONNX ConvTranspose "auto_pad" (kernel-side copy, so the kernels do not depend on graph types).</summary>
public enum ConvTransposeAutoPad { NotSet, SameUpper, SameLower, Valid }

/// <summary>
/// Shapes of a 2-D transposed convolution (ONNX operator spec "ConvTranspose", opset 11+). Logical NCHW
/// semantics; the kernel runs on NHWC. Input [N, InC, InH, InW], weights [InC, OutC / Groups, KernelH, KernelW],
/// output [N, OutC, OutH, OutW] with
/// OutH = StrideH · (InH - 1) + OutputPadH + ((KernelH - 1) · DilationH + 1) - PadTop - PadBottom (likewise W).
/// Output pixel oy receives input row iy through tap ky when oy = iy · StrideH + ky · DilationH - PadTop.
/// Pads are the output's crop at each end; OutputPad adds rows/columns at the bottom/right that only the taps
/// reaching them (or only the bias) fill.
/// </summary>
public readonly record struct ConvTranspose2dGeometry(
    int Batch, int InH, int InW, int InC, int OutC,
    int KernelH, int KernelW,
    int StrideH = 1, int StrideW = 1,
    int DilationH = 1, int DilationW = 1,
    int PadTop = 0, int PadLeft = 0, int PadBottom = 0, int PadRight = 0,
    int OutputPadH = 0, int OutputPadW = 0,
    int Groups = 1)
{
    /// <summary>Largest tensor (elements) a geometry may describe: spans are int-indexed.</summary>
    public const long MaxElements = int.MaxValue;

    public long OutHLong => (long)StrideH * (InH - 1) + OutputPadH + ((long)KernelH - 1) * DilationH + 1 - PadTop - PadBottom;
    public long OutWLong => (long)StrideW * (InW - 1) + OutputPadW + ((long)KernelW - 1) * DilationW + 1 - PadLeft - PadRight;
    /// <summary>Output height; valid after <see cref="Validate"/>.</summary>
    public int OutH => (int)Math.Clamp(OutHLong, 0, int.MaxValue);
    public int OutW => (int)Math.Clamp(OutWLong, 0, int.MaxValue);
    public int InCPerGroup => InC / Groups;
    public int OutCPerGroup => OutC / Groups;
    public long InputLength => (long)Batch * InH * InW * InC;
    public long OutputLength => (long)Batch * OutH * OutW * OutC;
    /// <summary>Weight count in ONNX order [InC, OutC / Groups, KernelH, KernelW].</summary>
    public long WeightLength => (long)InC * OutCPerGroup * KernelH * KernelW;

    /// <summary>Throws ArgumentException with a readable message when the geometry is impossible or absurdly large.</summary>
    public void Validate()
    {
        if (Batch < 1 || InH < 1 || InW < 1 || InC < 1 || OutC < 1)
            throw new ArgumentException($"ConvTranspose dimensions must be positive: batch {Batch}, input {InH}x{InW}x{InC}, {OutC} output channels.");
        if (KernelH < 1 || KernelW < 1 || StrideH < 1 || StrideW < 1 || DilationH < 1 || DilationW < 1)
            throw new ArgumentException($"ConvTranspose kernel, stride and dilation must be positive: kernel {KernelH}x{KernelW}, stride {StrideH}x{StrideW}, dilation {DilationH}x{DilationW}.");
        if (PadTop < 0 || PadLeft < 0 || PadBottom < 0 || PadRight < 0)
            throw new ArgumentException($"ConvTranspose padding must be non-negative: {PadTop},{PadLeft},{PadBottom},{PadRight}.");
        if (OutputPadH < 0 || OutputPadW < 0)
            throw new ArgumentException($"ConvTranspose output_padding must be non-negative: {OutputPadH},{OutputPadW}.");
        if (Groups < 1 || InC % Groups != 0 || OutC % Groups != 0)
            throw new ArgumentException($"ConvTranspose groups ({Groups}) must divide input ({InC}) and output ({OutC}) channels.");
        long oh = OutHLong, ow = OutWLong;
        if (oh < 1 || ow < 1)
            throw new ArgumentException($"ConvTranspose output would be {oh}x{ow}: the pads {PadTop},{PadLeft},{PadBottom},{PadRight} crop more than the {InH}x{InW} input produces.");
        if ((long)Batch * InH * InW * InC > MaxElements || oh * ow > MaxElements || (long)Batch * oh * ow * OutC > MaxElements)
            throw new ArgumentException($"ConvTranspose output {Batch}x{oh}x{ow}x{OutC} is too large (more than {MaxElements} elements).");
        if (WeightLength > MaxElements) throw new ArgumentException($"ConvTranspose weights ({WeightLength}) are too large.");
    }

    /// <summary>
    /// The geometry of an ONNX ConvTranspose node. <paramref name="pads"/> are [top, left, bottom, right] (empty = 0);
    /// <paramref name="outputPadding"/> [h, w] must each be less than the stride or the dilation of its axis (ONNX).
    /// When <paramref name="outputShape"/> [OutH, OutW] is given (or auto_pad is SAME_*: output = input · stride),
    /// the pads are computed from it as the spec says: total = stride · (in - 1) + output_padding +
    /// ((kernel - 1) · dilation + 1) - out; SAME_UPPER puts total / 2 at the beginning, NOTSET and SAME_LOWER put
    /// total - total / 2 there. A negative total (an output larger than the transposed convolution covers) becomes
    /// extra output padding at the end, as ONNX Runtime does (those cells hold only the bias).
    /// </summary>
    public static ConvTranspose2dGeometry FromOnnx(int batch, int inH, int inW, int inC, int outC, int kernelH, int kernelW,
        ReadOnlySpan<int> strides, ReadOnlySpan<int> dilations, ReadOnlySpan<int> pads, ReadOnlySpan<int> outputPadding, int groups,
        ReadOnlySpan<int> outputShape = default, ConvTransposeAutoPad autoPad = ConvTransposeAutoPad.NotSet)
    {
        int sh = At(strides, 0, 1, "strides"), sw = At(strides, 1, 1, "strides");
        int dh = At(dilations, 0, 1, "dilations"), dw = At(dilations, 1, 1, "dilations");
        int oph = At(outputPadding, 0, 0, "output_padding"), opw = At(outputPadding, 1, 0, "output_padding");
        if (!pads.IsEmpty && pads.Length != 4) throw new ArgumentException($"ConvTranspose 2-D needs 4 pads, got {pads.Length}.");
        if (!outputShape.IsEmpty && outputShape.Length != 2) throw new ArgumentException($"ConvTranspose 2-D needs an output_shape of 2 values, got {outputShape.Length}.");
        if (oph < 0 || opw < 0 || (oph >= sh && oph >= dh) || (opw >= sw && opw >= dw))
            throw new ArgumentException($"ConvTranspose output_padding ({oph}, {opw}) must be non-negative and less than the stride ({sh}, {sw}) or the dilation ({dh}, {dw}) of its axis.");
        var g = new ConvTranspose2dGeometry(batch, inH, inW, inC, outC, kernelH, kernelW, sh, sw, dh, dw,
            pads.IsEmpty ? 0 : pads[0], pads.IsEmpty ? 0 : pads[1], pads.IsEmpty ? 0 : pads[2], pads.IsEmpty ? 0 : pads[3], oph, opw, groups);
        bool same = autoPad is ConvTransposeAutoPad.SameUpper or ConvTransposeAutoPad.SameLower;
        if (autoPad == ConvTransposeAutoPad.Valid && outputShape.IsEmpty) g = g with { PadTop = 0, PadLeft = 0, PadBottom = 0, PadRight = 0 };
        if (!outputShape.IsEmpty || same)
        {
            long outH = outputShape.IsEmpty ? (long)inH * sh : outputShape[0], outW = outputShape.IsEmpty ? (long)inW * sw : outputShape[1];
            if (outH < 1 || outW < 1 || outH > MaxElements || outW > MaxElements) throw new ArgumentException($"ConvTranspose output_shape {outH}x{outW} is invalid.");
            bool upper = autoPad == ConvTransposeAutoPad.SameUpper;
            (int pt, int pb, int extraH) = Split((g with { PadTop = 0, PadBottom = 0 }).OutHLong - outH, upper);
            (int pl, int pr, int extraW) = Split((g with { PadLeft = 0, PadRight = 0 }).OutWLong - outW, upper);
            g = g with { PadTop = pt, PadBottom = pb, PadLeft = pl, PadRight = pr, OutputPadH = oph + extraH, OutputPadW = opw + extraW };
        }
        g.Validate();
        return g;
    }

    private static (int Begin, int End, int Extra) Split(long total, bool upper)
    {
        if (total < 0) return (0, 0, (int)Math.Min(-total, int.MaxValue));
        if (total > int.MaxValue) throw new ArgumentException("ConvTranspose: the computed padding is too large.");
        int t = (int)total;
        return upper ? (t / 2, t - t / 2, 0) : (t - t / 2, t / 2, 0);
    }

    private static int At(ReadOnlySpan<int> values, int i, int fallback, string name)
    {
        if (values.IsEmpty) return fallback;
        if (values.Length != 2) throw new ArgumentException($"ConvTranspose 2-D needs 2 {name} values, got {values.Length}.");
        return values[i];
    }
}
