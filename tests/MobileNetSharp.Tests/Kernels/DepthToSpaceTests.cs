using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>DepthToSpace (DCR, CRD) and SpaceToDepth against the index formulas of the ONNX spec, on NCHW and on the
/// physical NHWC layout, for 1-, 4- and 8-byte elements; round trips; bad block sizes.</summary>
public class DepthToSpaceTests
{
    private static int NchwIndex(int n, int c, int h, int w, int C, int H, int W) => ((n * C + c) * H + h) * W + w;

    /// <summary>Reference on logical NCHW: y[n, c, h·b + i, w·b + j] = x[n, source channel, h, w].</summary>
    private static T[] ReferenceDepthToSpace<T>(T[] x, int N, int C, int H, int W, int b, DepthToSpaceMode mode)
    {
        int oc = C / (b * b), oh = H * b, ow = W * b;
        var y = new T[x.Length];
        for (int n = 0; n < N; n++)
        for (int c = 0; c < oc; c++)
        for (int yy = 0; yy < oh; yy++)
        for (int xx = 0; xx < ow; xx++)
        {
            int i = yy % b, j = xx % b;
            int source = mode == DepthToSpaceMode.Dcr ? (i * b + j) * oc + c : c * b * b + i * b + j;
            y[NchwIndex(n, c, yy, xx, oc, oh, ow)] = x[NchwIndex(n, source, yy / b, xx / b, C, H, W)];
        }
        return y;
    }

    private static T[] ReferenceSpaceToDepth<T>(T[] x, int N, int C, int H, int W, int b)
    {
        int oc = C * b * b, oh = H / b, ow = W / b;
        var y = new T[x.Length];
        for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
        for (int yy = 0; yy < H; yy++)
        for (int xx = 0; xx < W; xx++)
            y[NchwIndex(n, ((yy % b) * b + xx % b) * C + c, yy / b, xx / b, oc, oh, ow)] = x[NchwIndex(n, c, yy, xx, C, H, W)];
        return y;
    }

    private static T[] ToNhwc<T>(T[] x, int n, int c, int h, int w) => Reference.Transpose(x, [n, c, h, w], [0, 2, 3, 1]);

    [Theory]
    [InlineData(1, 4, 2, 3, 2)]
    [InlineData(2, 18, 3, 5, 3)]
    [InlineData(3, 8, 1, 1, 2)]
    [InlineData(1, 12, 4, 4, 1)]
    [InlineData(2, 32, 5, 3, 4)]
    [InlineData(1, 27, 7, 2, 3)]
    public void DepthToSpaceMatchesTheSpecInBothModesAndLayouts(int n, int c, int h, int w, int b)
    {
        int[] x = Enumerable.Range(0, n * c * h * w).ToArray();
        foreach (DepthToSpaceMode mode in Enum.GetValues<DepthToSpaceMode>())
        {
            int[] expected = ReferenceDepthToSpace(x, n, c, h, w, b, mode);
            var y = new int[x.Length];
            Layout.DepthToSpace<int>(x, [n, c, h, w], b, mode, ChannelLayout.Nchw, y);
            Assert.Equal(expected, y);

            var yNhwc = new int[x.Length];
            Layout.DepthToSpace<int>(ToNhwc(x, n, c, h, w), [n, h, w, c], b, mode, ChannelLayout.Nhwc, yNhwc);
            Assert.Equal(ToNhwc(expected, n, c / (b * b), h * b, w * b), yNhwc);

            // Other element sizes take the same path.
            long[] xl = x.Select(v => (long)v * 1_000_000_007).ToArray();
            var yl = new long[x.Length];
            Layout.DepthToSpace<long>(xl, [n, c, h, w], b, mode, ChannelLayout.Nchw, yl);
            Assert.Equal(expected.Select(v => (long)v * 1_000_000_007).ToArray(), yl);
            byte[] xb = x.Select(v => (byte)v).ToArray();
            var yb = new byte[x.Length];
            Layout.DepthToSpace<byte>(xb, [n, c, h, w], b, mode, ChannelLayout.Nchw, yb);
            Assert.Equal(expected.Select(v => (byte)v).ToArray(), yb);
        }
    }

    [Theory]
    [InlineData(1, 1, 4, 6, 2)]
    [InlineData(2, 3, 6, 9, 3)]
    [InlineData(1, 5, 2, 2, 2)]
    [InlineData(3, 2, 8, 4, 4)]
    public void SpaceToDepthMatchesTheSpecAndInvertsDcr(int n, int c, int h, int w, int b)
    {
        float[] x = TestData.Random(new Random(c * h + w), n * c * h * w);
        float[] expected = ReferenceSpaceToDepth(x, n, c, h, w, b);
        var y = new float[x.Length];
        Layout.SpaceToDepth<float>(x, [n, c, h, w], b, ChannelLayout.Nchw, y);
        Assert.Equal(expected, y);
        var back = new float[x.Length];
        Layout.DepthToSpace<float>(y, [n, c * b * b, h / b, w / b], b, DepthToSpaceMode.Dcr, ChannelLayout.Nchw, back);
        Assert.Equal(x, back);

        var yNhwc = new float[x.Length];
        Layout.SpaceToDepth<float>(ToNhwc(x, n, c, h, w), [n, h, w, c], b, ChannelLayout.Nhwc, yNhwc);
        Assert.Equal(ToNhwc(expected, n, c * b * b, h / b, w / b), yNhwc);
    }

    [Theory]
    [InlineData("test_depthtospace_crd_mode_example", DepthToSpaceMode.Crd, 2)]
    [InlineData("test_depthtospace_example", DepthToSpaceMode.Dcr, 2)]
    [InlineData("test_spacetodepth_example", DepthToSpaceMode.Dcr, 2)]
    public void MatchesTheOnnxBackendExamples(string test, DepthToSpaceMode mode, int b)
    {
        string dir = $"/usr/share/libonnx-testdata/data/node/{test}/test_data_set_0";
        if (!Directory.Exists(dir)) return;
        var x = MobileNetSharp.Onnx.TensorProtoFile.Read(Path.Combine(dir, "input_0.pb"));
        float[] expected = (float[])MobileNetSharp.Onnx.TensorProtoFile.Read(Path.Combine(dir, "output_0.pb")).Data;
        var y = new float[expected.Length];
        if (test.Contains("spacetodepth")) Layout.SpaceToDepth<float>((float[])x.Data, x.Shape, b, ChannelLayout.Nchw, y);
        else Layout.DepthToSpace<float>((float[])x.Data, x.Shape, b, mode, ChannelLayout.Nchw, y);
        Assert.Equal(expected, y);
    }

    [Fact]
    public void BadBlockSizesAreRejectedWithAClearMessage()
    {
        var e = Assert.Throws<ArgumentException>(() => Layout.DepthToSpace<float>(new float[12], [1, 3, 2, 2], 2, DepthToSpaceMode.Dcr, ChannelLayout.Nchw, new float[12]));
        Assert.Contains("divisible", e.Message);
        Assert.Throws<ArgumentException>(() => Layout.DepthToSpace<float>(new float[16], [1, 4, 2, 2], 0, DepthToSpaceMode.Dcr, ChannelLayout.Nchw, new float[16]));
        Assert.Throws<ArgumentException>(() => Layout.DepthToSpace<float>(new float[16], [1, 4, 2, 2], -2, DepthToSpaceMode.Crd, ChannelLayout.Nchw, new float[16]));
        e = Assert.Throws<ArgumentException>(() => Layout.SpaceToDepth<float>(new float[15], [1, 1, 3, 5], 2, ChannelLayout.Nchw, new float[15]));
        Assert.Contains("divisible", e.Message);
        Assert.Throws<ArgumentException>(() => Layout.SpaceToDepth<float>(new float[16], [1, 4, 4], 2, ChannelLayout.Nchw, new float[16]));
        Assert.Throws<ArgumentException>(() => Layout.DepthToSpace<float>(new float[16], [1, 1 << 20, 1 << 20, 4], 1 << 15, DepthToSpaceMode.Dcr, ChannelLayout.Nhwc, new float[16]));
    }
}
