using MobileNetSharp.Kernels;
using MobileNetSharp.Kernels.Int8;
using MobileNetSharp.Tensors;
using MobileNetSharp.Tests.Onnx;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>
/// <see cref="QuantizedDepthwise"/> against a plain-loop reference written from its contract (ONNX QLinearConv with
/// group = C, requantized as ONNX Runtime's MLAS does), bit for bit: the integer sum is exact and the epilogue is the
/// same float operations in the same order, so there is no tolerance. Channel counts are off every vector width,
/// maps go down to 1x1 (all padding), pads are symmetric and asymmetric; every case runs at every supported ISA
/// level and at 1 and 2 threads, with zero points, multipliers, bias and clamp varied per variant.
/// </summary>
public class Int8DepthwiseTests
{
    /// <summary>The contract, one output at a time: padding taps are skipped, i.e. count (zpX - zpX) = 0.</summary>
    private static void Reference(in Conv2dGeometry g, ReadOnlySpan<byte> x, byte zpX, ReadOnlySpan<sbyte> wOihw,
        ReadOnlySpan<float> multipliers, ReadOnlySpan<int> bias, byte zpY, byte qmin, byte qmax, Span<byte> y)
    {
        int c = g.InC;
        for (int n = 0; n < g.Batch; n++)
            for (int oy = 0; oy < g.OutH; oy++)
                for (int ox = 0; ox < g.OutW; ox++)
                    for (int ch = 0; ch < c; ch++)
                    {
                        int acc = bias.IsEmpty ? 0 : bias[ch];
                        for (int ky = 0; ky < g.KernelH; ky++)
                            for (int kx = 0; kx < g.KernelW; kx++)
                            {
                                int iy = oy * g.StrideH - g.PadTop + ky, ix = ox * g.StrideW - g.PadLeft + kx;
                                if (iy < 0 || iy >= g.InH || ix < 0 || ix >= g.InW) continue;
                                int xv = x[((n * g.InH + iy) * g.InW + ix) * c + ch] - zpX;
                                acc = unchecked(acc + xv * wOihw[(ch * g.KernelH + ky) * g.KernelW + kx]);
                            }
                        float f = (float)acc * multipliers[ch];
                        f = MathF.Min(MathF.Max(f, (float)(qmin - zpY)), (float)(qmax - zpY));
                        y[((n * g.OutH + oy) * g.OutW + ox) * c + ch] = (byte)((int)MathF.Round(f, MidpointRounding.ToEven) + zpY);
                    }
    }

    /// <summary>C, H, W, KH, KW, SH, SW, pads (top, left, bottom, right), batch.</summary>
    public static IEnumerable<object[]> Shapes =>
    [
        // 3x3 stride 1, pad 1 (MobileNet), odd channel counts, maps from 1x1 up.
        [1, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1], [3, 2, 2, 3, 3, 1, 1, 1, 1, 1, 1, 3], [17, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1],
        [33, 14, 14, 3, 3, 1, 1, 1, 1, 1, 1, 1], [96, 14, 14, 3, 3, 1, 1, 1, 1, 1, 1, 3], [144, 28, 28, 3, 3, 1, 1, 1, 1, 1, 1, 1],
        [32, 28, 28, 3, 3, 1, 1, 1, 1, 1, 1, 1], [64, 5, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1],
        // 3x3 stride 2: symmetric pad 1, TF SAME (top/left 0, bottom/right 1), no padding.
        [17, 14, 14, 3, 3, 2, 2, 1, 1, 1, 1, 1], [96, 28, 28, 3, 3, 2, 2, 0, 0, 1, 1, 1], [144, 7, 7, 3, 3, 2, 2, 1, 1, 1, 1, 3],
        [33, 9, 4, 3, 3, 2, 2, 0, 0, 0, 0, 1], [3, 2, 2, 3, 3, 2, 2, 1, 1, 1, 1, 1], [1, 1, 1, 3, 3, 2, 2, 0, 0, 2, 2, 3],
        // 5x5, stride 1 pad 2 and stride 2 with SAME-style asymmetric pads; 5x5 over maps smaller than the kernel.
        [33, 14, 14, 5, 5, 1, 1, 2, 2, 2, 2, 1], [144, 7, 7, 5, 5, 1, 1, 2, 2, 2, 2, 1], [96, 28, 28, 5, 5, 2, 2, 1, 1, 2, 2, 1],
        [17, 14, 14, 5, 5, 2, 2, 2, 2, 2, 2, 3], [3, 2, 2, 5, 5, 1, 1, 2, 2, 2, 2, 1], [1, 1, 1, 5, 5, 2, 2, 2, 2, 2, 2, 1],
        [32, 9, 5, 5, 5, 1, 1, 0, 1, 2, 3, 1], [64, 7, 7, 5, 5, 1, 1, 0, 0, 0, 0, 1],
        // Pads 0 and 2 with a 3x3, and padding larger than half the window on one side only.
        [33, 7, 7, 3, 3, 1, 1, 0, 0, 0, 0, 1], [17, 7, 7, 3, 3, 1, 1, 2, 2, 2, 2, 1], [96, 5, 6, 3, 3, 2, 1, 2, 0, 1, 2, 1],
        // The generic path: other kernel sizes, non-square kernels, stride 3, mixed strides.
        [33, 9, 9, 1, 1, 1, 1, 0, 0, 0, 0, 1], [17, 8, 8, 2, 2, 2, 2, 0, 0, 0, 0, 1], [96, 14, 14, 7, 7, 1, 1, 3, 3, 3, 3, 1],
        [33, 11, 10, 3, 5, 1, 2, 1, 2, 1, 2, 3], [17, 13, 13, 3, 3, 3, 3, 1, 1, 1, 1, 1], [3, 6, 5, 1, 3, 1, 1, 0, 1, 0, 1, 1],
        // Partial 32-channel blocks stored in 16/8/4/1-byte pieces: exactly 16 (MobileNetV3's first block), 16+8+4+1, 8+4.
        [16, 9, 9, 3, 3, 1, 1, 1, 1, 1, 1, 2], [29, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1], [12, 6, 5, 3, 3, 2, 2, 1, 1, 1, 1, 2],
    ];

    private sealed class Case
    {
        public Conv2dGeometry G;
        public byte ZpX, ZpY, QMin = 0, QMax = 255;
        public byte[] X = [];
        public sbyte[] W = [];
        public float[] Multipliers = [];
        public int[] Bias = [];
        public string Description = "";

        public Requantization Requantization() => new(Multipliers, Bias, ZpY, QMin, QMax);
        public PackedInt8DepthwiseWeights Pack() => PackedInt8DepthwiseWeights.FromOihw(W, G.InC, G.KernelH, G.KernelW);

        /// <summary>Y with 7 sentinel bytes past the end, which must stay untouched.</summary>
        public byte[] NewOutput()
        {
            var y = new byte[G.OutputLength + 7];
            y.AsSpan().Fill(0xA5);
            return y;
        }

        public byte[] Expected()
        {
            byte[] y = NewOutput();
            Reference(G, X, ZpX, W, Multipliers, Bias, ZpY, QMin, QMax, y);
            return y;
        }
    }

    private static Case MakeCase(object[] s, int variant)
    {
        int[] v = s.Cast<int>().ToArray();
        var g = new Conv2dGeometry(v[11], v[1], v[2], v[0], v[0], v[3], v[4], v[5], v[6], 1, 1, v[7], v[8], v[9], v[10], v[0]);
        var rng = new Random(v.Aggregate(17, (h, x) => h * 31 + x) * 13 + variant); // fixed seeds: a failure reproduces
        var cs = new Case { G = g };
        int c = g.InC, taps = g.KernelH * g.KernelW;
        cs.ZpX = (variant % 3) switch { 0 => 0, 1 => 128, _ => 255 };
        cs.X = new byte[g.InputLength];
        rng.NextBytes(cs.X);
        bool fullRange = variant % 2 == 0;
        cs.W = new sbyte[c * taps];
        for (int i = 0; i < cs.W.Length; i++) cs.W[i] = (sbyte)rng.Next(fullRange ? -128 : -127, 128);
        // Extremes: channel 1 all -128 (or -127) and the first pixel all 255, so the largest products occur.
        if (c > 1) for (int t = 0; t < taps; t++) cs.W[taps + t] = fullRange ? (sbyte)-128 : (sbyte)-127;
        cs.X.AsSpan(0, c).Fill(255);

        // |acc| is typically ~ 74 · 74 · sqrt(taps); scale it to ~ ±100 around the output zero point.
        float natural = 100f / (74f * 74f * MathF.Sqrt(taps));
        cs.ZpY = (byte)rng.Next(0, 256);
        cs.Bias = (variant % 5) switch
        {
            0 => [],
            1 => Enumerable.Range(0, c).Select(_ => rng.Next(-2000, 2000)).ToArray(),
            2 => Enumerable.Range(0, c).Select(_ => rng.Next(int.MinValue, int.MaxValue)).ToArray(), // large, wraps int32
            _ => Enumerable.Range(0, c).Select(_ => rng.Next(-100_000, 100_000)).ToArray(),
        };
        bool ties = variant == 6;
        cs.Multipliers = (variant % 6) switch
        {
            _ when ties => Enumerable.Range(0, c).Select(j => j % 3 == 0 ? 0.5f : j % 3 == 1 ? 0.25f : 0.125f).ToArray(),
            0 => Enumerable.Repeat(natural, c).ToArray(),                                                    // per-tensor
            1 => Enumerable.Range(0, c).Select(_ => natural * (0.25f + 2f * rng.NextSingle())).ToArray(),  // per-channel
            2 => Enumerable.Repeat(0.99999994f, c).ToArray(),                                              // saturates, below 1
            3 => Enumerable.Range(0, c).Select(j => j % 2 == 0 ? 1f : 4f).ToArray(),                        // saturates, clamp in float
            4 => Enumerable.Range(0, c).Select(_ => natural * 30f * rng.NextSingle() + 1e-30f).ToArray(),   // many clamp
            _ => Enumerable.Range(0, c).Select(_ => 1e-9f).ToArray(),                                       // all collapse onto zpY
        };
        if (ties)
        {
            // Small values, no zero point, power-of-two multipliers: many results land exactly on .5 and must round to even.
            cs.ZpX = 0;
            for (int i = 0; i < cs.X.Length; i++) cs.X[i] &= 3;
            for (int i = 0; i < cs.W.Length; i++) cs.W[i] = (sbyte)(cs.W[i] % 3);
            cs.Bias = Enumerable.Range(0, c).Select(_ => rng.Next(-20, 20)).ToArray();
            cs.ZpY = 128;
        }
        switch (variant % 4)
        {
            case 1: cs.QMin = cs.ZpY; break;                                                                     // fused ReLU
            case 3 when !ties: cs.QMin = cs.ZpY; cs.QMax = (byte)Math.Min(255, cs.ZpY + rng.Next(1, 60)); break; // ReLU6-like
        }
        cs.Description = $"C{c} {g.InH}x{g.InW} k{g.KernelH}x{g.KernelW} s{g.StrideH}x{g.StrideW} pads({g.PadTop},{g.PadLeft},{g.PadBottom},{g.PadRight}) " +
            $"n{g.Batch} v{variant} zpX{cs.ZpX} zpY{cs.ZpY} q[{cs.QMin},{cs.QMax}] bias{cs.Bias.Length}";
        return cs;
    }

    private const int Variants = 7;

    public static IEnumerable<object[]> ShapeVariants =>
        Shapes.SelectMany(s => Enumerable.Range(0, Variants).Select(v => s.Append(v).ToArray()));

    [Theory]
    [MemberData(nameof(ShapeVariants))]
    public void Int8DepthwiseMatchesReferenceBitExact(int c, int h, int w, int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr, int batch, int variant)
    {
        Case cs = MakeCase([c, h, w, kh, kw, sh, sw, pt, pl, pb, pr, batch], variant);
        byte[] expected = cs.Expected();
        PackedInt8DepthwiseWeights packed = cs.Pack();
        Requantization rq = cs.Requantization();
        int checkedRuns = 0;
        foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
        {
            byte[] y = cs.NewOutput();
            QuantizedDepthwise.Run(cs.G, cs.X, cs.ZpX, packed, rq, y, workers, isa);
            AssertBytes(expected, y, cs.G, $"{cs.Description} {isa} t{workers.Count}");
            checkedRuns++;
        }
        Assert.Equal(Isa.Supported.Count * 2, checkedRuns);
    }

    /// <summary>The non-x86 Vector128 entry (<see cref="Int8Path.Portable128"/>) shares the Vector128 code; run it directly too.</summary>
    [Theory]
    [InlineData(33, 14, 14, 3, 1, 1, 3)]
    [InlineData(17, 7, 7, 5, 2, 2, 1)]
    public unsafe void Int8DepthwisePortable128MatchesReference(int c, int h, int w, int k, int s, int pad, int variant)
    {
        Case cs = MakeCase([c, h, w, k, k, s, s, pad, pad, pad, pad, 2], variant);
        byte[] expected = cs.Expected();
        byte[] y = cs.NewOutput();
        fixed (byte* px = cs.X, py = y)
            QuantizedDepthwise.Run(Int8Path.Portable128, cs.G, px, cs.ZpX, cs.Pack(), cs.Requantization(), py, TestData.Two);
        AssertBytes(expected, y, cs.G, $"{cs.Description} portable128");
    }

    /// <summary>Threads own different output rows (and so copy different input rows), but every output is computed alike.</summary>
    [Theory]
    [InlineData(32, 112, 112, 3, 1)]
    [InlineData(144, 56, 56, 3, 2)]
    [InlineData(480, 14, 14, 5, 1)]
    [InlineData(17, 30, 21, 5, 2)]
    public void Int8DepthwiseIsIdenticalAtOneTwoAndThreeThreads(int c, int h, int w, int k, int s)
    {
        var rng = new Random(c + h + w + k + s);
        var g = new Conv2dGeometry(2, h, w, c, c, k, k, s, s, 1, 1, k / 2, k / 2, k / 2, k / 2, c);
        var x = new byte[g.InputLength];
        var wts = new sbyte[c * k * k];
        rng.NextBytes(x);
        rng.NextBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(wts.AsSpan()));
        float[] multipliers = Enumerable.Range(0, c).Select(_ => 0.004f * rng.NextSingle() + 1e-4f).ToArray();
        int[] bias = Enumerable.Range(0, c).Select(_ => rng.Next(-50_000, 50_000)).ToArray();
        var packed = PackedInt8DepthwiseWeights.FromOihw(wts, c, k, k);
        var rq = new Requantization(multipliers, bias, 100, 100, 220);
        using var three = new Workers(3);
        byte[]? first = null;
        int compared = 0;
        foreach (IsaLevel isa in Isa.Supported)
            foreach (Workers workers in new[] { Workers.Single, TestData.Two, three })
            {
                var y = new byte[g.OutputLength];
                QuantizedDepthwise.Run(g, x, 131, packed, rq, y, workers, isa);
                if (first == null) first = y;
                else
                {
                    Assert.True(first.AsSpan().SequenceEqual(y), $"C{c} {h}x{w} k{k} s{s} {isa} t{workers.Count} differs from the first run");
                    compared++;
                }
            }
        Assert.Equal(Isa.Supported.Count * 3 - 1, compared);
        Assert.True(first!.Distinct().Count() > 20, "the clamp hits almost everything: the comparison would prove little");
    }

    /// <summary>
    /// The contract is what ONNX Runtime computes: a depthwise QLinearConv (group = C; uint8 x, per-channel int8 w,
    /// int32 bias, uint8 y) run by ORT gives the same bytes as the kernel, at full-range weights [-128, 127].
    /// ORT is NCHW, so the input is transposed in and the output compared transposed.
    /// </summary>
    [Theory]
    [InlineData(32, 14, 14, 3, 1, 1, 1, 1, 1, 1)]
    [InlineData(33, 13, 13, 3, 2, 0, 0, 1, 1, 2)]  // TF SAME, stride 2
    [InlineData(96, 7, 9, 5, 1, 2, 2, 2, 2, 3)]
    [InlineData(17, 10, 10, 5, 2, 1, 2, 2, 1, 4)]
    [InlineData(144, 5, 5, 3, 1, 1, 1, 1, 1, 5)]
    public void Int8DepthwiseMatchesOnnxRuntimeQLinearConv(int c, int h, int w, int k, int s, int pt, int pl, int pb, int pr, int seed)
    {
        var rng = new Random(seed);
        var g = new Conv2dGeometry(1, h, w, c, c, k, k, s, s, 1, 1, pt, pl, pb, pr, c);
        int pixels = h * w, outPixels = g.OutH * g.OutW;
        var x = new byte[c * pixels]; // NCHW
        rng.NextBytes(x);
        var weights = new sbyte[c * k * k]; // [C, 1, K, K]
        for (int i = 0; i < weights.Length; i++) weights[i] = (sbyte)rng.Next(-128, 128);
        float xScale = 0.0173f, yScale = 0.0911f;
        float[] wScales = Enumerable.Range(0, c).Select(_ => 0.002f + 0.01f * rng.NextSingle() / k).ToArray();
        int[] bias = Enumerable.Range(0, c).Select(_ => rng.Next(-30_000, 30_000)).ToArray();
        byte xZero = (byte)rng.Next(0, 256), yZero = (byte)rng.Next(0, 256);

        byte[] model = new OnnxModelBuilder(opset: 13)
            .TypedInput("x", 2, 1, c, h, w)
            .Initializer("x_scale", new Tensor(DataType.Float32, [], new[] { xScale }))
            .Initializer("x_zero_point", new Tensor(DataType.UInt8, [], new[] { xZero }))
            .Initializer("w", new Tensor(DataType.Int8, [c, 1, k, k], weights))
            .Initializer("w_scale", new Tensor(DataType.Float32, [c], wScales))
            .Initializer("w_zero_point", new Tensor(DataType.Int8, [c], new sbyte[c]))
            .Initializer("y_scale", new Tensor(DataType.Float32, [], new[] { yScale }))
            .Initializer("y_zero_point", new Tensor(DataType.UInt8, [], new[] { yZero }))
            .Initializer("B", new Tensor(DataType.Int32, [c], bias))
            .Node("QLinearConv", ["x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "y_scale", "y_zero_point", "B"], ["y"], null,
                ("group", c), ("kernel_shape", new long[] { k, k }), ("strides", new long[] { s, s }), ("pads", new long[] { pt, pl, pb, pr }))
            .TypedOutput("y", 2, 1, c, g.OutH, g.OutW)
            .ToBytes();
        var y = (byte[])OrtRunner.Run(model, [new("x", new Tensor(DataType.UInt8, [1, c, h, w], x))], threads: 1)["y"].Data;
        Assert.Equal(c * outPixels, y.Length);

        var nhwc = new byte[pixels * c];
        for (int ch = 0; ch < c; ch++)
            for (int p = 0; p < pixels; p++) nhwc[p * c + ch] = x[ch * pixels + p];
        var rq = Requantization.FromScales(c, xScale, wScales, yScale, bias, yZero);
        var packed = PackedInt8DepthwiseWeights.FromOihw(weights, c, k, k);
        int distinct = 0, runs = 0;
        foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
        {
            var yOut = new byte[outPixels * c];
            QuantizedDepthwise.Run(g, nhwc, xZero, packed, rq, yOut, workers, isa);
            for (int p = 0; p < outPixels; p++)
                for (int ch = 0; ch < c; ch++)
                    if (yOut[p * c + ch] != y[ch * outPixels + p])
                        Assert.Fail($"{isa} t{workers.Count}: pixel {p} channel {ch}: ORT {y[ch * outPixels + p]}, kernel {yOut[p * c + ch]}");
            distinct = yOut.Distinct().Count();
            runs++;
        }
        Assert.Equal(Isa.Supported.Count * 2, runs);
        Assert.True(distinct > 10, $"only {distinct} distinct outputs: the scales clamp almost everything");
    }

    /// <summary>A steady-state call allocates nothing (the per-task scratch comes from the array pool).</summary>
    [Fact]
    public void Int8DepthwiseAllocatesNothing()
    {
        var g = new Conv2dGeometry(1, 28, 28, 96, 96, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 96);
        var rng = new Random(3);
        var x = new byte[g.InputLength];
        rng.NextBytes(x);
        var packed = PackedInt8DepthwiseWeights.FromOihw(new sbyte[96 * 9], 96, 3, 3);
        var rq = Requantization.PerTensor(96, 0.01f, [], 3);
        var y = new byte[g.OutputLength];
        foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
            AllocationTests.AssertNoAllocation(() => QuantizedDepthwise.Run(g, x, 7, packed, rq, y, workers, isa), $"int8 depthwise {isa} t{workers.Count}");
    }

    [Fact]
    public void PackedDepthwiseWeightsHoldTapSumsAndPadChannels()
    {
        sbyte[] w = [1, -2, 3, 127, -128, 5, 7, 0, -9, /* channel 1 */ -128, -128, -128, -128, -128, -128, -128, -128, -128];
        var p = PackedInt8DepthwiseWeights.FromOihw(w, 2, 3, 3);
        Assert.Equal((2, 9, 5, 32), (p.Channels, p.Taps, p.PairCount, p.ChannelStride));
        Assert.Equal(4, p.WeightSum(0));
        Assert.Equal(-1152, p.WeightSum(1));
        Assert.Equal(64, PackedInt8DepthwiseWeights.FromOihw(new sbyte[33], 33, 1, 1).ChannelStride);
        // The pair slots are a permutation of each 32-channel block.
        Assert.Equal(Enumerable.Range(0, 64), Enumerable.Range(0, 64).Select(PackedInt8DepthwiseWeights.PairSlot).Order());
    }

    [Fact]
    public void HostileArgumentsThrowArgumentExceptionWithTheReason()
    {
        var g = new Conv2dGeometry(1, 4, 4, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3);
        var w = PackedInt8DepthwiseWeights.FromOihw(new sbyte[27], 3, 3, 3);
        var rq = Requantization.PerTensor(3, 0.1f, [], 0);
        var x = new byte[48];
        var y = new byte[48];
        void Throws(Action act, string fragment) => Assert.Contains(fragment, Assert.ThrowsAny<ArgumentException>(act).Message);

        Throws(() => PackedInt8DepthwiseWeights.FromOihw(new sbyte[27], 0, 3, 3), "at least 1");
        Throws(() => PackedInt8DepthwiseWeights.FromOihw(new sbyte[27], 3, -3, 3), "at least 1");
        Throws(() => PackedInt8DepthwiseWeights.FromOihw(new sbyte[26], 3, 3, 3), "expected 27 values, got 26");
        Throws(() => PackedInt8DepthwiseWeights.FromOihw(new sbyte[1], 65536, 65536, 65536), "expected");

        Throws(() => QuantizedDepthwise.Run(g, x.AsSpan(0, 47), 0, w, rq, y, Workers.Single), "input has 47 bytes");
        Throws(() => QuantizedDepthwise.Run(g, x, 0, w, rq, y.AsSpan(0, 47), Workers.Single), "output has 47 bytes");
        Throws(() => QuantizedDepthwise.Run(g with { OutC = 6 }, x, 0, w, rq, y, Workers.Single), "OutC = Groups = InC");
        Throws(() => QuantizedDepthwise.Run(g with { Groups = 1 }, x, 0, w, rq, y, Workers.Single), "OutC = Groups = InC");
        Throws(() => QuantizedDepthwise.Run(g with { DilationH = 2 }, x, 0, w, rq, y, Workers.Single), "dilation 2x1");
        Throws(() => QuantizedDepthwise.Run(g with { KernelW = 5 }, x, 0, w, rq, y, Workers.Single), "3x3 kernel, the geometry has 3 channels and a 3x5");
        Throws(() => QuantizedDepthwise.Run(g, x, 0, PackedInt8DepthwiseWeights.FromOihw(new sbyte[36], 4, 3, 3), rq, y, Workers.Single), "weights are for 4 channels");
        Throws(() => QuantizedDepthwise.Run(g, x, 0, w, Requantization.PerTensor(4, 0.1f, [], 0), y, Workers.Single), "requantization is for 4 channels");
        Throws(() => QuantizedDepthwise.Run(g with { Batch = 0 }, x, 0, w, rq, y, Workers.Single), "must be positive");
        Throws(() => QuantizedDepthwise.Run(g with { StrideH = 0 }, x, 0, w, rq, y, Workers.Single), "must be positive");
        Throws(() => QuantizedDepthwise.Run(g with { PadLeft = -1 }, x, 0, w, rq, y, Workers.Single), "non-negative");
        Throws(() => QuantizedDepthwise.Run(g with { PadTop = 0, PadBottom = 0, InH = 2 }, x, 0, w, rq, y, Workers.Single), "too small");
        Throws(() => QuantizedDepthwise.Run(g with { InH = 1 << 20, InW = 1 << 20 }, x, 0, w, rq, y, Workers.Single), "input has 48 bytes");
        // A window so wide its padded rows cannot be held: refused before anything is rented.
        var wide = new Conv2dGeometry(1, 1, 1 << 24, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3);
        Throws(() => QuantizedDepthwise.Run(wide, x, 0, w, rq, y, Workers.Single), "more scratch than one array holds");
        Assert.Throws<ArgumentNullException>(() => QuantizedDepthwise.Run(g, x, 0, null!, rq, y, Workers.Single));
        Assert.Throws<ArgumentNullException>(() => QuantizedDepthwise.Run(g, x, 0, w, null!, y, Workers.Single));
    }

    private static void AssertBytes(byte[] expected, byte[] actual, in Conv2dGeometry g, string context)
    {
        Assert.Equal(expected.Length, actual.Length);
        int c = g.OutC;
        for (int i = 0; i < expected.Length; i++)
            if (expected[i] != actual[i])
            {
                string where = i >= g.OutputLength ? "past the output" : $"pixel {i / c}, channel {i % c}";
                Assert.Fail($"{context}: byte {i} ({where}) expected {expected[i]} got {actual[i]}");
            }
    }
}
