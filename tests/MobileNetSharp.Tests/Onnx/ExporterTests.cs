using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Models;
using MobileNetSharp.Onnx;
using MobileNetSharp.Passes;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Onnx;

/// <summary>
/// Every graph op and fused epilogue written as standard ONNX: ORT must compute what our session computes
/// (tolerance 1e-5 of the output scale: a few fp32 layers), and reading the file back must give the same costs.
/// </summary>
public class ExporterTests
{
    private static void AssertOrtAgrees(ModelGraph graph, double tolerance = 1e-5)
    {
        var bytes = OnnxExporter.ToBytes(graph);
        var inputs = graph.Inputs.Select((v, i) => Tensor.Random(11 + i, v.Shape, -2f, 2f)).ToArray();
        var expected = OrtRunner.Run(bytes, graph.Inputs.Select((v, i) => new KeyValuePair<string, Tensor>(v.Name, inputs[i])));
        using var session = new InferenceSession(graph, new SessionOptions { Threads = 1 });
        var actual = session.Run(inputs);
        for (int i = 0; i < graph.Outputs.Count; i++) Compare.Close(expected[graph.Outputs[i].Name], actual[i], tolerance, graph.Outputs[i].Name);

        var back = OnnxImporter.Load(bytes);
        Assert.Equal(CostModel.Analyze(graph).Params, CostModel.Analyze(back).Params);
        Assert.Equal(CostModel.Analyze(graph).Macs, CostModel.Analyze(back).Macs);
    }

    private static readonly Activation[] Activations =
    [
        Activation.Relu, Activation.Relu6, Activation.Clip(-0.5f, 1.5f), Activation.HardSwish, new(ActivationKind.HardSwish, 0.25f, 0.4f),
        Activation.HardSigmoid(), Activation.Sigmoid, Activation.Silu,
    ];

    public static TheoryData<int> ActivationIndices() => new(Enumerable.Range(0, Activations.Length));

    /// <summary>One activation fused into a conv with residual, a Gemm, a binary op, and standing alone.</summary>
    [Theory]
    [MemberData(nameof(ActivationIndices))]
    public void FusedEpiloguesBecomeStandardNodes(int index)
    {
        var act = Activations[index];
        var b = new GraphBuilder("epilogues", 5);
        var x = b.Input("x", 2, 4, 6, 6);
        var c = b.Conv(x, 4, 3, bias: true);
        var conv = c.Producer!;
        conv.Op = ((Conv)conv.Op) with { Activation = act };
        conv.Inputs = [.. conv.Inputs, x]; // residual
        var m = b.Add(new BinaryOp(BinaryKind.Mul, act), "mul", c, x);
        var s = b.Activate(m, act);
        var g = b.Linear(b.Flatten(b.GlobalAveragePool(s)), 3);
        g.Producer!.Op = ((Gemm)g.Producer.Op) with { Activation = act, Alpha = 0.5f, Beta = 2f };
        b.Output(g);
        b.Output(s);
        AssertOrtAgrees(b.Graph);
    }

    [Fact]
    public void PoolingPaddingAndAxisOps()
    {
        var b = new GraphBuilder("ops", 7);
        var x = b.Input("x", 1, 6, 9, 9);
        var y = b.Input("y", 1, 6, 5, 5);
        var p1 = b.Add(new Pool(PoolKind.Max, 3, 3, 2, 2, 1, 0, 1, 1, CeilMode: true), "maxpool", x);
        var p2 = b.Add(new Pool(PoolKind.Average, 3, 3, 2, 2, CountIncludePad: true, AutoPad: AutoPad.SameUpper), "avgpool", x);
        var p3 = b.Add(new Pool(PoolKind.Average, 2, 2, 1, 1, 0, 1, 0, 0), "avgpool_pads", y);
        var cat = b.Add(new Concat(1), "concat", p1, p2);
        var padded = b.Add(new Pad(PadMode.Reflect, [0, 0, 1, 0, 0, 0, 0, 2]), "pad", cat);
        var edge = b.Add(new Pad(PadMode.Edge, [0, 0, 0, 1, 0, 0, 1, 0]), "pad_edge", p3);
        var constant = b.Add(new Pad(PadMode.Constant, [0, 1, 0, 0, 0, 0, 0, 0], 0.5f), "pad_const", edge);
        var sliced = b.Add(new Slice([1, 0], [-1, 100], [1, 3], [2, 1]), "slice", padded);
        var t = b.Add(new Transpose([0, 2, 3, 1]), "transpose", sliced);
        var split = new Split(3, [2, 3]);
        var sx = new Value("s0", DataType.Float32, []);
        var sy = new Value("s1", DataType.Float32, []);
        var node = new Node("split", split, [t], [sx, sy]);
        var shapes = split.InferShapes(node);
        (sx.Shape, sy.Shape) = (shapes[0], shapes[1]);
        b.Graph.Nodes.Add(node);
        var r1 = b.Add(new Reduce(ReduceKind.Mean, [1, 2], KeepDims: false), "mean", sx);
        var r2 = b.Add(new Reduce(ReduceKind.Sum, [-1]), "sum", sy);
        var r3 = b.Add(new Reduce(ReduceKind.Max, null), "max", constant);
        var r4 = b.Add(new Reduce(ReduceKind.Min, [3], KeepDims: false), "min", constant);
        var soft = b.Add(new Softmax(1, Legacy2D: true), "legacy_softmax", constant);
        var logsoft = b.Add(new Softmax(-1, Log: true), "log_softmax", r4);
        var sq = b.Add(new Squeeze([0]), "squeeze", b.Add(new Unsqueeze([0, 3]), "unsqueeze", r1));
        var mm = b.Add(new Graph.MatMul(), "matmul", sx, b.Constant("w", Tensor.Random(3, [2, 5])));
        var rs = b.Add(new Reshape([0, -1]), "reshape", mm);
        var gmax = b.Add(new GlobalPool(PoolKind.Max), "gmax", x);
        var ident = b.Add(new Identity(), "identity", gmax);
        var pow = b.Add(new BinaryOp(BinaryKind.Pow), "pow", b.Add(new ActivationOp(Activation.Sigmoid), "sig", ident), b.Constant("two", new Tensor([2f], 1)));
        var mx = b.Add(new BinaryOp(BinaryKind.Max), "maximum", pow, b.Constant("half", new Tensor([0.5f], [])));
        var mn = b.Add(new BinaryOp(BinaryKind.Min), "minimum", mx, b.Constant("q", new Tensor([0.7f], [])));
        var bn = b.BatchNorm(b.Add(new BinaryOp(BinaryKind.Sub), "sub", b.Add(new BinaryOp(BinaryKind.Div), "div", x, b.Constant("three", new Tensor([3f], []))), mn));
        foreach (var o in new[] { r2, r3, soft, logsoft, sq, rs, bn }) b.Output(o);
        AssertOrtAgrees(b.Graph);
    }

    [Fact]
    public void WrapPaddingAndDilatedAveragePoolNeedOpset19()
    {
        var b = new GraphBuilder("opset19", 1);
        var x = b.Input("x", 1, 2, 7, 7);
        var y = b.Add(new Pool(PoolKind.Average, 2, 2, 1, 1, DilationH: 2, DilationW: 2), "dilated", b.Add(new Pad(PadMode.Wrap, [0, 0, 2, 1, 0, 0, 1, 2]), "wrap", x));
        b.Output(y);
        var model = MobileNetSharp.Onnx.Proto.ModelProto.Parser.ParseFrom(OnnxExporter.ToBytes(b.Graph));
        Assert.Equal(19, model.OpsetImport[0].Version);
        AssertOrtAgrees(b.Graph);
    }

    /// <summary>The optimizer's output (BN folded, activations and residual adds fused) exports to what the session runs.</summary>
    [Theory]
    [InlineData("mobilenet_v2")]
    [InlineData("mobilenet_v3_large")]
    [InlineData("efficientnet_lite0")]
    public void OptimizedGraphsExport(string arch)
    {
        var graph = ModelZoo.Create(arch, new ModelOptions(0.5f, 96, Classes: 10));
        var optimized = graph.Clone();
        var report = Optimizer.Run(optimized);
        Assert.True(report.ResidualsFused + report.ActivationsFused > 0);
        Assert.Contains(optimized.Nodes, n => n.Op is Conv { Activation.IsNone: false });
        AssertOrtAgrees(optimized, 1e-4);
    }

    [Fact]
    public void ConstantOutputsAndMetadataAreWritten()
    {
        var b = new GraphBuilder("consts", 1);
        var x = b.Input("x", 1, 3);
        b.Output(b.Add(new ActivationOp(Activation.Relu), "relu", x));
        b.Graph.Outputs.Add(Value.FromConstant("table", new Tensor([1f, 2f, 3f], 3)));
        b.Graph.Metadata["note"] = "kept";
        var bytes = OnnxExporter.ToBytes(b.Graph);
        var ort = OrtRunner.Run(bytes, [new("x", new Tensor([-1f, 0f, 2f], 1, 3))]);
        Assert.Equal([1f, 2f, 3f], ort["table"].Floats);
        var back = OnnxImporter.Load(bytes);
        Assert.Equal("kept", back.Metadata["note"]);
        Assert.Equal([1f, 2f, 3f], back.Outputs[1].Constant!.Floats);
    }

    [Fact]
    public void DilatedSamePaddingIsWrittenResolvedBecauseOrtRefusesThePair()
    {
        var b = new GraphBuilder("dilated_same", 1);
        var x = b.Input("x", 1, 3, 11, 9);
        var w = b.Constant("w", Tensor.Random(2, [4, 3, 3, 3]));
        var y = b.Add(new Conv(3, 3, 2, 2, DilationH: 2, DilationW: 3, AutoPad: AutoPad.SameUpper), "conv", x, w);
        b.Output(b.Add(new Pool(PoolKind.Max, 2, 2, 1, 1, DilationH: 2, DilationW: 2, AutoPad: AutoPad.SameLower), "pool", y));
        AssertOrtAgrees(b.Graph);
    }
}
