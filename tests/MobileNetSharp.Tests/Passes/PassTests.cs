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
