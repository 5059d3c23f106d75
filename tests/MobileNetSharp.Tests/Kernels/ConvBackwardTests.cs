using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>
/// Convolution and fully connected gradients: every kernel against a float64 reference (plain scatter loops) and
/// against central finite differences of the float64 forward reference, swept over ISA x 1 and 2 threads.
/// The loss is L = Σ dy · conv(x, w, b) for a fixed random dy, so ∂L/∂x, ∂L/∂w, ∂L/∂b are the input, weight
/// and bias gradients; L is linear in each argument, so central differences are exact up to float64 rounding.
/// </summary>
public class ConvBackwardTests
{
    private static Conv2dGeometry G(int n, int h, int w, int inC, int outC, int k, int s = 1, int pad = 0, int groups = 1, int d = 1,
        int pt = -1, int pl = -1, int pb = -1, int pr = -1) =>
        new(n, h, w, inC, outC, k, k, s, s, d, d, pt < 0 ? pad : pt, pl < 0 ? pad : pl, pb < 0 ? pad : pb, pr < 0 ? pad : pr, groups);

    public static readonly TheoryData<string, Conv2dGeometry> Cases = new()
    {
        // Depthwise: 3x3 and 5x5, stride 1 and 2, symmetric and asymmetric padding, odd channel counts, batch > 1.
        { "dw3x3s1", G(2, 7, 9, 17, 17, 3, 1, 1, groups: 17) },
        { "dw3x3s2", G(1, 8, 8, 5, 5, 3, 2, 1, groups: 5) },
        { "dw3x3s2-nopad", G(2, 9, 8, 3, 3, 3, 2, 0, groups: 3) },
        { "dw5x5s2", G(3, 9, 7, 33, 33, 5, 2, 2, groups: 33) },
        { "dw5x5s1-asym", G(1, 6, 6, 7, 7, 5, 1, pt: 1, pl: 2, pb: 2, pr: 1, groups: 7) },
        { "dw3x3-dilated", G(2, 11, 10, 8, 8, 3, 2, 0, groups: 8, d: 2) },
        { "dw3x3-1ch", G(2, 5, 5, 1, 1, 3, 1, 1, groups: 1) },
        { "dw3x3-wide", G(1, 6, 5, 48, 48, 3, 1, 1, groups: 48) },
        // Stride 1 takes dX as a forward convolution of dY with the flipped kernel only when every pad is at most
        // (K-1)*D: cases on both sides of that (pads beyond it take the gather), dilated, and a map narrower
        // than the kernel (the 3x3 weight gradient then has no interior columns).
        { "dw3x3s1-bigpad", G(2, 5, 6, 9, 9, 3, 1, pt: 3, pl: 0, pb: 1, pr: 3, groups: 9) },
        { "dw3x3s1-bigpad-left", G(1, 6, 5, 10, 10, 3, 1, pt: 1, pl: 3, pb: 2, pr: 2, groups: 10) },
        { "dw3x3s1-dilated", G(2, 9, 8, 11, 11, 3, 1, 2, groups: 11, d: 2) },
        { "dw3x3s1-nopad", G(1, 6, 7, 12, 12, 3, 1, 0, groups: 12) },
        { "dw3x3s1-narrow", G(2, 3, 2, 10, 10, 3, 1, 1, groups: 10) },
        { "dw5x5s1-7x7", G(2, 7, 7, 20, 20, 5, 1, 2, groups: 20) },
        // Pointwise 1x1 (the GEMM path).
        { "pw", G(2, 5, 3, 17, 33, 1) },
        { "pw-1x1map", G(3, 1, 1, 40, 7, 1) },
        { "pw-3to16", G(1, 4, 4, 3, 16, 1) },
        // General (im2col / col2im): stem, groups, stride, asymmetric pads, dilation, depthwise multiplier 2, strided 1x1.
        { "stem3x3s2", G(2, 9, 7, 3, 16, 3, 2, 1) },
        { "stem-1ch-s1", G(2, 6, 6, 1, 8, 3, 1, 1) },
        { "grouped", G(2, 6, 7, 8, 6, 3, 1, 1, groups: 2) },
        { "5x5s2-asym", G(1, 9, 10, 5, 4, 5, 2, pt: 2, pl: 1, pb: 1, pr: 2) },
        { "dilated", G(2, 9, 9, 3, 5, 3, 1, 2, d: 2) },
        { "dw-multiplier2", G(2, 7, 7, 4, 8, 3, 2, 1, groups: 4) },
        { "1x1s2", G(2, 7, 7, 6, 5, 1, 2) },
        // Pads wider than the map: whole windows, rows and columns of im2col fall in the padding.
        { "pad-beyond-map", G(2, 2, 3, 2, 3, 3, 1, 3) },
        { "1ch-s2-dilated", G(1, 9, 8, 1, 4, 3, 2, pt: 2, pl: 3, pb: 0, pr: 1, d: 2) },
        // im2col narrower than the outputs (9 taps, 16 outputs a group): partials kept as colᵀ·dY.
        { "stem-1ch-16out-s2", G(2, 9, 7, 1, 16, 3, 2, 1) },
        { "grouped-1ch-16out", G(2, 6, 6, 2, 32, 3, 1, 1, groups: 2) },
    };

    // ---- float64 reference ----

    private static double[] Forward(Conv2dGeometry g, double[] x, double[] w, double[] b)
    {
        var y = new double[g.OutputLength];
        int cpg = g.InCPerGroup, opg = g.OutCPerGroup;
        for (int n = 0; n < g.Batch; n++)
            for (int oy = 0; oy < g.OutH; oy++)
                for (int ox = 0; ox < g.OutW; ox++)
                    for (int oc = 0; oc < g.OutC; oc++)
                    {
                        double s = b[oc];
                        int grp = oc / opg;
                        for (int ci = 0; ci < cpg; ci++)
                            for (int ky = 0; ky < g.KernelH; ky++)
                                for (int kx = 0; kx < g.KernelW; kx++)
                                {
                                    int iy = oy * g.StrideH - g.PadTop + ky * g.DilationH, ix = ox * g.StrideW - g.PadLeft + kx * g.DilationW;
                                    if (iy < 0 || iy >= g.InH || ix < 0 || ix >= g.InW) continue;
                                    s += x[((n * g.InH + iy) * g.InW + ix) * g.InC + grp * cpg + ci] * w[((oc * cpg + ci) * g.KernelH + ky) * g.KernelW + kx];
                                }
                        y[((n * g.OutH + oy) * g.OutW + ox) * g.OutC + oc] = s;
                    }
        return y;
    }

    private static (double[] Dx, double[] Dw, double[] Db) Backward(Conv2dGeometry g, double[] x, double[] w, double[] dy)
    {
        var (dx, dw, db) = (new double[g.InputLength], new double[g.WeightLength], new double[g.OutC]);
        int cpg = g.InCPerGroup, opg = g.OutCPerGroup;
        for (int n = 0; n < g.Batch; n++)
            for (int oy = 0; oy < g.OutH; oy++)
                for (int ox = 0; ox < g.OutW; ox++)
                    for (int oc = 0; oc < g.OutC; oc++)
                    {
                        double d = dy[((n * g.OutH + oy) * g.OutW + ox) * g.OutC + oc];
                        db[oc] += d;
                        int grp = oc / opg;
                        for (int ci = 0; ci < cpg; ci++)
                            for (int ky = 0; ky < g.KernelH; ky++)
                                for (int kx = 0; kx < g.KernelW; kx++)
                                {
                                    int iy = oy * g.StrideH - g.PadTop + ky * g.DilationH, ix = ox * g.StrideW - g.PadLeft + kx * g.DilationW;
                                    if (iy < 0 || iy >= g.InH || ix < 0 || ix >= g.InW) continue;
                                    int xi = ((n * g.InH + iy) * g.InW + ix) * g.InC + grp * cpg + ci, wi = ((oc * cpg + ci) * g.KernelH + ky) * g.KernelW + kx;
                                    dx[xi] += d * w[wi];
                                    dw[wi] += d * x[xi];
                                }
                    }
        return (dx, dw, db);
    }

    private static double Loss(Conv2dGeometry g, double[] x, double[] w, double[] b, double[] dy)
    {
        var y = Forward(g, x, w, b);
        double s = 0;
        for (int i = 0; i < y.Length; i++) s += y[i] * dy[i];
        return s;
    }

    /// <summary>Central differences of the loss along a few coordinates of one argument.</summary>
    private static (int[] Index, double[] Grad) FiniteDifferences(double[] arg, Func<double> loss, Random rng, int samples = 10)
    {
        const double h = 1e-3;
        var idx = Enumerable.Range(0, samples).Select(_ => rng.Next(arg.Length)).Distinct().ToArray();
        var grad = new double[idx.Length];
        for (int k = 0; k < idx.Length; k++)
        {
            double v = arg[idx[k]];
            arg[idx[k]] = v + h; double up = loss();
            arg[idx[k]] = v - h; double down = loss();
            arg[idx[k]] = v;
            grad[k] = (up - down) / (2 * h);
        }
        return (idx, grad);
    }

    private static float[] F(double[] a) => a.Select(v => (float)v).ToArray();
    private static double[] D(float[] a) => a.Select(v => (double)v).ToArray();

    [Theory]
    [MemberData(nameof(Cases))]
    public void ConvGradientsMatchReferenceAndFiniteDifferences(string name, Conv2dGeometry g)
    {
        var rng = new Random(name.GetHashCode(StringComparison.Ordinal) & 0xffff);
        float[] x = TestData.Random(rng, g.InputLength), w = TestData.Random(rng, g.WeightLength), b = TestData.Random(rng, g.OutC),
            dy = TestData.Random(rng, g.OutputLength);
        double[] xd = D(x), wd = D(w), bd = D(b), dyd = D(dy);
        var (rdx, rdw, rdb) = Backward(g, xd, wd, dyd);

        // The reference itself against finite differences of the forward reference.
        double Loss() => ConvBackwardTests.Loss(g, xd, wd, bd, dyd);
        var fdx = FiniteDifferences(xd, Loss, rng);
        var fdw = FiniteDifferences(wd, Loss, rng);
        var fdb = FiniteDifferences(bd, Loss, rng, 4);
        foreach (var (fd, reference, what) in new[] { (fdx, rdx, "dx"), (fdw, rdw, "dw"), (fdb, rdb, "db") })
            for (int k = 0; k < fd.Index.Length; k++)
                Assert.True(Math.Abs(fd.Grad[k] - reference[fd.Index[k]]) <= 1e-7 * Math.Max(1, Math.Abs(fd.Grad[k])),
                    $"{name}: reference {what}[{fd.Index[k]}] = {reference[fd.Index[k]]}, finite differences {fd.Grad[k]}");

        int kIn = g.OutCPerGroup * g.KernelH * g.KernelW, kW = g.Batch * g.OutH * g.OutW;
        foreach (var (isa, workers) in TestData.Sweep())
        {
            string ctx = $"{name} {isa} {workers.Count}T";
            var dx = Enumerable.Repeat(float.NaN, (int)g.InputLength).ToArray(); // every element must be written
            var dw = Enumerable.Repeat(float.NaN, (int)g.WeightLength).ToArray();
            var db = Enumerable.Repeat(float.NaN, g.OutC).ToArray();
            ConvBackward.InputGradient(g, dy, w, dx, workers, isa);
            ConvBackward.WeightGradient(g, x, dy, dw, db, workers, isa);
            TestData.AssertClose(F(rdx), dx, kIn, ctx + " dx");
            TestData.AssertClose(F(rdw), dw, kW, ctx + " dw");
            TestData.AssertClose(F(rdb), db, kW, ctx + " db");
            TestData.AssertClose(F(fdx.Grad), fdx.Index.Select(i => dx[i]).ToArray(), kIn, ctx + " dx vs finite differences");
            TestData.AssertClose(F(fdw.Grad), fdw.Index.Select(i => dw[i]).ToArray(), kW, ctx + " dw vs finite differences");
            TestData.AssertClose(F(fdb.Grad), fdb.Index.Select(i => db[i]).ToArray(), kW, ctx + " db vs finite differences");

            if (g.IsDepthwise && g.InC == g.OutC)
            {
                // The depthwise kernels directly, too (ConvBackward dispatches to them).
                var dx2 = new float[g.InputLength];
                var dw2 = new float[g.WeightLength];
                DepthwiseBackward.InputGradient(g, dy, w, dx2, workers, isa);
                DepthwiseBackward.WeightGradient(g, x, dy, dw2, [], workers, isa);
                Assert.Equal(dx, dx2);
                Assert.Equal(dw, dw2);
            }
        }
    }

    [Theory]
    [InlineData(4, 16, 16, 24, 3, 1, 1)]
    [InlineData(8, 14, 14, 40, 3, 2, 1)]
    [InlineData(8, 7, 7, 37, 3, 1, 1)]
    [InlineData(4, 12, 12, 19, 5, 1, 2)]
    [InlineData(4, 12, 12, 19, 3, 1, 3)]
    public void DepthwiseGradientsDoNotDependOnTheThreadCount(int n, int h, int w, int c, int k, int s, int pad)
    {
        // Large enough that both kernels split the work across the two threads.
        var g = G(n, h, w, c, c, k, s, pad, groups: c);
        var rng = new Random(3);
        float[] x = TestData.Random(rng, g.InputLength), dy = TestData.Random(rng, g.OutputLength), wt = TestData.Random(rng, g.WeightLength);
        var (one, two) = (new float[g.WeightLength], new float[g.WeightLength]);
        var (b1, b2) = (new float[c], new float[c]);
        DepthwiseBackward.WeightGradient(g, x, dy, one, b1, Workers.Single);
        DepthwiseBackward.WeightGradient(g, x, dy, two, b2, TestData.Two);
        Assert.Equal(one, two);
        Assert.Equal(b1, b2);
        var (dx1, dx2) = (new float[g.InputLength], new float[g.InputLength]);
        DepthwiseBackward.InputGradient(g, dy, wt, dx1, Workers.Single);
        DepthwiseBackward.InputGradient(g, dy, wt, dx2, TestData.Two);
        Assert.Equal(dx1, dx2);
    }

    [Theory]
    [InlineData(3, 37, 10)]
    [InlineData(1, 5, 3)]
    [InlineData(64, 1280, 10)]
    [InlineData(7, 16, 33)]
    [InlineData(2333, 19, 13)] // many 256-row blocks over the 8 row groups: the blocked weight gradient's accumulation
    [InlineData(300, 8, 7)]   // one full block and a partial one; fewer blocks than groups
    [InlineData(300, 97, 390)] // wide enough for the packed outer product (ragged last panel and tile)
    public void LinearGradientsMatchReferenceAndFiniteDifferences(int rows, int inF, int outF)
    {
        var rng = new Random(rows * 1000 + inF + outF);
        float[] x = TestData.Random(rng, (long)rows * inF), w = TestData.Random(rng, (long)outF * inF), b = TestData.Random(rng, outF),
            dy = TestData.Random(rng, (long)rows * outF);
        // A fully connected layer is a 1x1 convolution over `rows` pixels: reuse that reference.
        var g = G(rows, 1, 1, inF, outF, 1);
        double[] xd = D(x), wd = D(w), bd = D(b), dyd = D(dy);
        var (rdx, rdw, rdb) = Backward(g, xd, wd, dyd);
        double Loss() => ConvBackwardTests.Loss(g, xd, wd, bd, dyd);
        var fdx = FiniteDifferences(xd, Loss, rng);
        var fdw = FiniteDifferences(wd, Loss, rng);
        foreach (var (isa, workers) in TestData.Sweep())
        {
            string ctx = $"linear {rows}x{inF}->{outF} {isa} {workers.Count}T";
            var (dx, dw, db) = (new float[x.Length], new float[w.Length], new float[outF]);
            LinearBackward.InputGradient(dy, w, dx, rows, inF, outF, workers, isa);
            LinearBackward.WeightGradient(x, dy, dw, db, rows, inF, outF, workers, isa);
            TestData.AssertClose(F(rdx), dx, outF, ctx + " dx");
            TestData.AssertClose(F(rdw), dw, rows, ctx + " dw");
            TestData.AssertClose(F(rdb), db, rows, ctx + " db");
            TestData.AssertClose(F(fdx.Grad), fdx.Index.Select(i => dx[i]).ToArray(), outF, ctx + " dx vs finite differences");
            TestData.AssertClose(F(fdw.Grad), fdw.Index.Select(i => dw[i]).ToArray(), rows, ctx + " dw vs finite differences");
        }
    }

    /// <summary>
    /// The outer-product reduction against a float64 reference at every ISA, on both paths: chunked (rows in whole and
    /// partial chunks) and packed (a C past L2 with a wide dY); ragged panels and tiles, row strides wider than the used
    /// columns (a column slice of a wider tensor), accumulating onto ones and overwriting. A chunked run equals the same
    /// rows run chunk by chunk with accumulate, bit for bit.
    /// </summary>
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(63, 17, 5)]
    [InlineData(64, 16, 6)]
    [InlineData(65, 33, 13)]
    [InlineData(200, 97, 389)]
    [InlineData(256, 96, 16)]
    [InlineData(130, 8, 48)]
    [InlineData(256, 160, 420)] // packed
    [InlineData(100, 161, 409)] // packed, ragged
    public unsafe void OuterProductMatchesReference(int rows, int inF, int outF)
    {
        var rng = new Random(rows + inF + outF);
        float[] x = TestData.Random(rng, (long)rows * (inF + 3)), dy = TestData.Random(rng, (long)rows * (outF + 5));
        var reference = new double[outF * inF];
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < outF; o++)
                for (int i = 0; i < inF; i++)
                    reference[o * inF + i] += (double)dy[r * (outF + 5) + o] * x[r * (inF + 3) + i];
        bool packs = OuterProductKernel.Packs(inF, outF);
        Assert.Equal(inF >= 160, packs); // the rows above are chosen to cover both paths
        foreach (var isa in Isa.Supported)
        {
            var (accumulated, written, chunked, byChunk) = (new float[outF * inF], new float[outF * inF], new float[outF * inF], new float[outF * inF]);
            accumulated.AsSpan().Fill(1f);
            written.AsSpan().Fill(float.NaN); // overwritten, never read
            fixed (float* px = x, pdy = dy, pa = accumulated, pw = written, pch = chunked, pc = byChunk)
            {
                OuterProductKernel.Run(isa, pdy, outF + 5, px, inF + 3, rows, pa, outF, inF, accumulate: true);
                OuterProductKernel.Run(isa, pdy, outF + 5, px, inF + 3, rows, pw, outF, inF, accumulate: false);
                OuterProductKernel.Run(isa, pdy, outF + 5, px, inF + 3, rows, pch, outF, inF, accumulate: false, allowPacking: false);
                for (int r0 = 0; r0 < rows; r0 += OuterProductKernel.ChunkRows)
                    OuterProductKernel.Run(isa, pdy + (long)r0 * (outF + 5), outF + 5, px + (long)r0 * (inF + 3), inF + 3,
                        Math.Min(OuterProductKernel.ChunkRows, rows - r0), pc, outF, inF, accumulate: r0 > 0, allowPacking: false);
            }
            string ctx = $"outer product {rows}x{inF}x{outF} {isa}";
            TestData.AssertClose(F(reference.Select(v => v + 1).ToArray()), accumulated, rows, ctx + " accumulated");
            TestData.AssertClose(F(reference), written, rows, ctx);
            TestData.AssertClose(F(reference), chunked, rows, ctx + " chunked");
            Assert.Equal(chunked, byChunk);
            if (!packs) Assert.Equal(chunked, written);
        }
    }

    /// <summary>
    /// dX computed block by block beside dW (one read of dY) is the same bits as the two run apart, at every ISA and
    /// thread count, for shapes with many row blocks, a partial last block, fewer blocks than groups, and a w too large
    /// to share the pass (then the two run apart inside); and so are dW and dB.
    /// </summary>
    [Theory]
    [InlineData(2333, 16, 96)]  // MobileNetV2's expand: many 256-row blocks
    [InlineData(2333, 96, 16)]  // its project: apart
    [InlineData(300, 7, 13)]    // a partial block, fewer blocks than groups
    [InlineData(5, 2, 3)]       // fewer rows than a GEMM tile
    [InlineData(700, 160, 200)] // w of 32,000 floats: dx by the packed GEMM, apart
    public void GradientsInOnePassEqualTheSeparateOnes(int rows, int inF, int outF)
    {
        var rng = new Random(rows + 7 * inF + outF);
        float[] x = TestData.Random(rng, (long)rows * inF), w = TestData.Random(rng, (long)outF * inF), dy = TestData.Random(rng, (long)rows * outF);
        Assert.Equal(outF >= inF && inF * outF < MatMul.MinFloatsToPack, LinearBackward.SharesPass(inF, outF));
        foreach (var (isa, workers) in TestData.Sweep())
        {
            var (dx1, dw1, db1) = (new float[x.Length], new float[w.Length], new float[outF]);
            LinearBackward.InputGradient(dy, w, dx1, rows, inF, outF, workers, isa);
            LinearBackward.WeightGradient(x, dy, dw1, db1, rows, inF, outF, workers, isa);
            var (dx2, dw2, db2) = (Enumerable.Repeat(float.NaN, x.Length).ToArray(), new float[w.Length], new float[outF]);
            LinearBackward.Gradients(x, dy, w, dx2, dw2, db2, rows, inF, outF, workers, isa);
            Assert.Equal(dx1, dx2);
            Assert.Equal(dw1, dw2);
            Assert.Equal(db1, db2);
        }
        Assert.Throws<ArgumentException>(() => LinearBackward.Gradients(x, dy, w, new float[3], new float[w.Length], default, rows, inF, outF));
        Assert.Throws<ArgumentException>(() => LinearBackward.Gradients(x, dy, new float[2], new float[x.Length], new float[w.Length], default, rows, inF, outF));
    }

    /// <summary>
    /// A batch norm's input gradient handed to the expanding 1x1 backward row block by row block (never written whole)
    /// gives the bits of the batch norm's backward followed by the 1x1 backward, with and without the fused clamp, at every
    /// ISA and thread count; the batch norm's own dgamma and dbeta from the reduction half are unchanged too.
    /// </summary>
    [Theory]
    [InlineData(2333, 16, 96)] // MobileNetV2's expand: many 256-row blocks and a partial one
    [InlineData(300, 7, 13)]   // odd channels (vector tails), fewer blocks than groups
    [InlineData(5, 2, 3)]      // fewer rows than a GEMM tile
    public unsafe void BatchNormGradientReadInPlaceEqualsItWritten(int rows, int inF, int outF)
    {
        var rng = new Random(rows + inF * outF);
        float[] x = TestData.Random(rng, (long)rows * inF), w = TestData.Random(rng, (long)outF * inF);
        float[] z = TestData.Random(rng, (long)rows * outF, 2f), dy = TestData.Random(rng, (long)rows * outF);
        float[] gamma = TestData.Random(rng, outF), beta = TestData.Random(rng, outF);
        Assert.Throws<ArgumentException>(() => LinearBackward.Gradients(new BatchNormGradRows { Channels = outF }, x, w, new float[x.Length],
            new float[w.Length], rows, outF, inF)); // w transposed: the source has the wrong channel count
        foreach (var act in new[] { MobileNetSharp.Graph.Activation.None, MobileNetSharp.Graph.Activation.Relu6 })
            foreach (var (isa, workers) in TestData.Sweep())
            {
                string ctx = $"{rows}x{inF}x{outF} {act} {isa} {workers.Count}T";
                var (y, mean, inv, scale) = (new float[z.Length], new float[outF], new float[outF], new float[outF]);
                BatchNormTraining.Forward(z, gamma, beta, y, mean, inv, rows, outF, 1e-5f, workers, isa, act, scale);

                var (dz, dg, db) = (new float[z.Length], new float[outF], new float[outF]);
                BatchNormTraining.Backward(z, dy, gamma, mean, inv, dz, dg, db, rows, outF, workers, isa, act, beta, scale);
                var (dx1, dw1) = (new float[x.Length], new float[w.Length]);
                LinearBackward.Gradients(x, dz, w, dx1, dw1, default, rows, inF, outF, workers, isa);

                var (k, dg2, db2) = (new float[3 * outF], new float[outF], new float[outF]);
                BatchNormTraining.BackwardCoefficients(z, dy, gamma, mean, inv, dg2, db2, rows, outF, workers, Isa.Resolve(isa), act, beta, scale, k);
                var (dx2, dw2) = (Enumerable.Repeat(float.NaN, x.Length).ToArray(), new float[w.Length]);
                var (lo, hi) = BatchNormTraining.ClampOf(act);
                fixed (float* pz = z, pdy = dy, pm = mean, pk = k, ps = scale, pb = beta)
                {
                    var source = new BatchNormGradRows
                    {
                        Dy = pdy, X = pz, Mean = pm, Coefficients = pk, MaskScale = act.IsNone ? null : ps, MaskShift = act.IsNone ? null : pb,
                        Lo = lo, Hi = hi, Channels = outF,
                    };
                    LinearBackward.Gradients(source, x, w, dx2, dw2, rows, inF, outF, workers, isa);
                }
                Assert.True(dx1.AsSpan().SequenceEqual(dx2), ctx + " dx");
                Assert.True(dw1.AsSpan().SequenceEqual(dw2), ctx + " dw");
                Assert.True(dg.AsSpan().SequenceEqual(dg2), ctx + " dgamma");
                Assert.True(db.AsSpan().SequenceEqual(db2), ctx + " dbeta");
            }
    }

    /// <summary>The batch norm's coefficients, dgamma and dbeta from gathered partials, each close to those of its own
    /// reduction pass (<paramref name="expected"/>); returns the coefficients.</summary>
    private static float[] AssertGatheredSums(double[] partials, int groups, float[] gamma, float[] invStd, int rows,
        (float[] K, float[] DGamma, float[] DBeta) expected, string ctx)
    {
        int c = gamma.Length;
        var (k, dg, db) = (new float[3 * c], new float[c], new float[c]);
        BatchNormTraining.BackwardCoefficients(partials, groups, gamma, invStd, dg, db, rows, c, k);
        TestData.AssertClose(expected.DBeta, db, rows, ctx + "dbeta");
        TestData.AssertClose(expected.DGamma, dg, rows, ctx + "dgamma");
        TestData.AssertClose(expected.K, k, rows, ctx + "coefficients");
        return k;
    }

    private static unsafe void RefusesLargeWeight(int rows, Workers workers)
    {
        var big = new BatchNormGradSums { Channels = 200 };
        LinearBackward.InputGradient(new float[rows * 100], new float[100 * 200], new float[rows * 200], rows, 200, 100, workers, null, &big);
    }

    /// <summary>
    /// A 1x1 backward's dX that gathers the sums of the batch norm whose output gradient it is: dX bit for bit that of
    /// <see cref="LinearBackward.InputGradient(ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, int, int, int, Workers?, IsaLevel?)"/>, the
    /// batch norm's coefficients, dgamma and dbeta to float rounding against its own reduction pass, and the gathered sums
    /// the same bits at 1 and 2 threads. A weight too large to read in place is refused.
    /// </summary>
    [Theory]
    [InlineData(2333, 96, 16)] // MobileNetV2's projection: many row blocks, a partial last one
    [InlineData(300, 13, 7)]   // odd channels, fewer blocks than groups
    [InlineData(5, 3, 2)]      // fewer rows than a GEMM tile
    public unsafe void ProjectionInputGradientGathersTheBatchNormSums(int rows, int inF, int outF)
    {
        var rng = new Random(rows * 3 + inF);
        float[] dy = TestData.Random(rng, (long)rows * outF), w = TestData.Random(rng, (long)outF * inF);
        float[] e = TestData.Random(rng, (long)rows * inF, 2f), gamma = TestData.Random(rng, inF), beta = TestData.Random(rng, inF);
        var act = MobileNetSharp.Graph.Activation.Relu6;
        var (lo, hi) = BatchNormTraining.ClampOf(act);
        int groups = LinearBackward.RowGroupCount(rows);
        float[]? first = null;
        foreach (var (isa, workers) in TestData.Sweep())
        {
            string ctx = $"{rows}x{inF}x{outF} {isa} {workers.Count}T";
            var (y, mean, inv, scale) = (new float[e.Length], new float[inF], new float[inF], new float[inF]);
            BatchNormTraining.Forward(e, gamma, beta, y, mean, inv, rows, inF, 1e-5f, workers, isa, act, scale);
            var dx1 = new float[e.Length];
            LinearBackward.InputGradient(dy, w, dx1, rows, inF, outF, workers, isa);
            var (k1, dg1, db1) = (new float[3 * inF], new float[inF], new float[inF]);
            BatchNormTraining.BackwardCoefficients(e, dx1, gamma, mean, inv, dg1, db1, rows, inF, workers, Isa.Resolve(isa), act, beta, scale, k1);

            var dx2 = Enumerable.Repeat(float.NaN, e.Length).ToArray();
            var partials = Enumerable.Repeat(double.NaN, groups * 2 * inF).ToArray();
            fixed (float* pe = e, pm = mean, ps = scale, pb = beta)
            fixed (double* pp = partials)
            {
                var sums = new BatchNormGradSums { X = pe, Mean = pm, MaskScale = ps, MaskShift = pb, Lo = lo, Hi = hi, Channels = inF, Partials = pp };
                LinearBackward.InputGradient(dy, w, dx2, rows, inF, outF, workers, isa, &sums);
                if (isa == Isa.Supported[0] && workers.Count == 1)
                    Assert.Throws<ArgumentException>(() => RefusesLargeWeight(rows, workers));
            }
            Assert.True(dx1.AsSpan().SequenceEqual(dx2), ctx + " dx");
            var k2 = AssertGatheredSums(partials, groups, gamma, inv, rows, (k1, dg1, db1), ctx + " ");
            if (first is not null && workers.Count == 2) Assert.True(first.AsSpan().SequenceEqual(k2), ctx + " sums at 2 threads");
            first = k2;
        }
    }

    /// <summary>
    /// A projection's backward in one pass over its normalized input (dW, dX, then the sums of the batch norm x comes
    /// from, gathered from dX) against the steps it replaces: the batch norm's output written, then
    /// <see cref="LinearBackward.WeightGradient(ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, Span{float}, int, int, int, Workers?, IsaLevel?)"/>
    /// and the dX that gathers the sums. dW, dB, dX and the partial sums are the same bits, at every ISA and at 1 and 2
    /// threads; dW alone (no dX) likewise, and dW with the sums while dX is left unwritten; a w too large to read in place,
    /// mismatched channels and a short dX are refused.
    /// </summary>
    [Theory]
    [InlineData(2333, 96, 16)] // MobileNetV2's projection: many row blocks, a partial last one
    [InlineData(300, 13, 7)]   // odd channels, fewer blocks than groups
    [InlineData(5, 3, 2)]      // fewer rows than a GEMM tile
    public unsafe void ProjectionGradientsInOnePassEqualTheSeparateSteps(int rows, int inF, int outF)
    {
        var rng = new Random(rows * 5 + inF + outF);
        float[] dy = TestData.Random(rng, (long)rows * outF), w = TestData.Random(rng, (long)outF * inF);
        float[] e = TestData.Random(rng, (long)rows * inF, 2f), gamma = TestData.Random(rng, inF), beta = TestData.Random(rng, inF);
        var act = MobileNetSharp.Graph.Activation.Relu6;
        var (lo, hi) = BatchNormTraining.ClampOf(act);
        int groups = LinearBackward.RowGroupCount(rows);
        foreach (var (isa, workers) in TestData.Sweep())
        {
            string ctx = $"{rows}x{inF}x{outF} {isa} {workers.Count}T";
            var (y, mean, inv, scale) = (new float[e.Length], new float[inF], new float[inF], new float[inF]);
            BatchNormTraining.Forward(e, gamma, beta, y, mean, inv, rows, inF, 1e-5f, workers, isa, act, scale);
            var (dw1, db1, dx1) = (new float[w.Length], new float[outF], new float[e.Length]);
            var partials1 = new double[groups * 2 * inF];
            var (dw2, db2, dx2) = (new float[w.Length], new float[outF], Enumerable.Repeat(float.NaN, e.Length).ToArray());
            var partials2 = Enumerable.Repeat(double.NaN, groups * 2 * inF).ToArray();
            var (dw3, dw4) = (new float[w.Length], new float[w.Length]);
            var partials3 = Enumerable.Repeat(double.NaN, groups * 2 * inF).ToArray();
            fixed (float* pe = e, pm = mean, ps = scale, pb = beta)
            fixed (double* pp1 = partials1, pp2 = partials2, pp3 = partials3)
            {
                var sums1 = new BatchNormGradSums { X = pe, Mean = pm, MaskScale = ps, MaskShift = pb, Lo = lo, Hi = hi, Channels = inF, Partials = pp1 };
                LinearBackward.WeightGradient(y, dy, dw1, db1, rows, inF, outF, workers, isa);
                LinearBackward.InputGradient(dy, w, dx1, rows, inF, outF, workers, isa, &sums1);

                var x = new BatchNormApplyRows { X = pe, Mean = pm, Scale = ps, Beta = pb, Lo = lo, Hi = hi, Channels = inF };
                var sums2 = sums1 with { Partials = pp2 };
                LinearBackward.Gradients(x, dy, w, dx2, dw2, db2, rows, inF, outF, workers, isa, &sums2);
                LinearBackward.Gradients(x, dy, default, default, dw3, default, rows, inF, outF, workers, isa, null);

                // dX left unwritten (its reader computes it again): the same dW and sums.
                var sums3 = sums1 with { Partials = pp3 };
                LinearBackward.Gradients(x, dy, w, default, dw4, default, rows, inF, outF, workers, isa, &sums3);

                var bad = x with { Channels = inF + 1 };
                Assert.Throws<ArgumentException>(() => LinearBackward.Gradients(bad, dy, w, new float[e.Length], new float[w.Length], default, rows, inF, outF, workers, isa, null));
                Assert.Throws<ArgumentException>(() => LinearBackward.Gradients(x, dy, w, new float[3], new float[w.Length], default, rows, inF, outF, workers, isa, null));
            }
            Assert.True(dw1.AsSpan().SequenceEqual(dw2), ctx + " dw");
            Assert.True(dw1.AsSpan().SequenceEqual(dw3), ctx + " dw without dx");
            Assert.True(db1.AsSpan().SequenceEqual(db2), ctx + " db");
            Assert.True(dx1.AsSpan().SequenceEqual(dx2), ctx + " dx");
            Assert.True(partials1.AsSpan().SequenceEqual(partials2), ctx + " sums");
            Assert.True(dw1.AsSpan().SequenceEqual(dw4), ctx + " dw, dx unwritten");
            Assert.True(partials1.AsSpan().SequenceEqual(partials3), ctx + " sums, dx unwritten");
        }
        Assert.Throws<ArgumentException>(() => RefusesLargeWeightInOnePass(rows));
    }

    private static unsafe void RefusesLargeWeightInOnePass(int rows)
    {
        var x = new BatchNormApplyRows { Channels = 200 };
        LinearBackward.Gradients(x, new float[rows * 100], new float[100 * 200], new float[rows * 200], new float[100 * 200], default, rows, 200, 100,
            Workers.Single, null, null);
    }

    public static readonly TheoryData<string, Conv2dGeometry> DepthwiseFromBatchNorm = new()
    {
        { "3x3 s1 (dX by the forward kernel)", G(3, 9, 11, 17, 17, 3, 1, 1, groups: 17) },
        { "3x3 s2 (dX by the gather)", G(2, 9, 8, 13, 13, 3, 2, 1, groups: 13) },
        { "5x5 s1, asymmetric pads", G(2, 8, 8, 8, 8, 5, 1, pt: 2, pl: 1, pb: 2, pr: 2, groups: 8) },
        { "4x4 maps (padded copy), more images than groups", G(11, 4, 4, 24, 24, 3, 1, 1, groups: 24) },
        { "one channel", G(2, 6, 6, 1, 1, 3, 1, 1, groups: 1) },
    };

    /// <summary>
    /// A depthwise convolution's gradients from its batch norm's deferred input gradient, image by image, against the
    /// batch norm's backward written whole followed by the two depthwise kernels: dX bit for bit, dW to float rounding
    /// (another summation order), at every ISA; 1 and 2 threads give identical bits. The same with the sums of the batch
    /// norm before the convolution gathered from dX as it is made.
    /// </summary>
    [Theory]
    [MemberData(nameof(DepthwiseFromBatchNorm))]
    public unsafe void DepthwiseGradientsFromBatchNormGradientMatchItWritten(string name, Conv2dGeometry g)
    {
        var rng = new Random((int)g.InputLength + g.OutC);
        int rows = g.Batch * g.OutH * g.OutW, c = g.OutC;
        float[] x = TestData.Random(rng, g.InputLength), w = TestData.Random(rng, g.WeightLength);
        float[] z = TestData.Random(rng, g.OutputLength, 2f);
        float[] gamma = TestData.Random(rng, c), beta = TestData.Random(rng, c);
        var act = MobileNetSharp.Graph.Activation.Relu6;
        // dy is the input gradient of a 1x1 convolution after the batch norm (K = 5 outputs): dz · w2.
        const int K = 5;
        float[] dOut = TestData.Random(rng, (long)rows * K), w2 = TestData.Random(rng, K * c), dy = new float[g.OutputLength];
        float[] e = TestData.Random(rng, g.InputLength, 2f), egamma = TestData.Random(rng, c), ebeta = TestData.Random(rng, c);
        (float[] Dx, float[] Dw, float[] K)? first = null;
        foreach (var (isa, workers) in TestData.Sweep())
        {
            string ctx = $"{name} {isa} {workers.Count}T";
            LinearBackward.InputGradient(dOut, w2, dy, rows, c, K, workers, isa); // the 1x1 convolution's dX at this ISA
            var (y, mean, inv, scale) = (new float[z.Length], new float[c], new float[c], new float[c]);
            BatchNormTraining.Forward(z, gamma, beta, y, mean, inv, rows, c, 1e-5f, workers, isa, act, scale);
            var (dz, dg, db) = (new float[z.Length], new float[c], new float[c]);
            BatchNormTraining.Backward(z, dy, gamma, mean, inv, dz, dg, db, rows, c, workers, isa, act, beta, scale);
            var (dx1, dw1) = (new float[x.Length], new float[w.Length]);
            DepthwiseBackward.InputGradient(g, dz, w, dx1, workers, isa);
            DepthwiseBackward.WeightGradient(g, x, dz, dw1, default, workers, isa);

            var k = new float[3 * c];
            BatchNormTraining.BackwardCoefficients(z, dy, gamma, mean, inv, new float[c], new float[c], rows, c, workers, Isa.Resolve(isa), act, beta, scale, k);
            var (dx2, dw2) = (Enumerable.Repeat(float.NaN, x.Length).ToArray(), Enumerable.Repeat(float.NaN, w.Length).ToArray());
            var (lo, hi) = BatchNormTraining.ClampOf(act);
            fixed (float* pz = z, pdy = dy, pm = mean, pk = k, ps = scale, pb = beta)
                DepthwiseBackward.Gradients(g, new BatchNormGradRows { Dy = pdy, X = pz, Mean = pm, Coefficients = pk, MaskScale = ps, MaskShift = pb, Lo = lo, Hi = hi, Channels = c },
                    x, w, dx2, dw2, workers, isa);
            Assert.True(dx1.AsSpan().SequenceEqual(dx2), ctx + " dx");
            TestData.AssertClose(dw1, dw2, rows, ctx + " dw");

            // dy never written: each image's rows computed as dz · w2 where they are read, the same bits.
            var (dx6, dw6) = (new float[x.Length], new float[w.Length]);
            fixed (float* pz = z, pdz = dOut, pw2 = w2, pm = mean, pk = k, ps = scale, pb = beta)
                DepthwiseBackward.Gradients(g, new BatchNormGradRows
                {
                    DyLeft = pdz, DyRight = pw2, DyInner = K, X = pz, Mean = pm, Coefficients = pk, MaskScale = ps, MaskShift = pb, Lo = lo, Hi = hi, Channels = c,
                }, x, w, dx6, dw6, workers, isa);
            Assert.True(dx2.AsSpan().SequenceEqual(dx6), ctx + " dx, dy as a product");
            Assert.True(dw2.AsSpan().SequenceEqual(dw6), ctx + " dw, dy as a product");

            // Again, gathering the sums of a batch norm before the convolution (input e, its output's gradient dX) from
            // each image's dX: the coefficients, dgamma and dbeta match those of its own reduction pass over e and dX.
            int inRows = g.Batch * g.InH * g.InW;
            var (ey, emean, einv, escale) = (new float[e.Length], new float[c], new float[c], new float[c]);
            BatchNormTraining.Forward(e, egamma, ebeta, ey, emean, einv, inRows, c, 1e-5f, workers, isa, act, escale);
            var (ek, edg, edb) = (new float[3 * c], new float[c], new float[c]);
            BatchNormTraining.BackwardCoefficients(e, dx1, egamma, emean, einv, edg, edb, inRows, c, workers, Isa.Resolve(isa), act, ebeta, escale, ek);
            int groups = DepthwiseBackward.ImageGroupCount(g.Batch);
            var partials = Enumerable.Repeat(double.NaN, groups * 2 * c).ToArray();
            var (dx3, dw3) = (new float[x.Length], new float[w.Length]);
            fixed (float* pz = z, pdy = dy, pm = mean, pk = k, ps = scale, pb = beta, pe = e, pem = emean, pes = escale, peb = ebeta)
            fixed (double* pp = partials)
            {
                var sums = new BatchNormGradSums { X = pe, Mean = pem, MaskScale = pes, MaskShift = peb, Lo = lo, Hi = hi, Channels = c, Partials = pp };
                DepthwiseBackward.Gradients(g, new BatchNormGradRows { Dy = pdy, X = pz, Mean = pm, Coefficients = pk, MaskScale = ps, MaskShift = pb, Lo = lo, Hi = hi, Channels = c },
                    x, w, dx3, dw3, workers, isa, &sums);
            }
            Assert.True(dx2.AsSpan().SequenceEqual(dx3), ctx + " dx with sums");
            Assert.True(dw2.AsSpan().SequenceEqual(dw3), ctx + " dw with sums");
            var gk = AssertGatheredSums(partials, groups, egamma, einv, inRows, (ek, edg, edb), ctx + " gathered ");

            // And with x that batch norm's output, never written: one pass over e per image gathers the sums and normalizes
            // x for dW (BatchNormGradSums.AddNormalizing), the same bits as x written and the sums gathered apart.
            var (partialsA, partialsB) = (new double[groups * 2 * c], Enumerable.Repeat(double.NaN, groups * 2 * c).ToArray());
            var (dx4, dw4, dx5, dw5) = (new float[x.Length], new float[w.Length], new float[x.Length], new float[w.Length]);
            fixed (float* pz = z, pdy = dy, pm = mean, pk = k, ps = scale, pb = beta, pe = e, pem = emean, pes = escale, peb = ebeta)
            fixed (double* ppa = partialsA, ppb = partialsB)
            {
                var rowsDy = new BatchNormGradRows { Dy = pdy, X = pz, Mean = pm, Coefficients = pk, MaskScale = ps, MaskShift = pb, Lo = lo, Hi = hi, Channels = c };
                var sumsA = new BatchNormGradSums { X = pe, Mean = pem, MaskScale = pes, MaskShift = peb, Lo = lo, Hi = hi, Channels = c, Partials = ppa };
                DepthwiseBackward.Gradients(g, rowsDy, ey, w, dx4, dw4, workers, isa, &sumsA);
                var sumsB = sumsA with { Partials = ppb };
                var xNormalized = new BatchNormApplyRows { X = pe, Mean = pem, Scale = pes, Beta = peb, Lo = lo, Hi = hi, Channels = c };
                Assert.True(sumsB.Normalizes(xNormalized));
                Assert.False(sumsB.Normalizes(xNormalized with { Beta = pb }));
                DepthwiseBackward.Gradients(g, rowsDy, default, w, dx5, dw5, workers, isa, &sumsB, &xNormalized);
            }
            Assert.True(dx4.AsSpan().SequenceEqual(dx5), ctx + " dx, x normalized while gathering");
            Assert.True(dw4.AsSpan().SequenceEqual(dw5), ctx + " dw, x normalized while gathering");
            Assert.True(partialsA.AsSpan().SequenceEqual(partialsB), ctx + " sums, x normalized while gathering");

            if (first is var (fx, fw, fk) && workers.Count == 2)
            {
                Assert.True(fx.AsSpan().SequenceEqual(dx2), ctx + " dx at 2 threads");
                Assert.True(fw.AsSpan().SequenceEqual(dw2), ctx + " dw at 2 threads");
                Assert.True(fk.AsSpan().SequenceEqual(gk), ctx + " gathered sums at 2 threads");
            }
            first = (dx2, dw2, gk);
        }
    }

    /// <summary>The weight gradient reduces over rows in a fixed group partition: 1 and 2 threads agree bit for bit.</summary>
    [Fact]
    public void LinearWeightGradientDoesNotDependOnThreads()
    {
        var rng = new Random(5);
        int rows = 5000, inF = 24, outF = 40;
        float[] x = TestData.Random(rng, (long)rows * inF), dy = TestData.Random(rng, (long)rows * outF);
        var (w1, b1, w2, b2) = (new float[outF * inF], new float[outF], new float[outF * inF], new float[outF]);
        LinearBackward.WeightGradient(x, dy, w1, b1, rows, inF, outF, Workers.Single);
        using var two = new Workers(2);
        LinearBackward.WeightGradient(x, dy, w2, b2, rows, inF, outF, two);
        Assert.Equal(w1, w2);
        Assert.Equal(b1, b2);
    }

    [Fact]
    public void BadShapesAreRefused()
    {
        var g = G(1, 4, 4, 3, 3, 3, 1, 1, groups: 3);
        Assert.Throws<ArgumentException>(() => ConvBackward.InputGradient(g, new float[10], new float[27], new float[48]));
        Assert.Throws<ArgumentException>(() => DepthwiseBackward.InputGradient(G(1, 4, 4, 4, 8, 3, 1, 1, groups: 4), new float[128], new float[72], new float[64]));
        Assert.Throws<ArgumentException>(() => LinearBackward.InputGradient(new float[3], new float[3], new float[3], 0, 1, 3));
    }
}
