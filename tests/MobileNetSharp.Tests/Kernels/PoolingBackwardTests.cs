using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>
/// Pooling gradients against a float64 reference (plain scatter loops) and against central finite differences of the
/// float64 forward (L = Σ r·pool(x)), swept over ISA x 1 and 2 threads. Max-pool inputs are distinct values (a
/// shuffled ramp) so the maximum is unique and finite differences with a step below the gap are exact; ties are
/// tested separately (the first maximal tap wins).
/// </summary>
public class PoolingBackwardTests
{
    private static Conv2dGeometry G(int n, int h, int w, int c, int k, int s, int pt = 0, int pl = 0, int pb = 0, int pr = 0, int d = 1) =>
        new(n, h, w, c, c, k, k, s, s, d, d, pt, pl, pb, pr);

    public static readonly TheoryData<string, Conv2dGeometry> Cases = new()
    {
        { "3x3s2p1", G(2, 9, 8, 17, 3, 2, 1, 1, 1, 1) },
        { "2x2s2", G(3, 8, 7, 33, 2, 2) },
        { "3x3s1p1", G(2, 6, 5, 5, 3, 1, 1, 1, 1, 1) },
        { "3x3s2-asym", G(1, 10, 9, 7, 3, 2, 0, 1, 1, 0) },
        { "3x3s1-dilated", G(2, 9, 9, 3, 3, 1, 2, 2, 2, 2, d: 2) },
        { "2x2s1p2", G(2, 4, 4, 17, 2, 1, 2, 2, 2, 2) }, // corner windows entirely in the padding
        { "3x3s2p1-big", G(4, 16, 16, 33, 3, 2, 1, 1, 1, 1) }, // parallel over images
        { "7x7-global-like", G(2, 7, 7, 9, 7, 1) },
    };

    // ---- float64 reference ----

    private static IEnumerable<(int Iy, int Ix)> Window(Conv2dGeometry g, int oy, int ox, int lowY, int highY, int lowX, int highX)
    {
        for (int ky = 0; ky < g.KernelH; ky++)
            for (int kx = 0; kx < g.KernelW; kx++)
            {
                int iy = oy * g.StrideH - g.PadTop + ky * g.DilationH, ix = ox * g.StrideW - g.PadLeft + kx * g.DilationW;
                if (iy >= lowY && iy < highY && ix >= lowX && ix < highX) yield return (iy, ix);
            }
    }

    private static int Divisor(Conv2dGeometry g, int oy, int ox, bool include) => Math.Max(1, include
        ? Window(g, oy, ox, -g.PadTop, g.InH + g.PadBottom, -g.PadLeft, g.InW + g.PadRight).Count()
        : Window(g, oy, ox, 0, g.InH, 0, g.InW).Count());

    /// <summary>Forward (max or average) and, for max, the input index each output came from (-1: empty window).</summary>
    private static (double[] Y, int[] ArgMax) Forward(Conv2dGeometry g, double[] x, bool max, bool include)
    {
        int c = g.InC;
        var y = new double[g.Batch * g.OutH * g.OutW * c];
        var arg = new int[y.Length];
        for (int oy = 0; oy < g.OutH; oy++)
            for (int ox = 0; ox < g.OutW; ox++)
            {
                var window = Window(g, oy, ox, 0, g.InH, 0, g.InW).ToArray();
                int divisor = Divisor(g, oy, ox, include);
                for (int n = 0; n < g.Batch; n++)
                    for (int ch = 0; ch < c; ch++)
                    {
                        int o = ((n * g.OutH + oy) * g.OutW + ox) * c + ch;
                        double best = double.NegativeInfinity, sum = 0;
                        int at = -1;
                        foreach (var (iy, ix) in window)
                        {
                            int i = ((n * g.InH + iy) * g.InW + ix) * c + ch;
                            if (at < 0 || x[i] > best) { best = x[i]; at = i; }
                            sum += x[i];
                        }
                        y[o] = max ? best : sum / divisor;
                        arg[o] = at;
                    }
            }
        return (y, arg);
    }

    private static double[] Backward(Conv2dGeometry g, double[] x, double[] dy, bool max, bool include)
    {
        int c = g.InC;
        var dx = new double[g.InputLength];
        var arg = Forward(g, x, max: true, include).ArgMax;
        for (int oy = 0; oy < g.OutH; oy++)
            for (int ox = 0; ox < g.OutW; ox++)
            {
                var window = Window(g, oy, ox, 0, g.InH, 0, g.InW).ToArray();
                int divisor = Divisor(g, oy, ox, include);
                for (int n = 0; n < g.Batch; n++)
                    for (int ch = 0; ch < c; ch++)
                    {
                        int o = ((n * g.OutH + oy) * g.OutW + ox) * c + ch;
                        if (max) { if (arg[o] >= 0) dx[arg[o]] += dy[o]; continue; }
                        double share = dy[o] / divisor;
                        foreach (var (iy, ix) in window) dx[((n * g.InH + iy) * g.InW + ix) * c + ch] += share;
                    }
            }
        return dx;
    }

    /// <summary>Distinct values in [-1, 1): a shuffled ramp with gap 2/length.</summary>
    private static float[] Distinct(Random rng, long length)
    {
        var v = Enumerable.Range(0, (int)length).Select(i => (float)(-1 + 2.0 * i / length)).ToArray();
        rng.Shuffle(v);
        return v;
    }

    private static void CheckFiniteDifferences(string ctx, double[] x, double[] r, Func<double[], double[]> forward, double[] grad, double h, Random rng)
    {
        // Windows entirely in the padding (max: -infinity) do not depend on x: left out of the loss.
        double Loss() { var y = forward(x); double s = 0; for (int i = 0; i < y.Length; i++) if (double.IsFinite(y[i])) s += r[i] * y[i]; return s; }
        for (int k = 0; k < 8; k++)
        {
            int i = k < 2 ? Array.FindIndex(grad, v => v != 0) : rng.Next(x.Length); // at least one cell that receives gradient
            double v = x[i];
            x[i] = v + h; double up = Loss();
            x[i] = v - h; double down = Loss();
            x[i] = v;
            double fd = (up - down) / (2 * h);
            Assert.True(Math.Abs(fd - grad[i]) <= 1e-7 * Math.Max(1, Math.Abs(fd)), $"{ctx}: reference dx[{i}] = {grad[i]}, finite differences {fd}");
        }
    }

    private static double[] D(float[] a) => a.Select(v => (double)v).ToArray();
    private static float[] F(double[] a) => a.Select(v => (float)v).ToArray();

    [Theory]
    [MemberData(nameof(Cases))]
    public void MaxPoolMatchesReferenceAndFiniteDifferences(string name, Conv2dGeometry g)
    {
        var rng = new Random(name.Length * 977 + g.InC);
        float[] x = Distinct(rng, g.InputLength), dy = TestData.Random(rng, g.Batch * g.OutH * g.OutW * g.InC);
        double[] xd = D(x), dyd = D(dy);
        var (ry, _) = Forward(g, xd, max: true, false);
        // The reference forward is the engine's forward.
        var y = new float[ry.Length];
        Pooling.MaxPool2d(g with { Batch = 1 }, g.Batch, x, y, Workers.Single);
        Assert.Equal(F(ry), y);
        var rdx = Backward(g, xd, dyd, max: true, false);
        CheckFiniteDifferences(name, xd, dyd, v => Forward(g, v, true, false).Y, rdx, 0.25 / x.Length, rng);

        foreach (var (isa, workers) in TestData.Sweep())
        {
            var dx = Enumerable.Repeat(float.NaN, x.Length).ToArray(); // every element must be written
            PoolingBackward.MaxPool2d(g, x, dy, dx, workers, isa);
            TestData.AssertClose(F(rdx), dx, 9, $"{name} {isa} {workers.Count}T");
        }
        var dxPublic = new float[x.Length];
        PoolingBackward.MaxPool2d(g, x, dy, dxPublic, TestData.Two);
        TestData.AssertClose(F(rdx), dxPublic, 9, name + " public");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void AveragePoolMatchesReferenceAndFiniteDifferences(string name, Conv2dGeometry g)
    {
        var rng = new Random(name.Length * 389 + g.InC);
        float[] x = TestData.Random(rng, g.InputLength), dy = TestData.Random(rng, g.Batch * g.OutH * g.OutW * g.InC);
        double[] xd = D(x), dyd = D(dy);
        foreach (bool include in new[] { false, true })
        {
            var (ry, _) = Forward(g, xd, max: false, include);
            var y = new float[ry.Length];
            Pooling.AveragePool2d(g with { Batch = 1 }, include, g.Batch, x, y, Workers.Single);
            TestData.AssertClose(F(ry), y, 9, $"{name} include={include} forward");
            var rdx = Backward(g, xd, dyd, max: false, include);
            CheckFiniteDifferences(name, xd, dyd, v => Forward(g, v, false, include).Y, rdx, 1e-3, rng);
            foreach (var (isa, workers) in TestData.Sweep())
            {
                var dx = Enumerable.Repeat(float.NaN, x.Length).ToArray();
                PoolingBackward.AveragePool2d(g, include, dy, dx, workers, isa);
                TestData.AssertClose(F(rdx), dx, 9, $"{name} include={include} {isa} {workers.Count}T");
            }
        }
    }

    [Fact]
    public void MaxPoolTiesGoToTheFirstTap()
    {
        foreach (var (isa, workers) in TestData.Sweep())
        {
            // 3x3 input of equal values, 2x2 windows with stride 1: each window's gradient goes to its top-left cell.
            var g = G(1, 3, 3, 1, 2, 1);
            var dx = new float[9];
            PoolingBackward.MaxPool2d(g, Enumerable.Repeat(0.5f, 9).ToArray(), [1f, 2f, 4f, 8f], dx, workers, isa);
            Assert.Equal(new float[] { 1, 2, 0, 4, 8, 0, 0, 0, 0 }, dx);
            // Padding never wins, even over -infinity and negative values; a tie later in the window loses.
            var g2 = G(1, 2, 2, 2, 3, 1, 1, 1, 1, 1);
            float[] x = [float.NegativeInfinity, -1, -5, -3, -7, -1, float.NegativeInfinity, -2];
            var dx2 = new float[8];
            PoolingBackward.MaxPool2d(g2, x, Enumerable.Repeat(1f, 8).ToArray(), dx2, workers, isa);
            // Every window covers the whole image. Channel 0: max -5 at pixel 1; channel 1: -1 at pixels 0 and 2, the first wins.
            Assert.Equal(new float[] { 0, 4, 4, 0, 0, 0, 0, 0 }, dx2);
            // A channel that is -infinity everywhere still sends its gradient to the first cell (PyTorch does too).
            var dx3 = new float[8];
            PoolingBackward.MaxPool2d(g2, Enumerable.Repeat(float.NegativeInfinity, 8).ToArray(), Enumerable.Repeat(1f, 8).ToArray(), dx3, workers, isa);
            Assert.Equal(new float[] { 4, 4, 0, 0, 0, 0, 0, 0 }, dx3);
        }
    }

    [Fact]
    public void GlobalPoolsMatchReferenceAndFiniteDifferences()
    {
        const int batch = 3, spatial = 49, c = 17;
        var rng = new Random(11);
        float[] x = Distinct(rng, batch * spatial * c), dy = TestData.Random(rng, batch * c);
        var (avg, max) = (new double[x.Length], new double[x.Length]);
        for (int n = 0; n < batch; n++)
            for (int ch = 0; ch < c; ch++)
            {
                int at = 0;
                for (int s = 0; s < spatial; s++)
                {
                    avg[(n * spatial + s) * c + ch] = dy[n * c + ch] / (double)spatial;
                    if (x[(n * spatial + s) * c + ch] > x[(n * spatial + at) * c + ch]) at = s;
                }
                max[(n * spatial + at) * c + ch] = dy[n * c + ch];
            }
        double[] Pool(double[] v, bool isMax)
        {
            var y = new double[batch * c];
            for (int n = 0; n < batch; n++)
                for (int ch = 0; ch < c; ch++)
                {
                    var vals = Enumerable.Range(0, spatial).Select(s => v[(n * spatial + s) * c + ch]);
                    y[n * c + ch] = isMax ? vals.Max() : vals.Average();
                }
            return y;
        }
        double[] xd = D(x), dyd = D(dy);
        CheckFiniteDifferences("global avg", xd, dyd, v => Pool(v, false), avg, 1e-3, rng);
        CheckFiniteDifferences("global max", xd, dyd, v => Pool(v, true), max, 0.25 / x.Length, rng);

        var dx = Enumerable.Repeat(float.NaN, x.Length).ToArray();
        PoolingBackward.GlobalAveragePool(batch, spatial, c, dy, dx);
        TestData.AssertClose(F(avg), dx, 1, "global avg");
        dx = Enumerable.Repeat(float.NaN, x.Length).ToArray();
        PoolingBackward.GlobalMaxPool(batch, spatial, c, x, dy, dx);
        Assert.Equal(F(max), dx);
        // Ties: the first position.
        var tie = new float[2 * 2];
        PoolingBackward.GlobalMaxPool(1, 2, 2, [1f, 3f, 1f, 3f], [5f, 6f], tie);
        Assert.Equal(new float[] { 5, 6, 0, 0 }, tie);
    }

    /// <summary>A head's size ([9, 4x4, 1280], images split between two workers): every element dy / spatial, as on one thread.</summary>
    [Fact]
    public void GlobalAverageGradientSplitBetweenWorkersMatchesOneThread()
    {
        const int batch = 9, spatial = 16, c = 1280;
        var dy = TestData.Random(new Random(3), batch * c);
        float[] one = new float[batch * spatial * c], two = Enumerable.Repeat(float.NaN, batch * spatial * c).ToArray();
        PoolingBackward.GlobalAveragePool(batch, spatial, c, dy, one);
        PoolingBackward.GlobalAveragePool(batch, spatial, c, dy, two, TestData.Two);
        Assert.Equal(one, two);
        for (int i = 0; i < one.Length; i++) Assert.Equal(dy[i / (spatial * c) * c + i % c] * (1f / spatial), one[i]);
    }

    [Fact]
    public void BadInputsAreRefused()
    {
        var g = G(2, 4, 4, 3, 2, 2);
        float[] x = new float[96], dy = new float[24];
        Assert.Throws<ArgumentException>(() => PoolingBackward.MaxPool2d(g, x, dy, new float[95]));
        Assert.Throws<ArgumentException>(() => PoolingBackward.MaxPool2d(g, x, new float[23], new float[96]));
        Assert.Throws<ArgumentException>(() => PoolingBackward.AveragePool2d(g, false, dy, new float[50]));
        Assert.Throws<ArgumentException>(() => PoolingBackward.AveragePool2d(g with { KernelH = 9 }, false, dy, x));
        Assert.Throws<ArgumentException>(() => PoolingBackward.GlobalAveragePool(2, 16, 3, new float[5], x));
        Assert.Throws<ArgumentException>(() => PoolingBackward.GlobalMaxPool(2, 16, 3, new float[95], new float[6], x));
        Assert.Throws<ArgumentException>(() => PoolingBackward.GlobalMaxPool(0, 16, 3, x, dy, x));
    }
}
