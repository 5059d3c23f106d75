using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>
/// Softmax cross-entropy (against a float64 reference and central finite differences of the float64 loss, with and
/// without label smoothing), inverted dropout (keep rate, determinism per seed, backward = mask/(1 - ratio)) and the
/// broadcast-operand gradient SumTo (against a float64 reference and the adjoint identity ⟨SumTo(dy), v⟩ =
/// ⟨dy, broadcast(v)⟩, i.e. finite differences of the linear broadcast, over ISA x 1 and 2 threads).
/// </summary>
public class TrainingKernelsTests
{
    // ---- softmax cross-entropy ----

    private static double Loss(double[] logits, long[] labels, int n, int k, double s)
    {
        double total = 0;
        for (int i = 0; i < n; i++)
        {
            var row = logits.Skip(i * k).Take(k).ToArray();
            double max = row.Max(), lse = max + Math.Log(row.Sum(v => Math.Exp(v - max)));
            for (int j = 0; j < k; j++)
            {
                double target = (1 - s) * (j == labels[i] ? 1 : 0) + s / k;
                total -= target * (row[j] - lse);
            }
        }
        return total / n;
    }

    private static (double[] P, double[] D) SoftmaxReference(double[] logits, long[] labels, int n, int k, double s, double scale)
    {
        var (p, d) = (new double[n * k], new double[n * k]);
        for (int i = 0; i < n; i++)
        {
            double max = logits.Skip(i * k).Take(k).Max(), sum = 0;
            for (int j = 0; j < k; j++) sum += p[i * k + j] = Math.Exp(logits[i * k + j] - max);
            for (int j = 0; j < k; j++)
            {
                p[i * k + j] /= sum;
                d[i * k + j] = (p[i * k + j] - ((1 - s) * (j == labels[i] ? 1 : 0) + s / k)) * scale / n;
            }
        }
        return (p, d);
    }

    [Theory]
    [InlineData(4, 10, 0f, 1f)]
    [InlineData(3, 1000, 0.1f, 1f)]
    [InlineData(7, 17, 0.3f, 2.5f)]
    [InlineData(1, 1, 0f, 1f)]
    public void SoftmaxCrossEntropyMatchesReferenceAndFiniteDifferences(int n, int k, float smoothing, float lossScale)
    {
        var rng = new Random(n * 100 + k);
        float[] logits = TestData.Random(rng, n * k, 4f);
        long[] labels = Enumerable.Range(0, n).Select(_ => (long)rng.Next(k)).ToArray();
        double[] ld = logits.Select(v => (double)v).ToArray();
        var (rp, rd) = SoftmaxReference(ld, labels, n, k, smoothing, lossScale);
        double rloss = Loss(ld, labels, n, k, smoothing);

        // The reference gradient against central differences of the float64 loss.
        const double h = 1e-5;
        for (int t = 0; t < 10; t++)
        {
            int i = t == 0 ? (int)labels[0] : rng.Next(ld.Length);
            double v = ld[i];
            ld[i] = v + h; double up = Loss(ld, labels, n, k, smoothing);
            ld[i] = v - h; double down = Loss(ld, labels, n, k, smoothing);
            ld[i] = v;
            double fd = (up - down) / (2 * h) * lossScale;
            Assert.True(Math.Abs(fd - rd[i]) <= 1e-7, $"reference dlogits[{i}] = {rd[i]}, finite differences {fd}");
        }

        var p = new float[n * k];
        float loss = SoftmaxCrossEntropy.Forward(logits, labels, p, n, k, smoothing);
        Assert.True(Math.Abs(loss - rloss) <= 1e-5 * Math.Max(1, Math.Abs(rloss)), $"loss {loss}, reference {rloss}");
        TestData.AssertClose(rp.Select(v => (float)v).ToArray(), p, 4, "probabilities");
        var d = new float[n * k];
        SoftmaxCrossEntropy.Backward(p, labels, d, n, k, smoothing, lossScale);
        TestData.AssertClose(rd.Select(v => (float)v).ToArray(), d, 4, "dlogits");

        // In place: probabilities over the logits, dlogits over the probabilities.
        var buffer = (float[])logits.Clone();
        Assert.Equal(loss, SoftmaxCrossEntropy.Forward(buffer, labels, buffer, n, k, smoothing));
        Assert.Equal(p, buffer);
        SoftmaxCrossEntropy.Backward(buffer, labels, buffer, n, k, smoothing, lossScale);
        Assert.Equal(d, buffer);
    }

    [Fact]
    public void SoftmaxIsStableForLargeLogits()
    {
        float[] logits = [1000f, 999f, -1000f, 80f, 90f, 100f], p = new float[6];
        float loss = SoftmaxCrossEntropy.Forward(logits, [0, 2], p, 2, 3);
        Assert.True(float.IsFinite(loss) && p.All(float.IsFinite));
        double expected = (Math.Log(1 + Math.Exp(-1) + Math.Exp(-2000)) + Math.Log(Math.Exp(-20) + Math.Exp(-10) + 1)) / 2;
        Assert.Equal(expected, loss, 1e-5);
        Assert.Equal(1.0, p[0] + p[1] + p[2], 1e-6);
    }

    [Fact]
    public void SoftmaxCrossEntropyRefusesBadInputs()
    {
        float[] a = new float[6];
        var e = Assert.Throws<ArgumentException>(() => SoftmaxCrossEntropy.Forward(a, [0, 3], a, 2, 3));
        Assert.Contains("label 3", e.Message);
        e = Assert.Throws<ArgumentException>(() => SoftmaxCrossEntropy.Backward(a, [-1, 0], a, 2, 3));
        Assert.Contains("label -1", e.Message);
        Assert.Throws<ArgumentException>(() => SoftmaxCrossEntropy.Forward(a, [0, 1], new float[5], 2, 3));
        Assert.Throws<ArgumentException>(() => SoftmaxCrossEntropy.Forward(a, [0], a, 2, 3));
        Assert.Throws<ArgumentException>(() => SoftmaxCrossEntropy.Forward(a, [0, 1], a, 2, 3, 1f));
        Assert.Throws<ArgumentException>(() => SoftmaxCrossEntropy.Backward(a, [0, 1], a, 2, 3, -0.1f));
        Assert.Throws<ArgumentException>(() => SoftmaxCrossEntropy.Backward(new float[5], [0, 1], a, 2, 3));
        Assert.Throws<ArgumentException>(() => SoftmaxCrossEntropy.Forward(a, [0, 1], a, 0, 3));
    }

    // ---- dropout ----

    [Theory]
    [InlineData(0.1f)]
    [InlineData(0.5f)]
    [InlineData(0.8f)]
    public void DropoutKeepsOneMinusRatioDeterministically(float ratio)
    {
        const int n = 100_000;
        var rng = new Random(1);
        float[] x = TestData.Random(rng, n), y = new float[n], y2 = new float[n], y3 = new float[n];
        byte[] mask = new byte[n], mask2 = new byte[n], mask3 = new byte[n];
        DropoutKernel.Forward(x, y, mask, ratio, 42);
        double kept = mask.Count(m => m == 1) / (double)n, sigma = Math.Sqrt(ratio * (1 - ratio) / n);
        Assert.True(Math.Abs(kept - (1 - ratio)) < 5 * sigma, $"kept {kept}, expected {1 - ratio} ± {5 * sigma}");
        Assert.True(mask.All(m => m <= 1));
        float scale = 1f / (1f - ratio);
        int wrong = Enumerable.Range(0, n).FirstOrDefault(i => y[i] != (mask[i] == 1 ? x[i] * scale : 0f), -1);
        Assert.True(wrong < 0, $"y[{wrong}] is not x·mask/(1 - ratio)");

        DropoutKernel.Forward(x, y2, mask2, ratio, 42);
        Assert.Equal(mask, mask2);
        Assert.Equal(y, y2);
        // Split between two workers (100,000 elements: several chunks), the same mask and values.
        Array.Clear(y2);
        Array.Clear(mask2);
        DropoutKernel.Forward(x, y2, mask2, ratio, 42, TestData.Two);
        Assert.Equal(mask, mask2);
        Assert.Equal(y, y2);
        DropoutKernel.Forward(x, y3, mask3, ratio, 43);
        double differ = mask.Zip(mask3).Count(p => p.First != p.Second) / (double)n;
        Assert.True(Math.Abs(differ - 2 * ratio * (1 - ratio)) < 0.01, $"seeds 42 and 43 differ in {differ} of the mask");
        // Neighbouring elements are not correlated (a counter hash, not a short-period generator).
        double same = Enumerable.Range(1, n - 1).Count(i => mask[i] == mask[i - 1]) / (double)(n - 1);
        Assert.True(Math.Abs(same - (ratio * ratio + (1 - ratio) * (1 - ratio))) < 0.01, $"neighbours agree in {same}");

        var dy = TestData.Random(rng, n);
        var dx = new float[n];
        DropoutKernel.Backward(dy, mask, dx, ratio);
        wrong = Enumerable.Range(0, n).FirstOrDefault(i => Math.Abs(mask[i] * dy[i] / (1 - ratio) - dx[i]) > 1e-6, -1);
        Assert.True(wrong < 0, $"dx[{wrong}] is not dy·mask/(1 - ratio)");
        var dx2 = new float[n];
        DropoutKernel.Backward(dy, mask, dx2, ratio, TestData.Two);
        Assert.Equal(dx, dx2);
    }

    [Fact]
    public void DropoutWithRatioZeroIsTheIdentityAndBadInputsThrow()
    {
        var x = TestData.Random(new Random(2), 1000);
        var (y, mask) = (new float[1000], new byte[1000]);
        DropoutKernel.Forward(x, y, mask, 0f, 7);
        Assert.Equal(x, y);
        Assert.All(mask, m => Assert.Equal(1, m));
        foreach (float bad in new[] { 1f, -0.1f, float.NaN, 1.5f })
        {
            Assert.Throws<ArgumentException>(() => DropoutKernel.Forward(x, y, mask, bad, 1));
            Assert.Throws<ArgumentException>(() => DropoutKernel.Backward(x, mask, y, bad));
        }
        Assert.Throws<ArgumentException>(() => DropoutKernel.Forward(x, new float[999], mask, 0.5f, 1));
        Assert.Throws<ArgumentException>(() => DropoutKernel.Forward(x, y, new byte[999], 0.5f, 1));
        Assert.Throws<ArgumentException>(() => DropoutKernel.Backward(x, new byte[999], y, 0.5f));
        Assert.Throws<ArgumentException>(() => DropoutKernel.Backward(x, mask, new float[999], 0.5f));
    }

    // ---- broadcast gradient ----

    public static readonly TheoryData<int[], int[]> Pairs = new()
    {
        { [2, 3, 4], [2, 3, 4] },           // equal: copy
        { [2, 5, 7, 17], [2, 1, 1, 17] },   // squeeze-excite
        { [4, 16, 16, 33], [4, 1, 1, 33] }, // squeeze-excite, big enough for the parallel path
        { [1, 28, 28, 24], [1, 1, 1, 24] }, // one image: row blocks within the segment
        { [300, 33], [33] },                // bias
        { [4096, 24], [24] },               // bias, parallel
        { [2, 7, 7, 17], [17] },            // bias of an NHWC tensor (rank padded)
        { [2, 3, 4], [1] },                 // everything
        { [2, 3, 4], [] },                  // to a scalar
        { [3, 4], [3, 1] },                 // row sums
        { [2, 3, 4, 5], [3, 1, 5] },        // generic: summed, kept, summed, kept
        { [6, 5, 4], [6, 1, 1] },           // row sums over merged dims
        { [5, 1, 3], [1, 1, 3] },           // size-1 dims vanish
        { [1, 5], [5] },
        { [6, 0, 3], [1, 1, 3] },           // empty dy: zeros
    };

    private static int[] Pad(int[] target, int rank) => Enumerable.Repeat(1, rank - target.Length).Concat(target).ToArray();

    private static int Product(int[] shape) => shape.Aggregate(1, (a, b) => a * b);

    /// <summary>The target index of each dy element.</summary>
    private static int[] TargetIndex(int[] dyShape, int[] target)
    {
        int rank = dyShape.Length;
        var t = Pad(target, rank);
        var map = new int[Product(dyShape)];
        var index = new int[rank];
        for (int i = 0; i < map.Length; i++)
        {
            int o = 0;
            for (int d = 0; d < rank; d++) o = o * t[d] + (t[d] == 1 ? 0 : index[d]);
            map[i] = o;
            for (int d = rank - 1; d >= 0 && ++index[d] == dyShape[d]; d--) index[d] = 0;
        }
        return map;
    }

    [Theory]
    [MemberData(nameof(Pairs))]
    public void SumToMatchesReferenceAndTheAdjointIdentity(int[] dyShape, int[] target)
    {
        var rng = new Random(Product(dyShape) + target.Length);
        int count = Product(dyShape), tcount = Product(target);
        float[] dy = TestData.Random(rng, count), v = TestData.Random(rng, tcount);
        var map = TargetIndex(dyShape, target);
        var reference = new double[tcount];
        for (int i = 0; i < count; i++) reference[map[i]] += dy[i];
        int k = tcount == 0 ? 1 : Math.Max(1, count / tcount);
        string shapes = $"[{string.Join(",", dyShape)}] -> [{string.Join(",", target)}]";

        float[]? first = null;
        foreach (var (isa, workers) in TestData.Sweep())
        {
            var dx = Enumerable.Repeat(float.NaN, tcount).ToArray();
            BroadcastBackward.SumTo(dy, dyShape, dx, target, workers, isa);
            TestData.AssertClose(reference.Select(x => (float)x).ToArray(), dx, k, $"{shapes} {isa} {workers.Count}T");
            // ⟨SumTo(dy), v⟩ = ⟨dy, broadcast(v)⟩: the gradient of L(v) = Σ dy·broadcast(v), exactly its finite differences.
            double lhs = 0, rhs = 0;
            for (int i = 0; i < tcount; i++) lhs += dx[i] * (double)v[i];
            for (int i = 0; i < count; i++) rhs += dy[i] * (double)v[map[i]];
            Assert.True(Math.Abs(lhs - rhs) <= 1e-4 * Math.Max(1, Math.Sqrt(count)), $"{shapes}: adjoint {lhs} vs {rhs}");
            // Identical for 1 and 2 threads at an ISA.
            if (workers.Count == 1) first = dx;
            else Assert.Equal(first, dx);
        }
        var dxPublic = new float[tcount];
        BroadcastBackward.SumTo(dy, dyShape, dxPublic, target);
        TestData.AssertClose(reference.Select(x => (float)x).ToArray(), dxPublic, k, shapes + " public");
    }

    [Fact]
    public void SumToRefusesWhatDoesNotBroadcast()
    {
        var a = new float[24];
        var e = Assert.Throws<ArgumentException>(() => BroadcastBackward.SumTo(a, [2, 3, 4], a, [3, 3]));
        Assert.Contains("does not broadcast", e.Message);
        Assert.Throws<ArgumentException>(() => BroadcastBackward.SumTo(a, [2, 3], a, [4]));
        Assert.Throws<ArgumentException>(() => BroadcastBackward.SumTo(a, [3], a, [2, 3]));      // target of higher rank
        Assert.Throws<ArgumentException>(() => BroadcastBackward.SumTo(a, [2, 3, 4], new float[3], [2, 3, 1]));
        Assert.Throws<ArgumentException>(() => BroadcastBackward.SumTo(new float[23], [2, 3, 4], a, [4]));
        Assert.Throws<ArgumentException>(() => BroadcastBackward.SumTo(a, [2, -3], a, [1]));
    }
}
