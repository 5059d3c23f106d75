using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Tests.Onnx;

namespace MobileNetSharp.Tests.Runtime;

/// <summary>
/// Graphs with 3-D (and 1-D) ConvNd / PoolNd nodes through the compiled runtime, checked against the
/// reference interpreter, and exported to ONNX Runtime. Tolerance 1e-5 of the output scale: a handful
/// of fp32 layers of at most a few hundred products each.
/// </summary>
public class NdGraphTests
{
    private static int[] Ones(int rank) => Enumerable.Repeat(1, rank).ToArray();

    /// <summary>
    /// NCDHW: dilated conv + relu (fused), ceil-mode max pool, depthwise conv with SAME_UPPER (not dilated:
    /// ONNX Runtime refuses dilations with auto_pad SAME), average pool with pads counted.
    /// </summary>
    private static ModelGraph Volumetric(int batch = 2)
    {
        var b = new GraphBuilder("volumetric", 3);
        var x = b.Input("x", batch, 3, 7, 8, 6);
        var w1 = b.Constant("w1", Tensor.Random(1, [6, 3, 3, 3, 2], -0.5f, 0.5f));
        var b1 = b.Constant("b1", Tensor.Random(2, [6], -0.1f, 0.1f));
        var c1 = b.Add(new ConvNd([3, 3, 2], [1, 2, 1], [1, 0, 1, 1, 2, 0], [1, 1, 2]), "conv", x, w1, b1);
        var r1 = b.Activate(c1, Activation.Relu);
        var p1 = b.Add(new PoolNd(PoolKind.Max, [2, 2, 2], [2, 2, 2], new int[6], Ones(3), CeilMode: true), "maxpool", r1);
        var w2 = b.Constant("w2", Tensor.Random(3, [6, 1, 3, 2, 2], -0.5f, 0.5f));
        var c2 = b.Add(new ConvNd([3, 2, 2], [1, 1, 1], new int[6], Ones(3), Groups: 6, AutoPad: AutoPad.SameUpper), "dwconv", p1, w2);
        var p2 = b.Add(new PoolNd(PoolKind.Average, [2, 3, 2], [1, 2, 1], [1, 1, 0, 0, 1, 1], Ones(3), CountIncludePad: true), "avgpool", c2);
        b.Output(p2);
        b.Output(b.Flatten(b.GlobalAveragePool(p2)));
        return b.Graph;
    }

    /// <summary>NCW: the kernels take any number of spatial axes, though the ONNX importer maps 1-D to 2-D.</summary>
    private static ModelGraph Sequence()
    {
        var b = new GraphBuilder("sequence", 4);
        var x = b.Input("x", 2, 4, 21);
        var w = b.Constant("w", Tensor.Random(5, [8, 2, 5], -0.5f, 0.5f));
        var c = b.Add(new ConvNd([5], [2], [2, 1], [1], Groups: 2, Activation: Activation.HardSwish), "conv", x, w);
        b.Output(b.Add(new PoolNd(PoolKind.Average, [3], [2], [1, 1], [2], CeilMode: true), "pool", c));
        return b.Graph;
    }

    [Fact]
    public void CompiledGraphsMatchTheReferenceInterpreter()
    {
        foreach (var g in new[] { Volumetric(), Sequence() })
        {
            var x = Tensor.Random(9, g.Inputs[0].Shape);
            var expected = ReferenceInterpreter.Run(g, x);
            foreach (int threads in new[] { 1, 2 })
            {
                using var s = new InferenceSession(g, new SessionOptions { Threads = threads });
                var actual = s.Run(x);
                for (int i = 0; i < expected.Length; i++) Compare.Close(expected[i], actual[i], 1e-5, $"{g.Name} output {i}, {threads}t");
            }
        }
    }

    [Fact]
    public void ActivationFusesIntoConvNdAndRunsAllocateNothing()
    {
        using var s = new InferenceSession(Volumetric(), new SessionOptions { Threads = 2 });
        Assert.Equal(1, s.Optimizations!.ActivationsFused);
        Assert.Contains(s.OptimizedGraph.Nodes, n => n.Op is ConvNd { Activation.Kind: ActivationKind.Relu });
        Assert.Contains(s.Steps, step => step.Kernel == "ConvNd+Relu");
        Tensor[] inputs = [Tensor.Random(1, s.Inputs[0].Shape)];
        Tensor[] outputs = s.Outputs.Select(o => Tensor.Zeros(o.Shape)).ToArray();
        MobileNetSharp.Tests.Kernels.AllocationTests.AssertNoAllocation(() => s.Run(inputs, outputs), "3-D graph");
    }

    [Fact]
    public void OtherBatchSizesGiveTheSameImages()
    {
        using var s = new InferenceSession(Volumetric(batch: 2), new SessionOptions { Threads = 2 });
        var pair = Tensor.Random(4, s.Inputs[0].Shape);
        var both = s.Run(pair)[0];
        int inPer = pair.Length / 2, outPer = both.Length / 2;
        var one = new Tensor(pair.Floats.AsSpan(inPer, inPer).ToArray(), [1, .. pair.Shape[1..]]);
        var second = new Tensor(both.Floats.AsSpan(outPer, outPer).ToArray(), [1, .. both.Shape[1..]]);
        Compare.Close(second, s.Run(one)[0], 1e-6, "second image alone");
    }

    [Fact]
    public void ExportedGraphsRunIdenticallyInOnnxRuntimeAndReimport()
    {
        foreach (var g in new[] { Volumetric(), Sequence() })
        {
            var x = Tensor.Random(6, g.Inputs[0].Shape);
            var bytes = OnnxExporter.ToBytes(g);
            var ort = OrtRunner.Run(bytes, [new(g.Inputs[0].Name, x)]);
            using var s = new InferenceSession(g, new SessionOptions { Threads = 2 });
            var ours = s.Run(x);
            for (int i = 0; i < g.Outputs.Count; i++) Compare.Close(ort[g.Outputs[i].Name], ours[i], 1e-5, $"{g.Name} {g.Outputs[i].Name}");

            var back = OnnxImporter.Load(bytes);
            Assert.Equal(CostModel.Analyze(g).Macs, CostModel.Analyze(back).Macs);
            Assert.Equal(CostModel.Analyze(g).Params, CostModel.Analyze(back).Params);
        }
        // 3-D comes back as the N-D ops; 1-D as the importer's 2-D form.
        var volumetric = OnnxImporter.Load(OnnxExporter.ToBytes(Volumetric()));
        Assert.Equal(2, volumetric.Nodes.Count(n => n.Op is ConvNd));
        Assert.Equal(2, volumetric.Nodes.Count(n => n.Op is PoolNd));
    }

    [Fact]
    public void CostsCountEveryKernelAxis()
    {
        var g = Volumetric();
        var layers = CostModel.Analyze(g).Layers;
        var conv = layers.Single(l => l.Name == "conv");
        Assert.Equal(Shape.Size(conv.OutputShape) * 3 * 3 * 2 * 3, conv.Macs);
        Assert.Equal(6 * 3 * 3 * 3 * 2 + 6, conv.Params);
        Assert.Equal(LayerKind.StandardConv, conv.Kind);
        var dw = layers.Single(l => l.Name == "dwconv");
        Assert.Equal(Shape.Size(dw.OutputShape) * 3 * 2 * 2, dw.Macs);
        Assert.Equal(LayerKind.Depthwise, dw.Kind);
        Assert.Equal("Conv 3x3x2/s1 +Relu", new ConvNd([3, 3, 2], [1, 2, 1], new int[6], Ones(3), Activation: Activation.Relu).Describe());
    }

    [Fact]
    public void ShapeErrorsNameTheProblem()
    {
        var b = new GraphBuilder("bad");
        var x = b.Input("x", 1, 4, 5, 5, 5);
        var w = b.Constant("w", Tensor.Zeros(2, 4, 3, 3, 3));
        Assert.Contains("2-D windows are the Conv and Pool ops",
            Assert.Throws<GraphException>(() => b.Add(new PoolNd(PoolKind.Max, [2, 2], [1, 1], new int[4], Ones(2)), "pool", x)).Message);
        Assert.Contains("does not match kernel",
            Assert.Throws<GraphException>(() => b.Add(new ConvNd([3, 3, 2], Ones(3), new int[6], Ones(3)), "conv", x, w)).Message);
        Assert.Contains("too small",
            Assert.Throws<GraphException>(() => b.Add(new PoolNd(PoolKind.Max, [6, 6, 6], Ones(3), new int[6], Ones(3)), "pool", x)).Message);
        Assert.Contains("groups=3",
            Assert.Throws<GraphException>(() => b.Add(new ConvNd([3, 3, 3], Ones(3), new int[6], Ones(3), Groups: 3), "conv", x, w)).Message);
    }
}
