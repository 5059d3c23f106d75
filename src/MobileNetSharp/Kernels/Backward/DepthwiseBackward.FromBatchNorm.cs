using System.Runtime.InteropServices;
using MobileNetSharp.Kernels.Depthwise;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels;

public static unsafe partial class DepthwiseBackward
{
    /// <summary>
    /// dX [N, H, W, C] and dW [C, 1, KH, KW] of a depthwise convolution whose dy is the input gradient of the training-mode
    /// batch norm after it, deferred (<see cref="BatchNormGradRows"/>): image by image, the image's dy is computed into a
    /// per-task scratch (one image, in L2) and both gradients read it there, so the batch norm never writes dy and the two
    /// kernels do not each read it back from memory. Images are cut into a fixed number of groups (the shape alone), each
    /// summing its own dW partial, added in group order: 1 and N threads give identical bits. dX equals
    /// <see cref="InputGradient"/>'s bits; dW differs from <see cref="WeightGradient"/>'s only in summation order.
    /// </summary>
    /// <exception cref="ArgumentException">Not one filter per channel, dy's channels not C, or a buffer shorter than its shape.</exception>
    /// <param name="sums">Null, or the sums of a batch norm whose output gradient is dX, gathered from each image's dX as it is
    /// made (partials [<see cref="ImageGroupCount"/>][2][C], zeroed here).</param>
    /// <param name="normalizedX">Null, or x as a batch norm's output never written: each image is normalized into scratch
    /// (<see cref="BatchNormApplyRows"/>) for its dW, and <paramref name="x"/> is not read.</param>
    internal static void Gradients(in Conv2dGeometry g, in BatchNormGradRows dy, ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> dx,
        Span<float> dw, Workers? workers = null, IsaLevel? isa = null, BatchNormGradSums* sums = null, BatchNormApplyRows* normalizedX = null)
    {
        Check(g);
        if (normalizedX != null && normalizedX->Channels != g.InC) throw new ArgumentException($"Normalized x has {normalizedX->Channels} channels for {g.InC}.");
        if (dy.Channels != g.OutC || (normalizedX == null && x.Length < g.InputLength) || w.Length < g.WeightLength || dx.Length < g.InputLength || dw.Length < g.WeightLength)
            throw new ArgumentException($"Depthwise backward from a batch norm's gradient: dy has {dy.Channels} channels for {g.OutC}; x {x.Length}, w {w.Length}, dx {dx.Length}, dw {dw.Length} against {g.InputLength}, {g.WeightLength}.");
        workers ??= Workers.Single;
        var level = Isa.Resolve(isa);
        var one = g with { Batch = 1 };
        int taps = g.KernelH * g.KernelW, c = g.InC, groups = ImageGroupCount(g.Batch);
        if (sums != null)
        {
            if (sums->Channels != c) throw new ArgumentException($"Gathered batch-norm sums have {sums->Channels} channels for {c}.");
            new Span<double>(sums->Partials, groups * 2 * c).Clear();
        }
        long outImage = (long)g.OutH * g.OutW * c, inImage = (long)g.InH * g.InW * c;

        // dX of one image: the forward kernel on the flipped kernel at stride 1, else the gather (its tables made once).
        DepthwiseConvolution? conv = null;
        float[]? packed = null;
        int[]? colTaps = null;
        if (TransposedGeometry(one) is { } t)
        {
            var flipped = new float[g.WeightLength];
            for (int ch = 0; ch < c; ch++)
                for (int i = 0; i < taps; i++) flipped[ch * taps + i] = w[ch * taps + taps - 1 - i];
            conv = new DepthwiseConvolution(t, flipped, [], level);
        }
        else (packed, colTaps) = GatherTables(one, w);
        long convScratch = conv?.ScratchLength(1) ?? 0;

        var pool = System.Buffers.ArrayPool<float>.Shared;
        int partialLength = checked(groups * (taps + 1) * c);
        float[] dyScratch = pool.Rent(checked((int)(groups * outImage))), partial = pool.Rent(partialLength), zero = pool.Rent(checked(g.InW * c));
        float[] scratch = pool.Rent(checked((int)Math.Max(1, groups * convScratch)));
        float[] xScratch = pool.Rent(normalizedX == null ? 1 : checked((int)(groups * inImage)));
        // A dX too large to stay in cache is made image by image in scratch and streamed out (StreamingStore).
        float[]? dxStream = StreamingStore.Pays(g.InputLength) ? pool.Rent(checked((int)(groups * inImage))) : null;
        var handle = conv is null ? default : GCHandle.Alloc(conv);
        try
        {
            partial.AsSpan(0, partialLength).Clear();
            zero.AsSpan(0, g.InW * c).Clear();
            fixed (float* px = x, pdx = dx, pdy = dyScratch, pp = partial, pz = zero, ps = scratch, pw = packed, pxs = xScratch, pds = dxStream)
            fixed (int* pct = colTaps)
            {
                var ctx = new ImageGroups
                {
                    Source = dy, One = one, Batch = g.Batch, Groups = groups, Isa = level, X = px, Dx = pdx, DyScratch = pdy, Partial = pp, Zero = pz,
                    Packed = pw, ColTaps = pct, Conv = conv is null ? 0 : GCHandle.ToIntPtr(handle), ConvScratch = ps, ConvScratchLength = convScratch,
                    Sums = sums, NormalizedX = normalizedX, XScratch = pxs, SumsNormalize = sums != null && normalizedX != null && sums->Normalizes(*normalizedX),
                    DxStream = pds,
                };
                if (workers.Count == 1) for (int i = 0; i < groups; i++) ImageGroupTask(&ctx, i);
                else workers.For(groups, &ImageGroupTask, &ctx);
            }
            SumPartials(partial, groups, taps, c, dw, default);
        }
        finally
        {
            if (handle.IsAllocated) handle.Free();
            pool.Return(dyScratch);
            pool.Return(partial);
            pool.Return(zero);
            pool.Return(scratch);
            pool.Return(xScratch);
            if (dxStream != null) pool.Return(dxStream);
        }
    }

    private struct ImageGroups
    {
        public BatchNormGradRows Source;
        public Conv2dGeometry One;
        public int Batch, Groups;
        public IsaLevel Isa;
        public float* X, Dx, DyScratch, Partial, Zero, Packed, ConvScratch;
        public int* ColTaps;
        public nint Conv; // GCHandle of the DepthwiseConvolution for dX, or 0: the gather
        public long ConvScratchLength;
        public BatchNormGradSums* Sums; // null, or where each image's dX adds its batch norm's sums
        public BatchNormApplyRows* NormalizedX; // null, or x computed image by image into XScratch (one image per group)
        public float* XScratch;
        /// <summary>The sums belong to the batch norm that makes x (MobileNetV2: the expansion's), so one pass over its
        /// input gathers them and normalizes x (<see cref="BatchNormGradSums.AddNormalizing"/>).</summary>
        public bool SumsNormalize;
        /// <summary>Null, or [groups][image]: where each image's dX is made, read for the sums, then streamed to Dx.</summary>
        public float* DxStream;
    }

    /// <summary>The image groups of <see cref="Gradients"/> for a batch: fixed by the batch alone.</summary>
    internal static int ImageGroupCount(int batch) => Math.Min(batch, WeightBlocks);

    /// <summary>The images of group <paramref name="index"/>: each one's dy, then its dX, then its dW into the group's partial.</summary>
    private static void ImageGroupTask(void* context, int index)
    {
        var a = (ImageGroups*)context;
        var g = a->One;
        int c = g.InC, taps = g.KernelH * g.KernelW, pixels = g.OutH * g.OutW;
        long outImage = (long)pixels * c, inImage = (long)g.InH * g.InW * c;
        var conv = a->Conv == 0 ? null : (DepthwiseConvolution)GCHandle.FromIntPtr(a->Conv).Target!;
        float* dy = a->DyScratch + index * outImage;
        var (n0, n1) = Workers.Split(a->Batch, a->Groups, index);
        for (int n = n0; n < n1; n++)
        {
            a->Source.Write((long)n * pixels, pixels, dy, a->Isa);
            float* dx = a->DxStream != null ? a->DxStream + index * inImage : a->Dx + n * inImage;
            if (conv is not null) conv.Run(1, dy, dx, null, Graph.Activation.None, Workers.Single, a->ConvScratchLength > 0 ? a->ConvScratch + index * a->ConvScratchLength : null);
            else
            {
                var input = new Args { G = g, Dy = dy, W = a->Packed, Dx = dx, ColTaps = a->ColTaps, Isa = a->Isa, Blocks = 1, Rows = g.InH };
                InputTask(&input, 0);
            }
            float* xImage = a->X + n * inImage;
            long row0 = n * (long)g.InH * g.InW;
            if (a->NormalizedX != null) xImage = a->XScratch + index * inImage;
            if (a->SumsNormalize) a->Sums->AddNormalizing(row0, g.InH * g.InW, dx, index, xImage, a->Isa); // x's image read once for both
            else
            {
                if (a->Sums != null) a->Sums->Add(row0, g.InH * g.InW, dx, index, a->Isa);
                if (a->NormalizedX != null) a->NormalizedX->Write(row0, g.InH * g.InW, xImage, a->Isa);
            }
            if (a->DxStream != null) StreamingStore.Copy(dx, a->Dx + n * inImage, inImage);
            var weight = new Args { G = g, X = xImage, Dy = dy, Partial = a->Partial + (long)index * (taps + 1) * c, Zero = a->Zero, Isa = a->Isa, Blocks = 1, Rows = g.OutH };
            WeightTask(&weight, 0);
        }
    }
}
