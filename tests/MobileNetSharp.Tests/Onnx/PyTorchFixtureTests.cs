using System.Runtime.CompilerServices;
using MobileNetSharp.Graph;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using Xunit.Abstractions;

namespace MobileNetSharp.Tests.Onnx;

/// <summary>
/// torchvision networks exported by torch.onnx, imported and run by our session, against PyTorch's own outputs.
/// Tolerance: 1e-4 of the output's max magnitude, as for the ORT oracle (fp32, different summation order).
/// </summary>
public class PyTorchFixtureTests(ITestOutputHelper output)
{
    private static string Here([CallerFilePath] string source = "") => Path.GetDirectoryName(source)!;

    /// <summary>tests/fixtures/torchvision (tools/fixtures/gen_torchvision.py): opset 13, static batch 2.</summary>
    private static string Canonical => Path.GetFullPath(Path.Combine(Here(), "..", "..", "fixtures", "torchvision"));

    /// <summary>Onnx/Fixtures (make_fixtures.py; tools/fixtures/gen_hard_activations.py): other opsets and exporter settings, symbolic batch.</summary>
    private static string Variants => Path.Combine(Here(), "Fixtures");

    public static TheoryData<string> CanonicalModels() =>
        new(["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "mnasnet", "shufflenet_v2", "resnet18"]);

    public static TheoryData<string> VariantModels() => new(["shufflenet_v2", "mobilenet_v3", "resnet", "mnasnet"]);

    [Theory]
    [MemberData(nameof(CanonicalModels))]
    public void TorchvisionModelMatchesPyTorch(string name)
    {
        string dir = Path.Combine(Canonical, name);
        var graph = OnnxImporter.Load(Path.Combine(dir, "model.onnx"));
        Check(name, graph, Npy.Read(Path.Combine(dir, "input.npy")), Npy.Read(Path.Combine(dir, "output.npy")));
    }

    /// <summary>The symbolic batch is set to 3 at import; the shape chains fold for it and each image matches PyTorch's.</summary>
    [Theory]
    [MemberData(nameof(VariantModels))]
    public void ExporterVariantMatchesPyTorch(string name)
    {
        const int batch = 3;
        var graph = OnnxImporter.Load(Path.Combine(Variants, name + ".onnx"), new OnnxImportOptions { Dimensions = { ["batch"] = batch } });
        var x = Npy.Read(Path.Combine(Variants, name + ".input.npy"));
        var y = Npy.Read(Path.Combine(Variants, name + ".output.npy"));
        Check(name, graph, Repeat(x, batch), Repeat(y, batch));
    }

    /// <summary>
    /// Hard-swish and hard-sigmoid written out in six ways (tools/fixtures/gen_hard_activations.py), exported at
    /// opsets 11 and 13: PyTorch's outputs, and a plan step for step like the twin network's that uses the
    /// HardSwish/HardSigmoid operators (opset 14), so every spelled-out block folded into its conv or Gemm.
    /// </summary>
    [Theory]
    [InlineData(11)]
    [InlineData(13)]
    public void HardSwishWrittenOutMatchesPyTorchAndCompilesLikeTheOperator(int opset)
    {
        var graph = OnnxImporter.Load(Path.Combine(Variants, $"hard_activations.opset{opset}.onnx"));
        var x = Npy.Read(Path.Combine(Variants, "hard_activations.input.npy"));
        Check($"hard_activations opset {opset}", graph, x, Npy.Read(Path.Combine(Variants, "hard_activations.output.npy")));

        using var session = new InferenceSession(graph, new SessionOptions { Threads = 1 });
        Assert.Equal(6, session.Optimizations!.HardActivationsRecognized);
        Assert.Equal(2, session.Optimizations.SwishesFused); // x * (clip / 6), and F.hardswish's HardSigmoid + Mul
        // What is left of the arithmetic is the squeeze-excite Mul, its Expand dropped at import.
        var binary = Assert.Single(session.OptimizedGraph.Nodes, n => n.Op is BinaryOp);
        Assert.Equal(MobileNetSharp.Graph.BinaryKind.Mul, ((BinaryOp)binary.Op).Kind);
        Assert.DoesNotContain(session.OptimizedGraph.Nodes, n => n.Op is ActivationOp);

        var twin = OnnxImporter.Load(Path.Combine(Variants, "hard_activations.ops.opset14.onnx"));
        using var reference = new InferenceSession(twin, new SessionOptions { Threads = 1 });
        Assert.Equal(reference.Steps.Select(s => s.Kernel), session.Steps.Select(s => s.Kernel));
        using var unoptimized = new InferenceSession(graph, new SessionOptions { Threads = 1, Optimize = false });
        output.WriteLine($"opset {opset}: {session.Steps.Count} steps ({string.Join(", ", session.Steps.Select(s => s.Kernel))}); "
            + $"{unoptimized.Steps.Count} without the optimizer");
    }

    private void Check(string name, ModelGraph graph, Tensor input, Tensor expected)
    {
        var cost = CostModel.Analyze(graph);
        output.WriteLine($"{name}: {graph.Nodes.Count} nodes, {cost.Params} params, {cost.Macs} MACs, input {Shape.Format(graph.Inputs[0].Shape)}");
        using var session = new InferenceSession(graph, new SessionOptions { Threads = 2 });
        Compare.Close(expected, session.Run(input)[0], 1e-4, name);
    }

    private static Tensor Repeat(Tensor t, int times) =>
        new(Enumerable.Repeat(t.Floats, times).SelectMany(v => v).ToArray(), [times * t.Shape[0], .. t.Shape[1..]]);
}
