using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

public class LayoutTests
{
    private static int[] RandomShape(Random rng, int rank) => Enumerable.Range(0, rank).Select(_ => rng.Next(1, 5)).ToArray();

    [Fact]
    public void TransposeMatchesReferenceForRandomPermutations()
    {
        var rng = new Random(11);
        for (int trial = 0; trial < 200; trial++)
        {
            int rank = 1 + trial % 6;
            int[] shape = RandomShape(rng, rank);
            int[] perm = Enumerable.Range(0, rank).OrderBy(_ => rng.Next()).ToArray();
            int[] x = Enumerable.Range(0, shape.Aggregate(1, (p, d) => p * d)).ToArray();
            var y = new int[x.Length];
            Layout.Transpose<int>(x, shape, perm, y);
            Assert.Equal(Reference.Transpose(x, shape, perm), y);
        }
    }

    [Theory]
    [InlineData(1, 3, 224, 224)]
    [InlineData(2, 17, 5, 7)]
    [InlineData(3, 40, 1, 33)]
    [InlineData(2, 3, 5, 7)]    // three channels: the vector interleave, 35 columns = 2 x 16 + a tail of 3
    [InlineData(1, 3, 4, 4)]    // exactly one 16-column chunk
    [InlineData(1, 3, 3, 5)]    // tail only
    [InlineData(2, 2, 9, 3)]    // few rows, scalar
    [InlineData(1, 4, 6, 6)]
    public void NchwNhwcRoundTrip(int n, int c, int h, int w) => RoundTrip(TestData.Random(new Random(c), n * c * h * w), n, c, h, w);

    private static void RoundTrip<T>(T[] nchw, int n, int c, int h, int w) where T : unmanaged
    {
        var nhwc = new T[nchw.Length];
        Layout.Transpose<T>(nchw, [n, c, h, w], [0, 2, 3, 1], nhwc);
        Assert.Equal(Reference.Transpose(nchw, [n, c, h, w], [0, 2, 3, 1]), nhwc);
        var back = new T[nchw.Length];
        Layout.Transpose<T>(nhwc, [n, h, w, c], [0, 3, 1, 2], back);
        Assert.Equal(nchw, back);
    }

    /// <summary>uint8 images (a quantized model's input): three planes take the byte-shuffle interleave, others the loops.</summary>
    [Theory]
    [InlineData(1, 3, 224, 224)]
    [InlineData(2, 3, 5, 7)]    // 35 columns = 2 x 16 + a tail of 3
    [InlineData(1, 3, 4, 4)]    // exactly one 16-column chunk
    [InlineData(1, 3, 3, 5)]    // tail only
    [InlineData(2, 1, 9, 3)]
    [InlineData(1, 4, 6, 6)]
    public void NchwNhwcRoundTripOfBytes(int n, int c, int h, int w)
    {
        var nchw = new byte[n * c * h * w];
        new Random(c + h).NextBytes(nchw);
        RoundTrip(nchw, n, c, h, w);
    }

    [Fact]
    public void CopyBlocksConcatenatesAlongAnAxis()
    {
        // Concat [2,3,2] and [2,1,2] along axis 1 -> [2,4,2]: outer 2, blocks of 6 and 2, stride 8.
        float[] a = Enumerable.Range(0, 12).Select(i => (float)i).ToArray(), b = [100, 101, 102, 103];
        var y = new float[16];
        Layout.CopyBlocks<float>(a, y, 2, 6, 8, 0);
        Layout.CopyBlocks<float>(b, y, 2, 2, 8, 6);
        Assert.Equal(new float[] { 0, 1, 2, 3, 4, 5, 100, 101, 6, 7, 8, 9, 10, 11, 102, 103 }, y);
    }

    [Fact]
    public void PadMatchesReferenceInEveryModeIncludingCrops()
    {
        var rng = new Random(12);
        for (int trial = 0; trial < 160; trial++)
        {
            int rank = 1 + trial % 4;
            int[] shape = RandomShape(rng, rank).Select(d => d + 1).ToArray();
            PadMode mode = (PadMode)(trial % 4);
            int[] pads = new int[2 * rank];
            for (int i = 0; i < 2 * rank; i++)
            {
                int n = shape[i % rank];
                // Reflect needs pads < n; a crop may remove at most n-1 per side so both sides leave something.
                pads[i] = rng.Next(-(n - 1) / 2, mode == PadMode.Reflect ? n : n + 3);
            }
            int[] x = Enumerable.Range(1, shape.Aggregate(1, (p, d) => p * d)).ToArray();
            int[] expected = Reference.Pad(x, shape, pads, mode, -1);
            var y = new int[expected.Length];
            Layout.Pad<int>(x, shape, pads, mode, -1, y);
            Assert.Equal(expected, y);
        }
    }

    [Fact]
    public void ReductionsMatchReference()
    {
        var rng = new Random(13);
        for (int trial = 0; trial < 120; trial++)
        {
            int rank = 1 + trial % 5;
            int[] shape = RandomShape(rng, rank);
            int[] axes = Enumerable.Range(0, rank).Where(_ => rng.Next(2) == 0).Select(a => rng.Next(2) == 0 ? a - rank : a).ToArray();
            float[] x = TestData.Random(rng, shape.Aggregate(1, (p, d) => p * d));
            foreach (string op in new[] { "mean", "sum", "max" })
            {
                float[] expected = Reference.Reduce(x, shape, axes, op);
                var y = new float[expected.Length];
                if (op == "mean") Layout.ReduceMean(x, shape, axes, y);
                else if (op == "sum") Layout.ReduceSum(x, shape, axes, y);
                else Layout.ReduceMax(x, shape, axes, y);
                TestData.AssertClose(expected, y, x.Length, $"{op} [{string.Join(",", shape)}] axes [{string.Join(",", axes)}]");
            }
        }
    }
}
