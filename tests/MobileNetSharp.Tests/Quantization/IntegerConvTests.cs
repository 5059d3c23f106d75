using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Tests.Onnx;
using Xunit.Abstractions;

namespace MobileNetSharp.Tests.Quantization;

/// <summary>
/// QDQ convolutions computed in integers (FuseQuantizedOps -> QLinearConv -> QuantizedGemm) against the same file run
/// as written (QuantizeLinear/DequantizeLinear around float kernels) and against ONNX Runtime's integer kernels.
/// </summary>
public class IntegerConvTests(ITestOutputHelper output)
{
    /// <summary>x -> Q -> DQ -> Conv(1x1, int8 weights through DQ, int32 bias through DQ) -> [Clip] -> Q -> output codes (uint8).</summary>
    /// <param name="pad">Top and left padding.</param>
    /// <param name="padEnd">Bottom and right padding, when other than <paramref name="pad"/> (TensorFlow's SAME puts the odd one there).</param>
    private static byte[] Model(int c, int m, bool perChannel, bool relu6, int weightMax = 63, float biasScaleFactor = 1f, int kernel = 1,
        bool depthwise = false, int stride = 1, int pad = 0, int? padEnd = null, bool hardSwish = false)
    {
        int end = padEnd ?? pad;
        var rng = new Random(c * 31 + m);
        int inPerGroup = depthwise ? 1 : c;
        var w = new sbyte[m * inPerGroup * kernel * kernel];
        for (int i = 0; i < w.Length; i++) w[i] = (sbyte)rng.Next(-weightMax, weightMax + 1);
        float xs = 0.04f;
        var ws = Enumerable.Range(0, perChannel ? m : 1).Select(_ => 0.001f + 0.01f * rng.NextSingle()).ToArray();
        var bias = Enumerable.Range(0, m).Select(_ => rng.Next(-20000, 20000)).ToArray();
        var bs = Enumerable.Range(0, m).Select(j => xs * ws[perChannel ? j : 0] * biasScaleFactor).ToArray();
        int oh = (9 + pad + end - kernel) / stride + 1, ow = (7 + pad + end - kernel) / stride + 1;
        var b = new OnnxModelBuilder(hardSwish ? 14 : 13).Input("x", "N", c, 9, 7).TypedOutput("y", 2, "N", m, oh, ow)
            .Initializer("xs", new Tensor([xs], [])).Initializer("xz", new Tensor(DataType.UInt8, [], new byte[] { 120 }))
            .Initializer("w", new Tensor(DataType.Int8, [m, inPerGroup, kernel, kernel], w))
            .Initializer("ws", perChannel ? new Tensor(ws, m) : new Tensor(ws, [])).Initializer("wz", perChannel ? new Tensor(DataType.Int8, [m], new sbyte[m]) : new Tensor(DataType.Int8, [], new sbyte[1]))
            .Initializer("b", new Tensor(DataType.Int32, [m], bias)).Initializer("bs", new Tensor(bs, m)).Initializer("bz", new Tensor(DataType.Int32, [m], new int[m]))
            .Initializer("ys", new Tensor([relu6 ? 6f / 255 : 0.05f], [])).Initializer("yz", new Tensor(DataType.UInt8, [], new byte[] { (byte)(relu6 ? 0 : 110) }))
            .Node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], "qx")
            .Node("DequantizeLinear", ["xq", "xs", "xz"], ["xf"], "dqx")
            .Node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], "dqw", perChannel ? [("axis", 0L)] : [])
            .Node("DequantizeLinear", ["b", "bs", "bz"], ["bf"], "dqb", [("axis", 0L)])
            .Node("Conv", ["xf", "wf", "bf"], [relu6 || hardSwish ? "yc" : "yf"], "conv", ("group", (long)(depthwise ? c : 1)),
                ("strides", new long[] { stride, stride }), ("pads", new long[] { pad, pad, end, end }));
        if (hardSwish) b.Node("HardSwish", ["yc"], ["yf"], "hswish");
        else if (relu6)
            b.Initializer("lo", new Tensor([0f], [])).Initializer("hi", new Tensor([6f], [])).Node("Clip", ["yc", "lo", "hi"], ["yf"], "relu6");
        b.Node("QuantizeLinear", ["yf", "ys", "yz"], ["y"], "qy");
        return b.ToBytes();
    }

    private static byte[] Codes(InferenceSession s, Tensor x) => (byte[])s.Run(x)[0].Data;

    /// <summary>The model, a random input [batch, c, 9, 7], and the output codes of the float simulation and of ONNX Runtime.</summary>
    private static (ModelGraph Graph, Tensor X, byte[] Simulated, byte[] Ort) References(byte[] bytes, int c, int batch, int seed)
    {
        var g = OnnxImporter.Load(bytes, new OnnxImportOptions { DefaultBatch = batch });
        var x = Tensor.Random(seed, [batch, c, 9, 7], -5, 5);
        using var simulated = new InferenceSession(g, new SessionOptions { IntegerKernels = false });
        Assert.DoesNotContain(simulated.Steps, s => s.Kernel.StartsWith('q'));
        return (g, x, Codes(simulated, x), (byte[])OrtRunner.Run(bytes, [new("x", x)])["y"].Data);
    }

    [Theory]
    [InlineData(16, 24, true, true, 1, false, 1, 0)]
    [InlineData(17, 33, true, false, 1, false, 1, 0)]
    [InlineData(96, 40, false, true, 1, false, 1, 0)]
    [InlineData(3, 1, false, false, 1, false, 1, 0)]
    [InlineData(32, 32, true, true, 3, true, 1, 1)]
    [InlineData(19, 19, true, false, 3, true, 2, 1)]
    [InlineData(40, 40, false, true, 5, true, 2, 2)]
    [InlineData(8, 8, true, true, 5, true, 1, 0)]
    [InlineData(3, 32, true, true, 3, false, 2, 1)]   // the stem: unfolded into the integer GEMM
    [InlineData(8, 8, true, false, 3, false, 1, 1)]
    [InlineData(5, 7, false, true, 5, false, 2, 2)]
    // Asymmetric pads through the fusion pass (TF SAME: the extra row and column at the bottom and right), odd channel
    // counts off every vector width, 5x5 and 3x3 at stride 2.
    [InlineData(37, 37, true, true, 5, true, 2, 1, 2)]
    [InlineData(19, 19, true, false, 5, true, 2, 2, 1)]
    [InlineData(67, 67, true, true, 3, true, 2, 0, 1)]
    [InlineData(3, 16, true, true, 3, false, 2, 0, 1)]  // a TF SAME stem
    public void IntegerPathAgreesWithTheSimulationAndOnnxRuntime(int c, int m, bool perChannel, bool relu6, int kernel, bool depthwise, int stride, int pad,
        int? padEnd = null)
    {
        var bytes = Model(c, m, perChannel, relu6, kernel: kernel, depthwise: depthwise, stride: stride, pad: pad, padEnd: padEnd);
        var (g, x, reference, ort) = References(bytes, c, batch: 3, seed: c + m);
        foreach (var isa in Isa.Supported)
            foreach (int threads in new[] { 1, 2 })
            {
                using var s = new InferenceSession(g, new SessionOptions { Isa = isa, Threads = threads });
                Assert.Equal(1, s.Optimizations!.QuantizedOpsFused);
                string expectedKernel = depthwise ? $"qdw{kernel}x{kernel}s{stride}" : kernel == 1 && stride == 1 ? "qgemm-1x1" : $"qconv{kernel}x{kernel}s{stride}";
                Assert.Contains(s.Steps, st => st.Kernel == expectedKernel);
                var ours = Codes(s, x);
                int offSim = 0, offOrt = 0;
                for (int i = 0; i < ours.Length; i++)
                {
                    // The simulation sums float products, the integer path exact integers: a tie can round either way.
                    Assert.True(Math.Abs(ours[i] - reference[i]) <= 1, $"{isa} t{threads} [{i}]: integer {ours[i]}, simulated {reference[i]}");
                    if (ours[i] != reference[i]) offSim++;
                    if (ours[i] != ort[i]) offOrt++;
                }
                output.WriteLine($"{isa} t{threads}: {offSim} of {ours.Length} codes differ from the simulation by one step");
                Assert.True(offSim <= ours.Length / 50, $"{isa} t{threads}: {offSim} of {ours.Length} codes differ from the simulation");
                Assert.True(offOrt == 0, $"{isa} t{threads}: {offOrt} of {ours.Length} codes differ from ONNX Runtime's integer kernels");
            }
    }

    /// <summary>
    /// Hard-swish (MobileNetV3) between the convolution and the output quantization: computed in float in the GEMM's
    /// epilogue on the exact integer sum. ONNX Runtime and the simulation run it as float Conv -> HardSwish ->
    /// QuantizeLinear, so both may differ from ours by one code where a value falls near a rounding tie. Depthwise
    /// layers (V3's 3x3 and 5x5) take the same epilogue in their own kernel.
    /// </summary>
    [Theory]
    [InlineData(16, 24, true, 1, false, 1, 0)]
    [InlineData(37, 19, false, 1, false, 1, 0)]
    [InlineData(3, 16, true, 3, false, 2, 1)]   // V3's stem
    [InlineData(24, 24, true, 3, true, 1, 1)]   // depthwise
    [InlineData(37, 37, true, 5, true, 2, 2)]   // depthwise 5x5, stride 2, channels off every vector width
    public void HardSwishRunsInTheGemmEpilogue(int c, int m, bool perChannel, int kernel, bool depthwise, int stride, int pad)
    {
        var bytes = Model(c, m, perChannel, relu6: false, kernel: kernel, depthwise: depthwise, stride: stride, pad: pad, hardSwish: true);
        var (g, x, reference, ort) = References(bytes, c, batch: 2, seed: c * 7 + m);
        foreach (var isa in Isa.Supported)
            foreach (int threads in new[] { 1, 2 })
            {
                using var s = new InferenceSession(g, new SessionOptions { Isa = isa, Threads = threads });
                Assert.Equal(1, s.Optimizations!.QuantizedOpsFused);
                var ours = Codes(s, x);
                int off = 0, distinct = ours.Distinct().Count();
                for (int i = 0; i < ours.Length; i++)
                {
                    Assert.True(Math.Abs(ours[i] - reference[i]) <= 1, $"{isa} t{threads} [{i}]: integer {ours[i]}, simulated {reference[i]}");
                    Assert.True(Math.Abs(ours[i] - ort[i]) <= 1, $"{isa} t{threads} [{i}]: integer {ours[i]}, ONNX Runtime {ort[i]}");
                    if (ours[i] != reference[i]) off++;
                }
                output.WriteLine($"{isa} t{threads}: {off} of {ours.Length} codes one step from the simulation, {distinct} distinct codes");
                Assert.True(off <= ours.Length / 50, $"{isa} t{threads}: {off} of {ours.Length} codes differ from the simulation");
                Assert.True(distinct > 20, "the outputs should cover hard-swish's curve, not sit at one code");
            }
    }

    /// <summary>A fused graph exports back to standard QDQ ONNX (QdqExport) that ONNX Runtime runs to the same codes.</summary>
    [Theory]
    [InlineData(16, 24, 1, false)]  // 1x1 + ReLU6
    [InlineData(19, 19, 3, true)]   // depthwise
    public void FusedConvExportsAsQdqThatOnnxRuntimeRuns(int c, int m, int kernel, bool depthwise)
    {
        var bytes = Model(c, m, perChannel: true, relu6: true, kernel: kernel, depthwise: depthwise, pad: kernel / 2);
        var g = OnnxImporter.Load(bytes, new OnnxImportOptions { DefaultBatch = 2 });
        var fused = g.Clone();
        Assert.Equal(1, MobileNetSharp.Passes.Optimizer.Run(fused).QuantizedOpsFused); // the whole pipeline: the ReLU6 folds into the conv first
        Assert.Contains(fused.Nodes, n => n.Op is QLinearConv);
        var x = Tensor.Random(3, [2, c, 9, 7], -5, 5);
        var before = (byte[])OrtRunner.Run(bytes, [new("x", x)])["y"].Data;
        var after = (byte[])OrtRunner.Run(OnnxExporter.ToBytes(fused), [new(g.Inputs[0].Name, x)])[g.Outputs[0].Name].Data;
        Assert.Equal(before, after);
    }

    [Fact]
    public void UnsupportedPatternsKeepTheFloatPath()
    {
        // A bias at another scale than x_scale * w_scale, and a depthwise convolution with two outputs per channel (a
        // grouped one): both stay float, and give what the QDQ nodes define.
        foreach (var bytes in new[] { Model(8, 8, true, true, biasScaleFactor: 2f), Model(8, 16, true, true, kernel: 3, depthwise: true, pad: 1) })
        {
            var g = OnnxImporter.Load(bytes, new OnnxImportOptions { DefaultBatch = 1 });
            using var s = new InferenceSession(g);
            using var simulated = new InferenceSession(g, new SessionOptions { IntegerKernels = false });
            Assert.Equal(0, s.Optimizations!.QuantizedOpsFused);
            Assert.DoesNotContain(s.Steps, st => st.Kernel.StartsWith('q'));
            var x = Tensor.Random(1, [1, 8, 9, 7]);
            Assert.Equal((byte[])simulated.Run(x)[0].Data, (byte[])s.Run(x)[0].Data);
        }
    }

    [Fact]
    public void ImportedQdqFileExportsWithItsIntegerWeights()
    {
        // The importer folds DequantizeLinear(int8 weights) into float weights; the exporter writes the integers back.
        var bytes = Model(16, 24, true, true);
        var exported = OnnxExporter.ToBytes(OnnxImporter.Load(bytes, new OnnxImportOptions { DefaultBatch = 2 }));
        var proto = MobileNetSharp.Onnx.Proto.ModelProto.Parser.ParseFrom(exported);
        Assert.Contains(proto.Graph.Initializer, t => t.DataType == (int)DataType.Int8 && t.Dims.SequenceEqual(new long[] { 24, 16, 1, 1 }));
        Assert.Contains(proto.Graph.Initializer, t => t.DataType == (int)DataType.Int32 && t.Dims.SequenceEqual(new long[] { 24 }));
        Assert.DoesNotContain(proto.Graph.Initializer, t => t.DataType == (int)DataType.Float32 && t.Dims.Count == 4);
        var x = Tensor.Random(5, [2, 16, 9, 7], -5, 5);
        Assert.Equal((byte[])OrtRunner.Run(bytes, [new("x", x)])["y"].Data, (byte[])OrtRunner.Run(exported, [new("x", x)])["y"].Data);
    }

    [Fact]
    public void FusedGraphExportsAsStandardQdqThatOnnxRuntimeRuns()
    {
        var bytes = Model(16, 24, true, true);
        var g = OnnxImporter.Load(bytes, new OnnxImportOptions { DefaultBatch = 2 });
        var optimized = g.Clone();
        MobileNetSharp.Passes.Optimizer.Run(optimized);
        Assert.Contains(optimized.Nodes, n => n.Op is QLinearConv);
        var exported = OnnxExporter.ToBytes(optimized);
        var x = Tensor.Random(4, [2, 16, 9, 7], -5, 5);
        Assert.Equal((byte[])OrtRunner.Run(bytes, [new("x", x)])["y"].Data, (byte[])OrtRunner.Run(exported, [new("x", x)])["y"].Data);
    }
}

/// <summary>QLinearAdd (FuseQuantizedOps) against the QDQ nodes it replaces: bit-identical, with and without ReLU, every ISA level.</summary>
public class QuantizedAddTests
{
    private static byte[] Model(bool relu, bool same)
    {
        var b = new OnnxModelBuilder(13).Input("a", 2, 5, 6, 7).Input("b", 2, 5, 6, 7).TypedOutput("y", 2, 2, 5, 6, 7)
            .Initializer("as", new Tensor([0.037f], [])).Initializer("az", new Tensor(DataType.UInt8, [], new byte[] { 131 }))
            .Initializer("bs", new Tensor([0.021f], [])).Initializer("bz", new Tensor(DataType.UInt8, [], new byte[] { 77 }))
            .Initializer("ys", new Tensor([0.05f], [])).Initializer("yz", new Tensor(DataType.UInt8, [], new byte[] { (byte)(relu ? 0 : 128) }))
            .Node("QuantizeLinear", ["a", "as", "az"], ["aq"]).Node("DequantizeLinear", ["aq", "as", "az"], ["af"])
            .Node("QuantizeLinear", ["b", "bs", "bz"], ["bq"]).Node("DequantizeLinear", ["bq", "bs", "bz"], ["bf"])
            .Node("Add", ["af", same ? "af" : "bf"], [relu ? "s" : "sum"], "add");
        if (relu) b.Node("Relu", ["s"], ["sum"]);
        b.Node("QuantizeLinear", ["sum", "ys", "yz"], ["y"]);
        return b.ToBytes();
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void BitIdenticalToTheQdqNodes(bool relu, bool same)
    {
        var g = OnnxImporter.Load(Model(relu, same));
        var a = Tensor.Random(1, [2, 5, 6, 7], -4, 4);
        var b = Tensor.Random(2, [2, 5, 6, 7], -3, 3);
        using var simulated = new InferenceSession(g, new SessionOptions { IntegerKernels = false });
        var expected = (byte[])simulated.Run(a, b)[0].Data;
        foreach (var isa in Isa.Supported)
        {
            using var s = new InferenceSession(g, new SessionOptions { Isa = isa });
            Assert.Contains(s.Steps, st => st.Kernel == "qadd");
            Assert.Equal(expected, (byte[])s.Run(a, b)[0].Data);
        }
    }
}
