using MobileNetSharp.Kernels;
using MobileNetSharp.Onnx;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>
/// ConvTranspose against a plain NCHW scatter reference (float64; every input pixel times every tap added where it
/// lands): a case table and random geometries with groups, strides, dilations, asymmetric pads, output padding,
/// odd channel counts and batch &gt; 1, swept over ISA x threads on the NHWC kernel; the ONNX geometry rules
/// (output_shape, auto_pad, the output_padding limit, absurd sizes) and the ONNX backend test data.
/// </summary>
public class ConvTransposeTests
{
    /// <summary>NCHW x, W [InC, OutC/groups, kH, kW]: y[n, g·ocg + o, iy·s - pad + ky·d, ...] += x[n, ic, iy, ix] · W[ic, o, ky, kx].</summary>
    private static float[] ReferenceNchw(ConvTranspose2dGeometry g, int batch, float[] x, float[] w, float[] bias)
    {
        int oh = g.OutH, ow = g.OutW, icg = g.InCPerGroup, ocg = g.OutCPerGroup;
        var acc = new double[batch * g.OutC * oh * ow];
        for (int n = 0; n < batch; n++)
        for (int ic = 0; ic < g.InC; ic++)
        for (int iy = 0; iy < g.InH; iy++)
        for (int ix = 0; ix < g.InW; ix++)
        {
            double xv = x[((n * g.InC + ic) * g.InH + iy) * g.InW + ix];
            int grp = ic / icg;
            for (int o = 0; o < ocg; o++)
            for (int ky = 0; ky < g.KernelH; ky++)
            for (int kx = 0; kx < g.KernelW; kx++)
            {
                int oy = iy * g.StrideH - g.PadTop + ky * g.DilationH, ox = ix * g.StrideW - g.PadLeft + kx * g.DilationW;
                if (oy < 0 || oy >= oh || ox < 0 || ox >= ow) continue;
                int oc = grp * ocg + o;
                acc[((n * g.OutC + oc) * oh + oy) * ow + ox] += xv * w[((ic * ocg + o) * g.KernelH + ky) * g.KernelW + kx];
            }
        }
        var y = new float[acc.Length];
        for (int i = 0; i < y.Length; i++) y[i] = (float)(acc[i] + (bias.Length > 0 ? bias[i / (oh * ow) % g.OutC] : 0));
        return y;
    }

    private static ConvTranspose2dGeometry G(int h, int w, int inC, int outC, int k, int s = 1, int pad = 0, int groups = 1, int d = 1,
        int op = 0, int kw = -1, int sw = -1, int pt = -1, int pl = -1, int pb = -1, int pr = -1) =>
        new(1, h, w, inC, outC, k, kw < 0 ? k : kw, s, sw < 0 ? s : sw, d, d,
            pt < 0 ? pad : pt, pl < 0 ? pad : pl, pb < 0 ? pad : pb, pr < 0 ? pad : pr, op, op, groups);

    public static IEnumerable<object[]> Cases =>
    [
        // Decoder-style 2x upsampling: k2 s2, k4 s2 p1, k3 s2 p1 op1.
        [G(5, 6, 8, 16, 2, 2), 1],
        [G(4, 4, 17, 33, 4, 2, 1), 2],
        [G(6, 5, 12, 24, 3, 2, 1, op: 1), 1],
        [G(3, 3, 3, 64, 3, 2, 1, op: 1), 3],     // four full vectors of outputs plus more
        [G(7, 7, 1, 1, 3), 1],                   // single channel, stride 1 (a full convolution)
        [G(5, 4, 6, 9, 3, 3, 0, groups: 3), 2],  // groups
        [G(4, 6, 8, 8, 3, 2, 1, groups: 8), 1],  // depthwise transposed
        [G(5, 5, 5, 7, 3, 1, 2, d: 2), 1],       // dilation
        [G(4, 5, 6, 5, 3, 3, d: 2, op: 2), 1],   // output padding up to the stride
        [G(3, 7, 4, 11, 5, 2, kw: 1, sw: 3, pt: 2, pl: 0, pb: 1, pr: 0), 2], // non-square, asymmetric pads
        [G(1, 1, 16, 20, 4), 2],                 // 1x1 input: the kernel painted once
        [G(8, 9, 16, 1, 2, 2), 1],               // a mask head (selfie segmentation's last layer): one output, vector dot products
        [G(6, 5, 21, 1, 3, 2, 1, op: 1), 2],     // one output, input channels not a multiple of the vector
        [G(5, 5, 20, 3, 2, 2), 1],               // an RGB head: narrower than a vector, scalar
    ];

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesTheScatterReference(ConvTranspose2dGeometry g, int batch) => Check(g, batch, seed: g.InC * 31 + g.OutC, bias: batch != 2);

    [Fact]
    public void RandomGeometriesMatchTheReference()
    {
        var rng = new Random(83);
        int[] channels = [1, 2, 3, 5, 8, 17, 20];
        for (int trial = 0; trial < 40; trial++)
        {
            int k = rng.Next(1, 6), kw = rng.Next(3) == 0 ? rng.Next(1, 6) : k;
            int s = rng.Next(1, 4), sw = rng.Next(1, 4), d = rng.Next(3) == 0 ? 2 : 1;
            int groups = rng.Next(3) == 0 ? 2 : 1;
            int inC = channels[rng.Next(channels.Length)] * groups, outC = channels[rng.Next(channels.Length)] * groups;
            int op = rng.Next(Math.Max(Math.Min(s, sw), d)); // below the stride or the dilation of both axes
            var g = new ConvTranspose2dGeometry(1, rng.Next(1, 7), rng.Next(1, 7), inC, outC, k, kw, s, sw, d, d,
                rng.Next(0, k), rng.Next(0, kw), rng.Next(0, k), rng.Next(0, kw), op, op, groups);
            if (g.OutHLong < 1 || g.OutWLong < 1) continue;
            Check(g, 1 + rng.Next(3), seed: 2000 + trial, bias: rng.Next(2) == 0);
        }
    }

    private static void Check(ConvTranspose2dGeometry g, int batch, int seed, bool bias)
    {
        g.Validate();
        var rng = new Random(seed);
        float[] x = TestData.Random(rng, (long)batch * g.InC * g.InH * g.InW);
        float[] w = TestData.Random(rng, g.WeightLength);
        float[] b = bias ? TestData.Random(rng, g.OutC) : [];
        float[] expected = ReferenceNchw(g, batch, x, w, b);
        float[] xNhwc = Reference.Transpose(x, [batch, g.InC, g.InH, g.InW], [0, 2, 3, 1]);
        float[] expectedNhwc = Reference.Transpose(expected, [batch, g.OutC, g.OutH, g.OutW], [0, 2, 3, 1]);
        int taps = g.InCPerGroup * ((g.KernelH + g.StrideH - 1) / g.StrideH) * ((g.KernelW + g.StrideW - 1) / g.StrideW);
        foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
        {
            var op = new ConvTranspose2dOperator(g with { Batch = 4 }, w, b, isa);
            Assert.Equal(1, op.Geometry.Batch);
            var y = new float[expectedNhwc.Length + 3];
            y.AsSpan(expectedNhwc.Length).Fill(12345f);
            op.Run(batch, xNhwc, y, workers);
            TestData.AssertClose(expectedNhwc, y, taps, $"{g} n{batch} {isa} t{workers.Count}");
            Assert.All(y[expectedNhwc.Length..], v => Assert.Equal(12345f, v));
        }
    }

    // ---- ONNX geometry rules ----

    [Fact]
    public void OutputShapeSetsThePadsAsTheSpecSays()
    {
        // natural 3·(3-1) + 3 = 9 rows; asking for 7 leaves total padding 2 (1 + 1), for 8 leaves 1.
        var g = ConvTranspose2dGeometry.FromOnnx(1, 3, 3, 1, 2, 3, 3, [3, 3], [], [], [], 1, outputShape: [7, 8]);
        Assert.Equal((1, 1, 1, 0), (g.PadTop, g.PadBottom, g.PadLeft, g.PadRight));
        Assert.Equal((7, 8), (g.OutH, g.OutW));
        g = ConvTranspose2dGeometry.FromOnnx(1, 3, 3, 1, 2, 3, 3, [3, 3], [], [], [], 1, outputShape: [7, 8], autoPad: ConvTransposeAutoPad.SameUpper);
        Assert.Equal((1, 1, 0, 1), (g.PadTop, g.PadBottom, g.PadLeft, g.PadRight));
        // SAME_*: output = input · stride.
        g = ConvTranspose2dGeometry.FromOnnx(1, 3, 3, 1, 2, 3, 3, [2, 2], [], [], [], 1, autoPad: ConvTransposeAutoPad.SameUpper);
        Assert.Equal((6, 6), (g.OutH, g.OutW));
        // Larger than the transposed convolution covers: extra rows at the end.
        g = ConvTranspose2dGeometry.FromOnnx(1, 3, 3, 1, 2, 3, 3, [3, 2], [], [], [], 1, outputShape: [10, 8]);
        Assert.Equal((10, 8, 0, 0), (g.OutH, g.OutW, g.PadTop, g.PadLeft));
    }

    [Fact]
    public void InvalidGeometryIsRejectedBeforeAllocating()
    {
        // output_padding must be below the stride or the dilation.
        var e = Assert.Throws<ArgumentException>(() => ConvTranspose2dGeometry.FromOnnx(1, 4, 4, 2, 2, 3, 3, [2, 2], [1, 1], [], [2, 0], 1));
        Assert.Contains("output_padding", e.Message);
        Assert.Throws<ArgumentException>(() => ConvTranspose2dGeometry.FromOnnx(1, 4, 4, 2, 2, 3, 3, [2, 2], [1, 1], [], [1_000_000, 0], 1));
        Assert.Throws<ArgumentException>(() => ConvTranspose2dGeometry.FromOnnx(1, 4, 4, 2, 2, 3, 3, [2, 2], [], [], [-1, 0], 1));
        ConvTranspose2dGeometry.FromOnnx(1, 4, 4, 2, 2, 3, 3, [1, 1], [3, 3], [], [2, 2], 1); // below the dilation: allowed
        // Pads cropping everything, absurd strides, bad groups, absurd output_shape.
        Assert.Throws<ArgumentException>(() => G(2, 2, 2, 2, 3, 1, 3).Validate());
        Assert.Throws<ArgumentException>(() => new ConvTranspose2dGeometry(1, 50_000, 50_000, 1, 1, 3, 3, 1_000, 1_000).Validate());
        Assert.Throws<ArgumentException>(() => G(4, 4, 6, 4, 3, groups: 4).Validate());
        Assert.Throws<ArgumentException>(() => G(4, 4, 2, 2, 0).Validate());
        Assert.Throws<ArgumentException>(() => ConvTranspose2dGeometry.FromOnnx(1, 4, 4, 2, 2, 3, 3, [2, 2], [], [], [], 1, outputShape: [1 << 30, 1 << 30]));
        Assert.Throws<ArgumentException>(() => ConvTranspose2dGeometry.FromOnnx(1, 4, 4, 2, 2, 3, 3, [2, 2], [], [1, 1], [], 1)); // 2 pads for 2-D
        // Wrong weight or bias counts, short buffers.
        Assert.Throws<ArgumentException>(() => new ConvTranspose2dOperator(G(4, 4, 2, 4, 3), new float[10], []));
        Assert.Throws<ArgumentException>(() => new ConvTranspose2dOperator(G(4, 4, 2, 4, 3), new float[72], new float[3]));
        var op = new ConvTranspose2dOperator(G(4, 4, 2, 4, 3), new float[72], []);
        Assert.Throws<ArgumentException>(() => op.Run(1, new float[31], new float[144], Workers.Single));
        Assert.Throws<ArgumentException>(() => op.Run(2, new float[32], new float[288], Workers.Single));
    }

    // ---- ONNX backend test data (X [1, 1, 3, 3]-ish, W, expected Y; attributes as in the test models) ----

    public static IEnumerable<object[]> OnnxCases =>
    [
        ["test_convtranspose", new int[0], new int[0], new int[0], new int[0], new int[0], ConvTransposeAutoPad.NotSet],
        ["test_convtranspose_dilations", new int[0], new[] { 2, 2 }, new int[0], new int[0], new int[0], ConvTransposeAutoPad.NotSet],
        ["test_convtranspose_pads", new[] { 3, 2 }, new int[0], new[] { 1, 2, 1, 2 }, new int[0], new int[0], ConvTransposeAutoPad.NotSet],
        ["test_convtranspose_pad", new[] { 3, 2 }, new int[0], new int[0], new[] { 1, 1 }, new int[0], ConvTransposeAutoPad.NotSet],
        ["test_convtranspose_kernel_shape", new[] { 3, 2 }, new int[0], new int[0], new[] { 1, 1 }, new[] { 10, 8 }, ConvTransposeAutoPad.NotSet],
        ["test_convtranspose_output_shape", new[] { 3, 2 }, new int[0], new int[0], new int[0], new[] { 10, 8 }, ConvTransposeAutoPad.NotSet],
        ["test_convtranspose_autopad_same", new[] { 2, 2 }, new int[0], new int[0], new int[0], new int[0], ConvTransposeAutoPad.SameUpper],
    ];

    [Theory]
    [MemberData(nameof(OnnxCases))]
    public void MatchesTheOnnxBackendTestData(string test, int[] strides, int[] dilations, int[] pads, int[] outputPadding, int[] outputShape, ConvTransposeAutoPad autoPad)
    {
        string dir = $"/usr/share/libonnx-testdata/data/node/{test}/test_data_set_0";
        if (!Directory.Exists(dir)) return;
        var x = TensorProtoFile.Read(Path.Combine(dir, "input_0.pb"));
        var w = TensorProtoFile.Read(Path.Combine(dir, "input_1.pb"));
        var expected = TensorProtoFile.Read(Path.Combine(dir, "output_0.pb"));
        int n = x.Shape[0], inC = x.Shape[1], outC = w.Shape[1];
        // ONNX pads are [top, left, bottom, right] = [x1_begin, x2_begin, x1_end, x2_end].
        var g = ConvTranspose2dGeometry.FromOnnx(n, x.Shape[2], x.Shape[3], inC, outC, w.Shape[2], w.Shape[3], strides, dilations, pads, outputPadding, 1,
            outputShape, autoPad);
        Assert.Equal(expected.Shape, new[] { n, outC, g.OutH, g.OutW });
        var op = new ConvTranspose2dOperator(g, (float[])w.Data, []);
        var y = new float[expected.Length];
        op.Run(n, Reference.Transpose((float[])x.Data, x.Shape, [0, 2, 3, 1]), y, Workers.Single);
        TestData.AssertClose((float[])expected.Data, Reference.Transpose(y, [n, g.OutH, g.OutW, outC], [0, 3, 1, 2]), 9, test);
    }

    [Fact]
    public void SteadyStateRunsAllocateNothing()
    {
        var rng = new Random(89);
        var g = G(16, 16, 32, 16, 4, 2, 1);
        var op = new ConvTranspose2dOperator(g, TestData.Random(rng, g.WeightLength), TestData.Random(rng, g.OutC));
        float[] x = TestData.Random(rng, g.InputLength), y = new float[g.OutputLength];
        using var two = new Workers(2);
        foreach (Workers workers in new[] { Workers.Single, two })
            AllocationTests.AssertNoAllocation(() => op.Run(1, x, y, workers), $"convtranspose t{workers.Count}");
    }
}
