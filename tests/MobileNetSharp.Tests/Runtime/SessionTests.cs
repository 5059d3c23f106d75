using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Models;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Runtime;

/// <summary>Whole models through the compiled runtime, checked against the naive reference interpreter.</summary>
public class SessionTests
{
    public static TheoryData<string, float, int> SmallModels()
    {
        var d = new TheoryData<string, float, int>();
        foreach (var a in ModelZoo.All) d.Add(a.Name, a.Name.StartsWith("efficientnet") ? 0.25f : 0.35f, 64);
        d.Add("mobilenet_v2", 0.5f, 96);
        d.Add("mobilenet_v1", 0.25f, 128);
        return d;
    }

    [Theory]
    [MemberData(nameof(SmallModels))]
    public void CompiledModelMatchesReferenceInterpreter(string arch, float width, int res)
    {
        var g = ModelZoo.Create(arch, new ModelOptions(width, res, Classes: 17, Batch: 2, Seed: 3));
        var x = Tensor.Random(7, g.Inputs[0].Shape);
        var expected = ReferenceInterpreter.Run(g, x)[0];
        using var s = new InferenceSession(g, new SessionOptions { Threads = 2 });
        Assert.True(s.Optimizations!.BatchNormsFolded > 0);
        Compare.Close(expected, s.Run(x)[0], 1e-4, arch);
    }

    [Fact]
    public void OptimizationThreadsAndIsaDoNotChangeResults()
    {
        var g = ModelZoo.Create("mobilenet_v3_small", new ModelOptions(0.5f, 96, Classes: 10));
        var x = Tensor.Random(1, g.Inputs[0].Shape);
        using var plain = new InferenceSession(g, new SessionOptions { Optimize = false, Threads = 1, Isa = IsaLevel.Scalar });
        var expected = plain.Run(x)[0];
        foreach (var isa in new[] { IsaLevel.Vector128, IsaLevel.Vector256, IsaLevel.Vector512 })
        {
            if (isa > Isa.Best) continue;
            foreach (int threads in new[] { 1, 2 })
            {
                using var s = new InferenceSession(g, new SessionOptions { Threads = threads, Isa = isa });
                Compare.Close(expected, s.Run(x)[0], 1e-4, $"{isa}/{threads}t");
            }
        }
    }

    [Fact]
    public void BatchItemsAreIndependentAndOtherBatchSizesCompileOnDemand()
    {
        var g = ModelZoo.Create("mobilenet_v2", new ModelOptions(0.35f, 64, Classes: 10));
        using var s = new InferenceSession(g, new SessionOptions { Threads = 2 });
        var batch = Tensor.Random(5, [3, 3, 64, 64]);
        var all = s.Run(batch)[0];
        Assert.Equal([3, 10], all.Shape);
        int per = 3 * 64 * 64;
        for (int i = 0; i < 3; i++)
        {
            var one = new Tensor(batch.Floats.AsSpan(i * per, per).ToArray(), 1, 3, 64, 64);
            var expected = new Tensor(all.Floats.AsSpan(i * 10, 10).ToArray(), 1, 10);
            Compare.Close(expected, s.Run(one)[0], 1e-5, $"item {i}");
        }
    }

    [Fact]
    public void SteadyStateRunAllocatesNothing()
    {
        var g = ModelZoo.Create("mobilenet_v2", new ModelOptions(0.35f, 96, Classes: 10));
        foreach (int threads in new[] { 1, 2 })
        {
            using var s = new InferenceSession(g, new SessionOptions { Threads = threads });
            Tensor[] inputs = [Tensor.Random(1, s.Inputs[0].Shape)];
            Tensor[] outputs = [Tensor.Zeros(s.Outputs[0].Shape)];
            MobileNetSharp.Tests.Kernels.AllocationTests.AssertNoAllocation(() => s.Run(inputs, outputs), $"mobilenet_v2 t{threads}");
        }
    }

    [Fact]
    public void ArenaIsFarSmallerThanAllActivationsButHoldsTheLargest()
    {
        var g = ModelZoo.Create("mobilenet_v2", new ModelOptions(1f, 224));
        using var s = new InferenceSession(g, new SessionOptions { Threads = 1, FuseBlocks = false });
        long allActivations = s.OptimizedGraph.Nodes.SelectMany(n => n.Outputs).Sum(v => v.Length) * sizeof(float);
        Assert.True(s.ArenaBytes < allActivations / 4, $"arena {s.ArenaBytes} vs {allActivations} bytes of activations");
        // Overlap of live buffers is checked directly in MemoryPlannerTests; here, the real network.
        Assert.True(s.ArenaBytes >= 112 * 112 * 96 * 4);

        // Banded blocks never materialize the expanded tensors (block 2's 112x112x96 above), only the stem's
        // 112x112x32 output and the bands' per-thread scratch.
        using var fused = new InferenceSession(g, new SessionOptions { Threads = 2 });
        Assert.True(fused.ArenaBytes < s.ArenaBytes / 2, $"fused arena {fused.ArenaBytes} vs {s.ArenaBytes} bytes layer by layer");
        Assert.True(fused.ArenaBytes >= 112 * 112 * 32 * 4);
    }

    [Fact]
    public void WrongInputsGiveClearErrors()
    {
        var g = ModelZoo.Create("mobilenet_v1", new ModelOptions(0.25f, 64));
        using var s = new InferenceSession(g, new SessionOptions { Threads = 1 });
        // Another spatial size is a new plan (fully convolutional up to the global pool); another rank is an error.
        Assert.Equal([1, 1000], s.Run(Tensor.Random(3, [1, 3, 32, 32]))[0].Shape);
        var e = Assert.Throws<ArgumentException>(() => s.Run(Tensor.Zeros(3, 32, 32)));
        Assert.Contains("expects rank 4 like [1,3,64,64]", e.Message);
        Assert.Throws<ArgumentException>(() => s.Run());
        Assert.Throws<ArgumentException>(() => s.Run(new Tensor(new long[3 * 64 * 64], 1, 3, 64, 64)));
        Assert.Throws<ArgumentException>(() => s.Run(new Dictionary<string, Tensor> { ["nope"] = Tensor.Zeros(1, 3, 64, 64) }));
        Assert.Throws<ArgumentException>(() => new InferenceSession(g, new SessionOptions { Threads = 0 }));

        // The caller-owned-outputs overload.
        Tensor[] input = [Tensor.Random(1, [1, 3, 64, 64])];
        Assert.Throws<ArgumentNullException>(() => s.Run(input, new Tensor[1]));
        Assert.Contains("must be Float32 [1,1000]", Assert.Throws<ArgumentException>(() => s.Run(input, [Tensor.Zeros(1, 10)])).Message);
        Assert.Throws<ArgumentException>(() => s.Run(input, Array.Empty<Tensor>()));
    }

    [Fact]
    public void HugeDeclaredActivationsAreRefusedBeforeAllocating()
    {
        // A few bytes of graph declaring 1.6 GB activations, several alive at once.
        var b = new GraphBuilder("huge", 1);
        var x = b.Input("x", 1, 1, 20000, 20000);
        var y = b.Activate(x, Activation.Relu);
        var z = b.Activate(x, Activation.Sigmoid);
        b.Output(b.Binary(BinaryKind.Add, b.Binary(BinaryKind.Mul, x, y), z));
        var e = Assert.Throws<GraphException>(() => new InferenceSession(b.Graph, new SessionOptions { Threads = 1 }));
        Assert.Contains("MaxArenaBytes", e.Message);
        var small = ModelZoo.Create("mobilenet_v1", new ModelOptions(0.25f, 64));
        Assert.Throws<GraphException>(() => new InferenceSession(small, new SessionOptions { MaxArenaBytes = 1000 }));
    }

    [Fact]
    public void CallerGraphIsNotModified()
    {
        var g = ModelZoo.Create("mobilenet_v1", new ModelOptions(0.25f, 64));
        int nodes = g.Nodes.Count;
        using var s = new InferenceSession(g);
        Assert.Equal(nodes, g.Nodes.Count);
        Assert.True(s.OptimizedGraph.Nodes.Count < nodes);
    }
}

/// <summary>When a batch size other than the compiled one is allowed, and when it must be refused.</summary>
public class BatchPolicyTests
{
    [Fact]
    public void AReshapeWithABakedBatchRefusesOtherBatchSizesInsteadOfMixingImages()
    {
        var b = new GraphBuilder("baked", 1);
        var x = b.Conv(b.Input("x", 1, 3, 4, 4), 2, 3);
        b.Output(b.Add(new Reshape([1, -1]), "view", x)); // what an importer folds x.view(x.size(0), -1) to
        using var s = new InferenceSession(b.Graph, new SessionOptions { Threads = 1 });
        Assert.Equal([1, 32], s.Run(Tensor.Random(1, [1, 3, 4, 4]))[0].Shape);
        var e = Assert.Throws<ArgumentException>(() => s.Run(Tensor.Random(1, [3, 3, 4, 4])));
        Assert.Contains("would be [1,96] instead of [1,32]", e.Message);
    }

    [Theory]
    [InlineData("reshape")]
    [InlineData("flatten0")]
    public void GraphsThatMergeTheBatchIntoOneAxisRefuseOtherBatchSizes(string kind)
    {
        // [1,4] -> [4] -> softmax: at batch 2 it would normalize across both images at once.
        var b = new GraphBuilder("merge", 1);
        var x = b.Input("x", 1, 4);
        var merged = kind == "reshape" ? b.Add(new Reshape([-1]), "view", x) : b.Add(new Flatten(0), "flatten", x);
        b.Output(b.Add(new Softmax(-1), "softmax", merged));
        using var s = new InferenceSession(b.Graph, new SessionOptions { Threads = 1 });
        s.Run(Tensor.Random(1, [1, 4]));
        var e = Assert.Throws<ArgumentException>(() => s.Run(Tensor.Random(1, [2, 4])));
        Assert.Contains("images would mix", e.Message);
    }

    [Fact]
    public void PlansForOtherBatchSizesShareThePackedWeights()
    {
        var g = ModelZoo.Create("mobilenet_v2", new ModelOptions(0.35f, 64, Classes: 10));
        using var s = new InferenceSession(g, new SessionOptions { Threads = 1 });
        int operators = s.CachedOperators;
        foreach (int batch in new[] { 2, 3, 5, 2 }) s.Run(Tensor.Random(batch, [batch, 3, 64, 64]));
        Assert.Equal(operators, s.CachedOperators);
    }

    [Fact]
    public void InputsWithoutACommonBatchRunAtAnyShapesThatBroadcast()
    {
        var b = new GraphBuilder("two", 1);
        var v = b.Input("v", 5);
        var m = b.Input("m", 4, 5);
        b.Output(b.Binary(BinaryKind.Add, m, v));
        using var s = new InferenceSession(b.Graph, new SessionOptions { Threads = 1 });
        var y = s.Run(Tensor.Random(1, [5]), Tensor.Random(2, [4, 5]))[0];
        Assert.Equal([4, 5], y.Shape);
        var (v2, m2) = (Tensor.Random(1, [5]), Tensor.Random(2, [2, 5]));
        var y2 = s.Run(v2, m2)[0];
        Assert.Equal([2, 5], y2.Shape);
        for (int i = 0; i < 10; i++) Assert.Equal(m2.Floats[i] + v2.Floats[i % 5], y2.Floats[i]);
        var e = Assert.Throws<ArgumentException>(() => s.Run(Tensor.Random(1, [3]), Tensor.Random(2, [2, 5])));
        Assert.Contains("cannot run with inputs v [3], m [2,5]", e.Message);
    }
}
