using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>Comparisons (float and long), Where (float and long, three-way broadcast) and the logical operators against
/// a per-element reference with explicit broadcast index math.</summary>
public class CompareWhereTests
{
    public static IEnumerable<object[]> Shapes => ElementwiseTests.BroadcastShapes;

    private static int[] BroadcastShape(params int[][] shapes)
    {
        int rank = shapes.Max(s => s.Length);
        var y = new int[rank];
        for (int i = 0; i < rank; i++)
            y[i] = shapes.Select(s => i - (rank - s.Length) >= 0 ? s[i - (rank - s.Length)] : 1).Max();
        return y;
    }

    private static int Count(int[] shape) => shape.Aggregate(1, (p, d) => p * d);

    private static bool Compare<T>(CompareKind kind, T a, T b) where T : System.Numerics.INumber<T> => kind switch
    {
        CompareKind.Equal => a == b,
        CompareKind.Less => a < b,
        CompareKind.LessOrEqual => a <= b,
        CompareKind.Greater => a > b,
        _ => a >= b,
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void ComparisonsBroadcastOverFloatAndLong(int[] aShape, int[] bShape)
    {
        var rng = new Random(Count(aShape) + 3 * Count(bShape));
        int[] yShape = BroadcastShape(aShape, bShape);
        // Few distinct values so Equal and the ties of LessOrEqual are exercised; some NaN in the floats.
        float[] af = Enumerable.Range(0, Count(aShape)).Select(_ => rng.Next(10) == 0 ? float.NaN : rng.Next(-3, 4) * 0.5f).ToArray();
        float[] bf = Enumerable.Range(0, Count(bShape)).Select(_ => rng.Next(10) == 0 ? float.NaN : rng.Next(-3, 4) * 0.5f).ToArray();
        long[] al = af.Select(v => float.IsNaN(v) ? long.MinValue : (long)(v * 2) << 35).ToArray();
        long[] bl = bf.Select(v => float.IsNaN(v) ? long.MaxValue : (long)(v * 2) << 35).ToArray();
        foreach (CompareKind kind in Enum.GetValues<CompareKind>())
        {
            var y = new bool[Count(yShape)];
            Elementwise.Compare<float>(kind, af, aShape, bf, bShape, y, yShape);
            var yl = new bool[y.Length];
            Elementwise.Compare<long>(kind, al, aShape, bl, bShape, yl, yShape);
            for (int i = 0; i < y.Length; i++)
            {
                int[] index = Reference.Unravel(i, yShape);
                int ia = UnaryTests.BroadcastOffset(index, aShape), ib = UnaryTests.BroadcastOffset(index, bShape);
                Assert.True(Compare(kind, af[ia], bf[ib]) == y[i], $"{kind} float {af[ia]} {bf[ib]} at {i}");
                Assert.True(Compare(kind, al[ia], bl[ib]) == yl[i], $"{kind} long {al[ia]} {bl[ib]} at {i}");
            }
        }
    }

    [Fact]
    public void CompareOnLongRowsAroundTheVectorWidth()
    {
        var rng = new Random(5);
        foreach (int n in new[] { 1, 3, 4, 5, 7, 8, 9, 31, 64, 100 })
        {
            float[] a = Enumerable.Range(0, n).Select(_ => (float)rng.Next(3)).ToArray(), b = Enumerable.Range(0, n).Select(_ => (float)rng.Next(3)).ToArray();
            var y = new bool[n];
            Elementwise.Compare<float>(CompareKind.Less, a, [n], b, [n], y, [n]);
            Assert.Equal(a.Zip(b, (p, q) => p < q).ToArray(), y);
            Elementwise.Compare<float>(CompareKind.GreaterOrEqual, a, [n], [1f], [], y, [n]);
            Assert.Equal(a.Select(p => p >= 1f).ToArray(), y);
        }
    }

    public static IEnumerable<object[]> WhereShapes =>
    [
        [new[] { 2, 3, 4 }, new[] { 2, 3, 4 }, new[] { 2, 3, 4 }],
        [new[] { 3, 1 }, new[] { 1, 5 }, Array.Empty<int>()],
        [new[] { 1 }, new[] { 4, 5 }, new[] { 5 }],             // one condition per row
        [new[] { 2, 1, 1, 7 }, new[] { 2, 3, 4, 7 }, new[] { 1, 3, 4, 1 }],
        [new[] { 5, 1, 33 }, new[] { 1 }, new[] { 5, 6, 33 }],
        [new[] { 2, 2 }, new[] { 2, 2 }, new[] { 2, 2 }],         // the ONNX example shape
    ];

    [Theory]
    [MemberData(nameof(WhereShapes))]
    public void WhereBroadcastsThreeOperands(int[] cShape, int[] xShape, int[] yShape)
    {
        var rng = new Random(Count(cShape) * 31 + Count(xShape));
        int[] outShape = BroadcastShape(cShape, xShape, yShape);
        bool[] c = Enumerable.Range(0, Count(cShape)).Select(_ => rng.Next(2) == 0).ToArray();
        float[] x = TestData.Random(rng, Count(xShape)), y = TestData.Random(rng, Count(yShape));
        long[] xl = x.Select(v => (long)(v * 1e6)).ToArray(), yl = y.Select(v => (long)(v * 1e6)).ToArray();
        var output = new float[Count(outShape)];
        var outputL = new long[output.Length];
        Elementwise.Where<float>(c, cShape, x, xShape, y, yShape, output, outShape);
        Elementwise.Where<long>(c, cShape, xl, xShape, yl, yShape, outputL, outShape);
        for (int i = 0; i < output.Length; i++)
        {
            int[] index = Reference.Unravel(i, outShape);
            bool pick = c[UnaryTests.BroadcastOffset(index, cShape)];
            int ix = UnaryTests.BroadcastOffset(index, xShape), iy = UnaryTests.BroadcastOffset(index, yShape);
            Assert.Equal(pick ? x[ix] : y[iy], output[i]);
            Assert.Equal(pick ? xl[ix] : yl[iy], outputL[i]);
        }
    }

    [Fact]
    public void WhereMatchesTheOnnxExample()
    {
        // ONNX Where example: condition [[1, 0], [1, 1]], x [[1, 2], [3, 4]], y [[9, 8], [7, 6]] → [[1, 8], [3, 4]].
        var output = new float[4];
        Elementwise.Where<float>([true, false, true, true], [2, 2], [1, 2, 3, 4], [2, 2], [9, 8, 7, 6], [2, 2], output, [2, 2]);
        Assert.Equal(new float[] { 1, 8, 3, 4 }, output);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void LogicalOperatorsBroadcast(int[] aShape, int[] bShape)
    {
        var rng = new Random(Count(aShape) * 7 + Count(bShape));
        int[] yShape = BroadcastShape(aShape, bShape);
        bool[] a = Enumerable.Range(0, Count(aShape)).Select(_ => rng.Next(2) == 0).ToArray();
        bool[] b = Enumerable.Range(0, Count(bShape)).Select(_ => rng.Next(2) == 0).ToArray();
        foreach (LogicalKind kind in Enum.GetValues<LogicalKind>())
        {
            var y = new bool[Count(yShape)];
            Elementwise.Logical(kind, a, aShape, b, bShape, y, yShape);
            for (int i = 0; i < y.Length; i++)
            {
                int[] index = Reference.Unravel(i, yShape);
                bool p = a[UnaryTests.BroadcastOffset(index, aShape)], q = b[UnaryTests.BroadcastOffset(index, bShape)];
                Assert.Equal(kind switch { LogicalKind.And => p && q, LogicalKind.Or => p || q, _ => p ^ q }, y[i]);
            }
        }
        var not = new bool[a.Length];
        Elementwise.Not(a, not);
        Assert.Equal(a.Select(v => !v).ToArray(), not);
        Elementwise.Not(a, a);
        Assert.Equal(not, a);
    }

    [Fact]
    public void RejectsShapesThatDoNotBroadcastAndShortBuffers()
    {
        Assert.Throws<ArgumentException>(() => Elementwise.Compare<float>(CompareKind.Less, new float[6], [2, 3], new float[2], [2], new bool[6], [2, 3]));
        Assert.Throws<ArgumentException>(() => Elementwise.Compare<float>(CompareKind.Less, new float[6], [2, 3], new float[3], [3], new bool[5], [2, 3]));
        Assert.Throws<ArgumentException>(() => Elementwise.Where<float>(new bool[2], [2], new float[3], [3], new float[1], [], new float[3], [3]));
    }
}
