using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Models;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Runtime;

/// <summary>
/// Banded blocks (BlockFusion + Kernels/Fused/BandedBlock) against the layer-by-layer plan of the same graph:
/// the fused plan runs the same kernels on bands of rows, so outputs must be bit-identical, for random block
/// shapes (odd channels, 3x3/5x5, stride 1/2, symmetric and SAME_UPPER-style pads, every fusable activation,
/// with and without the residual), every band height from one row up, batch 1-3, 1 and 2 threads and every ISA;
/// pads that make whole bands padding, concurrent runs, other input shapes, and maps too small to band.
/// </summary>
public class BlockFusionTests
{
    private static readonly Activation[] Acts = [Activation.None, Activation.Relu, Activation.Relu6, Activation.HardSwish];

    /// <summary>X -> 1x1 (expand, optional) -> depthwise k/s with the given pads -> 1x1 (project) (+ X).</summary>
    private static ModelGraph Block(Random rng, int batch, int h, int w, int cin, int cexp, int cout, int k, int s,
        (int T, int L, int B, int R) pads, Activation a1, Activation a2, bool expand, bool residual)
    {
        var b = new GraphBuilder("block", rng.Next());
        var x = b.Input("x", batch, cin, h, w);
        var y = x;
        if (expand) y = b.Add(new Conv(1, 1, Activation: a1), "expand", y, W(b, "expand", cexp, cin, 1, rng), Bias(b, "expand", cexp, rng));
        int c = expand ? cexp : cin;
        y = b.Add(new Conv(k, k, s, s, pads.T, pads.L, pads.B, pads.R, Groups: c, Activation: a2), "dw", y, W(b, "dw", c, 1, k, rng), Bias(b, "dw", c, rng));
        var p = b.Add(new Conv(1, 1), "project", y, W(b, "project", cout, c, 1, rng), Bias(b, "project", cout, rng));
        b.Output(residual ? b.Binary(BinaryKind.Add, p, x) : p);
        return b.Graph;
    }

    private static Value W(GraphBuilder b, string name, int o, int i, int k, Random rng) =>
        b.Constant(name + ".w", new Tensor(Enumerable.Range(0, o * i * k * k).Select(_ => (float)(rng.NextDouble() * 2 - 1) / MathF.Sqrt(i * k * k)).ToArray(), o, i, k, k));

    private static Value Bias(GraphBuilder b, string name, int o, Random rng) =>
        b.Constant(name + ".b", new Tensor(Enumerable.Range(0, o).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray(), o));

    /// <summary>Runs both plans; returns how many fused steps the fused plan has.</summary>
    private static int AssertSame(ModelGraph g, int threads, IsaLevel? isa, long cacheBytes, long savingsFactor = 0, int seed = 1)
    {
        using var fused = new InferenceSession(g, new SessionOptions { Threads = threads, Isa = isa, FusionCacheBytes = cacheBytes, FusionSavingsFactor = savingsFactor });
        using var plain = new InferenceSession(g, new SessionOptions { Threads = threads, Isa = isa, FuseBlocks = false });
        var input = Tensor.Random(seed, g.Inputs[0].Shape);
        Same(fused.Run(input)[0], plain.Run(input)[0], $"{threads} thread(s), cache {cacheBytes} B");
        Assert.Equal(0, FusedSteps(plain, input));
        return FusedSteps(fused, input);
    }

    private static void Same(Tensor a, Tensor b, string what)
    {
        Assert.Equal(b.Shape, a.Shape);
        for (int i = 0; i < a.Length; i++)
            if (BitConverter.SingleToInt32Bits(a.Floats[i]) != BitConverter.SingleToInt32Bits(b.Floats[i]))
                Assert.Fail($"{what}: element {i}: fused {a.Floats[i]:R}, layer by layer {b.Floats[i]:R}");
    }

    private static int FusedSteps(InferenceSession s, Tensor input) =>
        s.Profile([input], 1).Count(p => p.Kernel.StartsWith("fused", StringComparison.Ordinal));

    public static TheoryData<int, int> Seeds()
    {
        var d = new TheoryData<int, int>();
        for (int seed = 0; seed < 12; seed++)
            foreach (int t in new[] { 1, 2 }) d.Add(seed, t);
        return d;
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void RandomBlocksMatchLayerByLayerBitForBit(int seed, int threads)
    {
        var rng = new Random(seed);
        int k = rng.Next(2) == 0 ? 3 : 5, s = rng.Next(1, 3);
        // Wide enough that the depthwise kernel takes its row path, not the zero-padded copy it uses on narrow maps
        // (which the fusion leaves alone); depthwise channels above 4 (fewer would be a dense stem-style conv).
        int h = rng.Next(k, 24), w = rng.Next(14, 30);
        bool expand = seed % 4 != 3;
        int cin = rng.Next(expand ? 1 : 5, 12), cexp = rng.Next(5, 40), cout = rng.Next(1, 12);
        if (!expand) cout = Math.Min(cout, cin); // a pair whose 1x1 widens the channels is left unbanded (see WideningPairsAreLeftAlone)
        // Symmetric "same" pads, or TF SAME_UPPER (the odd pixel at the bottom/right), or none.
        var pads = (seed % 3) switch { 0 => (k / 2, k / 2, k / 2, k / 2), 1 => (s == 2 ? k / 2 - 1 : k / 2, s == 2 ? k / 2 - 1 : k / 2, k / 2, k / 2), _ => (0, 0, 0, 0) };
        int oh = (h + pads.Item1 + pads.Item3 - k) / s + 1, ow = (w + pads.Item2 + pads.Item4 - k) / s + 1;
        bool residual = s == 1 && cin == cout && oh == h && ow == w;
        if (rng.Next(3) == 0 && s == 1 && oh == h && ow == w) { cout = cin; residual = true; }
        int batch = rng.Next(1, 4);
        var g = Block(rng, batch, h, w, cin, cexp, cout, k, s, pads, Acts[rng.Next(Acts.Length)], Acts[rng.Next(Acts.Length)], expand, residual);
        // Budgets from "one band row" to "half the intermediates": other band heights and window reuse each time.
        int c = expand ? cexp : cin;
        long between = sizeof(float) * (long)batch * c * (oh * ow + (expand ? h * w : 0));
        foreach (long cache in new[] { 64, between / 8, between / 2 })
            Assert.Equal(1, AssertSame(g, threads, null, cache, seed: seed));
    }

    public static TheoryData<string, int, IsaLevel> ModelsAndIsas()
    {
        var d = new TheoryData<string, int, IsaLevel>();
        foreach (var isa in Isa.Supported)
            foreach (int t in new[] { 1, 2 })
            {
                d.Add("mobilenet_v2", t, isa);
                d.Add("mobilenet_v1", t, isa);
            }
        d.Add("mobilenet_v3_large", 2, Isa.Best);
        d.Add("efficientnet_lite0", 2, Isa.Best);
        return d;
    }

    /// <summary>Whole networks at a small resolution with a small budget, so blocks fuse (not those with squeeze-excite
    /// between depthwise and project, nor narrow late maps); batch 3 at the best ISA.</summary>
    [Theory]
    [MemberData(nameof(ModelsAndIsas))]
    public void WholeModelsMatchLayerByLayerBitForBit(string arch, int threads, IsaLevel isa)
    {
        var g = ModelZoo.Create(arch, new ModelOptions(0.5f, 64, Batch: isa == Isa.Best ? 3 : 1));
        Assert.True(AssertSame(g, threads, isa, 16 * 1024) >= 2);
    }

    /// <summary>At the default settings full-size MobileNetV2 fuses its large early blocks and leaves the small late ones (weights outweigh activations there).</summary>
    [Fact]
    public void DefaultPolicyFusesTheLargeMapsOnly()
    {
        var g = ModelZoo.Create("mobilenet_v2", new ModelOptions());
        using var session = new InferenceSession(g, new SessionOptions { Threads = 1 });
        var steps = session.Profile([Tensor.Random(1, g.Inputs[0].Shape)], 1);
        var fused = steps.Where(s => s.Kernel.StartsWith("fused", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(fused);
        Assert.Contains(fused, s => s.Nodes!.Contains("block2.expand"));
        Assert.DoesNotContain(fused, s => s.Nodes!.Any(n => n.StartsWith("block17.", StringComparison.Ordinal)));
        Assert.All(fused, s => Assert.True(s.Nodes!.Count is 2 or 3));
    }

    /// <summary>A depthwise -> 1x1 pair whose 1x1 widens the channels saves only the narrower depthwise output: not banded.</summary>
    [Fact]
    public void WideningPairsAreLeftAlone()
    {
        var rng = new Random(6);
        var widening = Block(rng, 1, 20, 20, 8, 0, 16, 3, 1, (1, 1, 1, 1), Activation.None, Activation.Relu6, expand: false, residual: false);
        Assert.Equal(0, AssertSame(widening, 2, null, 64));
        var narrowing = Block(rng, 1, 20, 20, 8, 0, 8, 3, 1, (1, 1, 1, 1), Activation.None, Activation.Relu6, expand: false, residual: true);
        Assert.Equal(1, AssertSame(narrowing, 2, null, 64));
    }

    /// <summary>An intermediate that is also a graph output (or read twice) must stay materialized: no fusion, same result.</summary>
    [Fact]
    public void IntermediateReadElsewhereIsNotFused()
    {
        var rng = new Random(5);
        var g = Block(rng, 1, 16, 16, 4, 24, 4, 3, 1, (1, 1, 1, 1), Activation.Relu6, Activation.Relu6, expand: true, residual: true);
        var dwOut = g.Nodes.Single(n => n.Name.StartsWith("dw", StringComparison.Ordinal)).Output;
        g.Outputs.Add(dwOut);
        Assert.Equal(0, AssertSame(g, 2, null, 64));
    }

    /// <summary>
    /// A block on a map of at most Gemv.MaxRows pixels (1x1 here, batch 1 or 3): layer by layer, the expand and
    /// the project (no residual) take Gemv (k loop split into two accumulators), the fused block always the
    /// packed GEMM (one accumulator), so the bits differ. BandedBlock.TryCreate leaves such maps unfused.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(4)] // control: 4 rows > Gemv.MaxRows, both plans take the packed GEMM and match
    public void TinyMapsAreNotFusedOrMatchBitForBit(int batch)
    {
        var rng = new Random(7);
        var g = Block(rng, batch, 1, 1, 8, 48, 8, 3, 1, (1, 1, 1, 1), Activation.Relu6, Activation.Relu6, expand: true, residual: false);
        using var fused = new InferenceSession(g, new SessionOptions { Threads = 1, FusionCacheBytes = 64, FusionSavingsFactor = 0 });
        using var plain = new InferenceSession(g, new SessionOptions { Threads = 1, FuseBlocks = false });
        var input = Tensor.Random(3, g.Inputs[0].Shape);
        int steps = FusedSteps(fused, input);
        Assert.Equal(batch > 3 ? 1 : 0, steps);
        Same(fused.Run(input)[0], plain.Run(input)[0], $"fused steps {steps}");
    }

    /// <summary>Random asymmetric pads (top/bottom up to k+1, so whole bands of padding), tiny heights, batch 1-3, 2 threads.</summary>
    [Fact]
    public void RandomPadsAndHeightsMatchLayerByLayer()
    {
        int fusedTotal = 0;
        for (int seed = 0; seed < 60; seed++)
        {
            var rng = new Random(1000 + seed);
            int k = rng.Next(2) == 0 ? 3 : 5, s = rng.Next(1, 3);
            int pt = rng.Next(0, k + 2), pb = rng.Next(0, k + 2), pl = rng.Next(0, k / 2 + 1), pr = rng.Next(0, k / 2 + 1);
            int h = rng.Next(1, 3 * k);
            if (h + pt + pb < k) pb = k - h - pt;
            int w = rng.Next(18, 30);
            bool expand = seed % 3 != 2;
            int cin = rng.Next(expand ? 1 : 5, 10), cexp = rng.Next(5, 36), cout = rng.Next(4, 10);
            int batch = rng.Next(1, 4);
            var g = Block(rng, batch, h, w, cin, cexp, cout, k, s, (pt, pl, pb, pr), Activation.Relu6, Activation.HardSwish, expand, residual: false);
            var input = Tensor.Random(seed, g.Inputs[0].Shape);
            using var plain = new InferenceSession(g, new SessionOptions { Threads = 2, FuseBlocks = false });
            var expected = plain.Run(input)[0];
            foreach (long cache in new long[] { 64, 2048, 16 * 1024 })
            {
                using var fused = new InferenceSession(g, new SessionOptions { Threads = 2, FusionCacheBytes = cache, FusionSavingsFactor = 0 });
                fusedTotal += FusedSteps(fused, input);
                Same(fused.Run(input)[0], expected, $"seed {seed} k{k} s{s} pads {pt},{pl},{pb},{pr} h{h} w{w} batch {batch} cache {cache}");
            }
        }
        Assert.True(fusedTotal > 60, $"only {fusedTotal} fused plans");
    }

    /// <summary>Concurrent runs on one fused session (each takes its own arena, so its own band scratch).</summary>
    [Fact]
    public void ConcurrentRunsOnAFusedSessionMatch()
    {
        var rng = new Random(11);
        var g = Block(rng, 2, 20, 20, 8, 40, 8, 3, 1, (1, 1, 1, 1), Activation.Relu6, Activation.Relu6, expand: true, residual: true);
        using var fused = new InferenceSession(g, new SessionOptions { Threads = 2, FusionCacheBytes = 4096, FusionSavingsFactor = 0 });
        using var plain = new InferenceSession(g, new SessionOptions { Threads = 2, FuseBlocks = false });
        var inputs = Enumerable.Range(0, 4).Select(i => Tensor.Random(i + 1, g.Inputs[0].Shape)).ToArray();
        var expected = inputs.Select(x => plain.Run(x)[0]).ToArray();
        Assert.Equal(1, FusedSteps(fused, inputs[0]));
        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, t =>
        {
            for (int r = 0; r < 30; r++) Same(fused.Run(inputs[(t + r) % 4])[0], expected[(t + r) % 4], $"task {t} run {r}");
        });
    }

    /// <summary>Plans for other input shapes (H x W and batch) fuse with their own geometry.</summary>
    [Fact]
    public void OtherInputShapesMatch()
    {
        var rng = new Random(12);
        var g = Block(rng, 1, 16, 16, 6, 30, 6, 5, 2, (1, 1, 2, 2), Activation.Relu, Activation.Relu6, expand: true, residual: false);
        using var fused = new InferenceSession(g, new SessionOptions { Threads = 2, FusionCacheBytes = 2048, FusionSavingsFactor = 0 });
        using var plain = new InferenceSession(g, new SessionOptions { Threads = 2, FuseBlocks = false });
        foreach (var shape in new[] { new[] { 1, 6, 23, 19 }, new[] { 3, 6, 16, 16 }, new[] { 2, 6, 9, 31 } })
        {
            var x = Tensor.Random(5, shape);
            Assert.Equal(1, FusedSteps(fused, x));
            Same(fused.Run(x)[0], plain.Run(x)[0], Shape.Format(shape));
        }
    }
}
