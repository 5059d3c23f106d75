using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

public class PoolingTests
{
    public static IEnumerable<object[]> Windows =>
    [
        // h, w, c, k, stride, pad (t,l,b,r), dilation, batch
        [7, 7, 5, 3, 2, 1, 1, 1, 1, 1, 1],
        [8, 9, 17, 2, 2, 0, 0, 0, 0, 1, 3],
        [9, 9, 33, 3, 1, 0, 1, 2, 0, 1, 1],
        [10, 11, 3, 5, 3, 2, 2, 2, 2, 1, 1],
        [12, 12, 16, 3, 1, 2, 2, 2, 2, 2, 2],
        [7, 7, 1, 7, 1, 0, 0, 0, 0, 1, 1],
    ];

    private static Conv2dGeometry Geometry(int h, int w, int c, int k, int s, int pt, int pl, int pb, int pr, int d) =>
        new(1, h, w, c, c, k, k, s, s, d, d, pt, pl, pb, pr);

    [Theory]
    [MemberData(nameof(Windows))]
    public void MaxAndAverageMatchReference(int h, int w, int c, int k, int s, int pt, int pl, int pb, int pr, int d, int batch)
    {
        var rng = new Random(h * 31 + c);
        Conv2dGeometry g = Geometry(h, w, c, k, s, pt, pl, pb, pr, d);
        float[] x = TestData.Random(rng, batch * h * w * c);
        foreach (Workers workers in new[] { Workers.Single, TestData.Two })
        {
            var y = new float[batch * g.OutH * g.OutW * c];
            Pooling.MaxPool2d(g, batch, x, y, workers);
            TestData.AssertClose(Reference.Pool(g, batch, x, max: true, countIncludePad: false), y, 1, $"max {g}");
            foreach (bool include in new[] { false, true })
            {
                Pooling.AveragePool2d(g, include, batch, x, y, workers);
                TestData.AssertClose(Reference.Pool(g, batch, x, max: false, include), y, k * k, $"avg include={include} {g}");
            }
        }
    }

    [Fact]
    public void CeilModeExtraPaddingIsExcludedFromTheDivisor()
    {
        // 6x6, k3 s2, declared pads 1; ceil mode adds one more row/column at the bottom/right.
        var rng = new Random(9);
        Conv2dGeometry g = Geometry(6, 6, 4, 3, 2, 1, 1, 2, 2, 1);
        float[] x = TestData.Random(rng, 6 * 6 * 4);
        var y = new float[g.OutH * g.OutW * 4];
        foreach (bool include in new[] { false, true })
        {
            Pooling.AveragePool2d(g, include, 1, x, y, Workers.Single, ceilExtraBottom: 1, ceilExtraRight: 1);
            TestData.AssertClose(Reference.Pool(g, 1, x, max: false, include, 1, 1), y, 9, $"ceil include={include}");
        }
    }

    [Fact]
    public void GlobalPoolsMatchReference()
    {
        var rng = new Random(4);
        var shapes = new List<(int, int, int)> { (1, 49, 1280), (3, 5, 17), (2, 1, 3), (1, 196, 33), (1, 3136, 16), (2, 784, 96), (1, 49, 960) };
        // Channel counts that divide the vector width (contiguous path, including leftover pixels) and those that do not.
        foreach (int c in new[] { 1, 2, 3, 4, 5, 8, 15, 16, 24, 32, 48, 64, 65, 72 })
            foreach (int s in new[] { 1, 2, 3, 7, 13 })
                shapes.Add((1 + (c + s) % 2, s, c));
        foreach ((int batch, int spatial, int channels) in shapes)
        {
            float[] x = TestData.Random(rng, batch * spatial * channels);
            var avg = new float[batch * channels];
            var max = new float[batch * channels];
            Pooling.GlobalAveragePool(batch, spatial, channels, x, avg);
            Pooling.GlobalMaxPool(batch, spatial, channels, x, max);
            var g = new Conv2dGeometry(1, 1, spatial, channels, channels, 1, spatial);
            TestData.AssertClose(Reference.Pool(g, batch, x, max: false, countIncludePad: false), avg, spatial, $"global avg {batch}x{spatial}x{channels}");
            TestData.AssertClose(Reference.Pool(g, batch, x, max: true, countIncludePad: false), max, 1, $"global max {batch}x{spatial}x{channels}");
        }
    }
}
