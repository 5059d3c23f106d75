using MobileNetSharp.Kernels;
using MobileNetSharp.Kernels.Int8;
using MobileNetSharp.Tensors;
using MobileNetSharp.Tests.Onnx;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>
/// <see cref="QuantizedGemm"/> against a plain-loop reference written from its contract (ONNX QLinearConv /
/// QLinearMatMul requantized as ONNX Runtime's MLAS does), bit for bit: integer accumulation is exact and the
/// epilogue is the same float operations in the same order, so there is no tolerance. Shapes are off the
/// 16-column panel and the 6-row tile; every case runs at every supported ISA level and 1 and 2 threads, with
/// the zero points, multipliers, bias, clamp, strides and weight layout varied per case.
/// </summary>
public class Int8GemmTests
{
    /// <summary>The contract, one element at a time, with no packing and no cleverness.</summary>
    private static void Reference(int m, int k, int n, ReadOnlySpan<byte> a, int lda, byte zpA, ReadOnlySpan<sbyte> bKxN,
        ReadOnlySpan<float> multipliers, ReadOnlySpan<int> bias, byte zpC, byte qmin, byte qmax, Span<byte> c, int ldc)
    {
        for (int j = 0; j < n; j++)
        {
            int colSum = 0;
            for (int kk = 0; kk < k; kk++) colSum += bKxN[kk * n + j];
            for (int i = 0; i < m; i++)
            {
                int acc = 0;
                for (int kk = 0; kk < k; kk++) acc += a[i * lda + kk] * bKxN[kk * n + j];
                acc = unchecked(acc - zpA * colSum + (bias.IsEmpty ? 0 : bias[j]));
                float f = (float)acc * multipliers[j];
                f = MathF.Min(MathF.Max(f, (float)(qmin - zpC)), (float)(qmax - zpC));
                c[i * ldc + j] = (byte)((int)MathF.Round(f, MidpointRounding.ToEven) + zpC);
            }
        }
    }

    public static IEnumerable<object[]> Shapes =>
    [
        // m, k, n: ones, odd K (a half-empty last pair), N off the panel width, one row past a tile.
        [1, 1, 1], [1, 3, 10], [2, 7, 17], [3, 2, 15], [7, 17, 33], [6, 16, 16], [13, 5, 65], [5, 1, 40],
        [25, 31, 47], [100, 9, 3], [11, 33, 1],
        // MobileNetV2's pointwise shapes at reduced row counts, and the classifier head (K 1280, N 1000).
        [37, 16, 96], [29, 24, 144], [50, 144, 24], [19, 192, 32], [13, 384, 64], [11, 576, 96], [49, 960, 160],
        [49, 320, 1280], [1, 1280, 1000], [4, 1280, 1000],
        // K past what a task keeps on its stack: the packed rows of A come from the array pool.
        [8, 6001, 19],
    ];

    /// <summary>One randomized case: everything but the shape drawn from the seed.</summary>
    private sealed class Case
    {
        public int M, K, N, Lda, Ldc;
        public byte ZpA, ZpC, QMin = 0, QMax = 255;
        public byte[] A = [];
        public sbyte[] B = []; // [K, N]
        public float[] Multipliers = [];
        public int[] Bias = [];
        public bool OutputMajor;
        public string Description = "";

        public PackedInt8Weights Pack()
        {
            if (!OutputMajor) return PackedInt8Weights.FromKxN(B, K, N);
            var w = new sbyte[N * K];
            for (int kk = 0; kk < K; kk++)
                for (int j = 0; j < N; j++) w[j * K + kk] = B[kk * N + j];
            return PackedInt8Weights.FromNxK(w, N, K);
        }

        public Requantization Requantization() => new(Multipliers, Bias, ZpC, QMin, QMax);

        public byte[] Expected()
        {
            byte[] c = NewOutput();
            Reference(M, K, N, A, Lda, ZpA, B, Multipliers, Bias, ZpC, QMin, QMax, c, Ldc);
            return c;
        }

        /// <summary>C filled with a sentinel, so bytes between N and ldc (and past the last row) must stay untouched.</summary>
        public byte[] NewOutput()
        {
            var c = new byte[(M - 1) * Ldc + N + 3];
            c.AsSpan().Fill(0xA5);
            return c;
        }
    }

    private static Case MakeCase(int m, int k, int n, int variant)
    {
        var rng = new Random(m * 1_000_003 + k * 1009 + n * 7 + variant); // fixed seeds: a failure reproduces
        var cs = new Case { M = m, K = k, N = n };
        cs.Lda = k + (variant % 3 == 1 ? 5 : 0);
        cs.Ldc = n + (variant % 4 == 2 ? 3 : 0);
        cs.ZpA = (variant % 3) switch { 0 => 0, 1 => 128, _ => 255 };
        cs.OutputMajor = variant % 2 == 1;
        cs.A = new byte[(m - 1) * cs.Lda + k];
        rng.NextBytes(cs.A);
        bool fullRange = variant % 2 == 0; // [-128, 127] or symmetric [-127, 127]
        cs.B = new sbyte[k * n];
        for (int i = 0; i < cs.B.Length; i++) cs.B[i] = (sbyte)rng.Next(fullRange ? -128 : -127, 128);
        // Extremes, so every product size is exercised: a row of 255s and a column of -128s where there is room.
        if (m > 1) cs.A.AsSpan(cs.Lda, k).Fill(255);
        if (n > 2) for (int kk = 0; kk < k; kk++) cs.B[kk * n + 1] = fullRange ? (sbyte)-128 : (sbyte)-127;

        // The typical |acc| is ~ 74 · 74 · sqrt(K) (uniform bytes around their zero point); scale it to ~ ±100.
        float natural = 100f / (74f * 74f * MathF.Sqrt(k));
        cs.ZpC = (byte)rng.Next(0, 256);
        cs.Bias = (variant % 5) switch
        {
            0 => [],
            1 => Enumerable.Range(0, n).Select(_ => rng.Next(-2000, 2000)).ToArray(),
            2 => Enumerable.Range(0, n).Select(_ => rng.Next(int.MinValue, int.MaxValue)).ToArray(), // large, wraps int32
            _ => Enumerable.Range(0, n).Select(_ => rng.Next(-100_000, 100_000)).ToArray(),
        };
        // Variants 3 and 6 aim at ties: small symmetric values, no zero point and power-of-two multipliers keep
        // |acc · M| inside the clamp, so about half the results land exactly on .5 and must round to even.
        bool ties = variant is 3 or 6;
        cs.Multipliers = (variant % 6) switch
        {
            _ when ties => Enumerable.Range(0, n).Select(j => j % 3 == 0 ? 0.5f : j % 3 == 1 ? 0.25f : 0.125f).ToArray(),
            0 => Enumerable.Repeat(natural, n).ToArray(),                                                  // per-tensor
            1 => Enumerable.Range(0, n).Select(_ => natural * (0.25f + 2f * rng.NextSingle())).ToArray(), // per-channel
            // Saturates. Below 1 everywhere, kernels may clamp after rounding: the largest float below 1 with the
            // wrapping bias (variant 2) puts f next to ±2^31, where a conversion could overflow. Variant 8 (1 and 4)
            // keeps the clamp in float.
            2 when variant < 6 => Enumerable.Repeat(0.99999994f, n).ToArray(),
            2 => Enumerable.Range(0, n).Select(j => j % 2 == 0 ? 1f : 4f).ToArray(),
            4 => Enumerable.Range(0, n).Select(_ => natural * 30f * rng.NextSingle() + 1e-30f).ToArray(),  // many clamp
            _ => Enumerable.Range(0, n).Select(_ => 1e-9f).ToArray(),                                      // all collapse onto zpC
        };
        if (ties)
        {
            cs.ZpA = 0;
            for (int i = 0; i < cs.A.Length; i++) cs.A[i] &= 3;
            for (int i = 0; i < cs.B.Length; i++) cs.B[i] = (sbyte)(cs.B[i] % 3);
            cs.Bias = variant == 3 ? [] : Enumerable.Range(0, n).Select(_ => rng.Next(-20, 20)).ToArray();
            cs.ZpC = 128;
        }
        switch (variant % 4)
        {
            case 1: cs.QMin = cs.ZpC; break;                                                           // fused ReLU
            case 3 when !ties: cs.QMin = cs.ZpC; cs.QMax = (byte)Math.Min(255, cs.ZpC + rng.Next(1, 60)); break;  // ReLU6-like
        }
        cs.Description = $"m{m} k{k} n{n} v{variant} lda{cs.Lda} ldc{cs.Ldc} zpA{cs.ZpA} zpC{cs.ZpC} q[{cs.QMin},{cs.QMax}] bias{cs.Bias.Length} {(cs.OutputMajor ? "NxK" : "KxN")}";
        return cs;
    }

    private const int Variants = 9;

    public static IEnumerable<object[]> ShapeVariants =>
        Shapes.SelectMany(s => Enumerable.Range(0, Variants).Select(v => new object[] { s[0], s[1], s[2], v }));

    [Theory]
    [MemberData(nameof(ShapeVariants))]
    public void Int8GemmMatchesReferenceBitExact(int m, int k, int n, int variant)
    {
        Case cs = MakeCase(m, k, n, variant);
        byte[] expected = cs.Expected();
        PackedInt8Weights b = cs.Pack();
        Requantization rq = cs.Requantization();
        foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
        {
            byte[] c = cs.NewOutput();
            QuantizedGemm.Run(m, cs.A, cs.Lda, cs.ZpA, b, rq, c, cs.Ldc, workers, isa);
            AssertBytes(expected, c, cs.Ldc, cs.N, $"{cs.Description} {isa} t{workers.Count}");
        }
    }

    /// <summary>
    /// 7-bit weights (ORT's reduce_range) take the AVX2 byte-quad kernel (vpmaddubsw). Its int16 pair sums are exact
    /// only within the packing's bound, so the weights sit on it: a column of +64s and one of -64s against a row of
    /// 255s reach ±32,640, and column 0 holds the widest pairs that still qualify, (127, 1), (-128, 0), (-64, -64),
    /// (127, -128). Rows of A are read in place when K is a multiple of 4 and copied to padded rows otherwise.
    /// </summary>
    [Theory]
    [MemberData(nameof(ShapeVariants))]
    public void Int8GemmByteQuadsMatchReferenceBitExact(int m, int k, int n, int variant)
    {
        Case cs = MakeCase(m, k, n, variant);
        var rng = new Random(variant);
        for (int i = 0; i < cs.B.Length; i++) cs.B[i] = (sbyte)rng.Next(-64, 65);
        if (n > 2)
            for (int kk = 0; kk < k; kk++) { cs.B[kk * n + 1] = 64; cs.B[kk * n + 2] = -64; }
        sbyte[] widest = [127, 1, -128, 0, -64, -64, 127, -128];
        for (int kk = 0; kk < k; kk++) cs.B[kk * n] = widest[kk % widest.Length];
        byte[] expected = cs.Expected();
        PackedInt8Weights b = cs.Pack();
        Assert.True(b.HasByteQuads, cs.Description);
        Requantization rq = cs.Requantization();
        foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
        {
            byte[] c = cs.NewOutput();
            QuantizedGemm.Run(m, cs.A, cs.Lda, cs.ZpA, b, rq, c, cs.Ldc, workers, isa);
            AssertBytes(expected, c, cs.Ldc, cs.N, $"{cs.Description} 7-bit {isa} t{workers.Count} quads {QuantizedGemm.UsesQuads(QuantizedGemm.PathFor(isa), b)}");
        }
    }

    /// <summary>
    /// The byte-quad layout exists exactly when no pair can saturate: same-signed pairs summing past 128 in
    /// magnitude (255 · 129 &gt; 32,767) keep the int16-pair kernel, whatever else the weights hold; an odd K's last
    /// weight pairs with the zero padding.
    /// </summary>
    [Theory]
    [InlineData(new sbyte[] { 127, 1, 0, 0 }, true)]
    [InlineData(new sbyte[] { 127, 2, 0, 0 }, false)]
    [InlineData(new sbyte[] { 0, 0, 64, 65 }, false)]
    [InlineData(new sbyte[] { -128, 0, -64, -64 }, true)]
    [InlineData(new sbyte[] { -64, -65, 0, 0 }, false)]
    [InlineData(new sbyte[] { 127, -128, -128, 127 }, true)]
    [InlineData(new sbyte[] { 1, 127, 2 }, true)] // pairs (1, 127) and (2, padding)
    [InlineData(new sbyte[] { 1, 2, 127 }, true)]
    [InlineData(new sbyte[] { -128 }, true)]
    [InlineData(new sbyte[] { 100, 29, 1, 1, 1 }, false)]
    public void ByteQuadsExistExactlyWhenNoPairCanSaturate(sbyte[] column, bool expected)
    {
        var packed = PackedInt8Weights.FromNxK(column, 1, column.Length);
        Assert.Equal(expected, packed.HasByteQuads);
        // Either way the kernel matches the exact sum for the worst activations (all 255) and a mixed row.
        byte[] a = [.. Enumerable.Repeat((byte)255, column.Length), .. Enumerable.Range(0, column.Length).Select(i => (byte)(i % 2 == 0 ? 255 : 0))];
        int[] exact = [0, 0];
        for (int r = 0; r < 2; r++)
            for (int kk = 0; kk < column.Length; kk++) exact[r] += a[r * column.Length + kk] * column[kk];
        // Multiplier 2^-9 and zero point 128 keep every exact sum here (|acc| <= 255 · 132) inside [0, 255], unclamped.
        var rq = new Requantization([1f / 512], [], 128);
        foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
        {
            var c = new byte[2];
            QuantizedGemm.Run(2, a, column.Length, 0, packed, rq, c, 1, workers, isa);
            for (int r = 0; r < 2; r++)
                Assert.Equal((byte)((int)MathF.Round(exact[r] / 512f) + 128), c[r]);
        }
    }

    /// <summary>
    /// The dequantizing form (a classifier's float logits): C = (float)acc · M[j], one float multiply of the exact
    /// integer sum, so bit-exact too. Full-range and 7-bit weights (the int16-pair and byte-quad kernels, and the
    /// one-row GEMV tile at m = 1), every ISA level, 1 and 2 threads, a row stride past N.
    /// </summary>
    [Theory]
    [MemberData(nameof(Shapes))]
    public void Int8GemmToFloatMatchesReferenceBitExact(int m, int k, int n)
    {
        foreach (bool sevenBit in new[] { false, true })
        {
            Case cs = MakeCase(m, k, n, sevenBit ? 4 : 1);
            if (sevenBit)
            {
                var rng = new Random(k);
                for (int i = 0; i < cs.B.Length; i++) cs.B[i] = (sbyte)rng.Next(-64, 65);
            }
            int ldc = n + 2;
            var expected = new float[(m - 1) * ldc + n];
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    int acc = cs.Bias.Length == 0 ? 0 : cs.Bias[j];
                    for (int kk = 0; kk < k; kk++) acc = unchecked(acc + (cs.A[i * cs.Lda + kk] - cs.ZpA) * cs.B[kk * n + j]);
                    expected[i * ldc + j] = (float)acc * cs.Multipliers[j];
                }
            PackedInt8Weights b = cs.Pack();
            if (sevenBit) Assert.True(b.HasByteQuads);
            foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
            {
                var c = new float[expected.Length];
                QuantizedGemm.RunToFloat(m, cs.A, cs.Lda, cs.ZpA, b, cs.Requantization(), c, ldc, workers, isa);
                for (int i = 0; i < c.Length; i++)
                    if (i % ldc < n && c[i] != expected[i])
                        Assert.Fail($"{cs.Description} {(sevenBit ? "7-bit" : "8-bit")} {isa} t{workers.Count}: [{i / ldc}, {i % ldc}] expected {expected[i]}, got {c[i]}");
                    else if (i % ldc >= n) Assert.Equal(0f, c[i]); // the stride's gap is not written
            }
        }
    }

    /// <summary>The int16-pair layout of quad-packed weights is built on first use, once, even when threads race for it.</summary>
    [Fact]
    public void PairLayoutBuiltOnDemandIsTheSameForRacingThreads()
    {
        var rng = new Random(5);
        int m = 30, k = 37, n = 21;
        var b = new sbyte[k * n];
        for (int i = 0; i < b.Length; i++) b[i] = (sbyte)rng.Next(-64, 65);
        var a = new byte[m * k];
        rng.NextBytes(a);
        var rq = new Requantization(Enumerable.Range(0, n).Select(_ => 0.001f + 0.002f * rng.NextSingle()).ToArray(), [], 90);
        var viaQuads = new byte[m * n];
        var reference = PackedInt8Weights.FromKxN(b, k, n);
        QuantizedGemm.Run(m, a, k, 17, reference, rq, viaQuads, n, Workers.Single, IsaLevel.Vector256);
        var packed = PackedInt8Weights.FromKxN(b, k, n);
        var results = new byte[8][];
        Parallel.For(0, 8, i =>
        {
            results[i] = new byte[m * n];
            QuantizedGemm.Run(m, a, k, 17, packed, rq, results[i], n, Workers.Single, i % 2 == 0 ? IsaLevel.Vector128 : IsaLevel.Scalar);
        });
        foreach (byte[] r in results) Assert.Equal(viaQuads, r);
    }

    /// <summary>The non-x86 Vector128 code (no pmaddwd) is not chosen on this machine; run it directly.</summary>
    [Theory]
    [MemberData(nameof(ShapeVariants))]
    public unsafe void Int8GemmPortableVector128MatchesReference(int m, int k, int n, int variant)
    {
        Case cs = MakeCase(m, k, n, variant);
        byte[] expected = cs.Expected();
        byte[] c = cs.NewOutput();
        fixed (byte* pa = cs.A, pc = c)
            QuantizedGemm.Run(Int8Path.Portable128, m, pa, cs.Lda, cs.ZpA, cs.Pack(), cs.Requantization(), pc, cs.Ldc, TestData.Two);
        AssertBytes(expected, c, cs.Ldc, cs.N, $"{cs.Description} portable128");
    }

    /// <summary>Threads own different rows and panels, but every element is computed alike: identical bytes.</summary>
    [Theory]
    [InlineData(3136, 24, 144)]
    [InlineData(196, 576, 96)]
    [InlineData(7, 960, 160)]
    [InlineData(2, 1280, 1000)]
    public void Int8GemmIsIdenticalAtOneAndTwoThreads(int m, int k, int n)
    {
        var rng = new Random(m + k + n);
        var a = new byte[m * k];
        var b = new sbyte[k * n];
        rng.NextBytes(a);
        rng.NextBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(b.AsSpan()));
        float[] multipliers = Enumerable.Range(0, n).Select(_ => 0.002f * rng.NextSingle() + 1e-4f).ToArray();
        int[] bias = Enumerable.Range(0, n).Select(_ => rng.Next(-50_000, 50_000)).ToArray();
        var packed = PackedInt8Weights.FromKxN(b, k, n);
        var rq = new Requantization(multipliers, bias, 100, 100, 220);
        using var three = new Workers(3);
        byte[]? first = null;
        foreach (IsaLevel isa in Isa.Supported)
            foreach (Workers workers in new[] { Workers.Single, TestData.Two, three })
            {
                var c = new byte[m * n];
                QuantizedGemm.Run(m, a, k, 131, packed, rq, c, n, workers, isa);
                if (first == null) first = c;
                else Assert.True(first.AsSpan().SequenceEqual(c), $"{m}x{k}x{n} {isa} t{workers.Count} differs from the first run");
            }
        // Not a trivial output: the clamp is not hit everywhere.
        Assert.True(first!.Distinct().Count() > 20);
    }

    /// <summary>
    /// The contract is what ONNX Runtime computes: a 1x1 QLinearConv (uint8 x, per-channel int8 w, int32 bias,
    /// uint8 y) run by ORT gives the same bytes as the kernel. Weights stay in [-64, 63] because ORT's AVX2 u8s8
    /// kernel multiplies with vpmaddubsw, whose int16 pair sums saturate for full-range weights (the reason
    /// ORT's quantizer reduces the weight range on such machines); that would be ORT departing from ONNX, not us.
    /// (Checked: with weights in [-128, 127] ORT 1.31.1 on this AVX2 machine gives e.g. 180 where the exact sum,
    /// the reference and every kernel path give 181.)
    /// </summary>
    [Theory]
    [InlineData(7, 5, 16, 24, 1)]
    [InlineData(4, 9, 33, 17, 2)]
    [InlineData(14, 14, 96, 24, 3)]
    [InlineData(3, 3, 320, 100, 4)]
    public void Int8GemmMatchesOnnxRuntimeQLinearConv(int h, int w, int k, int n, int seed)
    {
        var rng = new Random(seed);
        int pixels = h * w;
        var x = new byte[k * pixels]; // NCHW, batch 1
        rng.NextBytes(x);
        var weights = new sbyte[n * k]; // [N, K, 1, 1]
        for (int i = 0; i < weights.Length; i++) weights[i] = (sbyte)rng.Next(-64, 64);
        float xScale = 0.0173f, yScale = 0.0911f;
        float[] wScales = Enumerable.Range(0, n).Select(_ => 0.0005f + 0.004f * rng.NextSingle() / MathF.Sqrt(k)).ToArray();
        int[] bias = Enumerable.Range(0, n).Select(_ => rng.Next(-30_000, 30_000)).ToArray();
        byte xZero = (byte)rng.Next(0, 256), yZero = (byte)rng.Next(0, 256);

        byte[] model = new OnnxModelBuilder(opset: 13)
            .TypedInput("x", 2, 1, k, h, w)
            .Initializer("x_scale", new Tensor(DataType.Float32, [], new[] { xScale }))
            .Initializer("x_zero_point", new Tensor(DataType.UInt8, [], new[] { xZero }))
            .Initializer("w", new Tensor(DataType.Int8, [n, k, 1, 1], weights))
            .Initializer("w_scale", new Tensor(DataType.Float32, [n], wScales))
            .Initializer("w_zero_point", new Tensor(DataType.Int8, [n], new sbyte[n]))
            .Initializer("y_scale", new Tensor(DataType.Float32, [], new[] { yScale }))
            .Initializer("y_zero_point", new Tensor(DataType.UInt8, [], new[] { yZero }))
            .Initializer("B", new Tensor(DataType.Int32, [n], bias))
            .Node("QLinearConv", ["x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "y_scale", "y_zero_point", "B"], ["y"])
            .TypedOutput("y", 2, 1, n, h, w)
            .ToBytes();
        var y = (byte[])OrtRunner.Run(model, [new("x", new Tensor(DataType.UInt8, [1, k, h, w], x))], threads: 1)["y"].Data;

        var a = new byte[pixels * k]; // NHWC rows
        for (int c = 0; c < k; c++)
            for (int p = 0; p < pixels; p++) a[p * k + c] = x[c * pixels + p];
        var rq = Requantization.FromScales(n, xScale, wScales, yScale, bias, yZero);
        var packed = PackedInt8Weights.FromNxK(weights, n, k);
        int distinct = 0;
        foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
        {
            var cOut = new byte[pixels * n];
            QuantizedGemm.Run(pixels, a, k, xZero, packed, rq, cOut, n, workers, isa);
            for (int p = 0; p < pixels; p++)
                for (int j = 0; j < n; j++)
                    if (cOut[p * n + j] != y[j * pixels + p])
                        Assert.Fail($"{isa} t{workers.Count}: pixel {p} channel {j}: ORT {y[j * pixels + p]}, kernel {cOut[p * n + j]}");
            distinct = cOut.Distinct().Count();
        }
        Assert.True(distinct > 10, $"only {distinct} distinct outputs: the scales clamp almost everything");
    }

    /// <summary>A steady-state call allocates nothing, on one thread or two, with A's packed rows on the stack or pooled.</summary>
    [Theory]
    [InlineData(200, 96, 40)]
    [InlineData(30, 6001, 17)]
    public void Int8GemmAllocatesNothing(int m, int k, int n)
    {
        var rng = new Random(9);
        var a = new byte[m * k];
        var b = new sbyte[k * n];
        rng.NextBytes(a);
        var packed = PackedInt8Weights.FromKxN(b, k, n);
        var rq = Requantization.PerTensor(n, 0.01f, [], 3);
        var c = new byte[m * n];
        foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
            AllocationTests.AssertNoAllocation(() => QuantizedGemm.Run(m, a, k, 7, packed, rq, c, n, workers, isa), $"int8 gemm {m}x{k}x{n} {isa} t{workers.Count}");
    }

    [Fact]
    public void PackedWeightsHoldColumnSumsInBothLayouts()
    {
        sbyte[] kxn = [1, -2, 3, 127, -128, 5, 7, 0, -9]; // K 3, N 3
        sbyte[] nxk = [1, 127, 7, -2, -128, 0, 3, 5, -9];
        var a = PackedInt8Weights.FromKxN(kxn, 3, 3);
        var b = PackedInt8Weights.FromNxK(nxk, 3, 3);
        Assert.Equal([135, -130, -1], Enumerable.Range(0, 3).Select(a.ColumnSum));
        Assert.Equal([135, -130, -1], Enumerable.Range(0, 3).Select(b.ColumnSum));
        Assert.Equal((2, 1), (a.KPairs, a.PanelCount));
    }

    [Fact]
    public void FromScalesComputesTheMultiplierAsOnnxRuntime()
    {
        float xs = 0.0235f, ys = 0.0471f;
        float[] ws = [0.0031f, 0.0007f];
        Requantization rq = Requantization.FromScales(2, xs, ws, ys, [], 3);
        Assert.Equal(xs * ws[0] / ys, rq.Multiplier(0));
        Assert.Equal(xs * ws[1] / ys, rq.Multiplier(1));
        Assert.Equal(0, rq.Bias(1));
        Assert.Equal(xs * 0.5f / ys, Requantization.FromScales(2, xs, [0.5f], ys, [], 3).Multiplier(1));
    }

    [Fact]
    public void HostileArgumentsThrowArgumentExceptionWithTheReason()
    {
        var b = PackedInt8Weights.FromKxN(new sbyte[6], 3, 2);
        var rq = Requantization.PerTensor(2, 0.1f, [], 0);
        var a = new byte[12];
        var c = new byte[8];
        void Throws(Action act, string fragment) => Assert.Contains(fragment, Assert.ThrowsAny<ArgumentException>(act).Message);

        Throws(() => PackedInt8Weights.FromKxN(new sbyte[6], -3, -2), "at least 1");
        Throws(() => PackedInt8Weights.FromKxN(new sbyte[6], 0, 2), "at least 1");
        Throws(() => PackedInt8Weights.FromKxN(new sbyte[5], 3, 2), "expected 6 values, got 5");
        Throws(() => PackedInt8Weights.FromNxK(new sbyte[7], 2, 3), "expected 6 values, got 7");
        Throws(() => PackedInt8Weights.FromKxN(new sbyte[1], 65536, 65536), "expected");

        Throws(() => new Requantization([], [], 0), "got none");
        Throws(() => new Requantization([0.1f, 0f], [], 0), "multiplier 1 is 0");
        Throws(() => new Requantization([-0.1f], [], 0), "multiplier 0 is -0.1");
        Throws(() => new Requantization([float.NaN], [], 0), "multiplier 0 is NaN");
        Throws(() => new Requantization([float.PositiveInfinity], [], 0), "finite and > 0");
        Throws(() => new Requantization([0.1f, 0.1f], [1, 2, 3], 0), "bias has 3 values for 2 output channels");
        Throws(() => new Requantization([0.1f], [], 0, 200, 100), "min 200 > max 100");
        Throws(() => Requantization.PerTensor(0, 0.1f, [], 0), "channels");
        Throws(() => Requantization.FromScales(3, 0.1f, [0.1f, 0.2f], 0.3f, [], 0), "Expected 1 or 3 weight scales");

        Throws(() => QuantizedGemm.Run(-1, a, 3, 0, b, rq, c, 2, Workers.Single), "non-negative, got -1");
        Throws(() => QuantizedGemm.Run(4, a, 2, 0, b, rq, c, 2, Workers.Single), "lda 2 is less than K 3");
        Throws(() => QuantizedGemm.Run(4, a, 3, 0, b, rq, c, 1, Workers.Single), "ldc 1 is less than N 2");
        Throws(() => QuantizedGemm.Run(5, a, 3, 0, b, rq, c, 2, Workers.Single), "A has 12 bytes");
        Throws(() => QuantizedGemm.Run(4, a, 4, 0, b, rq, c, 2, Workers.Single), "A has 12 bytes");
        Throws(() => QuantizedGemm.Run(4, a, 3, 0, b, rq, c.AsSpan(0, 7), 2, Workers.Single), "C has 7 bytes");
        Throws(() => QuantizedGemm.Run(4, a, 3, 0, b, Requantization.PerTensor(3, 0.1f, [], 0), c, 2, Workers.Single), "requantization is for 3 channels");
        Throws(() => QuantizedGemm.Run(4, a, 3, 0, b, rq, c, -2, Workers.Single), "ldc -2");
        Throws(() => QuantizedGemm.Run(4, a, int.MaxValue, 0, b, rq, c, 2, Workers.Single), "A has 12 bytes");
        Assert.Throws<ArgumentNullException>(() => QuantizedGemm.Run(4, a, 3, 0, null!, rq, c, 2, Workers.Single));

        var f = new float[8];
        Throws(() => QuantizedGemm.RunToFloat(4, a, 3, 0, b, rq, f, 1, Workers.Single), "ldc 1 is less than N 2");
        Throws(() => QuantizedGemm.RunToFloat(4, a, 3, 0, b, rq, f.AsSpan(0, 7), 2, Workers.Single), "C has 7 floats");
        Throws(() => QuantizedGemm.RunToFloat(5, a, 3, 0, b, rq, f, 2, Workers.Single), "A has 12 bytes");
        Throws(() => QuantizedGemm.RunToFloat(4, a, 3, 0, b, Requantization.PerTensor(3, 0.1f, [], 0), f, 2, Workers.Single), "dequantization is for 3 channels");

        // m = 0 is an empty product, not an error, and touches nothing.
        QuantizedGemm.Run(0, [], 3, 0, b, rq, [], 2, Workers.Single);
    }

    private static void AssertBytes(byte[] expected, byte[] actual, int ldc, int n, string context)
    {
        for (int i = 0; i < expected.Length; i++)
            if (expected[i] != actual[i])
                Assert.Fail($"{context}: byte {i} (row {i / ldc}, column {i % ldc}{(i % ldc >= n ? ", padding" : "")}) expected {expected[i]} got {actual[i]}");
    }
}
