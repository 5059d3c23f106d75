using MobileNetSharp.Models;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Onnx;

/// <summary>`mnet run` and `mnet convert`, driven in-process through the real entry point.</summary>
[Collection("Console")]
public sealed class OnnxCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mnet-cli-onnx-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Out, string Err) Mnet(params string[] args) => Cli.CliRunner.Run(args);

    private string File(string name) => Path.Combine(_dir, name);

    [Fact]
    public void ConvertThenRunMatchesTheSession()
    {
        var (code, stdout, stderr) = Mnet("convert", "mobilenet_v2", "--width", "0.35", "--resolution", "64", "--classes", "10", "--to", File("m.onnx"));
        Assert.True(code == 0, stderr);
        Assert.Contains("m.onnx", stdout);

        var graph = ModelZoo.Create("mobilenet_v2", new ModelOptions(0.35f, 64, 10));
        var x = Tensor.Random(3, graph.Inputs[0].Shape);
        Npy.Write(File("x.npy"), x);
        (code, stdout, stderr) = Mnet("run", File("m.onnx"), "--input", $"{graph.Inputs[0].Name}={File("x.npy")}", "--output", File("out"), "--threads", "2");
        Assert.True(code == 0, stderr);

        using var session = new InferenceSession(graph, new SessionOptions { Threads = 2 });
        Compare.Close(session.Run(x)[0], Npy.Read(File(Path.Combine("out", graph.Outputs[0].Name + ".npy"))), 1e-6);
    }

    [Fact]
    public void RunTakesTensorProtoInputsAndFillsSymbolicDimensions()
    {
        var m = FuzzTests.DynamicReshape();
        System.IO.File.WriteAllBytes(File("dyn.onnx"), m.ToBytes());
        var x = Tensor.Random(4, [3, 4, 3, 3]);
        TensorProtoFile.Write(File("x.pb"), x, "x");
        var (code, stdout, stderr) = Mnet("run", File("dyn.onnx"), "-i", File("x.pb"), "-o", _dir);
        Assert.True(code == 0, stderr);
        Assert.Contains("y: [3,30]", stdout);
        var expected = OrtRunner.Run(m.ToBytes(), [new("x", x)])["y"];
        Compare.Close(expected, Npy.Read(File("y.npy")), 1e-6);
    }

    [Fact]
    public void ConvertReadsOnnxAndRefusesBuilderOptions()
    {
        System.IO.File.WriteAllBytes(File("legacy.onnx"), FuzzTests.LegacyForms().ToBytes());
        var (code, _, stderr) = Mnet("convert", File("legacy.onnx"), "--to", File("modern.onnx"));
        Assert.True(code == 0, stderr);
        var back = OnnxImporter.Load(File("modern.onnx"));
        Assert.Equal(["BatchNormalization", "Add", "Pad", "Clip", "GlobalAveragePool", "Squeeze", "Softmax"], back.Nodes.Select(n => n.Op.Type));

        (code, _, stderr) = Mnet("convert", File("legacy.onnx"), "--width", "0.5", "--to", File("x.onnx"));
        Assert.Equal(1, code);
        Assert.Contains("--width apply to architectures", stderr);
    }

    [Theory]
    [InlineData("nonexistent.onnx", "x=x.npy", "No such model file")]
    [InlineData("bad.onnx", "x=x.npy", "Not a valid ONNX model")]
    [InlineData("conv.onnx", "nope=x.npy", "no input named 'nope'")]
    [InlineData("conv.onnx", "x=missing.npy", "No such input file")]
    [InlineData("conv.onnx", "x=x.txt", "must be .npy or .pb")]
    [InlineData("conv.onnx", "x=wrong.npy", "cannot take shape [2,2]")]
    [InlineData("conv.onnx", "x=corrupt.npy", "not a NumPy .npy file")]
    public void RunErrorsAreOneLine(string model, string input, string message)
    {
        System.IO.File.WriteAllBytes(File("bad.onnx"), [1, 2, 3, 4, 5]);
        System.IO.File.WriteAllBytes(File("conv.onnx"), HostileInputTests.ConvModel().ToBytes());
        System.IO.File.WriteAllText(File("x.txt"), "1 2 3");
        System.IO.File.WriteAllText(File("corrupt.npy"), "this is not an array");
        Npy.Write(File("x.npy"), Tensor.Random(1, [1, 2, 4, 4]));
        Npy.Write(File("wrong.npy"), Tensor.Random(1, [2, 2]));
        var parts = input.Split('=');
        var (code, stdout, stderr) = Mnet("run", File(model), "--input", $"{parts[0]}={File(parts[1])}", "-o", _dir);
        Assert.Equal(1, code);
        Assert.Contains(message, stderr);
        Assert.DoesNotContain("   at ", stderr);
    }
}
