using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>
/// Training-mode batch norm: forward statistics and output, and the backward, against a float64 reference and against
/// central finite differences of the float64 forward (L = Σ r·BN(x) for a fixed random r, so ∂L/∂x, ∂L/∂gamma and
/// ∂L/∂beta are the gradients for dy = r), over ISA x 1 and 2 threads; thread-count independence; PyTorch's
/// running-statistics update.
/// </summary>
public class BatchNormTrainingTests
{
    private const float Eps = 1e-5f;

    // ---- float64 reference ----

    private static (double[] Y, double[] Mean, double[] InvStd) Forward(double[] x, double[] gamma, double[] beta, int rows, int c, double eps)
    {
        var (mean, inv, y) = (new double[c], new double[c], new double[x.Length]);
        for (int ch = 0; ch < c; ch++)
        {
            double s = 0, q = 0;
            for (int r = 0; r < rows; r++) s += x[r * c + ch];
            mean[ch] = s / rows;
            for (int r = 0; r < rows; r++) q += (x[r * c + ch] - mean[ch]) * (x[r * c + ch] - mean[ch]);
            inv[ch] = 1 / Math.Sqrt(q / rows + eps);
            for (int r = 0; r < rows; r++) y[r * c + ch] = gamma[ch] * (x[r * c + ch] - mean[ch]) * inv[ch] + beta[ch];
        }
        return (y, mean, inv);
    }

    private static (double[] Dx, double[] Dgamma, double[] Dbeta) Backward(double[] x, double[] dy, double[] gamma, int rows, int c, double eps)
    {
        var (_, mean, inv) = Forward(x, gamma, new double[c], rows, c, eps);
        var (dx, dg, db) = (new double[x.Length], new double[c], new double[c]);
        for (int ch = 0; ch < c; ch++)
        {
            double sdy = 0, sdyx = 0;
            for (int r = 0; r < rows; r++)
            {
                double xhat = (x[r * c + ch] - mean[ch]) * inv[ch];
                sdy += dy[r * c + ch];
                sdyx += dy[r * c + ch] * xhat;
            }
            db[ch] = sdy;
            dg[ch] = sdyx;
            for (int r = 0; r < rows; r++)
            {
                double xhat = (x[r * c + ch] - mean[ch]) * inv[ch];
                dx[r * c + ch] = gamma[ch] * inv[ch] / rows * (rows * dy[r * c + ch] - sdy - xhat * sdyx);
            }
        }
        return (dx, dg, db);
    }

    private static double Loss(double[] x, double[] gamma, double[] beta, double[] r, int rows, int c, double eps)
    {
        var y = Forward(x, gamma, beta, rows, c, eps).Y;
        double s = 0;
        for (int i = 0; i < y.Length; i++) s += r[i] * y[i];
        return s;
    }

    private static double[] D(float[] a) => a.Select(v => (double)v).ToArray();
    private static float[] F(double[] a) => a.Select(v => (float)v).ToArray();

    public static readonly TheoryData<int, int, float> Shapes = new()
    {
        { 2, 3, 0f },      // two rows: x̂ = ±1
        { 37, 17, 0f },    // odd channels (vector tails at every width)
        { 98, 33, 50f },   // a large mean: the two-pass variance keeps its precision
        { 200, 9, 1000f }, // mean/std ~ 900: E[x²] - mean² would lose every float digit
        { 1600, 24, 0f },  // enough for the fixed row blocks and the parallel path
        { 300, 1, 0f },    // one channel
        { 3, 2053, 5f },   // channels past the reductions' stack accumulators (a pooled array)
    };

    /// <summary>x [rows, C] around <paramref name="offset"/>, gamma, beta [C] and dy [rows, C], random.</summary>
    private static (float[] X, float[] Gamma, float[] Beta, float[] Dy) Inputs(Random rng, int rows, int c, float offset) =>
        (TestData.Random(rng, (long)rows * c, 2f).Select(v => v + offset).ToArray(), TestData.Random(rng, c), TestData.Random(rng, c), TestData.Random(rng, (long)rows * c));

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MatchesReferenceAndFiniteDifferences(int rows, int c, float offset)
    {
        var rng = new Random(rows * 131 + c);
        var (x, gamma, beta, dy) = Inputs(rng, rows, c, offset);
        double[] xd = D(x), gd = D(gamma), bd = D(beta), dyd = D(dy);
        var (ry, rmean, rinv) = Forward(xd, gd, bd, rows, c, Eps);
        var (rdx, rdg, rdb) = Backward(xd, dyd, gd, rows, c, Eps);

        // The reference backward against central differences of the reference forward (h² error; BN is smooth).
        const double h = 1e-4;
        foreach (var (arg, grad, what) in new[] { (xd, rdx, "dx"), (gd, rdg, "dgamma"), (bd, rdb, "dbeta") })
            for (int k = 0; k < 8; k++)
            {
                int i = rng.Next(arg.Length);
                double v = arg[i];
                arg[i] = v + h; double up = Loss(xd, gd, bd, dyd, rows, c, Eps);
                arg[i] = v - h; double down = Loss(xd, gd, bd, dyd, rows, c, Eps);
                arg[i] = v;
                double fd = (up - down) / (2 * h);
                Assert.True(Math.Abs(fd - grad[i]) <= 1e-5 * Math.Max(1, Math.Abs(fd)), $"[{rows}, {c}] reference {what}[{i}] = {grad[i]}, finite differences {fd}");
            }

        foreach (var (isa, workers) in TestData.Sweep())
        {
            string ctx = $"[{rows}, {c}] {isa} {workers.Count}T";
            var y = Enumerable.Repeat(float.NaN, x.Length).ToArray();
            var (mean, inv) = (new float[c], new float[c]);
            BatchNormTraining.Forward(x, gamma, beta, y, mean, inv, rows, c, Eps, workers, isa);
            TestData.AssertClose(F(rmean), mean, 1, ctx + " mean");
            TestData.AssertClose(F(rinv), inv, 4, ctx + " invStd");
            TestData.AssertClose(F(ry), y, 4, ctx + " y");

            var dx = Enumerable.Repeat(float.NaN, x.Length).ToArray();
            var (dg, db) = (Enumerable.Repeat(float.NaN, c).ToArray(), Enumerable.Repeat(float.NaN, c).ToArray());
            BatchNormTraining.Backward(x, dy, gamma, mean, inv, dx, dg, db, rows, c, workers, isa);
            TestData.AssertClose(F(rdx), dx, 16, ctx + " dx");
            TestData.AssertClose(F(rdg), dg, rows, ctx + " dgamma");
            TestData.AssertClose(F(rdb), db, rows, ctx + " dbeta");

            // In place: y over x, dx over dy.
            var inPlace = (float[])x.Clone();
            BatchNormTraining.Forward(inPlace, gamma, beta, inPlace, mean, inv, rows, c, Eps, workers, isa);
            Assert.Equal(y, inPlace);
            var dxInPlace = (float[])dy.Clone();
            BatchNormTraining.Backward(x, dxInPlace, gamma, mean, inv, dxInPlace, dg, db, rows, c, workers, isa);
            Assert.Equal(dx, dxInPlace);
        }
    }

    /// <summary>
    /// The backward through a fused clamp (one pass, the mask recomputed from x) equals the clamp's gradient from the
    /// output followed by the plain backward, bit for bit, at every ISA and thread count; the mask really cuts.
    /// </summary>
    [Theory]
    [MemberData(nameof(Shapes))]
    public void FusedClampBackwardEqualsClampGradientThenBackward(int rows, int c, float offset)
    {
        var (x, gamma, beta, dy) = Inputs(new Random(rows * 7 + c), rows, c, offset);
        foreach (var act in new[] { MobileNetSharp.Graph.Activation.Relu, MobileNetSharp.Graph.Activation.Relu6, MobileNetSharp.Graph.Activation.Clip(-0.5f, 0.25f) })
            foreach (var (isa, workers) in TestData.Sweep())
            {
                string ctx = $"[{rows}, {c}] {act} {isa} {workers.Count}T";
                var (y, mean, inv, scale) = (new float[x.Length], new float[c], new float[c], new float[c]);
                BatchNormTraining.Forward(x, gamma, beta, y, mean, inv, rows, c, Eps, workers, isa, act, scale);

                var masked = new float[x.Length];
                ActivationBackward.FromOutput(act, y, dy, masked, workers, isa);
                var (dx, dg, db) = (new float[x.Length], new float[c], new float[c]);
                BatchNormTraining.Backward(x, masked, gamma, mean, inv, dx, dg, db, rows, c, workers, isa);

                var (fdx, fdg, fdb) = (Enumerable.Repeat(float.NaN, x.Length).ToArray(), new float[c], new float[c]);
                BatchNormTraining.Backward(x, dy, gamma, mean, inv, fdx, fdg, fdb, rows, c, workers, isa, act, beta, scale);
                Assert.True(dx.AsSpan().SequenceEqual(fdx), ctx + " dx");
                Assert.True(dg.AsSpan().SequenceEqual(fdg), ctx + " dgamma");
                Assert.True(db.AsSpan().SequenceEqual(fdb), ctx + " dbeta");

                // In place over dy, as the training plan runs it.
                var inPlace = (float[])dy.Clone();
                BatchNormTraining.Backward(x, inPlace, gamma, mean, inv, inPlace, fdg, fdb, rows, c, workers, isa, act, beta, scale);
                Assert.True(dx.AsSpan().SequenceEqual(inPlace), ctx + " dx in place");
                if (rows > 2) Assert.Contains(masked, v => v == 0);
            }
    }

    [Fact]
    public void FusedClampBackwardRefusesMissingScaleOrNonClamp()
    {
        var (x, c3) = (new float[12], new float[3]);
        Assert.Throws<ArgumentException>(() => BatchNormTraining.Backward(x, x, c3, c3, new float[2], c3, c3, x, c3, c3, 4, 3, MobileNetSharp.Graph.Activation.Relu6));
        Assert.Throws<ArgumentException>(() => BatchNormTraining.Backward(x, x, c3, c3, c3, c3, c3, x, c3, c3, 4, 3, MobileNetSharp.Graph.Activation.HardSwish));
        Assert.Throws<ArgumentException>(() => BatchNormTraining.Forward(x, c3, c3, x, c3, c3, 4, 3, Eps, null, MobileNetSharp.Graph.Activation.Relu, new float[2]));
    }

    [Fact]
    public void OneRowNormalizesToBetaAndPassesNoGradient()
    {
        float[] x = [3f, -1f, 7f], gamma = [2f, 2f, 2f], beta = [0.5f, -0.5f, 1f], y = new float[3], mean = new float[3], inv = new float[3];
        BatchNormTraining.Forward(x, gamma, beta, y, mean, inv, 1, 3, Eps);
        Assert.Equal(beta, y);
        Assert.Equal(x, mean);
        var (dx, dg, db) = (new float[3], new float[3], new float[3]);
        BatchNormTraining.Backward(x, [1f, 2f, 3f], gamma, mean, inv, dx, dg, db, 1, 3);
        Assert.Equal(new float[3], dx);
        Assert.Equal(new float[] { 1f, 2f, 3f }, db);
    }

    [Fact]
    public void ResultsDoNotDependOnTheThreadCount()
    {
        const int rows = 4 * 28 * 28, c = 40;
        var rng = new Random(5);
        float[] x = TestData.Random(rng, rows * c, 3f), gamma = TestData.Random(rng, c), beta = TestData.Random(rng, c), dy = TestData.Random(rng, rows * c);
        float[][] Run(Workers w)
        {
            var (y, mean, inv, dx, dg, db) = (new float[rows * c], new float[c], new float[c], new float[rows * c], new float[c], new float[c]);
            BatchNormTraining.Forward(x, gamma, beta, y, mean, inv, rows, c, Eps, w);
            BatchNormTraining.Backward(x, dy, gamma, mean, inv, dx, dg, db, rows, c, w);
            return [y, mean, inv, dx, dg, db];
        }
        var (one, two) = (Run(Workers.Single), Run(TestData.Two));
        for (int i = 0; i < one.Length; i++) Assert.Equal(one[i], two[i]);
    }

    [Fact]
    public void RunningStatisticsFollowPyTorch()
    {
        // torch.nn.BatchNorm1d(2, momentum=0.1) on x = [[1, 10], [2, 10], [3, 10], [4, 10]] from running (0, 1):
        // batch mean (2.5, 10), biased var (1.25, 0), unbiased var (5/3, 0) ->
        // running_mean = 0.1·mean = (0.25, 1.0), running_var = 0.9 + 0.1·(5/3, 0) = (1.0666667, 0.9).
        float[] x = [1, 10, 2, 10, 3, 10, 4, 10], y = new float[8], mean = new float[2], inv = new float[2];
        BatchNormTraining.Forward(x, [1f, 1f], [0f, 0f], y, mean, inv, 4, 2, Eps);
        float[] runningMean = [0f, 0f], runningVar = [1f, 1f];
        BatchNormTraining.UpdateRunningStatistics(mean, inv, Eps, 4, 0.1f, runningMean, runningVar);
        Assert.Equal(0.25, runningMean[0], 1e-6);
        Assert.Equal(1.0, runningMean[1], 1e-6);
        Assert.Equal(0.9 + 0.1 * 5.0 / 3.0, runningVar[0], 1e-5);
        Assert.Equal(0.9, runningVar[1], 1e-5);

        // Hand-computed from saved statistics: var (4, 0.25) over 4 rows, momentum 0.2, running (0.5, 0) and (1, 2).
        float[] m2 = [1f, -2f], inv2 = [(float)(1 / Math.Sqrt(4 + 1e-3)), (float)(1 / Math.Sqrt(0.25 + 1e-3))];
        float[] rm = [0.5f, 0f], rv = [1f, 2f];
        BatchNormTraining.UpdateRunningStatistics(m2, inv2, 1e-3f, 4, 0.2f, rm, rv);
        Assert.Equal(0.8 * 0.5 + 0.2 * 1, rm[0], 1e-6);
        Assert.Equal(0.2 * -2, rm[1], 1e-6);
        Assert.Equal(0.8 * 1 + 0.2 * 4 * 4 / 3.0, rv[0], 1e-5);
        Assert.Equal(0.8 * 2 + 0.2 * 0.25 * 4 / 3.0, rv[1], 1e-5);

        // rows == 1: the biased variance is used (PyTorch would divide by zero; ONNX keeps it finite).
        float[] rv1 = [1f];
        BatchNormTraining.UpdateRunningStatistics([0f], [(float)(1 / Math.Sqrt(4 + 1e-3))], 1e-3f, 1, 0.5f, [0f], rv1);
        Assert.Equal(0.5 + 0.5 * 4, rv1[0], 1e-5);
    }

    [Fact]
    public void BadInputsAreRefused()
    {
        float[] c3 = new float[3], big = new float[12];
        Assert.Throws<ArgumentException>(() => BatchNormTraining.Forward(big, c3, c3, big, c3, c3, 0, 3, Eps));
        Assert.Throws<ArgumentException>(() => BatchNormTraining.Forward(big, c3, c3, big, c3, c3, 5, 3, Eps));    // x too small
        Assert.Throws<ArgumentException>(() => BatchNormTraining.Forward(big, c3, c3, big, new float[2], c3, 4, 3, Eps));
        Assert.Throws<ArgumentException>(() => BatchNormTraining.Forward(big, c3, c3, big, c3, c3, 4, 3, -1f));
        Assert.Throws<ArgumentException>(() => BatchNormTraining.Backward(big, new float[11], c3, c3, c3, big, c3, c3, 4, 3));
        Assert.Throws<ArgumentException>(() => BatchNormTraining.Backward(big, big, c3, c3, c3, big, new float[2], c3, 4, 3));
        Assert.Throws<ArgumentException>(() => BatchNormTraining.UpdateRunningStatistics(c3, c3, Eps, 4, 1.5f, c3, c3));
        Assert.Throws<ArgumentException>(() => BatchNormTraining.UpdateRunningStatistics(c3, c3, Eps, 0, 0.1f, c3, c3));
        Assert.Throws<ArgumentException>(() => BatchNormTraining.UpdateRunningStatistics(c3, c3, Eps, 4, 0.1f, c3, new float[2]));
    }
}
