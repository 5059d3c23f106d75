namespace MobileNetSharp.Kernels;

/// <summary>
/// Gradients of any 2-D convolution on NHWC tensors (groups, strides, dilation, asymmetric padding), weights in
/// ONNX OIHW. Gradients are written, not accumulated. The convolution's kind picks the path:
/// <list type="bullet">
/// <item>1x1, stride 1, no padding, one group: the GEMMs of <see cref="LinearBackward"/> over the N·H·W rows;</item>
/// <item>depthwise with one filter per channel: <see cref="DepthwiseBackward"/>;</item>
/// <item>anything else, per group g: col = im2col(x) [P, K] with P = N·OH·OW and K = KH·KW·(C/groups) in
/// (ky, kx, c) order; dcol = dY_g · W_g and dx = col2im(dcol) (scatter-add, split over images so no two threads
/// write one element); dW_g = dY_gᵀ · col. The GEMMs run on <see cref="MatMul"/>.</item>
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

        int P = checked(g.Batch * g.OutH * g.OutW), cpg = g.InCPerGroup, opg = g.OutCPerGroup, K = g.KernelH * g.KernelW * cpg;
        var dyG = g.Groups == 1 ? null : new float[(long)P * opg];
        var wr = new float[(long)opg * K];
        var dcol = new float[(long)P * K];
        dx[..(int)g.InputLength].Clear();
        for (int grp = 0; grp < g.Groups; grp++)
        {
            ReadOnlySpan<float> dyg = g.Groups == 1 ? dy[..(P * opg)] : Columns(dy, dyG!, P, g.OutC, grp * opg, opg);
            ReorderWeights(g, w, wr, grp);
            MatMul.Run(dyg, wr, dcol, P, opg, K, workers, isa);
            Col2Im(g, dcol, dx, grp, workers);
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

        int P = checked(g.Batch * g.OutH * g.OutW), cpg = g.InCPerGroup, opg = g.OutCPerGroup, K = g.KernelH * g.KernelW * cpg;
        var col = new float[(long)P * K];
        var dyT = new float[(long)P * opg];
        var dyG = g.Groups == 1 ? null : new float[(long)P * opg];
        var dwr = new float[(long)opg * K];
        int taps = g.KernelH * g.KernelW;
        for (int grp = 0; grp < g.Groups; grp++)
        {
            ReadOnlySpan<float> dyg = g.Groups == 1 ? dy[..(P * opg)] : Columns(dy, dyG!, P, g.OutC, grp * opg, opg);
            Im2Col(g, x, col, grp);
            LinearBackward.Transpose(dyg, dyT, P, opg);
            MatMul.Run(dyT, col, dwr, opg, P, K, workers, isa);
            // [oc][(ky, kx, ci)] -> OIHW [oc][ci][ky][kx]
            for (int oc = 0; oc < opg; oc++)
                for (int t = 0; t < taps; t++)
                    for (int ci = 0; ci < cpg; ci++)
                        dw[((grp * opg + oc) * cpg + ci) * taps + t] = dwr[(long)oc * K + t * cpg + ci];
        }
        if (!db.IsEmpty) LinearBackward.ColumnSums(dy, db, P, g.OutC);
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

    /// <summary>col [P, (ky, kx, ci)] for group grp; zero where the window hangs over the padding.</summary>
    private static void Im2Col(in Conv2dGeometry g, ReadOnlySpan<float> x, Span<float> col, int grp)
    {
        int cpg = g.InCPerGroup, K = g.KernelH * g.KernelW * cpg;
        int p = 0;
        for (int n = 0; n < g.Batch; n++)
            for (int oy = 0; oy < g.OutH; oy++)
                for (int ox = 0; ox < g.OutW; ox++, p++)
                {
                    var row = col.Slice(p * K, K);
                    for (int ky = 0; ky < g.KernelH; ky++)
                    {
                        int iy = oy * g.StrideH - g.PadTop + ky * g.DilationH;
                        for (int kx = 0; kx < g.KernelW; kx++)
                        {
                            int ix = ox * g.StrideW - g.PadLeft + kx * g.DilationW;
                            var dst = row.Slice((ky * g.KernelW + kx) * cpg, cpg);
                            if ((uint)iy >= (uint)g.InH || (uint)ix >= (uint)g.InW) dst.Clear();
                            else x.Slice(((n * g.InH + iy) * g.InW + ix) * g.InC + grp * cpg, cpg).CopyTo(dst);
                        }
                    }
                }
    }

    private struct Col2ImArgs
    {
        public Conv2dGeometry G;
        public float* Dcol, Dx;
        public int Group;
    }

    /// <summary>dx += col2im(dcol) for group grp, one image per task.</summary>
    private static void Col2Im(in Conv2dGeometry g, ReadOnlySpan<float> dcol, Span<float> dx, int grp, Workers workers)
    {
        fixed (float* pc = dcol, px = dx)
        {
            var args = new Col2ImArgs { G = g, Dcol = pc, Dx = px, Group = grp };
            if (workers.Count == 1) for (int n = 0; n < g.Batch; n++) Col2ImTask(&args, n);
            else workers.For(g.Batch, &Col2ImTask, &args);
        }
    }

    private static void Col2ImTask(void* context, int n)
    {
        var a = (Col2ImArgs*)context;
        ref readonly var g = ref a->G;
        int cpg = g.InCPerGroup, K = g.KernelH * g.KernelW * cpg;
        long p = (long)n * g.OutH * g.OutW;
        for (int oy = 0; oy < g.OutH; oy++)
            for (int ox = 0; ox < g.OutW; ox++, p++)
            {
                float* row = a->Dcol + p * K;
                for (int ky = 0; ky < g.KernelH; ky++)
                {
                    int iy = oy * g.StrideH - g.PadTop + ky * g.DilationH;
                    if ((uint)iy >= (uint)g.InH) continue;
                    for (int kx = 0; kx < g.KernelW; kx++)
                    {
                        int ix = ox * g.StrideW - g.PadLeft + kx * g.DilationW;
                        if ((uint)ix >= (uint)g.InW) continue;
                        var src = new ReadOnlySpan<float>(row + (ky * g.KernelW + kx) * cpg, cpg);
                        var dst = new Span<float>(a->Dx + (((long)n * g.InH + iy) * g.InW + ix) * g.InC + a->Group * cpg, cpg);
                        System.Numerics.Tensors.TensorPrimitives.Add(dst, src, dst);
                    }
                }
            }
    }
}
