using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Tensors;

public class TensorMathTests
{
    // ---- ArgMax ----

    [Fact]
    public void ArgMaxOfRank1IsOneIndex()
    {
        var t = new Tensor([0.5f, -2f, 3.25f, 1f], 4);
        Assert.Equal([2], t.ArgMax());
    }

    [Fact]
    public void ArgMaxPerBatchRow()
    {
        var t = new Tensor(
        [
            1f, 9f, 3f,
            -1f, -5f, -0.5f,
            7f, 7f, 2f,
        ], 3, 3);
        Assert.Equal([1, 2, 0], t.ArgMax());
    }

    [Fact]
    public void ArgMaxTiesGoToTheLowestIndex()
    {
        Assert.Equal([1], new Tensor([0f, 4f, 4f, 4f], 4).ArgMax());
        Assert.Equal([0], new Tensor([-0f, 0f], 2).ArgMax());
        Assert.Equal([0], new Tensor([0f, -0f], 2).ArgMax());
        Assert.Equal([0, 0], new Tensor(new float[6], 2, 3).ArgMax());
    }

    [Fact]
    public void ArgMaxOfHigherRankTreatsLeadingAxesAsRows()
    {
        // [2, 2, 3]: four rows of three.
        var t = new Tensor([0f, 1f, 2f, 5f, 4f, 3f, 6f, 8f, 7f, -1f, -1f, -1f], 2, 2, 3);
        Assert.Equal([2, 0, 1, 0], t.ArgMax());
        // A [N, C, 1, 1] logits tensor from a conv head reduces over the trailing 1: every index is 0.
        Assert.Equal([0, 0, 0], Tensor.Random(1, [1, 3, 1, 1]).ArgMax());
    }

    [Fact]
    public void ArgMaxMatchesALinearScanOnRandomRows()
    {
        var t = Tensor.Random(seed: 7, shape: [5, 1000]);
        var got = t.ArgMax();
        for (int r = 0; r < 5; r++)
        {
            var row = t.Floats.AsSpan(r * 1000, 1000);
            Assert.Equal(row.IndexOf(row.ToArray().Max()), got[r]);
        }
    }

    [Fact]
    public void ArgMaxPicksNaNAndHandlesInfinities()
    {
        Assert.Equal([2], new Tensor([1f, float.PositiveInfinity, float.NaN, 3f], 4).ArgMax());
        Assert.Equal([1], new Tensor([float.NegativeInfinity, float.PositiveInfinity, 3f], 3).ArgMax());
        Assert.Equal([0], new Tensor([float.NegativeInfinity, float.NegativeInfinity], 2).ArgMax());
    }

    [Fact]
    public void ArgMaxRefusesEmptyRowsButNotAnEmptyBatch()
    {
        var ex = Assert.Throws<ArgumentException>(() => new Tensor(Array.Empty<float>(), 2, 0).ArgMax());
        Assert.Contains("empty last axis", ex.Message);
        Assert.Throws<ArgumentException>(() => new Tensor(Array.Empty<float>(), 0).ArgMax());
        Assert.Empty(new Tensor(Array.Empty<float>(), 0, 10).ArgMax());
    }

    // ---- Softmax ----

    [Fact]
    public void SoftmaxMatchesTheDefinition()
    {
        var t = new Tensor([1f, 2f, 3f, 0f, 0f, 0f], 2, 3);
        var s = t.Softmax();

        Assert.Equal([2, 3], s.Shape);
        Assert.Equal(DataType.Float32, s.DataType);
        double e1 = Math.Exp(1), e2 = Math.Exp(2), e3 = Math.Exp(3), z = e1 + e2 + e3;
        float[] expected = [(float)(e1 / z), (float)(e2 / z), (float)(e3 / z), 1f / 3, 1f / 3, 1f / 3];
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], s.Floats[i], 1e-6f);
    }

    [Fact]
    public void SoftmaxReturnsANewTensorAndLeavesTheInputAlone()
    {
        var t = new Tensor([1f, 2f, 3f], 3);
        var s = t.Softmax();
        Assert.NotSame(t.Data, s.Data);
        Assert.Equal([1f, 2f, 3f], t.Floats);
    }

    [Fact]
    public void SoftmaxIsStableForLargeLogits()
    {
        // exp(1000) overflows float and double; subtracting the row max keeps it finite.
        var s = new Tensor([1000f, 1000f, 990f, -1000f], 4).Softmax().Floats;
        Assert.All(s, v => Assert.True(float.IsFinite(v)));
        float small = MathF.Exp(-10f);
        Assert.Equal(1f / (2 + small), s[0], 1e-6f);
        Assert.Equal(s[0], s[1]);
        Assert.Equal(small / (2 + small), s[2], 1e-7f);
        Assert.Equal(0f, s[3]);
    }

    [Fact]
    public void SoftmaxRowsSumToOneAndKeepTheOrder()
    {
        var t = Tensor.Random(seed: 3, shape: [2, 3, 1000], lo: -20f, hi: 20f);
        var s = t.Softmax();
        Assert.Equal(t.Shape, s.Shape);
        for (int r = 0; r < 6; r++)
        {
            var row = s.Floats.AsSpan(r * 1000, 1000);
            double sum = 0;
            foreach (float v in row) { Assert.InRange(v, 0f, 1f); sum += v; }
            Assert.Equal(1.0, sum, 1e-5);
        }
        Assert.Equal(t.ArgMax(), s.ArgMax());
    }

    [Fact]
    public void SoftmaxOfARowWithNaNIsNaN()
    {
        var s = new Tensor([1f, float.NaN, 2f, 1f, 2f, 3f], 2, 3).Softmax().Floats;
        Assert.All(s.AsSpan(0, 3).ToArray(), v => Assert.True(float.IsNaN(v)));
        Assert.All(s.AsSpan(3, 3).ToArray(), v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void SoftmaxOfEmptyTensorsIsEmpty()
    {
        Assert.Equal([2, 0], new Tensor(Array.Empty<float>(), 2, 0).Softmax().Shape);
        Assert.Equal([0, 5], new Tensor(Array.Empty<float>(), 0, 5).Softmax().Shape);
    }

    // ---- TopK ----

    [Fact]
    public void TopKOfRank1IsSortedDescending()
    {
        var t = new Tensor([0.1f, 0.7f, -3f, 0.5f, 2f], 5);
        var top = Assert.Single(t.TopK(3));
        Assert.Equal([(4, 2f), (1, 0.7f), (3, 0.5f)], top);
    }

    [Fact]
    public void TopKPerBatchRow()
    {
        var t = new Tensor(
        [
            3f, 1f, 2f, 0f,
            -1f, -2f, -3f, -4f,
        ], 2, 4);
        var top = t.TopK(2);
        Assert.Equal(2, top.Length);
        Assert.Equal([(0, 3f), (2, 2f)], top[0]);
        Assert.Equal([(0, -1f), (1, -2f)], top[1]);
    }

    [Fact]
    public void TopKTiesComeOutLowerIndexFirst()
    {
        var t = new Tensor([1f, 5f, 3f, 5f, 3f, 5f, 0f], 7);
        Assert.Equal([(1, 5f), (3, 5f), (5, 5f), (2, 3f), (4, 3f)], t.TopK(5)[0]);
        // A tie at the cut: the lower index is kept.
        Assert.Equal([(1, 5f), (3, 5f)], t.TopK(2)[0]);
        Assert.Equal([(0, 0f), (1, 0f), (2, 0f)], new Tensor(new float[3], 3).TopK(3)[0]);
    }

    [Fact]
    public void TopKWithKAboveTheRowLengthReturnsTheWholeRowSorted()
    {
        var t = new Tensor([2f, 9f, 4f, 4f, 1f, 8f], 2, 3);
        var top = t.TopK(10);
        Assert.Equal([(1, 9f), (2, 4f), (0, 2f)], top[0]);
        Assert.Equal([(2, 8f), (0, 4f), (1, 1f)], top[1]);
    }

    [Fact]
    public void TopKOfZeroIsEmptyRowsAndNegativeKIsRefused()
    {
        var t = new Tensor([1f, 2f, 3f, 4f], 2, 2);
        var top = t.TopK(0);
        Assert.Equal(2, top.Length);
        Assert.All(top, Assert.Empty);
        Assert.Throws<ArgumentOutOfRangeException>(() => t.TopK(-1));
    }

    [Fact]
    public void TopKPutsNaNFirstAndOrdersInfinities()
    {
        var t = new Tensor([1f, float.NegativeInfinity, float.NaN, float.PositiveInfinity, 0f], 5);
        var top = t.TopK(5)[0];
        Assert.Equal([2, 3, 0, 4, 1], top.Select(p => p.Index));
        Assert.True(float.IsNaN(top[0].Value));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(32)]   // the largest k on the insertion path
    [InlineData(33)]   // the smallest on the sort path
    [InlineData(200)]
    [InlineData(1000)]
    public void TopKMatchesAFullStableSortWithManyTies(int k)
    {
        // Values from a small set, so ties are everywhere; three batch rows of a rank-3 tensor.
        var rng = new Random(k);
        var data = new float[3 * 1000];
        for (int i = 0; i < data.Length; i++) data[i] = rng.Next(-10, 11) * 0.25f;
        var t = new Tensor(data, 3, 1, 1000);

        var top = t.TopK(k);
        Assert.Equal(3, top.Length);
        for (int r = 0; r < 3; r++)
        {
            var expected = data.Skip(r * 1000).Take(1000)
                .Select((v, i) => (Index: i, Value: v))
                .OrderByDescending(p => p.Value).ThenBy(p => p.Index)   // OrderBy is stable; ThenBy makes it explicit
                .Take(k).ToArray();
            Assert.Equal(expected, top[r]);
        }
        Assert.Equal(t.ArgMax(), top.Select(row => row[0].Index));
    }

    // ---- Refusals shared by all three ----

    [Fact]
    public void NonFloatTensorsAreRefusedWithTheTypeNamed()
    {
        var ints = new Tensor(new long[] { 1, 2, 3 }, 3);
        var ex = Assert.Throws<ArgumentException>(() => ints.ArgMax());
        Assert.Contains("Int64", ex.Message);
        Assert.Throws<ArgumentException>(() => ints.Softmax());
        Assert.Throws<ArgumentException>(() => ints.TopK(1));
        Assert.Throws<ArgumentException>(() => new Tensor(DataType.UInt8, [2], new byte[] { 1, 2 }).ArgMax());
    }

    [Fact]
    public void ScalarsAreRefused()
    {
        var scalar = new Tensor([1f]);
        Assert.Equal(0, scalar.Rank);
        var ex = Assert.Throws<ArgumentException>(() => scalar.ArgMax());
        Assert.Contains("rank-0", ex.Message);
        Assert.Throws<ArgumentException>(() => scalar.Softmax());
        Assert.Throws<ArgumentException>(() => scalar.TopK(1));
        Assert.Throws<ArgumentNullException>(() => TensorMath.ArgMax(null!));
    }
}
