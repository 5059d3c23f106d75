using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>Every <see cref="ReductionKind"/> over random axes sets (kept or reduced innermost axis, runs longer than the
/// column chunk) against a float64 reference; ArgMax/ArgMin with ties, NaN and select_last_index.</summary>
public class ReduceMoreTests
{
    private static double[] ReferenceReduce(ReductionKind kind, float[] x, int[] shape, int[] axes)
    {
        int r = shape.Length;
        var reduced = new bool[r];
        if (axes.Length == 0) Array.Fill(reduced, true);
        foreach (int a in axes) reduced[a < 0 ? a + r : a] = true;
        int[] outShape = Enumerable.Range(0, r).Select(i => reduced[i] ? 1 : shape[i]).ToArray();
        int outCount = outShape.Aggregate(1, (p, d) => p * d);
        var groups = Enumerable.Range(0, outCount).Select(_ => new List<double>()).ToArray();
        for (int i = 0; i < x.Length; i++)
        {
            int[] idx = Reference.Unravel(i, shape);
            for (int d = 0; d < r; d++) if (reduced[d]) idx[d] = 0;
            groups[Reference.Ravel(idx, outShape)].Add(x[i]);
        }
        return groups.Select(g => kind switch
        {
            ReductionKind.Sum => g.Sum(),
            ReductionKind.Mean => g.Average(),
            ReductionKind.Max => g.Max(),
            ReductionKind.Min => g.Count == 0 ? double.PositiveInfinity : g.Min(),
            ReductionKind.Prod => g.Aggregate(1.0, (p, v) => p * v),
            ReductionKind.L1 => g.Sum(Math.Abs),
            ReductionKind.L2 => Math.Sqrt(g.Sum(v => v * v)),
            ReductionKind.SumSquare => g.Sum(v => v * v),
            ReductionKind.LogSum => Math.Log(g.Sum()),
            ReductionKind.LogSumExp => Math.Log(g.Sum(Math.Exp)),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        }).ToArray();
    }

    [Fact]
    public void EveryReductionMatchesFloat64()
    {
        var rng = new Random(41);
        for (int trial = 0; trial < 150; trial++)
        {
            int rank = 1 + trial % 5;
            int[] shape = Enumerable.Range(0, rank).Select(_ => rng.Next(1, 6)).ToArray();
            if (trial % 10 == 0) shape[^1] = 300 + rng.Next(300); // kept innermost runs longer than the 256-column chunk
            int[] axes = Enumerable.Range(0, rank).Where(_ => rng.Next(2) == 0).Select(a => rng.Next(2) == 0 ? a - rank : a).ToArray();
            Check(rng, shape, axes, $"trial {trial}");
        }
        // Fixed layouts models use: NCHW spatial, NHWC spatial, channels, everything.
        Check(rng, [2, 5, 7, 9], [2, 3], "NCHW HW");
        Check(rng, [2, 7, 9, 17], [1, 2], "NHWC HW");
        Check(rng, [3, 17, 4, 4], [1], "channel axis");
        Check(rng, [4, 6, 5], [], "all axes");
        Check(rng, [], [], "rank 0");
    }

    private static void Check(Random rng, int[] shape, int[] axes, string context)
    {
        int count = shape.Aggregate(1, (p, d) => p * d);
        foreach (ReductionKind kind in Enum.GetValues<ReductionKind>())
        {
            // Products stay bounded with values near ±1; LogSum needs a positive sum.
            float[] x = Enumerable.Range(0, count).Select(_ => kind switch
            {
                ReductionKind.Prod => (float)((rng.NextDouble() * 0.4 + 0.8) * (rng.Next(2) * 2 - 1)),
                ReductionKind.LogSum => (float)(rng.NextDouble() + 0.01),
                ReductionKind.LogSumExp => (float)(rng.NextDouble() * 60 - 30),
                _ => (float)(rng.NextDouble() * 4 - 2),
            }).ToArray();
            double[] expected = ReferenceReduce(kind, x, shape, axes);
            var y = new float[expected.Length + 2];
            y[^1] = y[^2] = 42f;
            Layout.Reduce(kind, x, shape, axes, y);
            int folded = expected.Length == 0 ? 0 : count / expected.Length;
            double scale = expected.Select(Math.Abs).DefaultIfEmpty(1).Max();
            double tolerance = 1e-5 * Math.Sqrt(Math.Max(1, folded)) * Math.Max(1, scale);
            for (int i = 0; i < expected.Length; i++)
            {
                double e = expected[i];
                if (kind == ReductionKind.Prod) tolerance = 1e-5 * Math.Max(1e-3, Math.Abs(e)) * Math.Max(1, folded);
                Assert.True(Math.Abs(e - y[i]) <= tolerance, $"{kind} {context} [{string.Join(",", shape)}] axes [{string.Join(",", axes)}] out {i}: expected {e} got {y[i]}");
            }
            Assert.Equal(42f, y[^1]);
            Assert.Equal(42f, y[^2]);
        }
    }

    [Fact]
    public void EmptyReductionsYieldTheReductionOfTheEmptySet()
    {
        var y = new float[3];
        Layout.Reduce(ReductionKind.Prod, [], [3, 0], [1], y);
        Assert.Equal(new float[] { 1, 1, 1 }, y);
        Layout.Reduce(ReductionKind.LogSumExp, [], [3, 0], [1], y);
        Assert.All(y, v => Assert.Equal(float.NegativeInfinity, v));
        Layout.Reduce(ReductionKind.L2, [], [3, 0], [1], y);
        Assert.All(y, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void LogSumExpIsStableAndPassesInfinities()
    {
        var y = new float[2];
        Layout.Reduce(ReductionKind.LogSumExp, [1000f, 1000f, -1e30f, float.NegativeInfinity], [2, 2], [1], y);
        Assert.Equal(1000 + Math.Log(2), y[0], 1e-3);
        Assert.Equal(-1e30f, y[1]);
        Layout.Reduce(ReductionKind.LogSumExp, [1000f, 1000f, -1e30f, float.PositiveInfinity], [2, 2], [0], y);
        Assert.Equal(1000f, y[0]);
        Assert.Equal(float.PositiveInfinity, y[1]);
    }

    private static long[] ReferenceArg(float[] x, int[] shape, int axis, bool max, bool last)
    {
        int a = axis < 0 ? axis + shape.Length : axis;
        int outer = shape[..a].Aggregate(1, (p, d) => p * d), n = shape[a], inner = shape[(a + 1)..].Aggregate(1, (p, d) => p * d);
        var y = new long[outer * inner];
        for (int o = 0; o < outer; o++)
            for (int j = 0; j < inner; j++)
            {
                // NumPy: NaN wins (first NaN); otherwise the first (or, reversed, last) extreme value.
                int best = -1;
                for (int i = 0; i < n; i++)
                {
                    int k = last ? n - 1 - i : i;
                    float v = x[(o * n + k) * inner + j];
                    if (best < 0) { best = k; continue; }
                    float b = x[(o * n + best) * inner + j];
                    if (float.IsNaN(b)) continue;
                    if (float.IsNaN(v) || (max ? v > b : v < b)) best = k;
                }
                y[o * inner + j] = best;
            }
        return y;
    }

    [Fact]
    public void ArgMaxAndArgMinMatchNumPyWithTiesNaNAndLastIndex()
    {
        var rng = new Random(43);
        for (int trial = 0; trial < 120; trial++)
        {
            int rank = 1 + trial % 4;
            int[] shape = Enumerable.Range(0, rank).Select(_ => rng.Next(1, 6)).ToArray();
            if (trial % 15 == 0) shape[^1] = 260 + rng.Next(40);
            int axis = rng.Next(rank) - (rng.Next(2) == 0 ? rank : 0);
            int count = shape.Aggregate(1, (p, d) => p * d);
            bool nans = trial % 3 == 0;
            float[] x = Enumerable.Range(0, count).Select(_ => nans && rng.Next(8) == 0 ? float.NaN : rng.Next(-3, 4)).Select(v => (float)v).ToArray();
            foreach (bool max in new[] { true, false })
                foreach (bool last in new[] { false, true })
                {
                    long[] expected = ReferenceArg(x, shape, axis, max, last);
                    var y = new long[expected.Length];
                    if (max) Layout.ArgMax(x, shape, axis, last, y);
                    else Layout.ArgMin(x, shape, axis, last, y);
                    Assert.True(expected.SequenceEqual(y), $"{(max ? "ArgMax" : "ArgMin")} last={last} [{string.Join(",", shape)}] axis {axis}: [{string.Join(",", expected)}] vs [{string.Join(",", y)}]");
                }
        }
        Assert.Throws<ArgumentException>(() => Layout.ArgMax(new float[6], [2, 3], 2, false, new long[2]));
    }

    [Theory]
    [InlineData("test_argmax_default_axis_random", 0, false)]
    [InlineData("test_argmax_keepdims_random", 1, false)]
    [InlineData("test_argmax_negative_axis_keepdims_random", -1, false)]
    [InlineData("test_argmax_no_keepdims_random_select_last_index", 1, true)]
    [InlineData("test_argmax_keepdims_example_select_last_index", 1, true)]
    public void ArgMaxMatchesTheOnnxBackendTestData(string test, int axis, bool last)
    {
        string dir = $"/usr/share/libonnx-testdata/data/node/{test}/test_data_set_0";
        if (!Directory.Exists(dir)) return;
        var x = MobileNetSharp.Onnx.TensorProtoFile.Read(Path.Combine(dir, "input_0.pb"));
        long[] expected = (long[])MobileNetSharp.Onnx.TensorProtoFile.Read(Path.Combine(dir, "output_0.pb")).Data;
        var y = new long[expected.Length];
        Layout.ArgMax((float[])x.Data, x.Shape, axis, last, y);
        Assert.Equal(expected, y);
    }
}
