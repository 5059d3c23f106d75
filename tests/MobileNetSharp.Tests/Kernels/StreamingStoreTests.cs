using MobileNetSharp.Kernels;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>Tests that force <see cref="StreamingStore"/> on for the whole process, run alone, so a copy made by one
/// cannot satisfy another's "did it stream" check.</summary>
[CollectionDefinition("StreamingStore", DisableParallelization = true)]
public sealed class StreamingStoreCollection;

/// <summary>
/// Outputs written past the caches (<see cref="StreamingStore"/>, forced here on small shapes) keep every bit and every
/// statistic of the cached writes: each convolution path that gathers batch-norm moments, the normalizing depthwise and
/// 1x1 paths, and the depthwise backward's dX; and the copy itself, at every alignment.
/// </summary>
[Collection("StreamingStore")]
public sealed class StreamingStoreTests
{
    /// <summary>Runs <paramref name="test"/> with streaming forced and checks that it streamed.</summary>
    private static void Streaming(Action test, bool mustStream, string name)
    {
        using var forced = StreamingStore.ForceForTests();
        long before = StreamingStore.Copies;
        test();
        if (mustStream) Assert.True(StreamingStore.Copies > before, name + " did not stream its output");
    }

    [Theory]
    [MemberData(nameof(ChannelMomentsTests.Convolutions), MemberType = typeof(ChannelMomentsTests))]
    public void ConvolutionsStreamingTheirOutputWriteTheSameBitsAndMoments(string name, Conv2dGeometry g) =>
        Streaming(() => new ChannelMomentsTests().ConvolutionsGatherTheMomentsOfWhatTheyWrite(name, g),
            name.StartsWith("1x1") || name.StartsWith("depthwise 3x3") || name.StartsWith("depthwise 5x5"), name); // the stem and im2col paths take moments apart

    [Theory]
    [InlineData(3, 24, 26, 24, 1)]
    [InlineData(2, 9, 9, 19, 2)]
    public void DepthwiseNormalizingAndStreamingEqualsTheBatchNormWrittenThenConvolved(int batch, int h, int wd, int c, int stride) =>
        Streaming(() => new ChannelMomentsTests().DepthwiseNormalizingItsInputEqualsTheBatchNormWrittenThenConvolved(batch, h, wd, c, stride), true, "depthwise");

    [Theory]
    [InlineData(2333, 96, 16)]
    [InlineData(300, 13, 21)]
    public void PointwiseNormalizingAndStreamingEqualsTheBatchNormWrittenThenMultiplied(int rows, int c, int outC) =>
        Streaming(() => new ChannelMomentsTests().PointwiseNormalizingItsInputEqualsTheBatchNormWrittenThenMultiplied(rows, c, outC), true, "1x1");

    /// <summary>The depthwise backward from a deferred batch-norm gradient with dX made image by image in scratch and
    /// streamed out: the checks of the cached path hold.</summary>
    [Theory]
    [MemberData(nameof(ConvBackwardTests.DepthwiseFromBatchNorm), MemberType = typeof(ConvBackwardTests))]
    public void DepthwiseGradientsStreamingDxMatchItWritten(string name, Conv2dGeometry g) =>
        Streaming(() => new ConvBackwardTests().DepthwiseGradientsFromBatchNormGradientMatchItWritten(name + ", dX streamed", g), true, name);

    /// <summary>The streaming copy at every alignment of source and destination and every length around the vector and
    /// unrolled sizes: the same floats, nothing written outside [0, n).</summary>
    [Fact]
    public unsafe void StreamingCopyCopiesExactlyTheRange()
    {
        var src = TestData.Random(new Random(5), 300);
        var dst = new float[340];
        fixed (float* ps = src, pd = dst)
            for (int from = 0; from < 9; from++)
                for (int to = 0; to < 9; to++)
                    foreach (int n in new[] { 0, 1, 7, 8, 9, 31, 32, 33, 40, 100, 255, 290 })
                    {
                        Array.Fill(dst, float.NaN);
                        StreamingStore.Copy(ps + from, pd + to, n);
                        Assert.True(dst.AsSpan(to, n).SequenceEqual(src.AsSpan(from, n)), $"from {from} to {to} n {n}");
                        Assert.All(dst.AsSpan(0, to).ToArray().Concat(dst.AsSpan(to + n).ToArray()), v => Assert.True(float.IsNaN(v)));
                    }
    }
}
