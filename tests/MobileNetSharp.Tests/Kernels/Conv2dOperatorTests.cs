using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>
/// Every convolution path against <see cref="Reference.Conv2d"/>, each case swept over every supported
/// ISA level and 1 and 2 threads, with the activation and residual varied per case.
/// </summary>
public class Conv2dOperatorTests
{
    private sealed record Case(string Path, Conv2dGeometry G, int Batch, bool Residual, bool Bias = true);

    private static Conv2dGeometry G(int h, int w, int inC, int outC, int k, int s = 1, int pad = 0, int groups = 1, int d = 1, int kw = -1, int sw = -1,
        int pt = -1, int pl = -1, int pb = -1, int pr = -1) =>
        new(1, h, w, inC, outC, k, kw < 0 ? k : kw, s, sw < 0 ? s : sw, d, d,
            pt < 0 ? pad : pt, pl < 0 ? pad : pl, pb < 0 ? pad : pb, pr < 0 ? pad : pr, groups);

    private static readonly Dictionary<string, Case> Cases = new Case[]
    {
        // Pointwise GEMM: channel counts off the vector width, row counts off the 6-row tile.
        new("gemm-1x1", G(1, 1, 1, 1, 1), 1, false),
        new("gemm-1x1", G(3, 5, 3, 17, 1), 3, true),
        new("gemm-1x1", G(4, 4, 33, 5, 1), 1, false, Bias: false),
        new("gemm-1x1", G(5, 3, 17, 33, 1), 3, true),
        new("gemm-1x1", G(7, 7, 16, 96, 1), 1, false),
        new("gemm-1x1", G(2, 9, 40, 72, 1), 1, true),
        new("gemm-1x1", G(56, 56, 96, 24, 1), 1, true),       // 3136 x 96 x 24
        new("gemm-1x1", G(14, 14, 576, 160, 1), 1, false),    // 196 x 576 x 160
        new("gemm-1x1", G(1, 1, 576, 144, 1), 1, false),      // squeeze-excite on [1, C, 1, 1]: GEMV
        new("gemm-1x1", G(1, 1, 40, 33, 1), 3, false),        // three rows: GEMV
        new("gemm-1x1", G(1, 1, 17, 9, 1), 2, true),          // a residual takes the GEMM
        // Depthwise, specialized shapes with every padding style and awkward channel counts.
        new("dw3x3s1", G(9, 11, 17, 17, 3, 1, 1, groups: 17), 1, true),
        new("dw3x3s1", G(8, 13, 33, 33, 3, 1, 0, groups: 33), 3, false),
        new("dw3x3s1", G(6, 6, 5, 5, 3, 1, pt: 0, pl: 1, pb: 2, pr: 0, groups: 5), 1, true),
        new("dw3x3s2", G(12, 15, 24, 24, 3, 2, 1, groups: 24), 1, false),
        new("dw3x3s2", G(11, 9, 3, 3, 3, 2, pt: 0, pl: 0, pb: 1, pr: 1, groups: 3), 3, true),
        new("dw3x3s2", G(16, 16, 96, 96, 3, 2, 1, groups: 96), 1, true),
        new("dw5x5s1", G(10, 12, 21, 21, 5, 1, 2, groups: 21), 1, false),
        new("dw5x5s1", G(9, 9, 40, 40, 5, 1, pt: 1, pl: 2, pb: 3, pr: 0, groups: 40), 3, true),
        new("dw5x5s2", G(13, 14, 18, 18, 5, 2, 2, groups: 18), 1, true),
        new("dw5x5s2", G(12, 12, 7, 7, 5, 2, pt: 1, pl: 2, pb: 2, pr: 1, groups: 7), 1, false),
        // Small maps (a zero-padded copy per image; a batch runs an image per task).
        new("dw3x3s1", G(4, 4, 24, 24, 3, 1, 1, groups: 24), 3, true),
        new("dw3x3s2", G(7, 7, 40, 40, 3, 2, 1, groups: 40), 8, false),
        new("dw5x5s1", G(7, 7, 17, 17, 5, 1, 2, groups: 17), 9, true),
        // Depthwise, generic: kernel 1/2/7, stride 3, dilation, non-square, multiplier 2.
        new("dw-generic", G(7, 8, 6, 6, 1, 1, 0, groups: 6), 1, true),
        new("dw-generic", G(9, 10, 19, 19, 2, 1, pt: 0, pl: 1, pb: 1, pr: 0, groups: 19), 1, false),
        new("dw-generic", G(15, 15, 20, 20, 7, 1, 3, groups: 20), 1, true),
        new("dw-generic", G(16, 14, 9, 9, 3, 3, 1, groups: 9), 3, false),
        new("dw-generic", G(12, 13, 17, 17, 3, 1, 2, groups: 17, d: 2), 1, true),
        new("dw-generic", G(11, 10, 8, 8, 3, 1, 1, groups: 8, kw: 5, sw: 2, pl: 2, pr: 2), 1, false),
        new("dw-generic", G(7, 9, 5, 10, 3, 2, 1, groups: 5), 3, true),
        new("dw-generic", G(8, 8, 16, 32, 5, 1, 2, groups: 16), 1, false),
        // Stem: 3x3 over 1-4 channels.
        new("stem3", G(17, 19, 3, 16, 3, 2, 1), 1, false),
        new("stem3", G(16, 16, 3, 32, 3, 2, pt: 0, pl: 0, pb: 1, pr: 1), 3, true),
        new("stem3", G(9, 14, 3, 5, 3, 1, 1), 1, true),
        new("stem3", G(12, 11, 1, 33, 3, 2, 0), 1, false),
        new("stem3", G(10, 10, 4, 40, 3, 3, 2), 1, false),
        // im2col-GEMM: everything else.
        new("im2col-gemm", G(9, 9, 8, 12, 3, 1, 1), 1, true),
        new("im2col-gemm", G(8, 10, 5, 7, 1, 2, 0), 3, false),
        new("im2col-gemm", G(7, 7, 6, 9, 2, 1, pt: 1, pl: 0, pb: 0, pr: 1), 1, true),
        new("im2col-gemm", G(13, 12, 5, 17, 7, 2, 3), 1, false),
        new("im2col-gemm", G(12, 12, 4, 6, 5, 1, 4, d: 2), 1, true),
        new("im2col-gemm", G(10, 11, 8, 12, 3, 2, 1, groups: 2), 3, false),
        new("im2col-gemm", G(9, 9, 12, 8, 3, 1, 1, groups: 4), 1, true),
        new("im2col-gemm", G(10, 10, 3, 8, 3, 3, 0, d: 2), 1, false),
        new("im2col-gemm", G(11, 8, 6, 4, 3, 1, 0, kw: 1, sw: 2), 1, true),
        new("im2col-gemm", G(14, 14, 32, 48, 3, 1, 1), 1, false),
    }.Select((c, i) => (c, i)).ToDictionary(t => $"{t.i:D2} {t.c.Path} {Describe(t.c)}", t => t.c);

    private static string Describe(Case c) =>
        $"{c.G.InH}x{c.G.InW}x{c.G.InC}->{c.G.OutC} k{c.G.KernelH}x{c.G.KernelW} s{c.G.StrideH}x{c.G.StrideW} d{c.G.DilationH} " +
        $"p{c.G.PadTop},{c.G.PadLeft},{c.G.PadBottom},{c.G.PadRight} g{c.G.Groups} n{c.Batch}{(c.Residual ? " +res" : "")}";

    public static IEnumerable<object[]> CaseNames => Cases.Keys.Select(k => new object[] { k });

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void MatchesReference(string name)
    {
        Case c = Cases[name];
        int index = int.Parse(name[..2]);
        Activation act = TestData.Activations[index % TestData.Activations.Length];
        Check(c, act, seed: index);
    }

    /// <summary>The JIT warm-up's miniature of every case takes the case's kernel path and runs (its key names that path).</summary>
    [Theory]
    [MemberData(nameof(CaseNames))]
    public void MiniatureTakesTheSamePath(string name)
    {
        Case c = Cases[name];
        var op = new Conv2dOperator(c.G, new float[c.G.WeightLength], [], Activation.Relu6);
        Assert.Equal(op.KernelName, op.MiniatureOperator().KernelName);
        var (key, run) = op.Miniature(c.Batch, c.Residual);
        Assert.Contains(op.KernelName, key);
        run();
    }

    /// <summary>
    /// ReLU runs as Clip(0, +inf) in the vector kernels (Activation.ForKernels); on every path, including the scalar
    /// channel-multiplier depthwise one, a NaN, an infinity or a signed zero must come out as the reference's ReLU
    /// makes it (NaN and -0 to 0), bit for bit.
    /// </summary>
    [Fact]
    public void ReluMatchesTheReferenceOnNaNInfinityAndSignedZero()
    {
        Case[] families =
        [
            new("gemm-1x1", G(3, 4, 7, 19, 1), 1, false),
            new("dw3x3s1", G(6, 7, 19, 19, 3, 1, 1, groups: 19), 1, false),
            new("dw-generic", G(5, 5, 4, 8, 1, 1, 0, groups: 4), 1, false), // channel multiplier 2
            new("stem3", G(9, 9, 3, 12, 3, 2, 1), 1, false),
            new("im2col-gemm", G(6, 6, 5, 9, 3, 1, 1), 1, false),
        ];
        float[] specials = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, -0f, 0f, 1e30f, -1e30f];
        foreach (Case c in families)
        {
            var g = c.G;
            var rng = new Random(5);
            float[] x = TestData.Random(rng, (long)g.InH * g.InW * g.InC);
            for (int i = 0; i < x.Length; i += 3) x[i] = specials[i / 3 % specials.Length];
            float[] w = TestData.Random(rng, g.WeightLength);
            float[] expected = Reference.Conv2d(g, 1, x, w, [], null, Activation.Relu);
            foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
            {
                var op = new Conv2dOperator(g, w, [], Activation.Relu, isa);
                var y = new float[expected.Length];
                op.Run(1, x, y, default, new float[op.ScratchLength(1)], workers);
                for (int i = 0; i < y.Length; i++)
                    if (float.IsNaN(expected[i]) || float.IsInfinity(expected[i]) || expected[i] == 0f)
                        Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(y[i]),
                            $"{c.Path} {isa}: output {i} is {y[i]}, the reference's ReLU gives {expected[i]}");
            }
        }
    }

    /// <summary>The warm-up's miniatures of unusual convolutions stay small (the pads, groups and channels a hostile or
    /// merely large layer has are not carried over) and still take the layer's path; the two paths named dw-generic
    /// get different keys.</summary>
    [Fact]
    public void MiniaturesOfUnusualConvolutionsStaySmallAndTakeTheSamePath()
    {
        Conv2dGeometry[] geometries =
        [
            G(20, 20, 16, 16, 3, 1, 500),                        // pads far wider than the kernel
            G(14, 14, 1024, 1024, 3, 1, 1, groups: 2),          // grouped, 512 channels a group
            G(14, 14, 1024, 2048, 1, 1, 0, groups: 512),        // grouped 1x1, 2 input channels a group
            G(40, 40, 8, 8, 31, 1, 15),                          // a 31x31 kernel
            G(40, 40, 8, 8, 31, 1, 15, groups: 8),               // ... depthwise
            G(30, 30, 6, 6, 3, 1, 10, groups: 6, d: 10),         // dilated depthwise
            G(9, 9, 6, 12, 3, 1, 1, groups: 6),                  // channel multiplier 2
        ];
        var keys = new List<string>();
        foreach (var g in geometries)
        {
            var op = new Conv2dOperator(g, new float[g.WeightLength], [], Activation.Relu);
            var mini = op.MiniatureOperator();
            Assert.Equal(op.KernelName, mini.KernelName);
            Assert.True(mini.Geometry.InputLength <= 64 * 64 * 24 && mini.Geometry.WeightLength <= 1 << 20, $"{g}: miniature {mini.Geometry}");
            var (key, run) = op.Miniature(1, residual: false);
            long before = GC.GetAllocatedBytesForCurrentThread();
            run();
            Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20, $"{g}: the miniature allocated {GC.GetAllocatedBytesForCurrentThread() - before} bytes");
            keys.Add(key);
        }
        // One compiled path each: im2col-gemm (the first four), depthwise generic, depthwise with a channel multiplier.
        Assert.Equal(3, keys.Distinct().Count());
        Assert.NotEqual(keys[^2], keys[^1]);
    }

    [Fact]
    public void EveryActivationOnEveryPathFamily()
    {
        Case[] families =
        [
            new("gemm-1x1", G(3, 4, 7, 19, 1), 1, true),
            new("dw3x3s1", G(6, 7, 19, 19, 3, 1, 1, groups: 19), 1, true),
            new("stem3", G(9, 9, 3, 12, 3, 2, 1), 1, true),
            new("im2col-gemm", G(6, 6, 5, 9, 3, 1, 1, groups: 1), 1, true),
        ];
        foreach (Case c in families)
            foreach (Activation act in TestData.Activations)
                Check(c, act, seed: 7);
    }

    /// <summary>
    /// Depthwise on maps so small that border pixels dominate (or every tap of a window may be in the padding),
    /// every specialized shape, channel counts around the vector widths, every activation, residual and batch.
    /// </summary>
    [Fact]
    public void DepthwiseSmallMapsEveryActivation()
    {
        int seed = 0;
        foreach (int k in new[] { 3, 5 })
            foreach (int s in new[] { 1, 2 })
                foreach (int hw in new[] { 1, 2, 3, 5, 7 })
                    foreach (int c in new[] { 2, 3, 16, 17, 33, 240 }) // one channel is a plain (groups = 1) convolution
                    {
                        seed++;
                        Activation act = TestData.Activations[seed % TestData.Activations.Length];
                        var g = G(hw, hw + seed % 3, c, c, k, s, k / 2, groups: c);
                        Check(new Case($"dw{k}x{k}s{s}", g, 1 + seed % 2, seed % 3 == 0, seed % 5 != 0), act, seed: 500 + seed);
                    }
        // Every activation on a 14x14 5x5 map (half border) and a 7x7 one, both ISA-tail channel counts.
        foreach (Activation act in TestData.Activations)
        {
            Check(new Case("dw5x5s1", G(14, 14, 40, 40, 5, 1, 2, groups: 40), 1, true), act, seed: 900);
            Check(new Case("dw5x5s1", G(7, 7, 33, 33, 5, 1, 2, groups: 33), 1, false), act, seed: 901);
            Check(new Case("dw3x3s2", G(8, 8, 17, 17, 3, 2, 1, groups: 17), 1, false), act, seed: 902);
            Check(new Case("dw5x5s2", G(9, 9, 24, 24, 5, 2, 2, groups: 24), 1, true), act, seed: 903);
        }
    }

    /// <summary>Random geometries of every kind: whatever Validate accepts must match the reference.</summary>
    [Fact]
    public void RandomGeometriesMatchReference()
    {
        var rng = new Random(2024);
        int[] channels = [1, 2, 3, 5, 8, 17, 33];
        for (int trial = 0; trial < 60; trial++)
        {
            int k = new[] { 1, 2, 3, 5, 7 }[rng.Next(5)], kw = rng.Next(4) == 0 ? new[] { 1, 3, 5 }[rng.Next(3)] : k;
            int s = rng.Next(1, 4), d = rng.Next(3) == 0 ? 2 : 1;
            int inC = channels[rng.Next(channels.Length)];
            int groups = rng.Next(3) switch { 0 => inC, 1 => inC % 2 == 0 ? 2 : 1, _ => 1 };
            int outC = groups == inC && inC > 1 ? inC * rng.Next(1, 3) : channels[rng.Next(channels.Length)] * (groups > 1 ? groups : 1);
            var g = new Conv2dGeometry(1, rng.Next(1, 12) + d * (k - 1), rng.Next(1, 12) + d * (kw - 1), inC, outC, k, kw, s, rng.Next(1, 4), d, d,
                rng.Next(0, 3), rng.Next(0, 3), rng.Next(0, 3), rng.Next(0, 3), groups);
            g.Validate();
            var op = new Conv2dOperator(g, new float[g.WeightLength], [], Activation.None);
            Check(new Case(op.KernelName, g, 1 + 2 * rng.Next(2), rng.Next(2) == 0, rng.Next(3) > 0),
                TestData.Activations[rng.Next(TestData.Activations.Length)], seed: 1000 + trial);
        }
    }

    [Fact]
    public void ResidualMayBeTheOutputBuffer()
    {
        var rng = new Random(3);
        Case[] cases =
        [
            Cases.Values.First(c => c.Path == "gemm-1x1" && c.Residual), Cases.Values.First(c => c.Path == "dw3x3s2" && c.Residual),
            Cases.Values.First(c => c.Path == "stem3" && c.Residual),
            new("dw5x5s1", G(7, 7, 33, 33, 5, 1, 2, groups: 33), 2, true),     // small map: zero-padded copy
            new("dw3x3s1", G(10, 13, 17, 17, 3, 1, 1, groups: 17), 1, true),  // interior leftover must not overlap in place
            new("dw5x5s1", G(14, 14, 24, 24, 5, 1, 2, groups: 24), 1, true),
        ];
        foreach (Case c in cases)
        {
            Conv2dGeometry g = c.G;
            float[] x = TestData.Random(rng, c.Batch * g.InH * g.InW * g.InC), w = TestData.Random(rng, g.WeightLength), b = TestData.Random(rng, g.OutC);
            float[] r = TestData.Random(rng, c.Batch * g.OutH * g.OutW * g.OutC);
            float[] expected = Reference.Conv2d(g, c.Batch, x, w, b, r, Activation.Relu6);
            var op = new Conv2dOperator(g, w, b, Activation.Relu6);
            float[] inPlace = (float[])r.Clone();
            op.Run(c.Batch, x, inPlace, inPlace, new float[op.ScratchLength(c.Batch)], TestData.Two);
            TestData.AssertClose(expected, inPlace, g.InCPerGroup * g.KernelH * g.KernelW, $"in-place residual {c.Path}");
        }
    }

    /// <summary>
    /// Repack (a training step's weights, packed into the operator's own buffers) gives the bits of an operator built on
    /// the new weights, on every path: from weights with a bias to new ones without (the bias row must go back to zero)
    /// and back, at the case's ISA levels and threads.
    /// </summary>
    [Theory]
    [MemberData(nameof(CaseNames))]
    public void RepackGivesTheBitsOfANewOperator(string name)
    {
        Case c = Cases[name];
        int index = int.Parse(name[..2]);
        var rng = new Random(index * 31 + 5);
        Conv2dGeometry g = c.G;
        Activation act = TestData.Activations[(index + 1) % TestData.Activations.Length];
        float[] x = TestData.Random(rng, (long)c.Batch * g.InH * g.InW * g.InC);
        float[]? residual = c.Residual ? TestData.Random(rng, (long)c.Batch * g.OutH * g.OutW * g.OutC) : null;
        long outLength = (long)c.Batch * g.OutH * g.OutW * g.OutC;
        foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
        {
            var op = new Conv2dOperator(g, TestData.Random(rng, g.WeightLength), TestData.Random(rng, g.OutC), act, isa);
            var scratch = new float[op.ScratchLength(c.Batch)];
            foreach (bool bias in new[] { false, true })
            {
                float[] w = TestData.Random(rng, g.WeightLength), b = bias ? TestData.Random(rng, g.OutC) : [];
                op.Repack(w, b);
                var fresh = new Conv2dOperator(g, w, b, act, isa);
                float[] expected = new float[outLength], actual = new float[outLength];
                fresh.Run(c.Batch, x, expected, residual, new float[fresh.ScratchLength(c.Batch)], workers);
                op.Run(c.Batch, x, actual, residual, scratch, workers);
                Assert.True(expected.AsSpan().SequenceEqual(actual), $"{name} {isa} threads={workers.Count} bias={bias}: repacked output differs");
            }
        }
        var one = new Conv2dOperator(g, new float[g.WeightLength], [], act);
        Assert.Throws<ArgumentException>(() => one.Repack(new float[g.WeightLength - 1], []));
        Assert.Throws<ArgumentException>(() => one.Repack(new float[g.WeightLength], new float[g.OutC + 1]));
    }

    [Fact]
    public void RejectsWrongWeightAndBufferSizes()
    {
        Conv2dGeometry g = G(4, 4, 3, 8, 3, 1, 1);
        Assert.Throws<ArgumentException>(() => new Conv2dOperator(g, new float[10], [], Activation.None));
        Assert.Throws<ArgumentException>(() => new Conv2dOperator(g, new float[g.WeightLength], new float[3], Activation.None));
        var op = new Conv2dOperator(g, new float[g.WeightLength], [], Activation.None);
        Assert.Throws<ArgumentException>(() => op.Run(1, new float[10], new float[128], default, default, Workers.Single));
        Assert.Throws<ArgumentException>(() => op.Run(2, new float[48], new float[128], default, default, Workers.Single));
    }

    private static void Check(Case c, Activation act, int seed)
    {
        var rng = new Random(seed * 7919 + 17);
        Conv2dGeometry g = c.G;
        float[] x = TestData.Random(rng, (long)c.Batch * g.InH * g.InW * g.InC);
        float[] w = TestData.Random(rng, g.WeightLength);
        float[] bias = c.Bias ? TestData.Random(rng, g.OutC) : [];
        float[]? residual = c.Residual ? TestData.Random(rng, (long)c.Batch * g.OutH * g.OutW * g.OutC) : null;
        float[] expected = Reference.Conv2d(g, c.Batch, x, w, bias, residual, act);
        int k = g.InCPerGroup * g.KernelH * g.KernelW;

        foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
        {
            var op = new Conv2dOperator(g with { Batch = 5 }, w, bias, act, isa);
            Assert.Equal(c.Path, op.KernelName);
            Assert.Equal(1, op.Geometry.Batch);
            var y = new float[expected.Length + 7];
            y.AsSpan(expected.Length).Fill(12345f);           // guard past the end must survive
            var scratch = new float[op.ScratchLength(c.Batch)];
            op.Run(c.Batch, x, y, residual, scratch, workers);
            string context = $"{c.Path} {Describe(c)} {act} {isa} threads={workers.Count}";
            TestData.AssertClose(expected, y, k, context);
            Assert.All(y[expected.Length..], v => Assert.Equal(12345f, v));
        }
    }
}
