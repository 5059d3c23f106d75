using MobileNetSharp.Graph;
using MobileNetSharp.Kernels.Depthwise;

namespace MobileNetSharp.Kernels.Fused;

/// <summary>
/// An inverted-residual block (MobileNetV2 §3.3: 1x1 expand -> depthwise -> 1x1 project, + residual) or a
/// depthwise-separable pair (MobileNetV1: depthwise -> 1x1), run in bands of output rows so the wide
/// intermediate tensors never leave the cache. For each band of <see cref="BandRows"/> depthwise output rows,
/// the expand GEMM fills a window with just the expanded input rows the band's windows read (rows that
/// the previous band already expanded are moved to the front, not recomputed), the depthwise kernel turns
/// the window into the band's depthwise output, and the project GEMM writes the band's final rows (with the
/// residual) straight to the output. Threads take contiguous ranges of output rows, each with its own window.
/// <para>
/// The same kernels (<see cref="Gemm.GemmDriver"/>, <see cref="DepthwiseKernel"/>) compute every element with
/// the same operations in the same order as the layer-by-layer plan, so the result is bit-identical to it;
/// the only extra work is the expanded rows at the top of each thread's range (at most kernel - stride rows).
/// </para>
/// Layout: NHWC throughout. Expand: [N, H, W, Cin] -> [N, H, W, Cexp]; depthwise: -> [N, OH, OW, Cexp];
/// project: -> [N, OH, OW, Cout], residual (optional) [N, OH, OW, Cout].
/// </summary>
internal sealed unsafe class BandedBlock
{
    private readonly Conv2dOperator? _expand;
    private readonly Conv2dOperator _depthwise, _project;
    private readonly Conv2dGeometry _d;      // the depthwise geometry (batch 1)

    /// <summary>Depthwise output rows per band.</summary>
    public int BandRows { get; }

    /// <summary>Floats of scratch one thread's range needs: the expanded-row window and the band's depthwise output.</summary>
    public long FloatsPerRange { get; }

    private BandedBlock(Conv2dOperator? expand, Conv2dOperator depthwise, Conv2dOperator project, int bandRows)
    {
        (_expand, _depthwise, _project, _d, BandRows) = (expand, depthwise, project, depthwise.Geometry, bandRows);
        FloatsPerRange = (expand is null ? 0 : WindowRows(_d, bandRows) * (long)_d.InW * _d.InC) + (long)bandRows * _d.OutW * _d.OutC;
    }

    /// <summary>Expanded rows a band of <paramref name="bandRows"/> output rows reads at most (no dilation: kernel + (rows - 1) * stride).</summary>
    private static int WindowRows(in Conv2dGeometry d, int bandRows) => Math.Min(d.InH, d.KernelH + (bandRows - 1) * d.StrideH);

    /// <summary>
    /// The banded form of expand (may be null) -> depthwise -> project when the three can chain, the tensors
    /// between them hold more than <paramref name="cacheBytes"/> (smaller ones stay in cache layer by layer
    /// anyway) and the intermediate traffic saved is at least <paramref name="savingsFactor"/> times the weight
    /// traffic the bands add; null otherwise. The band is the largest whose scratch fits in <paramref name="cacheBytes"/>
    /// (one row when not even that fits; the scratch then exceeds the budget).
    /// </summary>
    public static BandedBlock? TryCreate(Conv2dOperator? expand, Conv2dOperator depthwise, Conv2dOperator project, int batch,
        long cacheBytes, long savingsFactor = DefaultSavingsFactor)
    {
        var d = depthwise.Geometry;
        if (depthwise.Depthwise is not { Padded: false } dw || !dw.RowKernel || d.DilationH != 1) return null;
        if (!project.IsPointwiseGemm || project.Geometry.InC != d.OutC || project.Geometry.InH != d.OutH || project.Geometry.InW != d.OutW) return null;
        if (expand is not null && (!expand.IsPointwiseGemm || expand.Geometry.OutC != d.InC || expand.Geometry.InH != d.InH || expand.Geometry.InW != d.InW)) return null;
        // A pair whose 1x1 widens the channels (MobileNetV1's 32 -> 64, 128 -> 256, ...) saves only the depthwise output,
        // narrower than its own input and output: measured, banding V1's such pairs was no faster and its scratch
        // raised the arena (4.8 -> 5.3 MB).
        if (expand is null && project.Geometry.OutC > d.OutC) return null;
        // Layer by layer, a 1x1 over at most Gemv.MaxRows pixels takes Gemv, whose sums split into two accumulators;
        // the bands always take the packed GEMM, so such maps would not be bit-identical (and are never worth banding).
        if ((long)batch * d.OutH * d.OutW <= Gemm.Gemv.MaxRows || (expand is not null && (long)batch * d.InH * d.InW <= Gemm.Gemv.MaxRows)) return null;
        long between = (long)batch * d.OutH * d.OutW * d.OutC + (expand is null ? 0 : (long)batch * d.InH * d.InW * d.InC);
        if (between * sizeof(float) <= cacheBytes) return null;
        int rows = 1;
        while (rows < d.OutH && new BandedBlock(expand, depthwise, project, rows + 1).FloatsPerRange * sizeof(float) <= cacheBytes) rows++;
        // Each band streams the block's weights again; layer by layer streams each intermediate twice (written,
        // then read). Fuse only when that saves several times what the repeated weights cost: on small late maps
        // (7x7 or 14x14, wide layers) the weights outweigh the activations.
        long weights = (long)d.OutC * (d.KernelH * d.KernelW + project.Geometry.OutC) + (expand is null ? 0 : (long)expand.Geometry.InC * d.InC);
        long bands = (long)batch * ((d.OutH + rows - 1) / rows);
        if (2 * between < savingsFactor * (bands - 1) * weights) return null;
        return new BandedBlock(expand, depthwise, project, rows);
    }

    /// <summary>How many times the intermediate traffic saved must exceed the extra weight traffic (measured: fusing
    /// 14x14 and 7x7 blocks of MobileNetV2, ratios near 2 and below 1, made the whole model 1-8% slower).</summary>
    public const long DefaultSavingsFactor = 4;

    private struct Args
    {
        public BandedBlock Self;
        public float* Input, Output, Residual, Scratch;
        public int Rows, Ranges;
    }

    /// <summary>
    /// output = project(depthwise(expand(input))) (+ residual), NHWC, for <paramref name="batch"/> images.
    /// <paramref name="scratch"/> holds <see cref="FloatsPerRange"/> floats for each of up to <paramref name="maxRanges"/>
    /// thread ranges. Allocates nothing.
    /// </summary>
    public void Run(int batch, float* input, float* output, float* residual, float* scratch, int maxRanges, Workers workers)
    {
        var self = this;
        var args = new Args { Self = self, Input = input, Output = output, Residual = residual, Scratch = scratch, Rows = batch * _d.OutH };
        args.Ranges = Math.Max(1, Math.Min(Math.Min(workers.Count, maxRanges), args.Rows));
        workers.For(args.Ranges, &Task, &args);
        GC.KeepAlive(self);
    }

    private static void Task(void* context, int index)
    {
        Args* a = (Args*)context;
        (int r0, int r1) = Workers.Split(a->Rows, a->Ranges, index);
        a->Self.RunRange(a, r0, r1, a->Scratch + index * a->Self.FloatsPerRange);
    }

    private void RunRange(Args* a, int row0, int row1, float* scratch)
    {
        ref readonly Conv2dGeometry d = ref _d;
        long inImage = (long)d.InH * d.InW, outImage = (long)d.OutH * d.OutW;
        int cIn = _expand?.Geometry.InC ?? d.InC, cExp = d.InC, cOut = _project.Geometry.OutC;
        long expRow = (long)d.InW * cExp;
        float* window = scratch;
        float* band = _expand is null ? scratch : scratch + WindowRows(d, BandRows) * expRow;
        int wImage = -1, w0 = 0, w1 = 0; // the window holds expanded rows [w0, w1) of image wImage

        for (int row = row0; row < row1;)
        {
            int n = row / d.OutH, oy0 = row % d.OutH;
            int oy1 = Math.Min(Math.Min(d.OutH, oy0 + BandRows), oy0 + (row1 - row));
            float* source;
            int sourceRow0, sourceRows;
            if (_expand is null)
            {
                source = a->Input + n * inImage * cExp;
                (sourceRow0, sourceRows) = (0, d.InH);
            }
            else
            {
                int e0 = Math.Max(0, oy0 * d.StrideH - d.PadTop);
                int e1 = Math.Max(e0, Math.Min(d.InH, (oy1 - 1) * d.StrideH - d.PadTop + d.KernelH));
                int kept = 0;
                if (wImage == n && e0 >= w0 && e0 < w1)
                {
                    kept = w1 - e0;
                    new ReadOnlySpan<float>(window + (e0 - w0) * expRow, checked((int)(kept * expRow))).CopyTo(new Span<float>(window, checked((int)(kept * expRow))));
                }
                int fresh = e1 - e0 - kept;
                if (fresh > 0)
                    _expand.RunPointwiseRows(fresh * d.InW, a->Input + (n * inImage + (long)(e0 + kept) * d.InW) * cIn, window + kept * expRow, null, Workers.Single);
                (wImage, w0, w1) = (n, e0, e1);
                source = window;
                (sourceRow0, sourceRows) = (e0, e1 - e0);
            }
            _depthwise.RunDepthwiseBand(source, sourceRow0, sourceRows, oy0, oy1, band);
            long o = (n * outImage + (long)oy0 * d.OutW) * cOut;
            _project.RunPointwiseRows((oy1 - oy0) * d.OutW, band, a->Output + o, a->Residual == null ? null : a->Residual + o, Workers.Single);
            row += oy1 - oy0;
        }
    }
}
