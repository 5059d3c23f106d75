using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Onnx;
using MobileNetSharp.Passes;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Tests.Onnx;

namespace MobileNetSharp.Tests.Quantization;

/// <summary>
/// QDQ fully connected layers computed in integers (FuseQuantizedOps -> QGemm -> QuantizedGemm): DequantizeLinear ->
/// Gemm or MatMul by int8 weights, to float logits or through a QuantizeLinear to codes, against the same file run as
/// written (float kernels on dequantized values) and against ONNX Runtime.
/// </summary>
public class IntegerGemmTests
{
    private const int K = 37, N = 21, Batch = 3;

    /// <summary>x [N, K] -> Q -> DQ -> Gemm (int8 weights and int32 bias through DQ) or MatMul -> [activation -> Q] -> y.</summary>
    private static byte[] Model(bool transB, bool perChannel, bool matMul = false, string? activation = null, bool quantizedOutput = false, int weightMax = 127)
    {
        var rng = new Random((transB ? 1 : 0) + (perChannel ? 2 : 0) + (matMul ? 4 : 0) + (quantizedOutput ? 8 : 0));
        var w = new sbyte[K * N];
        for (int i = 0; i < w.Length; i++) w[i] = (sbyte)rng.Next(-weightMax, weightMax + 1);
        float xs = 0.03f;
        var ws = Enumerable.Range(0, perChannel ? N : 1).Select(_ => 0.002f + 0.01f * rng.NextSingle()).ToArray();
        var bias = Enumerable.Range(0, N).Select(_ => rng.Next(-20000, 20000)).ToArray();
        var bs = Enumerable.Range(0, N).Select(j => xs * ws[perChannel ? j : 0]).ToArray();
        int[] wShape = transB ? [N, K] : [K, N];
        var b = new OnnxModelBuilder(14).Input("x", "N", K)
            .Initializer("xs", new Tensor([xs], [])).Initializer("xz", new Tensor(DataType.UInt8, [], new byte[] { 131 }))
            .Initializer("w", new Tensor(DataType.Int8, wShape, w))
            .Initializer("ws", perChannel ? new Tensor(ws, N) : new Tensor(ws, [])).Initializer("wz", perChannel ? new Tensor(DataType.Int8, [N], new sbyte[N]) : new Tensor(DataType.Int8, [], new sbyte[1]))
            .Initializer("b", new Tensor(DataType.Int32, [N], bias)).Initializer("bs", new Tensor(bs, N)).Initializer("bz", new Tensor(DataType.Int32, [N], new int[N]))
            .Node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], "qx")
            .Node("DequantizeLinear", ["xq", "xs", "xz"], ["xf"], "dqx")
            .Node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], "dqw", perChannel ? [("axis", transB ? 0L : 1L)] : []);
        string raw = activation is null ? (quantizedOutput ? "yf" : "y") : "yg";
        if (matMul) b.Node("MatMul", ["xf", "wf"], [raw], "fc");
        else b.Node("DequantizeLinear", ["b", "bs", "bz"], ["bf"], "dqb", [("axis", 0L)]).Node("Gemm", ["xf", "wf", "bf"], [raw], "fc", ("transB", transB ? 1L : 0L));
        if (activation is not null) b.Node(activation, ["yg"], [quantizedOutput ? "yf" : "y"], "act");
        if (quantizedOutput)
            b.Initializer("ys", new Tensor([0.09f], [])).Initializer("yz", new Tensor(DataType.UInt8, [], new byte[] { 100 }))
                .Node("QuantizeLinear", ["yf", "ys", "yz"], ["y"], "qy").TypedOutput("y", 2, "N", N);
        else b.Output("y", "N", N);
        return b.ToBytes();
    }

    [Theory]
    [InlineData(true, true, false)]    // PyTorch Linear: [N, K] weights, per output channel
    [InlineData(false, true, false)]   // [K, N], per column
    [InlineData(true, false, false)]   // per tensor
    [InlineData(false, true, true)]    // 2-D MatMul, no bias
    public void FloatLogitsAgreeWithTheSimulationAndOnnxRuntime(bool transB, bool perChannel, bool matMul)
    {
        foreach (int weightMax in new[] { 127, 64 }) // the int16-pair and the byte-quad kernels
        {
            var bytes = Model(transB, perChannel, matMul, weightMax: weightMax);
            var g = OnnxImporter.Load(bytes, new OnnxImportOptions { DefaultBatch = Batch });
            var x = Tensor.Random(5, [Batch, K], -3, 3);
            using var simulated = new InferenceSession(g, new SessionOptions { IntegerKernels = false });
            float[] expected = simulated.Run(x)[0].Floats;
            float[] ort = OrtRunner.Run(bytes, [new("x", x)])["y"].Floats;
            float scale = expected.Max(MathF.Abs);
            foreach (var isa in Isa.Supported)
                foreach (int threads in new[] { 1, 2 })
                {
                    using var s = new InferenceSession(g, new SessionOptions { Isa = isa, Threads = threads });
                    Assert.Equal(1, s.Optimizations!.QuantizedOpsFused);
                    Assert.Contains(s.Steps, st => st.Kernel == "qfc");
                    float[] ours = s.Run(x)[0].Floats;
                    for (int i = 0; i < ours.Length; i++)
                    {
                        // One rounding of an exact sum against float sums of dequantized products: float rounding apart.
                        Assert.True(Math.Abs(ours[i] - expected[i]) <= 1e-5f * scale, $"w{weightMax} {isa} t{threads} [{i}]: integer {ours[i]}, simulated {expected[i]}");
                        // ORT's AVX2 u8s8 kernel saturates its int16 pair sums on full-range weights (Int8GemmTests has the
                        // numbers): it is compared on 7-bit weights only, where it is exact.
                        if (weightMax <= 64)
                            Assert.True(Math.Abs(ours[i] - ort[i]) <= 1e-5f * scale, $"w{weightMax} {isa} t{threads} [{i}]: integer {ours[i]}, ORT {ort[i]}");
                    }
                }
        }
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Relu")]
    [InlineData("HardSwish")] // MobileNetV3's head: the epilogue's float hard-swish
    public void QuantizedOutputAgreesWithinOneCode(string? activation)
    {
        var bytes = Model(transB: true, perChannel: true, activation: activation, quantizedOutput: true, weightMax: 64);
        var g = OnnxImporter.Load(bytes, new OnnxImportOptions { DefaultBatch = Batch });
        var x = Tensor.Random(6, [Batch, K], -3, 3);
        using var simulated = new InferenceSession(g, new SessionOptions { IntegerKernels = false });
        var expected = (byte[])simulated.Run(x)[0].Data;
        var ort = (byte[])OrtRunner.Run(bytes, [new("x", x)])["y"].Data;
        Assert.True(expected.Distinct().Count() > 10, "the output scale clamps almost everything");
        foreach (var isa in Isa.Supported)
        {
            using var s = new InferenceSession(g, new SessionOptions { Isa = isa });
            Assert.Contains(s.Steps, st => st.Kernel == "qfc");
            var ours = (byte[])s.Run(x)[0].Data;
            for (int i = 0; i < ours.Length; i++)
            {
                Assert.True(Math.Abs(ours[i] - expected[i]) <= 1, $"{activation} {isa} [{i}]: integer {ours[i]}, simulated {expected[i]}");
                Assert.True(Math.Abs(ours[i] - ort[i]) <= 1, $"{activation} {isa} [{i}]: integer {ours[i]}, ORT {ort[i]}");
            }
        }
    }

    /// <summary>The fused graph exports back to standard QDQ ONNX that ONNX Runtime runs to the same logits.</summary>
    [Fact]
    public void FusedGraphExportsAsQdqThatOnnxRuntimeRuns()
    {
        var bytes = Model(transB: true, perChannel: true);
        var g = OnnxImporter.Load(bytes, new OnnxImportOptions { DefaultBatch = Batch });
        var fused = g.Clone();
        Assert.Equal(1, FuseQuantizedOps.Run(fused));
        Assert.Contains(fused.Nodes, n => n.Op is QGemm);
        var x = Tensor.Random(8, [Batch, K], -3, 3);
        float[] before = OrtRunner.Run(bytes, [new("x", x)])["y"].Floats;
        float[] after = OrtRunner.Run(OnnxExporter.ToBytes(fused), [new(g.Inputs[0].Name, x)])[g.Outputs[0].Name].Floats;
        Assert.Equal(before, after);
    }

    /// <summary>
    /// A scalar C is valid ONNX when N = 1; the fusion once indexed its empty shape and crashed at load. It now keeps
    /// the float path and gives the QDQ nodes' result.
    /// </summary>
    [Fact]
    public void ScalarBiasWithOneOutputLoadsAndRuns()
    {
        var bytes = new OnnxModelBuilder(14).Input("x", "N", 5)
            .Initializer("xs", new Tensor([0.03f], [])).Initializer("xz", new Tensor(DataType.UInt8, [], new byte[] { 120 }))
            .Initializer("w", new Tensor(DataType.Int8, [1, 5], new sbyte[] { 3, -7, 64, 1, -20 }))
            .Initializer("ws", new Tensor([0.01f], [])).Initializer("wz", new Tensor(DataType.Int8, [], new sbyte[1]))
            .Initializer("b", new Tensor(DataType.Int32, [], new[] { 400 })).Initializer("bs", new Tensor([0.0003f], [])).Initializer("bz", new Tensor(DataType.Int32, [], new int[1]))
            .Node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], "qx")
            .Node("DequantizeLinear", ["xq", "xs", "xz"], ["xf"], "dqx")
            .Node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], "dqw")
            .Node("DequantizeLinear", ["b", "bs", "bz"], ["bf"], "dqb")
            .Node("Gemm", ["xf", "wf", "bf"], ["y"], "fc", ("transB", 1L))
            .Output("y", "N", 1).ToBytes();
        var g = OnnxImporter.Load(bytes, new OnnxImportOptions { DefaultBatch = Batch });
        var x = Tensor.Random(9, [Batch, 5], -3, 3);
        using var s = new InferenceSession(g);
        float[] ours = s.Run(x)[0].Floats, ort = OrtRunner.Run(bytes, [new("x", x)])["y"].Floats;
        for (int i = 0; i < ours.Length; i++) Assert.True(Math.Abs(ours[i] - ort[i]) <= 1e-5f, $"[{i}] ours {ours[i]}, ORT {ort[i]}");
    }

    /// <summary>Valid files the integer kernel does not express keep the float path instead of failing.</summary>
    [Fact]
    public void OtherActivationsOnFloatOutputsStayFloat()
    {
        var bytes = Model(transB: true, perChannel: true, activation: "Sigmoid");
        var g = OnnxImporter.Load(bytes, new OnnxImportOptions { DefaultBatch = Batch });
        using var s = new InferenceSession(g);
        Assert.Equal(0, s.Optimizations!.QuantizedOpsFused);
        Assert.DoesNotContain(s.Steps, st => st.Kernel == "qfc");
    }
}
