using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

public class ElementwiseTests
{
    [Fact]
    public void ApplyMatchesScalarActivationOnEveryIsaAndInPlace()
    {
        var rng = new Random(1);
        foreach (int n in new[] { 0, 1, 3, 17, 64, 1000 })
        {
            float[] x = TestData.Random(rng, n, scale: 8f);
            foreach (Activation act in TestData.Activations)
            {
                float[] expected = x.Select(act.Apply).ToArray();
                foreach (IsaLevel isa in Isa.Supported)
                {
                    var y = new float[n];
                    Elementwise.Apply(act, x, y, isa);
                    TestData.AssertClose(expected, y, 1, $"{act} {isa} n={n}");
                    float[] inPlace = (float[])x.Clone();
                    Elementwise.Apply(act, inPlace, inPlace, isa);
                    TestData.AssertClose(expected, inPlace, 1, $"{act} {isa} n={n} in place");
                }
                var best = new float[n];
                Elementwise.Apply(act, x, best);
                TestData.AssertClose(expected, best, 1, $"{act} default isa n={n}");
            }
        }
    }

    [Fact]
    public void ChannelAffineMatchesReference()
    {
        var rng = new Random(2);
        foreach ((int pixels, int channels) in new[] { (1, 1), (7, 3), (5, 17), (3, 64), (4, 33) })
        {
            float[] x = TestData.Random(rng, pixels * channels), scale = TestData.Random(rng, channels), shift = TestData.Random(rng, channels);
            foreach (Activation act in TestData.Activations)
            {
                float[] expected = x.Select((v, i) => act.Apply(v * scale[i % channels] + shift[i % channels])).ToArray();
                var y = new float[x.Length];
                Elementwise.ChannelAffine(x, scale, shift, y, channels, act);
                TestData.AssertClose(expected, y, 2, $"affine {pixels}x{channels} {act}");
            }
        }
    }

    public static IEnumerable<object[]> BroadcastShapes =>
    [
        [new[] { 2, 3, 4 }, new[] { 2, 3, 4 }],          // equal
        [new[] { 5, 7 }, Array.Empty<int>()],            // scalar (rank 0)
        [new[] { 1 }, new[] { 3, 5 }],                   // scalar (rank 1) on the left
        [new[] { 2, 1, 1, 17 }, new[] { 2, 4, 5, 17 }],  // NHWC squeeze-and-excite
        [new[] { 2, 6, 3, 3 }, new[] { 2, 6, 1, 1 }],    // NCHW squeeze-and-excite
        [new[] { 4, 5, 33 }, new[] { 33 }],              // per channel
        [new[] { 3, 1, 5 }, new[] { 1, 4, 1 }],          // both sides stretch
        [new[] { 2, 1, 3, 1, 2 }, new[] { 4, 1, 5, 1 }], // rank 5, interleaved
        [new[] { 1, 1, 1 }, new[] { 1 }],
        [new[] { 2, 3, 1, 2, 1, 2, 1, 2 }, new[] { 3, 2, 2, 1, 2, 1 }], // rank 8
        // Inner broadcast with short rows (tiled-pattern path), the repeated row on either side.
        [new[] { 1, 56, 56, 16 }, new[] { 1, 1, 1, 16 }],
        [new[] { 1, 1, 1, 16 }, new[] { 1, 9, 7, 16 }],
        [new[] { 3, 5, 7, 3 }, new[] { 3, 1, 1, 3 }],
        [new[] { 2, 1, 1, 1 }, new[] { 2, 6, 5, 1 }],
        [new[] { 2, 9, 5, 33 }, new[] { 33 }],
        [new[] { 1, 1, 240 }, new[] { 14, 14, 240 }],
        [new[] { 7, 1000 }, new[] { 1000 }],
        [new[] { 3, 1500 }, new[] { 1, 1500 }],
        [new[] { 1, 2, 3 }, new[] { 4, 5, 2, 3 }],
    ];

    [Theory]
    [MemberData(nameof(BroadcastShapes))]
    public void BinaryBroadcastsLikeNumPy(int[] aShape, int[] bShape)
    {
        var rng = new Random(aShape.Sum() * 17 + bShape.Length);
        int rank = Math.Max(aShape.Length, bShape.Length);
        int[] yShape = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int ad = i - (rank - aShape.Length) >= 0 ? aShape[i - (rank - aShape.Length)] : 1;
            int bd = i - (rank - bShape.Length) >= 0 ? bShape[i - (rank - bShape.Length)] : 1;
            yShape[i] = Math.Max(ad, bd);
        }
        float[] a = TestData.Random(rng, aShape.Aggregate(1, (p, d) => p * d), 3f);
        float[] b = TestData.Random(rng, bShape.Aggregate(1, (p, d) => p * d), 3f);
        foreach (BinaryKind kind in Enum.GetValues<BinaryKind>())
        {
            float[] pa = kind == BinaryKind.Pow ? a.Select(v => Math.Abs(v) + 0.1f).ToArray() : a;
            float[] pb = kind == BinaryKind.Div ? b.Select(v => v >= 0 ? v + 0.5f : v - 0.5f).ToArray() : b;
            float[] expected = Reference.Broadcast(kind, pa, aShape, pb, bShape, yShape);
            var y = new float[expected.Length];
            Elementwise.Binary(kind, pa, aShape, pb, bShape, y, yShape);
            TestData.AssertClose(expected, y, 4, $"{kind} [{string.Join(",", aShape)}] x [{string.Join(",", bShape)}]");
        }
    }

    [Fact]
    public void BinaryMayWriteIntoAnOperandOfTheOutputShape()
    {
        var rng = new Random(8);
        int[] yShape = [3, 4, 5], cShape = [5];
        float[] y = TestData.Random(rng, 60), c = TestData.Random(rng, 5);
        float[] expected = Reference.Broadcast(BinaryKind.Add, y, yShape, c, cShape, yShape);
        Elementwise.Binary(BinaryKind.Add, y, yShape, c, cShape, y, yShape);
        TestData.AssertClose(expected, y, 1, "in place");
        // Short-row inner broadcast writing into the full operand, the repeated operand first.
        int[] zShape = [2, 6, 6, 16], rShape = [2, 1, 1, 16];
        float[] z = TestData.Random(rng, 2 * 6 * 6 * 16), row = TestData.Random(rng, 32);
        expected = Reference.Broadcast(BinaryKind.Sub, row, rShape, z, zShape, zShape);
        Elementwise.Binary(BinaryKind.Sub, row, rShape, z, zShape, z, zShape);
        TestData.AssertClose(expected, z, 1, "in place, short rows");
    }

    [Fact]
    public void BinaryRejectsIncompatibleShapes() =>
        Assert.Throws<ArgumentException>(() => Elementwise.Binary(BinaryKind.Add, new float[6], [2, 3], new float[4], [4], new float[6], [2, 3]));

    [Fact]
    public void SoftmaxAndLogSoftmaxAreStableAndMatchReference()
    {
        var rng = new Random(6);
        foreach ((int rows, int cols) in new[] { (1, 1), (2, 10), (3, 1000), (4, 17) })
        {
            float[] x = TestData.Random(rng, rows * cols, 20f);
            x[0] += 500f; // would overflow exp without the max shift
            var expected = new float[x.Length];
            var expectedLog = new float[x.Length];
            for (int r = 0; r < rows; r++)
            {
                double max = Enumerable.Range(0, cols).Max(j => (double)x[r * cols + j]);
                double sum = Enumerable.Range(0, cols).Sum(j => Math.Exp(x[r * cols + j] - max));
                for (int j = 0; j < cols; j++)
                {
                    expected[r * cols + j] = (float)(Math.Exp(x[r * cols + j] - max) / sum);
                    expectedLog[r * cols + j] = (float)(x[r * cols + j] - max - Math.Log(sum));
                }
            }
            var y = new float[x.Length];
            Elementwise.Softmax(x, y, rows, cols);
            TestData.AssertClose(expected, y, cols, $"softmax {rows}x{cols}");
            float[] inPlace = (float[])x.Clone();
            Elementwise.LogSoftmax(inPlace, inPlace, rows, cols);
            TestData.AssertClose(expectedLog, inPlace, cols, $"log-softmax {rows}x{cols}");
        }
    }
}
