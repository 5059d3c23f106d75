namespace MobileNetSharp.Kernels;

/// <summary>
/// Gradients of any 2-D convolution on NHWC tensors (groups, strides, dilation, asymmetric padding), weights in
/// ONNX OIHW. Gradients are written, not accumulated. The convolution's kind picks the path:
/// <list type="bullet">
/// <item>1x1, stride 1, no padding, one group: the GEMMs of <see cref="LinearBackward"/> over the N·H·W rows;</item>
/// <item>depthwise with one filter per channel: <see cref="DepthwiseBackward"/>;</item>
/// <item>anything else, per group g and one image at a time (so the column buffers are one image's, a few MB,
/// pooled, instead of the whole batch's hundreds of MB): col = im2col(x_n) [OH·OW, K] with K = KH·KW·(C/groups) in
/// (ky, kx, c) order; dcol = dY_n,g · W_g on <see cref="MatMul"/> and dx_n = col2im(dcol) (scatter-add); dW_g is the
/// sum over images of dY_n,gᵀ · col, reduced by <see cref="OuterProductKernel"/> straight from the row-major dY (no
/// transposes) into per-group partials over a fixed image partition, summed in order: thread-count independent.</item>
/// </list>
/// </summary>
public static unsafe class ConvBackward
{
    /// <summary>dx [N, H, W, C] from dy [N, OH, OW, OutC] and w [OutC, C/groups, KH, KW].</summary>
    public static void InputGradient(in Conv2dGeometry g, ReadOnlySpan<float> dy, ReadOnlySpan<float> w, Span<float> dx, Workers? workers = null, IsaLevel? isa = null)
    {
        g.Validate();
        CheckBuffers(g, dy.Length, w.Length, dx.Length, "dx");
        workers ??= Workers.Single;
        if (g.IsPointwise) { LinearBackward.InputGradient(dy, w, dx, checked(g.Batch * g.InH * g.InW), g.InC, g.OutC, workers, isa); return; }
        if (g.IsDepthwise && g.OutC == g.InC) { DepthwiseBackward.InputGradient(g, dy, w, dx, workers, isa); return; }

        int pixels = checked(g.OutH * g.OutW), cpg = g.InCPerGroup, opg = g.OutCPerGroup, K = g.KernelH * g.KernelW * cpg;
        var pool = System.Buffers.ArrayPool<float>.Shared;
        var dyG = pool.Rent(pixels * opg);
        var wr = pool.Rent(opg * K);
        var dcol = pool.Rent(checked(pixels * K));
        try
        {
            dx[..(int)g.InputLength].Clear();
            for (int grp = 0; grp < g.Groups; grp++)
            {
                ReorderWeights(g, w, wr, grp);
                for (int n = 0; n < g.Batch; n++)
                {
                    var dyn = dy.Slice(n * pixels * g.OutC, pixels * g.OutC);
                    ReadOnlySpan<float> dyg = g.Groups == 1 ? dyn : Columns(dyn, dyG, pixels, g.OutC, grp * opg, opg);
                    MatMul.Run(dyg, wr.AsSpan(0, opg * K), dcol.AsSpan(0, pixels * K), pixels, opg, K, workers, isa);
                    fixed (float* pc = dcol, px = dx) Col2Im(g, pc, px, grp, n);
                }
            }
        }
        finally
        {
            pool.Return(dyG);
            pool.Return(wr);
            pool.Return(dcol);
        }
    }

    /// <summary>dw [OutC, C/groups, KH, KW] and db [OutC] (empty to skip) from x [N, H, W, C] and dy [N, OH, OW, OutC].</summary>
    public static void WeightGradient(in Conv2dGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dw, Span<float> db, Workers? workers = null, IsaLevel? isa = null)
    {
        g.Validate();
        CheckBuffers(g, dy.Length, dw.Length, x.Length, "x");
        workers ??= Workers.Single;
        if (g.IsPointwise) { LinearBackward.WeightGradient(x, dy, dw, db, checked(g.Batch * g.InH * g.InW), g.InC, g.OutC, workers, isa); return; }
        if (g.IsDepthwise && g.OutC == g.InC) { DepthwiseBackward.WeightGradient(g, x, dy, dw, db, workers, isa); return; }

        int P = checked(g.Batch * g.OutH * g.OutW), pixels = g.OutH * g.OutW, opg = g.OutCPerGroup, K = g.KernelH * g.KernelW * g.InCPerGroup;
        int groups = Math.Min(g.Batch, ImageGroups), size = opg * K;
        var pool = System.Buffers.ArrayPool<float>.Shared;
        var partial = pool.Rent(checked(groups * size));
        var col = pool.Rent(checked(groups * pixels * K));
        var dwr = pool.Rent(size);
        try
        {
            fixed (float* px = x, pdy = dy, pp = partial, pc = col)
                for (int grp = 0; grp < g.Groups; grp++)
                {
                    var args = new WeightArgs { G = g, X = px, Dy = pdy, Partial = pp, Col = pc, Group = grp, Groups = groups, Isa = Isa.Resolve(isa), Transposed = TransposedPartial(g, isa) };
                    if (workers.Count == 1) for (int i = 0; i < groups; i++) WeightTask(&args, i);
                    else workers.For(groups, &WeightTask, &args);
                    // Sum the image groups' partials in order, then [oc][(ky, kx, ci)] -> OIHW [oc][ci][ky][kx].
                    var sum = dwr.AsSpan(0, size);
                    partial.AsSpan(0, size).CopyTo(sum);
                    for (int i = 1; i < groups; i++) System.Numerics.Tensors.TensorPrimitives.Add(sum, partial.AsSpan(i * size, size), sum);
                    int cpg = g.InCPerGroup, taps = g.KernelH * g.KernelW;
                    bool transposed = TransposedPartial(g, isa);
                    for (int oc = 0; oc < opg; oc++)
                        for (int t = 0; t < taps; t++)
                            for (int ci = 0; ci < cpg; ci++)
                                dw[((grp * opg + oc) * cpg + ci) * taps + t] = sum[transposed ? (t * cpg + ci) * opg + oc : oc * K + t * cpg + ci];
                }
        }
        finally
        {
            pool.Return(partial);
            pool.Return(col);
            pool.Return(dwr);
        }
        if (!db.IsEmpty) LinearBackward.ColumnSums(dy, db, P, g.OutC);
    }

    /// <summary>
    /// Whether the partials are kept as colᵀ · dY [K, OutC/groups] rather than dYᵀ · col: when im2col's rows are narrower
    /// than the outer product's two-vector panel and the outputs wider (a stem's 9 taps of one channel against 16 outputs),
    /// the outputs fill the vector lanes instead of a mostly masked panel. Each element is the same chain of multiply-adds
    /// in the same row order, so the bits do not change (as long as neither orientation takes the outer product's packed
    /// path, which needs at least 384 outputs and 64K products: not with im2col rows this narrow below a few thousand
    /// outputs per group).
    /// </summary>
    private static bool TransposedPartial(in Conv2dGeometry g, IsaLevel? isa)
    {
        int k = g.KernelH * g.KernelW * g.InCPerGroup;
        return k < g.OutCPerGroup && k < 2 * Isa.Width(Isa.Resolve(isa));
    }

    /// <summary>Image groups of the general weight gradient, each with its own partial; fixed so results do not depend on threads.</summary>
    private const int ImageGroups = 8;

    private struct WeightArgs
    {
        public Conv2dGeometry G;
        public float* X, Dy, Partial, Col;
        public int Group, Groups;
        public IsaLevel Isa;
        public bool Transposed; // partials [K, opg] (see TransposedPartial)
    }

    /// <summary>One image group: for each image, im2col then partial (+)= dY_n,gᵀ · col_n.</summary>
    private static void WeightTask(void* context, int index)
    {
        var a = (WeightArgs*)context;
        ref readonly var g = ref a->G;
        int pixels = g.OutH * g.OutW, opg = g.OutCPerGroup, K = g.KernelH * g.KernelW * g.InCPerGroup;
        var (n0, n1) = Workers.Split(g.Batch, a->Groups, index);
        float* partial = a->Partial + (long)index * opg * K;
        float* col = a->Col + (long)index * pixels * K;
        var colSpan = new Span<float>(col, pixels * K);
        var xSpan = new ReadOnlySpan<float>(a->X, (int)g.InputLength);
        for (int n = n0; n < n1; n++)
        {
            Im2Col(g, xSpan, colSpan, a->Group, n);
            float* dy = a->Dy + (long)n * pixels * g.OutC + a->Group * opg;
            if (a->Transposed) OuterProductKernel.Run(a->Isa, col, K, dy, g.OutC, pixels, partial, K, opg, accumulate: n > n0);
            else OuterProductKernel.Run(a->Isa, dy, g.OutC, col, K, pixels, partial, opg, K, accumulate: n > n0);
        }
        if (n1 == n0) new Span<float>(partial, opg * K).Clear();
    }

    private static void CheckBuffers(in Conv2dGeometry g, int dyLength, int wLength, int xLength, string xName)
    {
        if (dyLength < g.OutputLength || wLength < g.WeightLength || xLength < g.InputLength)
            throw new ArgumentException($"Conv backward: buffers dy {dyLength}, w {wLength}, {xName} {xLength} smaller than {g.OutputLength}, {g.WeightLength}, {g.InputLength}.");
    }

    /// <summary>The columns [c0, c0 + n) of a [rows, cols] matrix, packed into dst [rows, n].</summary>
    private static ReadOnlySpan<float> Columns(ReadOnlySpan<float> a, float[] dst, int rows, int cols, int c0, int n)
    {
        for (int r = 0; r < rows; r++) a.Slice(r * cols + c0, n).CopyTo(dst.AsSpan(r * n, n));
        return dst;
    }

    /// <summary>wr [opg, (ky, kx, ci)] from OIHW for group grp.</summary>
    private static void ReorderWeights(in Conv2dGeometry g, ReadOnlySpan<float> w, Span<float> wr, int grp)
    {
        int cpg = g.InCPerGroup, opg = g.OutCPerGroup, taps = g.KernelH * g.KernelW, K = taps * cpg;
        for (int oc = 0; oc < opg; oc++)
            for (int ci = 0; ci < cpg; ci++)
                for (int t = 0; t < taps; t++)
                    wr[oc * K + t * cpg + ci] = w[((grp * opg + oc) * cpg + ci) * taps + t];
    }

    /// <summary>col [OH·OW, (ky, kx, ci)] of image n for group grp; zero where the window hangs over the padding.</summary>
    /// <remarks>Per output row and tap, the columns whose input pixel is inside the image form one range (computed once,
    /// not tested per pixel); a stem's one input channel is then a strided scalar copy, where a span copy per element cost
    /// more than the weight gradient's multiply-adds.</remarks>
    private static void Im2Col(in Conv2dGeometry g, ReadOnlySpan<float> x, Span<float> col, int grp, int n)
    {
        // The geometry in locals: OutH/OutW are computed properties, and this loop runs per pixel and tap.
        int cpg = g.InCPerGroup, kh = g.KernelH, kw = g.KernelW, K = kh * kw * cpg, outH = g.OutH, outW = g.OutW, inH = g.InH, inW = g.InW;
        int inC = g.InC, sh = g.StrideH, sw = g.StrideW, dh = g.DilationH, dwl = g.DilationW, pt = g.PadTop, pl = g.PadLeft;
        if (col.Length < (long)outH * outW * K || x.Length < g.InputLength) throw new ArgumentException("Im2Col: buffers shorter than the geometry.");
        fixed (float* px = x, pc = col)
            for (int oy = 0; oy < outH; oy++)
            {
                float* rowOut = pc + (long)oy * outW * K;
                for (int ky = 0; ky < kh; ky++)
                {
                    int iy = oy * sh - pt + ky * dh;
                    bool rowInside = (uint)iy < (uint)inH;
                    float* src = px + (((long)n * inH + Math.Max(0, iy)) * inW) * inC + grp * cpg;
                    for (int kx = 0; kx < kw; kx++)
                    {
                        float* dst = rowOut + (ky * kw + kx) * cpg;
                        // ox in [ox0, ox1) reads ix = ox·SW - PL + kx·DW inside [0, InW).
                        int shift = kx * dwl - pl, ox0 = 0, ox1 = 0;
                        if (rowInside)
                        {
                            ox0 = shift >= 0 ? 0 : Math.Min(outW, (-shift + sw - 1) / sw);
                            ox1 = inW - 1 - shift < 0 ? 0 : Math.Min(outW, (inW - 1 - shift) / sw + 1);
                            ox1 = Math.Max(ox0, ox1);
                        }
                        for (int ox = 0; ox < ox0; ox++) new Span<float>(dst + (long)ox * K, cpg).Clear();
                        if (cpg == 1)
                        {
                            float* d = dst + (long)ox0 * K, e = dst + (long)ox1 * K, from = src + (long)(ox0 * sw + shift) * inC;
                            for (nint step = (nint)sw * inC; d < e; d += K, from += step) *d = *from;
                        }
                        else
                            for (int ox = ox0; ox < ox1; ox++)
                                new ReadOnlySpan<float>(src + (long)(ox * sw + shift) * inC, cpg).CopyTo(new Span<float>(dst + (long)ox * K, cpg));
                        for (int ox = ox1; ox < outW; ox++) new Span<float>(dst + (long)ox * K, cpg).Clear();
                    }
                }
            }
    }

    /// <summary>dx_n += col2im(dcol) for image n and group grp; dcol holds that image's [OH·OW, K] rows.</summary>
    private static void Col2Im(in Conv2dGeometry g, float* dcol, float* dx, int grp, int n)
    {
        int cpg = g.InCPerGroup, K = g.KernelH * g.KernelW * cpg;
        long p = 0;
        for (int oy = 0; oy < g.OutH; oy++)
            for (int ox = 0; ox < g.OutW; ox++, p++)
            {
                float* row = dcol + p * K;
                for (int ky = 0; ky < g.KernelH; ky++)
                {
                    int iy = oy * g.StrideH - g.PadTop + ky * g.DilationH;
                    if ((uint)iy >= (uint)g.InH) continue;
                    for (int kx = 0; kx < g.KernelW; kx++)
                    {
                        int ix = ox * g.StrideW - g.PadLeft + kx * g.DilationW;
                        if ((uint)ix >= (uint)g.InW) continue;
                        var src = new ReadOnlySpan<float>(row + (ky * g.KernelW + kx) * cpg, cpg);
                        var dst = new Span<float>(dx + (((long)n * g.InH + iy) * g.InW + ix) * g.InC + grp * cpg, cpg);
                        System.Numerics.Tensors.TensorPrimitives.Add(dst, src, dst);
                    }
                }
            }
    }
}
