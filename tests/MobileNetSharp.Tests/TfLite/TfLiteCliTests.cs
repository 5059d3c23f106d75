using MobileNetSharp.Tensors;
using MobileNetSharp.Tests.Cli;

namespace MobileNetSharp.Tests.TfLite;

/// <summary>`mnet run`, `summary`, `profile` and `convert` on a .tflite model.</summary>
public class TfLiteCliTests
{
    private static string Model => BlazeFaceTests.TfLitePath;
    private static string Input => Path.Combine(BlazeFaceTests.Fixtures, "astronaut_128_nhwc.npy");

    [Fact]
    public void RunWritesTheOutputs()
    {
        string dir = Directory.CreateTempSubdirectory("mnet-tflite-run").FullName;
        try
        {
            var (code, stdout, stderr) = CliRunner.Run("run", Model, "--input", Input, "--output", dir);
            Assert.True(code == 0, stderr);
            Assert.Contains("regressors: [1,896,16]", stdout);
            Assert.Equal([1, 896, 1], Npy.Read(Path.Combine(dir, "classificators.npy")).Shape);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void SummaryProfileAndConvertAcceptTfLite()
    {
        var (code, stdout, stderr) = CliRunner.Run("summary", Model);
        Assert.True(code == 0, stderr);
        Assert.Contains("101,390 params", stdout);
        (code, _, stderr) = CliRunner.Run("profile", Model, "--runs", "2");
        Assert.True(code == 0, stderr);
        string onnx = Path.Combine(Path.GetTempPath(), $"mnet-tflite-{Guid.NewGuid():N}.onnx");
        try
        {
            (code, stdout, stderr) = CliRunner.Run("convert", Model, "--to", onnx);
            Assert.True(code == 0, stderr);
            Assert.True(new FileInfo(onnx).Length > 300_000); // fp16 weights written as float32
            var g = MobileNetSharp.Onnx.OnnxImporter.Load(onnx);
            Assert.Equal([1, 128, 128, 3], g.Inputs[0].Shape);
        }
        finally { File.Delete(onnx); }
    }

    [Fact]
    public void BuilderAndShapeOptionsAreRefusedForTfLite()
    {
        var (code, _, stderr) = CliRunner.Run("summary", Model, "--width", "0.5");
        Assert.Equal(1, code);
        Assert.Contains(".tflite model has its own", stderr);
        (code, _, stderr) = CliRunner.Run("run", Model, "--input", Input, "--dim", "N=2");
        Assert.Equal(1, code);
        Assert.Contains("shapes are fixed in the file", stderr);
    }
}
