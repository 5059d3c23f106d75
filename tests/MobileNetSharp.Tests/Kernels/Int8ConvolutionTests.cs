using MobileNetSharp.Kernels;
using MobileNetSharp.Kernels.Int8;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>
/// <see cref="QuantizedConvolution"/> (one group, any kernel) against a plain-loop reference written from the contract
/// (ONNX QLinearConv, padding taps read as the input zero point, requantized as MLAS does), bit for bit, at every ISA
/// level and at 1 and 2 threads: the stem (3 channels, stride 2, TF SAME and symmetric pads), odd channel counts on
/// both sides, 5x5 and non-square kernels, dilation, stride 3, strided 1x1, maps smaller than the kernel, batch 2.
/// </summary>
public class Int8ConvolutionTests
{
    private static void Reference(in Conv2dGeometry g, byte[] x, byte zpX, sbyte[] wOihw, float[] multipliers, int[] bias,
        byte zpY, byte qmin, byte qmax, byte[] y)
    {
        int c = g.InC, m = g.OutC;
        for (int n = 0; n < g.Batch; n++)
            for (int oy = 0; oy < g.OutH; oy++)
                for (int ox = 0; ox < g.OutW; ox++)
                    for (int o = 0; o < m; o++)
                    {
                        int acc = bias.Length == 0 ? 0 : bias[o];
                        for (int ky = 0; ky < g.KernelH; ky++)
                            for (int kx = 0; kx < g.KernelW; kx++)
                            {
                                int iy = oy * g.StrideH - g.PadTop + ky * g.DilationH, ix = ox * g.StrideW - g.PadLeft + kx * g.DilationW;
                                bool inside = iy >= 0 && iy < g.InH && ix >= 0 && ix < g.InW;
                                for (int ch = 0; ch < c; ch++)
                                {
                                    int xv = (inside ? x[((n * g.InH + iy) * g.InW + ix) * c + ch] : zpX) - zpX;
                                    acc = unchecked(acc + xv * wOihw[((o * c + ch) * g.KernelH + ky) * g.KernelW + kx]);
                                }
                            }
                        float f = (float)acc * multipliers[o];
                        f = MathF.Min(MathF.Max(f, (float)(qmin - zpY)), (float)(qmax - zpY));
                        y[((n * g.OutH + oy) * g.OutW + ox) * m + o] = (byte)((int)MathF.Round(f, MidpointRounding.ToEven) + zpY);
                    }
    }

    /// <summary>C in, C out, H, W, KH, KW, stride H, stride W, dilation, pads (top, left, bottom, right), batch.</summary>
    public static IEnumerable<object[]> Shapes => new int[][]
    {
        [3, 32, 23, 23, 3, 3, 2, 2, 1, 0, 0, 1, 1, 1],   // the stem, TF SAME (EfficientNet-Lite, TFLite files)
        [3, 16, 17, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 2],   // the stem, symmetric pads, odd output channels
        [1, 7, 9, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1],      // grey input, odd everything
        [5, 17, 8, 11, 5, 5, 1, 1, 1, 2, 2, 2, 2, 2],
        [33, 9, 7, 7, 3, 3, 1, 1, 2, 2, 2, 2, 2, 1],     // dilation 2
        [8, 24, 10, 9, 1, 3, 1, 2, 1, 0, 1, 0, 1, 1],    // non-square kernel, mixed strides
        [16, 5, 13, 13, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1],   // stride 3
        [24, 40, 8, 8, 1, 1, 2, 2, 1, 0, 0, 0, 0, 2],    // strided 1x1 (a shortcut projection)
        [4, 6, 2, 2, 5, 5, 1, 1, 1, 2, 2, 2, 2, 1],      // a map smaller than the kernel: mostly padding
        [64, 20, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1],    // K = 576: several GEMM k steps per band
        [3, 32, 122, 121, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1], // a stem of several bands, the second starting mid-row (61 columns)
        [3, 8, 9, 9, 3, 3, 2, 2, 1, 0, 0, 0, 0, 2],      // no padding: the unfold's 16-byte loads reach the image's end
    }.Select(v => v.Cast<object>().ToArray());

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Int8ConvolutionMatchesReferenceBitExact(int c, int m, int h, int w, int kh, int kw, int sh, int sw, int d, int pt, int pl, int pb, int pr, int batch)
    {
        var g = new Conv2dGeometry(batch, h, w, c, m, kh, kw, sh, sw, d, d, pt, pl, pb, pr, 1);
        for (int variant = 0; variant < 4; variant++)
        {
            var rng = new Random(HashCode.Combine(c, m, h, w, kh, kw, sh, variant));
            var x = new byte[g.InputLength];
            rng.NextBytes(x);
            var wts = new sbyte[m * c * kh * kw];
            for (int i = 0; i < wts.Length; i++) wts[i] = (sbyte)rng.Next(variant == 1 ? -128 : -63, variant == 1 ? 128 : 64);
            byte zpX = variant switch { 0 => 0, 1 => 255, _ => (byte)rng.Next(256) }, zpY = (byte)rng.Next(256);
            float natural = 100f / (74f * 74f * MathF.Sqrt(c * kh * kw));
            float[] multipliers = Enumerable.Range(0, m).Select(_ => natural * (0.25f + 2f * rng.NextSingle())).ToArray();
            if (variant == 3) multipliers[0] = 2f; // a multiplier above 1: clamp in float first
            int[] bias = variant == 2 ? [] : Enumerable.Range(0, m).Select(_ => rng.Next(-50_000, 50_000)).ToArray();
            (byte qmin, byte qmax) = variant == 3 ? (zpY, (byte)Math.Min(255, zpY + 40)) : ((byte)0, (byte)255); // ReLU6-like clamp

            var expected = new byte[g.OutputLength];
            Reference(g, x, zpX, wts, multipliers, bias, zpY, qmin, qmax, expected);
            var packed = QuantizedConvolution.PackWeights(wts, m, c, kh, kw);
            // 7-bit weights take the AVX2 byte-quad GEMM, whose unfold pads each row to a multiple of 4 bytes; full-range ones the int16 pairs.
            Assert.Equal(variant != 1, packed.HasByteQuads);
            var rq = new Requantization(multipliers, bias, zpY, qmin, qmax);
            int runs = 0;
            foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
            {
                var y = new byte[g.OutputLength + 5];
                y.AsSpan().Fill(0xA5);
                QuantizedConvolution.Run(g, x, zpX, packed, rq, y, workers, isa);
                int bad = Enumerable.Range(0, expected.Length).FirstOrDefault(i => expected[i] != y[i], -1);
                Assert.True(bad < 0, $"variant {variant} {isa} t{workers.Count}: first difference at {bad}: {(bad < 0 ? 0 : expected[bad])} expected, got {(bad < 0 ? 0 : y[bad])}");
                Assert.All(y[^5..], b => Assert.Equal(0xA5, b));
                runs++;
            }
            Assert.Equal(Isa.Supported.Count * 2, runs);
        }
    }

    /// <summary>
    /// The hard-swish epilogue (<see cref="Requantization.WithHardSwish"/>) of the GEMM (1x1, the stem) and of the
    /// depthwise kernel, bit for bit against the formula at every ISA level and 1 and 2 threads: v = acc · x_scale ·
    /// w_scale, v · min(max(fma(alpha, v, beta), 0), 1) / y_scale, clamped, rounded half to even, plus the zero point.
    /// </summary>
    [Theory]
    [InlineData(3, 16, 17, 3, 2, false)]   // V3's stem
    [InlineData(40, 19, 9, 1, 1, false)]   // 1x1
    [InlineData(72, 72, 11, 5, 2, true)]   // depthwise 5x5
    [InlineData(16, 16, 13, 3, 1, true)]   // depthwise 3x3, 16 channels
    public void HardSwishEpilogueMatchesTheFormulaBitExact(int c, int m, int size, int k, int stride, bool depthwise)
    {
        int pad = k / 2;
        var g = new Conv2dGeometry(2, size, size, c, m, k, k, stride, stride, 1, 1, pad, pad, pad, pad, depthwise ? c : 1);
        var rng = new Random(c * 131 + k);
        var x = new byte[g.InputLength];
        rng.NextBytes(x);
        int perOut = depthwise ? k * k : c * k * k;
        var w = new sbyte[m * perOut];
        for (int i = 0; i < w.Length; i++) w[i] = (sbyte)rng.Next(-127, 128);
        byte zpX = 121, zpY = 40;
        float xs = 0.03f, ys = 0.02f;
        float[] ws = Enumerable.Range(0, m).Select(_ => (0.5f + rng.NextSingle()) * 3f / (127 * 128 * MathF.Sqrt(perOut)) / xs).ToArray();
        int[] bias = Enumerable.Range(0, m).Select(_ => rng.Next(-3000, 3000)).ToArray();
        var rq = Requantization.WithHardSwish(m, xs, ws, ys, bias, zpY);

        var expected = new byte[g.OutputLength];
        for (int n = 0; n < g.Batch; n++)
            for (int oy = 0; oy < g.OutH; oy++)
                for (int ox = 0; ox < g.OutW; ox++)
                    for (int o = 0; o < m; o++)
                    {
                        int acc = bias[o];
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++)
                            {
                                int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                                bool inside = iy >= 0 && iy < size && ix >= 0 && ix < size;
                                for (int ch = depthwise ? o : 0; ch < (depthwise ? o + 1 : c); ch++)
                                {
                                    int xv = (inside ? x[((n * size + iy) * size + ix) * c + ch] : zpX) - zpX;
                                    int wi = depthwise ? (o * k + ky) * k + kx : ((o * c + ch) * k + ky) * k + kx;
                                    acc += xv * w[wi];
                                }
                            }
                        float v = (float)acc * (xs * ws[o]);
                        float h = v * MathF.Min(MathF.Max(MathF.FusedMultiplyAdd(1f / 6, v, 0.5f), 0f), 1f) / ys;
                        h = MathF.Min(MathF.Max(h, -zpY), 255 - zpY);
                        expected[((n * g.OutH + oy) * g.OutW + ox) * m + o] = (byte)((int)MathF.Round(h, MidpointRounding.ToEven) + zpY);
                    }
        Assert.True(expected.Distinct().Count() > 30, "the outputs should cover hard-swish's curve");
        int runs = 0;
        foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
        {
            var y = new byte[g.OutputLength];
            if (depthwise) QuantizedDepthwise.Run(g, x, zpX, PackedInt8DepthwiseWeights.FromOihw(w, c, k, k), rq, y, workers, isa);
            else QuantizedConvolution.Run(g, x, zpX, QuantizedConvolution.PackWeights(w, m, c, k, k), rq, y, workers, isa);
            int bad = Enumerable.Range(0, y.Length).FirstOrDefault(i => expected[i] != y[i], -1);
            Assert.True(bad < 0, $"{isa} t{workers.Count}: first difference at {bad}: {(bad < 0 ? 0 : expected[bad])} expected, got {(bad < 0 ? 0 : y[bad])}");
            runs++;
        }
        Assert.Equal(Isa.Supported.Count * 2, runs);
    }

    /// <summary>A steady-state call allocates nothing (the per-call job lives on the stack), on one thread or two,
    /// with 7-bit weights (the byte-quad GEMM, padded unfold) and full-range ones.</summary>
    [Theory]
    [InlineData(64)]
    [InlineData(127)]
    public void Int8ConvolutionAllocatesNothing(int weightMax)
    {
        var g = new Conv2dGeometry(1, 33, 33, 3, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1);
        var rng = new Random(weightMax);
        var x = new byte[g.InputLength];
        rng.NextBytes(x);
        var w = new sbyte[16 * 27];
        for (int i = 0; i < w.Length; i++) w[i] = (sbyte)rng.Next(-weightMax, weightMax + 1);
        var packed = QuantizedConvolution.PackWeights(w, 16, 3, 3, 3);
        var rq = Requantization.PerTensor(16, 0.001f, [], 3);
        var y = new byte[g.OutputLength];
        foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
            AllocationTests.AssertNoAllocation(() => QuantizedConvolution.Run(g, x, 7, packed, rq, y, workers, isa), $"int8 stem w{weightMax} {isa} t{workers.Count}");
    }

    [Fact]
    public void MismatchedSizesAreRefusedWithTheirNumbers()
    {
        var g = new Conv2dGeometry(1, 8, 8, 3, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1);
        var rq = new Requantization(Enumerable.Repeat(0.01f, 16).ToArray(), [], 0, 0, 255);
        var wrongK = QuantizedConvolution.PackWeights(new sbyte[16 * 4 * 9], 16, 4, 3, 3);
        Assert.Contains("K 36 x N 16", Assert.Throws<ArgumentException>(() => QuantizedConvolution.Run(g, new byte[192], 0, wrongK, rq, new byte[256], Workers.Single)).Message);
        var packed = QuantizedConvolution.PackWeights(new sbyte[16 * 27], 16, 3, 3, 3);
        Assert.Contains("input has 100 bytes", Assert.Throws<ArgumentException>(() => QuantizedConvolution.Run(g, new byte[100], 0, packed, rq, new byte[256], Workers.Single)).Message);
        Assert.Contains("one group only", Assert.Throws<ArgumentException>(() => QuantizedConvolution.Validate(g with { Groups = 3, OutC = 15 }, packed, rq)).Message);
        Assert.Throws<ArgumentException>(() => QuantizedConvolution.PackWeights(new sbyte[10], 16, 3, 3, 3));
    }
}
