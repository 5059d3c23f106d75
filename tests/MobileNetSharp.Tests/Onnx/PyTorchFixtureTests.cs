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

    /// <summary>Onnx/Fixtures (make_fixtures.py): other opsets and exporter settings, symbolic batch.</summary>
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
