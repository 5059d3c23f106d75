using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Models;
using MobileNetSharp.Passes;
using MobileNetSharp.Tensors;
using MobileNetSharp.Tests.Runtime;

namespace MobileNetSharp.Tests.Passes;

/// <summary>
/// The passes, judged by the naive reference interpreter alone (no fast kernels involved): a rewritten
/// graph computes what the original did, up to float rounding.
/// </summary>
public class PassTests
{
    public static TheoryData<string> Architectures() => new(ModelZoo.All.Select(a => a.Name));

    [Theory]
    [MemberData(nameof(Architectures))]
    public void OptimizedGraphComputesTheSameFunction(string arch)
    {
        var g = ModelZoo.Create(arch, new ModelOptions(0.25f, 64, Classes: 7, Batch: 2, Seed: 5));
        var x = Tensor.Random(3, g.Inputs[0].Shape);
        var expected = ReferenceInterpreter.Run(g, x)[0];
        var opt = g.Clone();
        var report = Optimizer.Run(opt);
        // Every batch norm in these architectures follows a conv, so all of them fold.
        Assert.Equal(g.Nodes.Count(n => n.Op is BatchNorm), report.BatchNormsFolded);
        Assert.DoesNotContain(opt.Nodes, n => n.Op is BatchNorm);
        // Folded weights are rounded to float once per layer; over ~90 layers (lite4) that compounds to
        // ~1e-5 of the output scale, so 1e-4 is "float rounding" here, as for any deep fp32 network.
        Compare.Close(expected, ReferenceInterpreter.Run(opt, x)[0], 1e-4, arch);
        // Costs are defined on the source graph: the optimizer must not change MACs.
        Assert.Equal(CostModel.Analyze(g).Macs, CostModel.Analyze(opt).Macs);
    }

    [Fact]
    public void MobileNetV2ResidualsAndActivationsAreFusedIntoConvolutions()
    {
        var g = ModelZoo.Create("mobilenet_v2", new ModelOptions(0.35f, 64));
        int adds = g.Nodes.Count(n => n.Op is BinaryOp { Kind: BinaryKind.Add });
        int acts = g.Nodes.Count(n => n.Op is ActivationOp);
        var report = Optimizer.Run(g);
        Assert.Equal(10, adds); // residual blocks in MobileNetV2
        Assert.Equal(adds, report.ResidualsFused);
        Assert.Equal(acts, report.ActivationsFused);
        Assert.DoesNotContain(g.Nodes, n => n.Op is ActivationOp or BinaryOp);
        Assert.Equal(adds, g.Nodes.Count(n => n.Op is Conv && n.OptionalInput(3) is not null));
    }

    /// <summary>Folded weights are (float)((double)w · s) exactly, the scalar formula, whatever the vector path: each
    /// product in double, rounded once (an odd weight count per channel covers the vector loop's tail).</summary>
    [Fact]
    public void FoldedWeightsAreTheDoubleProductRoundedOnce()
    {
        var b = new GraphBuilder("fold", 3);
        var x = b.Input("x", 1, 5, 7, 7);
        b.Output(b.BatchNorm(b.Conv(x, 9, 3, bias: true), epsilon: 1e-3f));
        var g = b.Graph;
        var conv = g.Nodes.Single(n => n.Op is Conv);
        var bn = g.Nodes.Single(n => n.Op is BatchNorm);
        float[] w = conv.Input(1).Constant!.Floats, gamma = bn.Input(1).Constant!.Floats, variance = bn.Input(4).Constant!.Floats;
        Assert.Equal(1, FoldBatchNorm.Run(g));
        float[] folded = g.Nodes.Single().Input(1).Constant!.Floats;
        int per = w.Length / 9; // 45 weights a channel
        for (int o = 0; o < 9; o++)
        {
            double s = gamma[o] / Math.Sqrt((double)variance[o] + 1e-3f);
            for (int i = 0; i < per; i++) Assert.Equal((float)(w[o * per + i] * s), folded[o * per + i]);
        }
    }

    [Fact]
    public void ResNetStyleAddThenReluFusesBothIntoTheConv()
    {
        var b = new GraphBuilder("res", 1);
        var x = b.Input("x", 1, 4, 6, 6);
        var y = b.BatchNorm(b.Conv(x, 4, 3));
        b.Output(b.Activate(b.Binary(BinaryKind.Add, y, x), Activation.Relu));
        var g = b.Graph;
        var input = Tensor.Random(1, [1, 4, 6, 6]);
        var expected = ReferenceInterpreter.Run(g, input)[0];
        var report = Optimizer.Run(g);
        Assert.Equal((1, 1, 1), (report.BatchNormsFolded, report.ActivationsFused, report.ResidualsFused));
        var conv = Assert.Single(g.Nodes);
        Assert.Equal(Activation.Relu, ((Conv)conv.Op).Activation);
        Assert.Equal("relu", g.Outputs[0].Name);
        Compare.Close(expected, ReferenceInterpreter.Run(g, input)[0], 1e-5);
    }

    [Fact]
    public void AnActivationAfterAMatMulByConstantWeightsMakesItAGemm()
    {
        // A bias-free nn.Linear exports as MatMul: as a Gemm its activation runs in the FC epilogue.
        var b = new GraphBuilder("linear", 1);
        var x = b.Input("x", 3, 8);
        var y = b.Add(new MobileNetSharp.Graph.MatMul(), "matmul", x, b.Constant("w", Tensor.Random(2, [8, 5])));
        b.Output(b.Activate(y, Activation.HardSigmoid(1f / 6f, 0.5f)));
        var g = b.Graph;
        var input = Tensor.Random(1, [3, 8], -4f, 4f);
        var expected = ReferenceInterpreter.Run(g, input)[0];
        Assert.Equal(1, Optimizer.Run(g).ActivationsFused);
        var node = Assert.Single(g.Nodes);
        Assert.Equal(new Gemm(Activation: Activation.HardSigmoid(1f / 6f, 0.5f)), node.Op);
        Compare.Close(expected, ReferenceInterpreter.Run(g, input)[0], 1e-6);
        using var session = new MobileNetSharp.Runtime.InferenceSession(g, new() { Threads = 1 });
        Compare.Close(expected, session.Run(input)[0], 1e-5);

        // Batched (3-D) or by a computed matrix, it stays a MatMul.
        var b2 = new GraphBuilder("batched", 1);
        var x2 = b2.Input("x", 2, 3, 8);
        b2.Output(b2.Activate(b2.Add(new MobileNetSharp.Graph.MatMul(), "matmul", x2, b2.Constant("w", Tensor.Random(2, [8, 5]))), Activation.Relu));
        var x3 = b2.Input("y", 3, 8);
        b2.Output(b2.Activate(b2.Add(new MobileNetSharp.Graph.MatMul(), "matmul", x3, b2.Activate(b2.Input("w2", 8, 5), Activation.Sigmoid)), Activation.Relu));
        Assert.Equal(0, Optimizer.Run(b2.Graph).ActivationsFused);
    }

    [Fact]
    public void ValuesWithSeveralReadersOrGraphOutputsAreNotFused()
    {
        var b = new GraphBuilder("fanout", 1);
        var x = b.Input("x", 1, 3, 5, 5);
        var conv = b.Conv(x, 4, 3);
        var relu = b.Activate(conv, Activation.Relu);
        b.Output(conv); // the pre-activation value is itself an output
        b.Output(relu);
        var report = Optimizer.Run(b.Graph);
        Assert.Equal(0, report.ActivationsFused);
        Assert.Equal(2, b.Graph.Nodes.Count);
    }

    [Fact]
    public void IdentityNodesAreRemovedButOutputNamesKept()
    {
        var b = new GraphBuilder("id", 1);
        var x = b.Input("x", 1, 2, 3, 3);
        var y = b.Add(new Identity(), "dropout", b.Activate(x, Activation.Sigmoid));
        b.Output(y);
        Optimizer.Run(b.Graph);
        Assert.Single(b.Graph.Nodes);
        Assert.Equal("dropout", b.Graph.Outputs[0].Name);
    }
}

/// <summary>Rewrites that must not fire, checked for both what they leave and what the graph computes.</summary>
public class PassRefusalTests
{
    private static void Unchanged(GraphBuilder b, Func<OptimizationReport, int> counter)
    {
        var g = b.Graph;
        var inputs = g.Inputs.Select((v, i) => Tensor.Random(i + 1, v.Shape)).ToArray();
        var expected = ReferenceInterpreter.Run(g, inputs);
        var report = Optimizer.Run(g);
        Assert.Equal(0, counter(report));
        var actual = ReferenceInterpreter.Run(g, inputs);
        for (int i = 0; i < expected.Length; i++) Compare.Close(expected[i], actual[i], 1e-6);
    }

    [Fact]
    public void BatchNormIsNotFoldedIntoAConvWhoseOutputHasOtherReaders()
    {
        var b = new GraphBuilder("bn2", 1);
        var conv = b.Conv(b.Input("x", 1, 3, 6, 6), 4, 3);
        b.Output(b.BatchNorm(conv));
        b.Output(b.Activate(conv, Activation.Sigmoid)); // also reads the pre-BN value
        Unchanged(b, r => r.BatchNormsFolded);
    }

    [Fact]
    public void BatchNormIsNotFoldedIntoAConvThatIsAGraphOutput()
    {
        var b = new GraphBuilder("bnout", 1);
        var conv = b.Conv(b.Input("x", 1, 3, 6, 6), 4, 3);
        b.Output(conv);
        b.Output(b.BatchNorm(conv));
        Unchanged(b, r => r.BatchNormsFolded);
    }

    [Fact]
    public void BroadcastingOrConstantAddsAreNotFusedAsResiduals()
    {
        var b = new GraphBuilder("bcast", 1);
        var x = b.Input("x", 1, 3, 6, 6);
        var conv = b.Conv(x, 4, 3);
        var pooled = b.GlobalAveragePool(b.Conv(x, 4, 3)); // [1,4,1,1]: broadcasts, so not a residual
        var y = b.Binary(BinaryKind.Add, conv, pooled);
        b.Output(b.Binary(BinaryKind.Add, b.Conv(y, 4, 1), b.Constant("c", Tensor.Random(3, [1, 4, 6, 6]))));
        Unchanged(b, r => r.ResidualsFused);
    }
}

public class NonFloatParameterTests
{
    [Fact]
    public void IntegerBatchNormStatisticsAreRefusedWithTheNodeNamedNotCrashed()
    {
        var b = new GraphBuilder("intbn", 1);
        var conv = b.Conv(b.Input("x", 1, 2, 4, 4), 2, 3);
        var stats = Value.FromConstant("mean", new Tensor(DataType.Int32, [2], new int[2]));
        var one = Value.FromConstant("one", new Tensor([1f, 1f], 2));
        b.Output(b.Add(new BatchNorm(), "bn", conv, one, one, stats, one));
        var e = Assert.Throws<GraphException>(() => new MobileNetSharp.Runtime.InferenceSession(b.Graph, new() { Threads = 1 }));
        Assert.Contains("'bn'", e.Message);
    }
}

public class SwishFusionTests
{
    [Theory]
    [InlineData("hardswish")]
    [InlineData("silu")]
    public void ExportedSwishSpelledOutBecomesOneActivationInTheConv(string kind)
    {
        // What PyTorch writes at opset 13: conv -> HardSigmoid(1/6, 0.5) -> Mul with the conv output (or Sigmoid for SiLU).
        var b = new GraphBuilder("swish", 1);
        var conv = b.Conv(b.Input("x", 1, 3, 6, 6), 4, 3, bias: true);
        var gate = b.Activate(conv, kind == "silu" ? Activation.Sigmoid : Activation.HardSigmoid(1f / 6f, 0.5f));
        b.Output(b.Binary(BinaryKind.Mul, gate, conv));
        var g = b.Graph;
        var x = Tensor.Random(1, [1, 3, 6, 6]);
        var expected = ReferenceInterpreter.Run(g, x)[0];
        var report = Optimizer.Run(g);
        Assert.Equal(1, report.SwishesFused);
        var node = Assert.Single(g.Nodes);
        Assert.Equal(kind == "silu" ? ActivationKind.Silu : ActivationKind.HardSwish, ((Conv)node.Op).Activation.Kind);
        Compare.Close(expected, ReferenceInterpreter.Run(g, x)[0], 1e-6);
    }

    [Fact]
    public void AGateWithOtherReadersOrAnotherInputIsLeftAlone()
    {
        var b = new GraphBuilder("notswish", 1);
        var x = b.Input("x", 1, 4);
        var y = b.Input("y", 1, 4);
        var gate = b.Activate(x, Activation.Sigmoid);
        b.Output(b.Binary(BinaryKind.Mul, gate, y));      // gates another tensor: squeeze-excite style, not swish
        var gate2 = b.Activate(y, Activation.Sigmoid);
        b.Output(b.Binary(BinaryKind.Mul, gate2, y));
        b.Output(gate2);                                  // the gate itself is needed
        Assert.Equal(0, Optimizer.Run(b.Graph).SwishesFused);
    }
}

/// <summary>
/// Hard-swish and hard-sigmoid written out in arithmetic (FuseHardActivation): each spelling becomes one activation
/// that then folds into the conv, and near misses are left exactly as they were.
/// </summary>
public class HardActivationFusionTests
{
    private static Value Scalar(GraphBuilder b, float v) => b.Constant("k", new Tensor([v], []));

    /// <summary>Clip(t, 0, 6) in one of the ways exporters write it.</summary>
    private static Value Clamp06(GraphBuilder b, Value t, string clamp) => clamp switch
    {
        "clip" => b.Activate(t, Activation.Relu6),
        "relu_clip" => b.Activate(b.Activate(t, Activation.Relu), Activation.Relu6),    // PyTorch's relu6 at opset 11
        "max_min" => b.Binary(BinaryKind.Min, b.Binary(BinaryKind.Max, t, Scalar(b, 0f)), Scalar(b, 6f)),
        "min_max" => b.Binary(BinaryKind.Max, Scalar(b, 0f), b.Binary(BinaryKind.Min, t, Scalar(b, 6f))),
        "clip_min_then_max" => b.Activate(b.Activate(t, Activation.Clip(0f, float.MaxValue)), Activation.Clip(float.MinValue, 6f)),
        _ => throw new ArgumentException(clamp),
    };

    /// <summary>v / 6 or v * (1/6), the constant on either side of the Mul.</summary>
    private static Value Sixth(GraphBuilder b, Value v, string scale) => scale switch
    {
        "div" => b.Binary(BinaryKind.Div, v, Scalar(b, 6f)),
        "mul" => b.Binary(BinaryKind.Mul, v, Scalar(b, 1f / 6f)),
        "mul_first" => b.Binary(BinaryKind.Mul, b.Constant("k", new Tensor([1f / 6f, 1f / 6f, 1f / 6f, 1f / 6f], 1, 4, 1, 1)), v),
        _ => throw new ArgumentException(scale),
    };

    private static (ModelGraph Graph, Tensor Input) Build(Func<GraphBuilder, Value, Value> activation)
    {
        var b = new GraphBuilder("hard", 3);
        var x = b.Conv(b.Input("x", 1, 3, 6, 6), 4, 3, bias: true);
        b.Output(activation(b, x));
        return (b.Graph, Tensor.Random(1, [1, 3, 6, 6], -6f, 6f));
    }

    private static void FusesIntoTheConv((ModelGraph Graph, Tensor Input) model, Activation expected, int recognized = 1)
    {
        var (g, x) = model;
        var reference = ReferenceInterpreter.Run(g, x)[0];
        var report = Optimizer.Run(g);
        Assert.Equal(recognized, report.HardActivationsRecognized);
        var node = Assert.Single(g.Nodes);
        Assert.Equal(expected, ((Conv)node.Op).Activation);
        Compare.Close(reference, ReferenceInterpreter.Run(g, x)[0], 1e-5);
    }

    [Theory]
    [InlineData("clip", "div", false, true)]
    [InlineData("relu_clip", "div", true, false)]
    [InlineData("max_min", "mul", false, false)]
    [InlineData("min_max", "mul_first", true, true)]
    [InlineData("clip_min_then_max", "mul", false, true)]
    public void HardSwishAsXTimesClipThenScaled(string clamp, string scale, bool threeFirst, bool xFirst)
    {
        // (x * clamp(x + 3, 0, 6)) / 6: PyTorch's x * F.relu6(x + 3) / 6.
        FusesIntoTheConv(Build((b, x) =>
        {
            var three = b.Constant("three", new Tensor([3f], 1));
            var gate = Clamp06(b, threeFirst ? b.Binary(BinaryKind.Add, three, x) : b.Binary(BinaryKind.Add, x, three), clamp);
            return Sixth(b, xFirst ? b.Binary(BinaryKind.Mul, x, gate) : b.Binary(BinaryKind.Mul, gate, x), scale);
        }), Activation.HardSwish);
    }

    [Theory]
    [InlineData("clip", "div", true)]
    [InlineData("relu_clip", "mul", false)]
    [InlineData("max_min", "mul_first", true)]
    public void HardSwishAsXTimesScaledClip(string clamp, string scale, bool xFirst)
    {
        // x * (clamp(x + 3, 0, 6) / 6): a hard-sigmoid gate, then FuseSwish.
        var model = Build((b, x) =>
        {
            var gate = Sixth(b, Clamp06(b, b.Binary(BinaryKind.Add, x, Scalar(b, 3f)), clamp), scale);
            return xFirst ? b.Binary(BinaryKind.Mul, x, gate) : b.Binary(BinaryKind.Mul, gate, x);
        });
        var (g, input) = model;
        var reference = ReferenceInterpreter.Run(g, input)[0];
        var report = Optimizer.Run(g);
        Assert.Equal((1, 1), (report.HardActivationsRecognized, report.SwishesFused));
        Assert.Equal(Activation.HardSwish, ((Conv)Assert.Single(g.Nodes).Op).Activation);
        Compare.Close(reference, ReferenceInterpreter.Run(g, input)[0], 1e-5);
    }

    [Theory]
    [InlineData("clip", "div")]
    [InlineData("relu_clip", "mul")]
    [InlineData("min_max", "mul_first")]
    public void HardSigmoidAsScaledClip(string clamp, string scale) =>
        FusesIntoTheConv(Build((b, x) => Sixth(b, Clamp06(b, b.Binary(BinaryKind.Add, x, Scalar(b, 3f)), clamp), scale)),
            Activation.HardSigmoid(1f / 6f, 0.5f));

    [Fact]
    public void AnAddThatAlreadyCarriesTheClampIsOneToo()
    {
        // Add+Relu6 (as activation fusion leaves it) then / 6, and Add+Relu then Clip(0, 6) then * x / 6.
        FusesIntoTheConv(Build((b, x) => Sixth(b, b.Add(new BinaryOp(BinaryKind.Add, Activation.Relu6), "add", x, Scalar(b, 3f)), "div")),
            Activation.HardSigmoid(1f / 6f, 0.5f));
        FusesIntoTheConv(Build((b, x) => Sixth(b, b.Binary(BinaryKind.Mul, x,
            b.Activate(b.Add(new BinaryOp(BinaryKind.Add, Activation.Relu), "add", x, Scalar(b, 3f)), Activation.Relu6)), "mul")),
            Activation.HardSwish);
    }

    [Fact]
    public void ConstantsWithinOneMillionthMatch() =>
        FusesIntoTheConv(Build((b, x) => b.Binary(BinaryKind.Mul, Scalar(b, 0.16666667f),
            b.Binary(BinaryKind.Mul, x, b.Activate(b.Binary(BinaryKind.Add, x, Scalar(b, 3.000002f)), Activation.Clip(0f, 5.999995f))))),
            Activation.HardSwish);

    private static void NotRecognized(Func<GraphBuilder, Value, Value> activation, Action<GraphBuilder, Value>? alsoOutput = null)
    {
        var b = new GraphBuilder("near_miss", 3);
        var x = b.Conv(b.Input("x", 1, 4, 6, 6), 4, 3, bias: true);
        b.Output(activation(b, x));
        var g = b.Graph;
        var input = Tensor.Random(1, [1, 4, 6, 6], -6f, 6f);
        var expected = ReferenceInterpreter.Run(g, input);
        var report = Optimizer.Run(g);
        Assert.Equal(0, report.HardActivationsRecognized);
        Assert.DoesNotContain(g.Nodes, n => n.Op is ActivationOp { Activation.Kind: ActivationKind.HardSwish or ActivationKind.HardSigmoid }
            || n.Op is Conv { Activation.Kind: ActivationKind.HardSwish or ActivationKind.HardSigmoid });
        var actual = ReferenceInterpreter.Run(g, input);
        for (int i = 0; i < expected.Length; i++) Compare.Close(expected[i], actual[i], 1e-6);
    }

    private static Value HardSwishWith(GraphBuilder b, Value x, float three = 3f, float lo = 0f, float hi = 6f, float six = 6f, Value? other = null) =>
        b.Binary(BinaryKind.Div, b.Binary(BinaryKind.Mul, other ?? x, b.Activate(b.Binary(BinaryKind.Add, x, Scalar(b, three)), Activation.Clip(lo, hi))), Scalar(b, six));

    [Theory]
    [InlineData(3.001f, 0f, 6f, 6f)]
    [InlineData(3f, 0.001f, 6f, 6f)]
    [InlineData(3f, 0f, 6.5f, 6f)]
    [InlineData(3f, 0f, 6f, 5.99f)]
    [InlineData(3f, -1f, 6f, 6f)]
    public void OtherConstantsAreNotHardSwish(float three, float lo, float hi, float six) =>
        NotRecognized((b, x) => HardSwishWith(b, x, three, lo, hi, six));

    [Fact]
    public void GatingAnotherTensorIsNotHardSwish() =>
        NotRecognized((b, x) => HardSwishWith(b, x, other: b.Conv(x, 4, 1)));

    [Fact]
    public void SixAsTheNumeratorIsNotAScale() => NotRecognized((b, x) =>
        b.Binary(BinaryKind.Div, Scalar(b, 6f), b.Activate(b.Binary(BinaryKind.Add, x, Scalar(b, 3f)), Activation.Relu6)));

    [Fact]
    public void ConstantsThatAreNotOneRepeatedValueOrThatEnlargeTheTensorDoNotMatch()
    {
        NotRecognized((b, x) => b.Binary(BinaryKind.Div,
            b.Activate(b.Binary(BinaryKind.Add, x, b.Constant("three", new Tensor([3f, 3f, 3f, 3.5f], 1, 4, 1, 1))), Activation.Relu6), Scalar(b, 6f)));
        // x is [1,4,1,1] after pooling; a [1,4,6,6] tensor of threes would broadcast it up.
        NotRecognized((b, x) =>
        {
            var p = b.GlobalAveragePool(x);
            return b.Binary(BinaryKind.Div, b.Activate(b.Binary(BinaryKind.Add, p, b.Constant("three", new Tensor(Enumerable.Repeat(3f, 144).ToArray(), 1, 4, 6, 6))), Activation.Relu6), Scalar(b, 6f));
        });
    }

    /// <summary>A value the rewrite would delete but something else reads: nothing may disappear.</summary>
    [Theory]
    [InlineData("plus3")]
    [InlineData("clamped")]
    [InlineData("product")]
    [InlineData("relu")]
    public void IntermediatesWithOtherReadersAreKept(string shared)
    {
        var b = new GraphBuilder("shared", 3);
        var x = b.Conv(b.Input("x", 1, 4, 6, 6), 4, 3, bias: true);
        var plus3 = b.Binary(BinaryKind.Add, x, Scalar(b, 3f));
        var relu = b.Activate(plus3, Activation.Relu);
        var clamped = b.Activate(relu, Activation.Relu6);
        var product = b.Binary(BinaryKind.Mul, x, clamped);
        b.Output(b.Binary(BinaryKind.Div, product, Scalar(b, 6f)));
        var used = shared switch { "plus3" => plus3, "clamped" => clamped, "product" => product, _ => relu };
        b.Output(b.Binary(BinaryKind.Mul, used, used)); // another reader
        var g = b.Graph;
        var input = Tensor.Random(1, [1, 4, 6, 6], -6f, 6f);
        var expected = ReferenceInterpreter.Run(g, input);
        Assert.Equal(0, Optimizer.Run(g).HardActivationsRecognized);
        var actual = ReferenceInterpreter.Run(g, input);
        for (int i = 0; i < expected.Length; i++) Compare.Close(expected[i], actual[i], 1e-6);

        // The same value as a graph output is just as much in use.
        var b2 = new GraphBuilder("output", 3);
        var x2 = b2.Conv(b2.Input("x", 1, 4, 6, 6), 4, 3, bias: true);
        var clamped2 = b2.Activate(b2.Binary(BinaryKind.Add, x2, Scalar(b2, 3f)), Activation.Relu6);
        b2.Output(b2.Binary(BinaryKind.Div, b2.Binary(BinaryKind.Mul, x2, clamped2), Scalar(b2, 6f)));
        b2.Output(clamped2);
        Assert.Equal(0, Optimizer.Run(b2.Graph).HardActivationsRecognized);
    }
}
