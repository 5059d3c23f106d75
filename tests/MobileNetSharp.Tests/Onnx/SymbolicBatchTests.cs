using System.Runtime.CompilerServices;
using MobileNetSharp.Graph;
using MobileNetSharp.Onnx;
using MobileNetSharp.Onnx.Proto;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Onnx;

/// <summary>
/// A symbolic batch survives import and export (Value.DimParams -> dim_param) when the imported graph works
/// at any batch, and ONNX Runtime then runs the re-exported file at batch 1 and 2; a batch that load-time
/// folding baked into constants is written fixed instead, never symbolic and wrong.
/// </summary>
[Collection("Console")]
public sealed class SymbolicBatchTests : IDisposable
{
    private static string Here([CallerFilePath] string source = "") => Path.GetDirectoryName(source)!;

    private static string Fixtures => Path.Combine(Here(), "Fixtures");

    private readonly string _dir = Directory.CreateTempSubdirectory("mnet-symbolic-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Conv -> GlobalAveragePool -> Flatten -> Gemm on [N,2,5,5]: nothing mixes the batch.</summary>
    private static OnnxModelBuilder Classifier(string batch = "N") => new OnnxModelBuilder(13)
        .Input("x", batch, 2, 5, 5)
        .Initializer("W", Tensor.Random(1, [4, 2, 3, 3]))
        .Initializer("fc", Tensor.Random(2, [3, 4]))
        .Node("Conv", ["x", "W"], ["c"], "conv", ("pads", new[] { 1, 1, 1, 1 }))
        .Node("Relu", ["c"], ["r"], "relu")
        .Node("GlobalAveragePool", ["r"], ["p"], "pool")
        .Node("Flatten", ["p"], ["f"], "flatten")
        .Node("Gemm", ["f", "fc"], ["y"], "gemm", ("transB", 1))
        .Output("y", batch, 3);

    private static Tensor Repeat(Tensor t, int times) =>
        new(Enumerable.Repeat(t.Floats, times).SelectMany(v => v).ToArray(), [times * t.Shape[0], .. t.Shape[1..]]);

    private static string?[]? Params(ValueInfoProto vi) =>
        vi.Type.TensorType.Shape.Dim.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam ? d.DimParam : null).ToArray();

    [Fact]
    public void TheImporterNamesTheDefaultedBatchOnInputsAndOutputs()
    {
        var g = OnnxImporter.Load(Classifier().ToBytes());
        Assert.Equal([1, 2, 5, 5], g.Inputs[0].Shape);
        Assert.Equal(["N", null, null, null], g.Inputs[0].DimParams!);
        Assert.Equal(["N", null], g.Outputs[0].DimParams!);
        Assert.Equal(["N", null], g.Clone().Outputs[0].DimParams!);

        // A size given on purpose is fixed, through either option.
        Assert.Null(OnnxImporter.Load(Classifier().ToBytes(), new OnnxImportOptions { Dimensions = { ["N"] = 1 } }).Inputs[0].DimParams);
        Assert.Null(OnnxImporter.Load(Classifier().ToBytes(), new OnnxImportOptions { InputShapes = { ["x"] = [2, 2, 5, 5] } }).Inputs[0].DimParams);
        // A fixed batch in the file stays fixed.
        Assert.Null(OnnxImporter.Load(HostileInputTests.ConvModel().ToBytes()).Inputs[0].DimParams);
    }

    [Fact]
    public void ABatchFoldedAtImportIsNotMadeSymbolic()
    {
        // Shape -> Gather -> Concat -> Reshape [n,-1]: folded to [1,-1], so batch 2 would mix images.
        var folded = OnnxImporter.Load(FuzzTests.DynamicReshape().ToBytes());
        Assert.Null(folded.Inputs[0].DimParams);
        Assert.All(folded.Outputs, o => Assert.Null(o.DimParams));

        // A constant Reshape target that holds the batch: no Shape node, but shape inference at another batch fails.
        var m = new OnnxModelBuilder(13).Input("x", "N", 4, 3, 3)
            .Initializer("target", new Tensor([1L, 36L], 2))
            .Node("Reshape", ["x", "target"], ["y"], "reshape").Output("y", "N", 36);
        Assert.Null(OnnxImporter.Load(m.ToBytes()).Inputs[0].DimParams);

        // Reshape [1,-1] infers at batch 2 as well, but to [1,72]: images would mix, so not symbolic either.
        m = new OnnxModelBuilder(13).Input("x", "N", 4, 3, 3)
            .Initializer("target", new Tensor([1L, -1L], 2))
            .Node("Reshape", ["x", "target"], ["y"], "reshape").Output("y", "N", 36);
        Assert.Null(OnnxImporter.Load(m.ToBytes()).Inputs[0].DimParams);
    }

    [Fact]
    public void TheExportedFileKeepsTheBatchSymbolicAndOrtRunsBatchOneAndTwo()
    {
        var bytes = OnnxExporter.ToBytes(OnnxImporter.Load(Classifier().ToBytes()));
        var model = OnnxImporter.Parse(bytes);
        Assert.Equal(["N", null, null, null], Params(model.Graph.Input[0]));
        Assert.Equal(["N", null], Params(model.Graph.Output[0]));

        var x = Tensor.Random(5, [2, 2, 5, 5]);
        var ort = OrtRunner.Run(bytes, [new("x", x)])["y"];
        var original = OrtRunner.Run(Classifier().ToBytes(), [new("x", x)])["y"];
        Compare.Close(original, ort, 1e-5);
        var one = new Tensor(x.Floats[..50], [1, 2, 5, 5]);
        Compare.Close(new Tensor(original.Floats[..3], [1, 3]), OrtRunner.Run(bytes, [new("x", one)])["y"], 1e-5);

        // Read back, the batch is symbolic again.
        Assert.Equal(["N", null, null, null], OnnxImporter.Load(bytes).Inputs[0].DimParams!);
    }

    [Fact]
    public void ConvertKeepsTheBatchOfATorchvisionModelSymbolic()
    {
        // mobilenet_v3 exported by torch.onnx with dynamic_axes {0: "batch"}; no shape chains.
        string converted = Path.Combine(_dir, "v3.onnx");
        var (code, stdout, stderr) = Cli.CliRunner.Run("convert", Path.Combine(Fixtures, "mobilenet_v3.onnx"), "--to", converted);
        Assert.True(code == 0, stderr);
        Assert.Equal("", stderr);
        Assert.Contains("[batch,3,40,40]", stdout);
        var model = OnnxImporter.Parse(File.ReadAllBytes(converted));
        Assert.Equal(["batch", null, null, null], Params(model.Graph.Input[0]));
        Assert.Equal(["batch", null], Params(model.Graph.Output[0]));

        var x = Npy.Read(Path.Combine(Fixtures, "mobilenet_v3.input.npy"));
        var y = Npy.Read(Path.Combine(Fixtures, "mobilenet_v3.output.npy"));
        byte[] bytes = File.ReadAllBytes(converted);
        string input = model.Graph.Input[0].Name, output = model.Graph.Output[0].Name;
        foreach (int batch in new[] { 1, 2 })
            Compare.Close(Repeat(y, batch), OrtRunner.Run(bytes, [new(input, Repeat(x, batch))])[output], 1e-4, $"ORT at batch {batch}");

        // --dim fixes it on purpose.
        (code, _, stderr) = Cli.CliRunner.Run("convert", Path.Combine(Fixtures, "mobilenet_v3.onnx"), "--dim", "batch=2", "--to", converted);
        Assert.True(code == 0, stderr);
        Assert.Equal([null, null, null, null], Params(OnnxImporter.Parse(File.ReadAllBytes(converted)).Graph.Input[0]));
        Assert.Equal("input [2,3,40,40]", OnnxImporter.ReadInputs(converted)[0].ToString());
    }

    [Fact]
    public void ConvertSaysWhenAFoldedShapeChainFixesTheBatch()
    {
        // shufflenet_v2's channel shuffle reshapes with the batch read through Shape: folded at import.
        string converted = Path.Combine(_dir, "shuffle.onnx");
        var (code, _, stderr) = Cli.CliRunner.Run("convert", Path.Combine(Fixtures, "shufflenet_v2.onnx"), "--to", converted);
        Assert.True(code == 0, stderr);
        Assert.Contains("note: input 'input' keeps 'batch' fixed at 1", stderr);
        Assert.Equal("input [1,3,40,40]", OnnxImporter.ReadInputs(converted)[0].ToString());
        var x = Npy.Read(Path.Combine(Fixtures, "shufflenet_v2.input.npy"));
        var y = Npy.Read(Path.Combine(Fixtures, "shufflenet_v2.output.npy"));
        var model = OnnxImporter.Parse(File.ReadAllBytes(converted));
        Compare.Close(y, OrtRunner.Run(File.ReadAllBytes(converted), [new("input", x)])[model.Graph.Output[0].Name], 1e-4);
    }

    [Fact]
    public void BuiltArchitecturesStayFixed()
    {
        var bytes = OnnxExporter.ToBytes(MobileNetSharp.Models.ModelZoo.Create("mobilenet_v3_small", new MobileNetSharp.Models.ModelOptions(0.5f, 64)));
        Assert.All(OnnxImporter.Parse(bytes).Graph.Input[0].Type.TensorType.Shape.Dim, d => Assert.Equal(TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue, d.ValueCase));
    }
}
