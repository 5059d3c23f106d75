using MobileNetSharp.Graph;
using MobileNetSharp.Kernels.Simd;
namespace MobileNetSharp.Kernels.Depthwise;

internal sealed unsafe partial class DepthwiseConvolution
{
    /// <summary>
    /// <see cref="Run"/> on an input that is a training-mode batch norm's output, never written: each image is normalized
    /// from the batch norm's input into the task's scratch (a zero-padded copy on small maps, as <see cref="Run"/> makes
    /// one) and convolved there. Tasks take whole images: with <paramref name="moments"/>, one task per moments block, cut in
    /// whole images (<see cref="NormalizedMomentsGranule"/>), each image's output merged into the block's moments in
    /// L1-sized chunks right after it is made.
    /// </summary>
    /// <param name="scratch">At least <see cref="NormalizedScratchLength"/> floats.</param>
    public void RunNormalized(int batch, in BatchNormApplyRows input, float* output, in Activation activation, Workers workers, float* scratch, double* moments)
    {
        float* w = _packed.Pointer;
        var args = new NormalizedArgs
        {
            Conv = new DepthwiseArgs
            {
                Output = output, Weights = w, Bias = w + _g.KernelH * _g.KernelW * _cPad,
                InH = _padded ? _padH : _g.InH, InW = _padded ? _padW : _g.InW, InC = _g.InC, OutC = _g.OutC, Multiplier = _g.OutC / _g.InC,
                OutH = _g.OutH, OutW = _g.OutW, KH = _g.KernelH, KW = _g.KernelW, SH = _g.StrideH, SW = _g.StrideW, DH = _g.DilationH, DW = _g.DilationW,
                PadTop = _padded ? 0 : _g.PadTop, PadLeft = _padded ? 0 : _g.PadLeft, CPad = _cPad, Activation = activation, Isa = _isa, OverlapOk = true,
            },
            Input = input, Output = output, Scratch = scratch, Moments = moments, Batch = batch,
            Tasks = moments != null ? ChannelMoments.Blocks(batch * _g.OutH * _g.OutW, _g.OutC) : Math.Min(batch, ChannelMoments.MaxBlocks),
        };
        // A large output is written around the caches, chunk by chunk from a per-task scratch (StreamingStore).
        float[]? stream = null;
        if (moments != null && StreamingStore.Pays((long)batch * _g.OutH * _g.OutW * _g.OutC))
        {
            args.StreamFloats = DepthwiseKernel.ImageMergingStreamFloats(_g.OutC, _g.OutW);
            stream = System.Buffers.ArrayPool<float>.Shared.Rent(checked((int)(args.Tasks * args.StreamFloats)));
        }
        args.Self = System.Runtime.InteropServices.GCHandle.ToIntPtr(System.Runtime.InteropServices.GCHandle.Alloc(this)); // freed below
        try
        {
            fixed (float* ps = stream)
            {
                args.Stream = ps;
                if (workers.Count == 1 || args.Tasks == 1) for (int t = 0; t < args.Tasks; t++) NormalizedTask(&args, t);
                else workers.For(args.Tasks, &NormalizedTask, &args);
            }
        }
        finally
        {
            System.Runtime.InteropServices.GCHandle.FromIntPtr(args.Self).Free();
            if (stream != null) System.Buffers.ArrayPool<float>.Shared.Return(stream);
        }
        GC.KeepAlive(_packed);
    }

    /// <summary>Floats of scratch <see cref="RunNormalized"/> uses for a batch: one input image (padded on small maps) per task.</summary>
    public long NormalizedScratchLength(int batch) => (_padded ? PaddedImage : (long)_g.InH * _g.InW * _g.InC) * Math.Min(batch, ChannelMoments.MaxBlocks);

    /// <summary>The moments' granule of <see cref="RunNormalized"/>: an image's output pixels.</summary>
    public int NormalizedMomentsGranule => _g.OutH * _g.OutW;

    private struct NormalizedArgs
    {
        public DepthwiseArgs Conv;
        public BatchNormApplyRows Input;
        public float* Output, Scratch;
        public double* Moments;
        public int Batch, Tasks;
        public nint Self;
        /// <summary>Null, or [Tasks][StreamFloats]: where each task makes its output chunks before streaming them out.</summary>
        public float* Stream;
        public long StreamFloats;
    }

    private static void NormalizedTask(void* context, int index)
    {
        var a = (NormalizedArgs*)context;
        var conv = (DepthwiseConvolution)System.Runtime.InteropServices.GCHandle.FromIntPtr(a->Self).Target!;
        ref readonly var g = ref conv._g;
        int pixels = g.OutH * g.OutW, inPixels = g.InH * g.InW, c = g.OutC;
        long outImage = (long)pixels * c;
        int n0, n1;
        double* mean = null, m2 = null;
        if (a->Moments != null)
        {
            var (p0, p1) = ChannelMoments.BlockRows(a->Batch * pixels, c, index, pixels);
            (n0, n1) = (p0 / pixels, p1 / pixels);
            mean = a->Moments + (long)index * 2 * c;
            m2 = mean + c;
        }
        else (n0, n1) = Workers.Split(a->Batch, a->Tasks, index);
        DepthwiseArgs args = a->Conv;
        float* image = a->Scratch + index * (conv._padded ? conv.PaddedImage : (long)inPixels * g.InC); // task indices stay below MaxBlocks
        args.Input = image;
        for (int n = n0; n < n1; n++)
        {
            if (conv._padded) conv.PadNormalized(a->Input, n, image);
            else a->Input.Write((long)n * inPixels, inPixels, image, args.Isa);
            args.Output = a->Output + n * outImage;
            // With moments, each chunk of whole output rows (about an L1's worth) is merged right after it is made.
            if (mean != null) DepthwiseKernel.RunImageMerging(ref args, conv._shape, mean, m2, (n - n0) * pixels, a->Stream == null ? null : a->Stream + index * a->StreamFloats);
            else DepthwiseKernel.Run(ref args, conv._shape, 1, Workers.Single);
        }
    }

    /// <summary><see cref="PadCopy"/> of image <paramref name="n"/> of the batch norm's output, normalized row by row into place.</summary>
    private void PadNormalized(in BatchNormApplyRows input, int n, float* padded)
    {
        int c = _g.InC;
        var dst = new Span<float>(padded, checked(_padH * _padW * c));
        int x0 = Math.Max(0, _g.PadLeft), x1 = Math.Min(_padW, _g.PadLeft + _g.InW);
        for (int py = 0; py < _padH; py++)
        {
            Span<float> row = dst.Slice(py * _padW * c, _padW * c);
            int iy = py - _g.PadTop;
            if ((uint)iy >= (uint)_g.InH || x1 <= x0) { row.Clear(); continue; }
            row[..(x0 * c)].Clear();
            input.Write(((long)n * _g.InH + iy) * _g.InW + x0 - _g.PadLeft, x1 - x0, padded + ((long)py * _padW + x0) * c, _isa);
            row[(x1 * c)..].Clear();
        }
    }
}
