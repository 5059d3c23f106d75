using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>
/// Batch-norm statistics in one pass (<see cref="ChannelMoments"/>): against a float64 two-pass reference at every ISA
/// and thread count, for odd channel counts, chunk tails, one row, granules that leave blocks empty, and means far
/// larger than the spread; and gathered by the convolutions themselves while they write (<see cref="Conv2dOperator"/>
/// with a moments buffer), for every path: the statistics match the reference of the output, the output is the same
/// bits as a plain run, and the result does not depend on the thread count.
/// </summary>
public unsafe class ChannelMomentsTests
{
    /// <summary>Per-channel mean and biased variance in float64, two passes.</summary>
    private static (double[] Mean, double[] Variance) Reference(float[] x, int rows, int c)
    {
        var (mean, variance) = (new double[c], new double[c]);
        for (int ch = 0; ch < c; ch++)
        {
            double s = 0, q = 0;
            for (int r = 0; r < rows; r++) s += x[(long)r * c + ch];
            mean[ch] = s / rows;
            for (int r = 0; r < rows; r++) q += (x[(long)r * c + ch] - mean[ch]) * (x[(long)r * c + ch] - mean[ch]);
            variance[ch] = q / rows;
        }
        return (mean, variance);
    }

    /// <summary>Mean within a few float ulps of the spread, variance within 1e-5 relative (float data, double merging).</summary>
    private static void AssertMoments(float[] x, int rows, int c, ReadOnlySpan<double> partials, int granule, string ctx)
    {
        var (rm, rv) = Reference(x, rows, c);
        var (mean, variance) = (new double[c], new double[c]);
        ChannelMoments.Combine(partials, rows, c, mean, variance, granule);
        for (int ch = 0; ch < c; ch++)
        {
            double spread = Math.Sqrt(rv[ch]) + 1e-30;
            Assert.True(Math.Abs(mean[ch] - rm[ch]) <= 1e-6 * (Math.Abs(rm[ch]) + spread), $"{ctx}: mean[{ch}] {mean[ch]} vs {rm[ch]}");
            Assert.True(Math.Abs(variance[ch] - rv[ch]) <= 1e-5 * rv[ch] + 1e-12, $"{ctx}: variance[{ch}] {variance[ch]} vs {rv[ch]}");
        }
    }

    public static readonly TheoryData<int, int, float> Shapes = new()
    {
        { 1, 5, 0f },        // one row: variance 0
        { 7, 3, 0f },        // fewer rows than a chunk, odd channels
        { 131, 17, 0f },     // chunk tails, vector tails at every width
        { 1000, 33, 1000f }, // mean/spread ~ 1000: E[x²] - mean² would keep no digit
        { 4000, 96, 0f },    // several blocks and chunks (MobileNet's channel count)
        { 600, 1, 0f },      // one channel
        { 90, 1200, 0f },    // wide rows: the chunk buffer outgrows the stack
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void OnePassMatchesTheTwoPassReference(int rows, int c, float offset)
    {
        var rng = new Random(rows * 7 + c);
        var x = TestData.Random(rng, (long)rows * c, 3f).Select(v => v + offset).ToArray();
        double[]? first = null;
        foreach (var (isa, workers) in TestData.Sweep())
        {
            var partials = new double[ChannelMoments.PartialLength(rows, c)];
            fixed (float* px = x) fixed (double* pp = partials) ChannelMoments.Compute(px, rows, c, pp, workers, isa);
            AssertMoments(x, rows, c, partials, 1, $"[{rows}, {c}] {isa} {workers.Count}T");
            if (workers.Count == 1) first = partials;
            else Assert.Equal(first, partials); // threads never change a bit
        }
    }

    [Fact]
    public void BlocksCoverTheRowsInWholeGranulesAndMayBeEmpty()
    {
        foreach (var (rows, c, granule) in new[] { (50176, 96, 6), (10, 4000, 6), (64 * 28, 96, 28), (5, 8000, 1), (1, 1, 1) })
        {
            int blocks = ChannelMoments.Blocks(rows, c), next = 0;
            Assert.InRange(blocks, 1, ChannelMoments.MaxBlocks);
            for (int b = 0; b < blocks; b++)
            {
                var (r0, r1) = ChannelMoments.BlockRows(rows, c, b, granule);
                Assert.Equal(next, r0);
                Assert.True(r1 >= r0 && (r1 == rows || r1 % granule == 0), $"[{rows}, {c}] granule {granule}: block {b} = [{r0}, {r1})");
                next = r1;
            }
            Assert.Equal(rows, next);
        }
    }

    [Fact]
    public void ChunksMergedOneByOneEqualTheWholeTensorsMoments()
    {
        // A producer feeding chunks of any size: the merged moments are the tensor's (granule = the rows fed per chunk).
        const int rows = 257, c = 12;
        var x = TestData.Random(new Random(3), rows * c, 2f).Select(v => v + 50f).ToArray();
        foreach (int chunk in new[] { 1, 5, 64 })
        {
            var partials = new double[ChannelMoments.PartialLength(rows, c)];
            fixed (float* px = x) fixed (double* pp = partials)
                for (int r = 0; r < rows; r += chunk)
                    ChannelMoments.AddChunk(Isa.Best, px + r * c, Math.Min(chunk, rows - r), c, pp, pp + c, r);
            AssertMoments(x, rows, c, partials, 1, $"chunks of {chunk}");
        }
    }

    /// <summary>
    /// A channel's moments do not depend on the channels beside it: whole vectors go two at a time, then one, then the
    /// tail lanes, each lane with the same operations, so every channel of a 37-channel chunk has the bits of that channel
    /// merged alone, at every ISA and chunk length (4-row steps and their remainder).
    /// </summary>
    [Theory]
    [InlineData(28)]
    [InlineData(7)]
    [InlineData(1)]
    public void EachChannelsMomentsAreThoseOfTheChannelAlone(int rows)
    {
        const int c = 37;
        var x = TestData.Random(new Random(rows), rows * c, 2f).Select(v => v + 3f).ToArray();
        foreach (IsaLevel isa in Isa.Supported)
        {
            var (mean, m2) = (new double[c], new double[c]);
            fixed (float* px = x) fixed (double* pm = mean, pq = m2)
            {
                ChannelMoments.AddChunk(isa, px, rows, c, pm, pq, 0);
                ChannelMoments.AddChunk(isa, px, rows, c, pm, pq, rows); // a second merge, into a block that holds rows already
            }
            for (int ch = 0; ch < c; ch++)
            {
                var column = Enumerable.Range(0, rows).Select(r => x[r * c + ch]).ToArray();
                var (one, oneM2) = (new double[1], new double[1]);
                fixed (float* pc = column) fixed (double* pm = one, pq = oneM2)
                {
                    ChannelMoments.AddChunk(isa, pc, rows, 1, pm, pq, 0);
                    ChannelMoments.AddChunk(isa, pc, rows, 1, pm, pq, rows);
                }
                Assert.True(one[0] == mean[ch] && oneM2[0] == m2[ch], $"{isa} {rows} rows, channel {ch}: {mean[ch]}/{m2[ch]} vs alone {one[0]}/{oneM2[0]}");
            }
        }
    }

    [Fact]
    public void CombineRefusesTooFewPartials() =>
        Assert.Throws<ArgumentException>(() => ChannelMoments.Combine(new double[3], 4000, 96, new double[96], new double[96]));

    public static readonly TheoryData<string, Conv2dGeometry> Convolutions = new()
    {
        // Gathered by the GEMM tiles (6-row granule) and by the depthwise rows (OutW granule), stride 1 and 2; large
        // enough for several blocks (rows x channels >= 2^15), and one small 1x1 with a single block.
        { "1x1 expand", new Conv2dGeometry(1, 20, 20, 16, 40, 1, 1) },
        { "1x1 odd", new Conv2dGeometry(1, 31, 29, 13, 21, 1, 1) },
        { "1x1 one block", new Conv2dGeometry(1, 9, 11, 16, 40, 1, 1) },
        { "depthwise 3x3 s1", new Conv2dGeometry(1, 24, 26, 24, 24, 3, 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Groups: 24) },
        { "depthwise 5x5 s2", new Conv2dGeometry(1, 40, 38, 19, 19, 5, 5, 2, 2, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2, Groups: 19) },
        // Small maps: an image per task (padded copies), the moments' blocks in whole images; one with a single block.
        { "depthwise small map", new Conv2dGeometry(1, 4, 4, 480, 480, 3, 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Groups: 480) },
        { "depthwise small, one block", new Conv2dGeometry(1, 4, 4, 16, 16, 3, 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Groups: 16) },
        // Taken in a pass after the run: the stem, a grouped im2col convolution.
        { "stem 3x3 s2", new Conv2dGeometry(1, 17, 17, 3, 16, 3, 3, 2, 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1) },
        { "grouped 3x3", new Conv2dGeometry(1, 8, 8, 8, 12, 3, 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Groups: 2) },
    };

    [Theory]
    [MemberData(nameof(Convolutions))]
    public void ConvolutionsGatherTheMomentsOfWhatTheyWrite(string name, Conv2dGeometry g)
    {
        const int batch = 5;
        var rng = new Random(name.Length * 31 + g.OutC);
        var w = TestData.Random(rng, g.WeightLength);
        var bias = TestData.Random(rng, g.OutC).Select(v => v * 20f).ToArray(); // channel means far from 0
        var x = TestData.Random(rng, (long)batch * g.InH * g.InW * g.InC);
        int pixels = batch * g.OutH * g.OutW;
        foreach (IsaLevel isa in Isa.Supported)
        {
            var op = new Conv2dOperator(g, w, bias, Activation.None, isa);
            var scratch = new float[op.ScratchLength(batch)];
            var plain = new float[pixels * g.OutC];
            op.Run(batch, x, plain, default, scratch, Workers.Single);
            double[]? single = null;
            foreach (var workers in new[] { Workers.Single, TestData.Two })
            {
                string ctx = $"{name} {isa} {workers.Count}T (granule {op.MomentsGranule(batch)})";
                var y = new float[pixels * g.OutC];
                var partials = Enumerable.Repeat(double.NaN, ChannelMoments.PartialLength(pixels, g.OutC)).ToArray();
                op.Run(batch, x, y, default, scratch, workers, partials);
                Assert.Equal(plain, y);
                AssertMoments(y, pixels, g.OutC, partials, op.MomentsGranule(batch), ctx);
                if (single is null) single = partials;
                else Assert.True(single.AsSpan().SequenceEqual(partials), ctx + ": the moments depend on the thread count");
            }
        }
    }

    /// <summary>
    /// A depthwise convolution reading a batch norm's output it normalizes itself, image by image into scratch, writes the
    /// bits of the batch norm's forward followed by the convolution, and gathers its output's moments in whole images, the
    /// same at 1 and 2 threads: on large maps (border path), small maps (padded copies), odd channels, a stride of 2, and
    /// more images than moments blocks. A wrong channel count or short buffers are refused.
    /// </summary>
    [Theory]
    [InlineData(3, 24, 26, 24, 1)]
    [InlineData(11, 4, 4, 40, 1)]
    [InlineData(2, 9, 9, 19, 2)]
    public unsafe void DepthwiseNormalizingItsInputEqualsTheBatchNormWrittenThenConvolved(int batch, int h, int wd, int c, int stride)
    {
        var g = new Conv2dGeometry(1, h, wd, c, c, 3, 3, stride, stride, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Groups: c);
        var rng = new Random(batch * 7 + c);
        var w = TestData.Random(rng, g.WeightLength);
        var x = TestData.Random(rng, (long)batch * h * wd * c, 3f);
        float[] gamma = TestData.Random(rng, c), beta = TestData.Random(rng, c);
        int rows = batch * h * wd, pixels = batch * g.OutH * g.OutW;
        var act = Activation.Relu6;
        var (lo, hi) = BatchNormTraining.ClampOf(act);
        foreach (IsaLevel isa in Isa.Supported)
        {
            var (y, mean, inv, scale) = (new float[x.Length], new float[c], new float[c], new float[c]);
            BatchNormTraining.Forward(x, gamma, beta, y, mean, inv, rows, c, 1e-5f, Workers.Single, isa, act, scale);
            var op = new Conv2dOperator(g, w, [], Activation.None, isa);
            Assert.True(op.TakesNormalizedInput);
            var expected = new float[pixels * c];
            op.Run(batch, y, expected, default, new float[op.ScratchLength(batch)], Workers.Single);
            double[]? single = null;
            foreach (var workers in new[] { Workers.Single, TestData.Two })
            {
                string ctx = $"{batch}x{h}x{wd}x{c} s{stride} {isa} {workers.Count}T";
                var output = Enumerable.Repeat(float.NaN, pixels * c).ToArray();
                var partials = Enumerable.Repeat(double.NaN, ChannelMoments.PartialLength(pixels, c)).ToArray();
                var scratch = new float[op.NormalizedScratchLength(batch)];
                fixed (float* px = x, pm = mean, ps = scale, pb = beta)
                {
                    var rowsIn = new BatchNormApplyRows { X = px, Mean = pm, Scale = ps, Beta = pb, Lo = lo, Hi = hi, Channels = c };
                    op.RunNormalized(batch, rowsIn, output, scratch, workers, partials);
                    Assert.Throws<ArgumentException>(() => Refuse(op, batch, rowsIn with { Channels = c + 1 }, output, scratch, workers));
                    Assert.Throws<ArgumentException>(() => Refuse(op, batch, rowsIn, output, scratch.AsSpan(1).ToArray(), workers));
                }
                Assert.True(expected.AsSpan().SequenceEqual(output), ctx + " output");
                AssertMoments(output, pixels, c, partials, op.NormalizedMomentsGranule, ctx);
                if (single is null) single = partials;
                else Assert.True(single.AsSpan().SequenceEqual(partials), ctx + ": the moments depend on the thread count");
            }
        }

        static void Refuse(Conv2dOperator op, int batch, BatchNormApplyRows rows, float[] output, float[] scratch, Workers workers) =>
            op.RunNormalized(batch, rows, output, scratch, workers, default);
    }

    /// <summary>
    /// A 1x1 convolution reading a batch norm's output it normalizes itself, row chunk by row chunk, writes the bits of the
    /// batch norm's forward followed by the GEMM, with and without moments (granule: a GEMM tile), the same at 1 and 2
    /// threads; its weight gradient normalizing x block by block equals the one reading x written.
    /// </summary>
    [Theory]
    [InlineData(2333, 96, 16)]
    [InlineData(300, 13, 21)]
    [InlineData(5, 8, 4)]
    public unsafe void PointwiseNormalizingItsInputEqualsTheBatchNormWrittenThenMultiplied(int rows, int c, int outC)
    {
        var g = new Conv2dGeometry(1, rows, 1, c, outC, 1, 1);
        var rng = new Random(rows + c);
        var w = TestData.Random(rng, g.WeightLength);
        var bias = TestData.Random(rng, outC);
        var x = TestData.Random(rng, (long)rows * c, 3f);
        var dy = TestData.Random(rng, (long)rows * outC);
        float[] gamma = TestData.Random(rng, c), beta = TestData.Random(rng, c);
        var act = Activation.Relu6;
        var (lo, hi) = BatchNormTraining.ClampOf(act);
        foreach (IsaLevel isa in Isa.Supported)
        {
            var (y, mean, inv, scale) = (new float[x.Length], new float[c], new float[c], new float[c]);
            BatchNormTraining.Forward(x, gamma, beta, y, mean, inv, rows, c, 1e-5f, Workers.Single, isa, act, scale);
            var op = new Conv2dOperator(g, w, bias, Activation.None, isa);
            Assert.True(op.TakesNormalizedInput);
            var expected = new float[rows * outC];
            op.Run(1, y, expected, default, new float[op.ScratchLength(1)], Workers.Single);
            var (dw1, db1) = (new float[w.Length], new float[outC]);
            LinearBackward.WeightGradient(y, dy, dw1, db1, rows, c, outC, Workers.Single, isa);
            double[]? single = null;
            foreach (var workers in new[] { Workers.Single, TestData.Two })
                foreach (bool withMoments in new[] { false, true })
                {
                    string ctx = $"{rows}x{c}->{outC} {isa} {workers.Count}T moments {withMoments}";
                    var output = Enumerable.Repeat(float.NaN, rows * outC).ToArray();
                    var partials = withMoments ? Enumerable.Repeat(double.NaN, ChannelMoments.PartialLength(rows, outC)).ToArray() : [];
                    var (dw2, db2) = (new float[w.Length], new float[outC]);
                    fixed (float* px = x, pm = mean, ps = scale, pb = beta)
                    {
                        var rowsIn = new BatchNormApplyRows { X = px, Mean = pm, Scale = ps, Beta = pb, Lo = lo, Hi = hi, Channels = c };
                        op.RunNormalized(1, rowsIn, output, new float[op.NormalizedScratchLength(1)], workers, partials);
                        LinearBackward.WeightGradient(rowsIn, dy, dw2, db2, rows, c, outC, workers, isa);
                    }
                    Assert.True(expected.AsSpan().SequenceEqual(output), ctx + " output");
                    Assert.True(dw1.AsSpan().SequenceEqual(dw2), ctx + " dw");
                    Assert.True(db1.AsSpan().SequenceEqual(db2), ctx + " db");
                    if (!withMoments) continue;
                    AssertMoments(output, rows, outC, partials, op.NormalizedMomentsGranule, ctx);
                    if (single is null) single = partials;
                    else Assert.True(single.AsSpan().SequenceEqual(partials), ctx + ": the moments depend on the thread count");
                }
        }
    }

    [Fact]
    public void TheFastPathsGatherInTheKernel()
    {
        Assert.Equal(16, new Conv2dOperator(new Conv2dGeometry(1, 4, 4, 480, 480, 3, 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Groups: 480),
            new float[480 * 9], [], default).MomentsGranule(64));
        Assert.Equal(6, new Conv2dOperator(new Conv2dGeometry(1, 28, 28, 16, 96, 1, 1), new float[16 * 96], [], default).MomentsGranule(64));
        Assert.Equal(28, new Conv2dOperator(new Conv2dGeometry(1, 28, 28, 96, 96, 3, 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Groups: 96),
            new float[96 * 9], [], default).MomentsGranule(64));
    }

    [Fact]
    public void ConvolutionRefusesAShortMomentsBuffer()
    {
        var g = new Conv2dGeometry(1, 4, 4, 8, 8, 1, 1);
        var op = new Conv2dOperator(g, new float[64], [], default);
        Assert.Throws<ArgumentException>(() => op.Run(1, new float[128], new float[128], default, default, Workers.Single, new double[3]));
    }
}
