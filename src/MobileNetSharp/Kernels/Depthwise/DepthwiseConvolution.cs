using MobileNetSharp.Graph;
namespace MobileNetSharp.Kernels.Depthwise;

/// <summary>
/// A depthwise convolution with its weights packed once as [tap][OutC padded to 16] plus a padded bias
/// row, so every weight and bias load is a whole vector whatever the ISA and channel count.
/// </summary>
internal sealed unsafe partial class DepthwiseConvolution
{
    private readonly Conv2dGeometry _g;
    private readonly AlignedFloats _packed;
    private readonly int _cPad;
    private readonly DepthwiseShape _shape;
    private readonly IsaLevel _isa;
    // Small maps: the input is first copied into a zero-padded scratch image of _padH x _padW pixels, so every
    // output pixel takes the four-pixel interior kernel instead of the per-pixel border path.
    private readonly bool _padded;
    private readonly int _padH, _padW;

    public DepthwiseConvolution(in Conv2dGeometry g, ReadOnlySpan<float> weightsOihw, ReadOnlySpan<float> bias, IsaLevel isa)
    {
        _g = g;
        _isa = isa;
        _cPad = (g.OutC + 15) & ~15;
        int taps = g.KernelH * g.KernelW;
        _packed = new AlignedFloats((taps + 1) * _cPad);
        Pack(weightsOihw, bias);
        _shape = Choose(g);
        _padH = (g.OutH - 1) * g.StrideH + (g.KernelH - 1) * g.DilationH + 1;
        _padW = (g.OutW - 1) * g.StrideW + (g.KernelW - 1) * g.DilationW + 1;
        _padded = _shape != DepthwiseShape.Multiplier && PaddingPays(g);
    }

    /// <summary>Weights [tap][channel] (channels padded to 16 with zeros), then the bias row (zeros without a bias).</summary>
    private void Pack(ReadOnlySpan<float> weightsOihw, ReadOnlySpan<float> bias)
    {
        int taps = _g.KernelH * _g.KernelW;
        if (weightsOihw.Length != _g.OutC * taps || (!bias.IsEmpty && bias.Length != _g.OutC))
            throw new ArgumentException($"Depthwise weights: {weightsOihw.Length} values and {bias.Length} bias values for {_g.OutC} channels of {taps} taps.");
        Span<float> packed = _packed.Span;
        packed.Slice(taps * _cPad, _cPad).Clear();
        for (int oc = 0; oc < _g.OutC; oc++)
        {
            for (int t = 0; t < taps; t++) packed[t * _cPad + oc] = weightsOihw[oc * taps + t];
            if (!bias.IsEmpty) packed[taps * _cPad + oc] = bias[oc];
        }
    }

    /// <summary>
    /// New weights and bias for this convolution, packed into its own buffer (a training step's weights change every
    /// run). Only for an instance its caller owns alone: <see cref="Resized"/> copies share the buffer.
    /// </summary>
    /// <exception cref="ArgumentException">The weights are not OutC x KH x KW, or the bias neither empty nor OutC long.</exception>
    internal void Repack(ReadOnlySpan<float> weightsOihw, ReadOnlySpan<float> bias) => Pack(weightsOihw, bias);

    /// <summary>The same packed weights for another input size (plans for other H x W share them).</summary>
    private DepthwiseConvolution(DepthwiseConvolution source, in Conv2dGeometry g)
    {
        (_g, _isa, _cPad, _packed, _shape) = (g, source._isa, source._cPad, source._packed, source._shape);
        _padH = (g.OutH - 1) * g.StrideH + (g.KernelH - 1) * g.DilationH + 1;
        _padW = (g.OutW - 1) * g.StrideW + (g.KernelW - 1) * g.DilationW + 1;
        _padded = _shape != DepthwiseShape.Multiplier && PaddingPays(g);
    }

    /// <summary>This convolution at another input size (same kernel, strides, pads and channels), sharing the packed weights.</summary>
    public DepthwiseConvolution Resized(in Conv2dGeometry g) => new(this, g);

    /// <summary>
    /// Whether the zero-padded copy pays: when half or more of the output columns would otherwise take the
    /// per-pixel border path (7x7 with a 5x5 kernel: all of them). Measured: at a quarter (14x14, 5x5: 4 of 14)
    /// the copy (a pass over a padded image larger than the input) already costs more than it saves.
    /// </summary>
    private static bool PaddingPays(in Conv2dGeometry g)
    {
        if (g.OutW < 4 || (g.PadTop | g.PadLeft | g.PadBottom | g.PadRight) == 0) return false;
        int oxL = Math.Min((g.PadLeft + g.StrideW - 1) / g.StrideW, g.OutW);
        int span = g.InW - 1 - (g.KernelW - 1) * g.DilationW + g.PadLeft;
        int oxR = Math.Max(oxL, Math.Min(span < 0 ? 0 : span / g.StrideW + 1, g.OutW));
        int fast = oxR - oxL >= 4 ? oxR - oxL : 0; // interior columns all go four at a time (the last group overlapping)
        return 2 * (g.OutW - fast) >= g.OutW;
    }

    /// <summary>
    /// Floats of scratch <see cref="Run"/> of <paramref name="batch"/> images uses: on small maps one zero-padded input
    /// image per image task (<see cref="ImageTasks"/>), else 0.
    /// </summary>
    public long ScratchLength(int batch) => _padded ? PaddedImage * ImageTasks(batch) : 0;

    private long PaddedImage => (long)_padH * _padW * _g.InC;

    /// <summary>
    /// Small maps in a batch run an image per task, each task with its own padded copy: a 4x4 map is too little work
    /// to split between threads (a fork-join per image took 2 threads 2x longer than one).
    /// </summary>
    private static int ImageTasks(int batch) => Math.Min(batch, ChannelMoments.MaxBlocks);

    public string Name => _shape switch
    {
        DepthwiseShape.K3S1 => "dw3x3s1",
        DepthwiseShape.K3S2 => "dw3x3s2",
        DepthwiseShape.K5S1 => "dw5x5s1",
        DepthwiseShape.K5S2 => "dw5x5s2",
        _ => "dw-generic",
    };

    private static DepthwiseShape Choose(in Conv2dGeometry g)
    {
        if (g.OutC != g.InC) return DepthwiseShape.Multiplier;
        bool square = g.KernelH == g.KernelW && g.StrideH == g.StrideW && g.DilationH == 1 && g.DilationW == 1;
        return (square, g.KernelW, g.StrideW) switch
        {
            (true, 3, 1) => DepthwiseShape.K3S1,
            (true, 3, 2) => DepthwiseShape.K3S2,
            (true, 5, 1) => DepthwiseShape.K5S1,
            (true, 5, 2) => DepthwiseShape.K5S2,
            _ => DepthwiseShape.Generic,
        };
    }

    /// <param name="scratch">At least <see cref="ScratchLength"/> floats for <paramref name="batch"/> images, or null (then
    /// small maps take the border path instead of the padded copy).</param>
    /// <param name="moments">Null, or where the output's <see cref="ChannelMoments"/> go (partials [blocks][2][OutC], blocks
    /// cut in whole output rows, or in whole images on the padded path: <see cref="MomentsGranule"/>).</param>
    public void Run(int batch, float* input, float* output, float* residual, in Activation activation, Workers workers, float* scratch,
        double* moments = null)
    {
        float* w = _packed.Pointer;
        DepthwiseArgs args = new()
        {
            Input = input, Output = output, Residual = residual, Weights = w,
            Bias = w + _g.KernelH * _g.KernelW * _cPad,
            InH = _g.InH, InW = _g.InW, InC = _g.InC, OutC = _g.OutC, Multiplier = _g.OutC / _g.InC,
            OutH = _g.OutH, OutW = _g.OutW, KH = _g.KernelH, KW = _g.KernelW,
            SH = _g.StrideH, SW = _g.StrideW, DH = _g.DilationH, DW = _g.DilationW,
            PadTop = _g.PadTop, PadLeft = _g.PadLeft, CPad = _cPad, Activation = activation, Isa = _isa,
            OverlapOk = residual == null || residual != output, Moments = moments,
        };
        if (_padded && scratch != null)
        {
            args.InH = _padH;
            args.InW = _padW;
            args.PadTop = args.PadLeft = 0;
            args.Moments = null;
            var images = new ImageArgs { Conv = this, Args = &args, Input = input, Output = output, Residual = residual, Scratch = scratch, Moments = moments, Batch = batch };
            if (moments != null)
            {
                // One task per moments block of whole images (fixed by the shape: statistics independent of the threads).
                int blocks = ChannelMoments.Blocks(batch * _g.OutH * _g.OutW, _g.OutC);
                if (workers.Count == 1 || blocks == 1) for (int b = 0; b < blocks; b++) ImageTask(&images, b);
                else workers.For(blocks, &ImageTask, &images);
            }
            else if (batch == 1 || workers.Count == 1)
            {
                images.Workers = workers; // one image at a time, each split between the workers
                images.Tasks = 1;
                ImageTask(&images, 0);
            }
            else
            {
                images.Tasks = ImageTasks(batch);
                workers.For(images.Tasks, &ImageTask, &images);
            }
        }
        else
        {
            DepthwiseKernel.Run(ref args, _shape, batch, workers);
        }
        GC.KeepAlive(_packed); // the kernels hold a raw pointer into it
    }

    private struct ImageArgs
    {
        public DepthwiseConvolution Conv;
        public DepthwiseArgs* Args;
        public float* Input, Output, Residual, Scratch;
        public double* Moments;
        public int Batch, Tasks;
        /// <summary>Null: each image runs on the task's own thread.</summary>
        public Workers? Workers;
    }

    /// <summary>
    /// Images of task <paramref name="index"/> (a contiguous range; a moments block when gathering), each copied into
    /// the task's padded scratch image and convolved; with moments, merged into the block's after each image.
    /// </summary>
    private static void ImageTask(void* context, int index)
    {
        var a = (ImageArgs*)context;
        var conv = a->Conv;
        ref readonly var g = ref conv._g;
        long inImage = (long)g.InH * g.InW * g.InC, outImage = (long)g.OutH * g.OutW * g.OutC;
        int pixels = g.OutH * g.OutW;
        int n0, n1;
        double* mean = null, m2 = null;
        if (a->Moments != null)
        {
            var (p0, p1) = ChannelMoments.BlockRows(a->Batch * pixels, g.OutC, index, pixels);
            (n0, n1) = (p0 / pixels, p1 / pixels);
            mean = a->Moments + (long)index * 2 * g.OutC;
            m2 = mean + g.OutC;
        }
        else (n0, n1) = Workers.Split(a->Batch, a->Tasks, index);
        DepthwiseArgs args = *a->Args;
        args.Input = a->Scratch + index * conv.PaddedImage; // block indices below the batch size: one slot each
        for (int n = n0; n < n1; n++)
        {
            conv.PadCopy(a->Input + n * inImage, args.Input);
            args.Output = a->Output + n * outImage;
            args.Residual = a->Residual == null ? null : a->Residual + n * outImage;
            DepthwiseKernel.Run(ref args, conv._shape, 1, a->Workers ?? Workers.Single);
            if (mean != null) ChannelMoments.AddChunk(args.Isa, args.Output, pixels, g.OutC, mean, m2, (n - n0) * pixels);
        }
    }

    /// <summary>Whether <see cref="Run"/> first copies each image into a zero-padded scratch image (small maps).</summary>
    public bool Padded => _padded;

    /// <summary>The rows (output pixels) per unit of the moments' blocks: an output row, or an image on the padded path.</summary>
    public int MomentsGranule(bool withScratch) => _padded && withScratch ? _g.OutH * _g.OutW : _g.OutW;

    /// <summary>One of the four specialised square row kernels (3x3 or 5x5, stride 1 or 2, no dilation, multiplier 1).</summary>
    public bool RowKernel => _shape is DepthwiseShape.K3S1 or DepthwiseShape.K3S2 or DepthwiseShape.K5S1 or DepthwiseShape.K5S2;

    /// <summary>
    /// Output rows [oy0, oy1) of one image, on the caller's thread, into <paramref name="output"/> (row oy0 first).
    /// The input rows [sourceRow0, sourceRow0 + sourceRows) are read from <paramref name="source"/> (row sourceRow0
    /// first); every window row outside them counts as padding, so the range must hold every real input row these
    /// output rows read (the top and bottom padding of the image stay outside it). The row kernels see this as an
    /// image of sourceRows rows whose padding on top is PadTop + sourceRow0 - oy0 * stride (negative when the source
    /// starts above the band's first window row, e.g. when it is the whole image) and compute each pixel with the
    /// same operations as <see cref="Run"/>.
    /// </summary>
    public void RunBand(float* source, int sourceRow0, int sourceRows, int oy0, int oy1, float* output, in Activation activation)
    {
        float* w = _packed.Pointer;
        DepthwiseArgs args = new()
        {
            Input = source, Output = output, Residual = null, Weights = w,
            Bias = w + _g.KernelH * _g.KernelW * _cPad,
            InH = sourceRows, InW = _g.InW, InC = _g.InC, OutC = _g.OutC, Multiplier = 1,
            OutH = oy1 - oy0, OutW = _g.OutW, KH = _g.KernelH, KW = _g.KernelW,
            SH = _g.StrideH, SW = _g.StrideW, DH = 1, DW = 1,
            PadTop = _g.PadTop + sourceRow0 - oy0 * _g.StrideH, PadLeft = _g.PadLeft, CPad = _cPad, Activation = activation, Isa = _isa,
            OverlapOk = true,
        };
        DepthwiseKernel.Run(ref args, _shape, 1, Workers.Single);
        GC.KeepAlive(_packed);
    }

    /// <summary>Copies one input image into the _padH x _padW scratch image, zeros where the window reads padding.</summary>
    private void PadCopy(float* image, float* padded)
    {
        int c = _g.InC;
        var dst = new Span<float>(padded, checked(_padH * _padW * c));
        for (int py = 0; py < _padH; py++)
        {
            Span<float> row = dst.Slice(py * _padW * c, _padW * c);
            int iy = py - _g.PadTop;
            if ((uint)iy >= (uint)_g.InH) { row.Clear(); continue; }
            int x0 = Math.Max(0, _g.PadLeft), x1 = Math.Min(_padW, _g.PadLeft + _g.InW); // padded columns holding input
            row[..(x0 * c)].Clear();
            if (x1 > x0) new ReadOnlySpan<float>(image + ((long)iy * _g.InW + x0 - _g.PadLeft) * c, (x1 - x0) * c).CopyTo(row[(x0 * c)..]);
            row[(Math.Max(x0, x1) * c)..].Clear();
        }
    }
}
