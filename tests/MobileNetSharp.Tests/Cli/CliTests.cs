using System.Text.Json;

namespace MobileNetSharp.Tests.Cli;

[Collection("Console")]
public class CliTests
{
    [Fact]
    public void SummaryJsonHasTheDocumentedFields()
    {
        var (code, stdout, _) = CliRunner.Run("summary", "mobilenet_v1", "--json");
        Assert.Equal(0, code);
        var j = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(4_231_976, j.GetProperty("params").GetInt64());
        Assert.Equal(568_740_352, j.GetProperty("macs").GetInt64());
        Assert.Equal(JsonValueKind.Array, j.GetProperty("layers").ValueKind);
        var byKind = j.GetProperty("byKind");
        Assert.Equal(JsonValueKind.Object, byKind.ValueKind);
        double pw = byKind.GetProperty("pointwise1x1").GetProperty("macShare").GetDouble();
        Assert.Equal(0.9486, Math.Round(pw, 4));
        long sum = j.GetProperty("layers").EnumerateArray().Sum(l => l.GetProperty("macs").GetInt64());
        Assert.Equal(568_740_352, sum);
    }

    [Fact]
    public void SummaryTableShowsLayersTotalsAndKinds()
    {
        var (code, stdout, _) = CliRunner.Run("summary", "mobilenet_v2", "--width", "0.35", "--resolution", "96");
        Assert.Equal(0, code);
        Assert.Contains("block17.project", stdout);
        Assert.Contains("1,677,128 params", stdout);
        Assert.Contains("depthwise conv", stdout);
    }

    [Fact]
    public void LayerReproducesTheSeedArithmetic()
    {
        var (code, stdout, _) = CliRunner.Run("layer", "--in", "64", "--out", "128", "--kernel", "3", "--no-time", "--json");
        Assert.Equal(0, code);
        var j = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(73_728, j.GetProperty("standard").GetProperty("params").GetInt64());
        Assert.Equal(576, j.GetProperty("depthwise").GetProperty("params").GetInt64());
        Assert.Equal(8_192, j.GetProperty("pointwise").GetProperty("params").GetInt64());
        Assert.Equal(8_768, j.GetProperty("separable").GetProperty("params").GetInt64());
        Assert.Equal(1.0 / 128 + 1.0 / 9, j.GetProperty("ruleOfThumb").GetDouble(), 12);
        Assert.Equal(8.4, Math.Round(j.GetProperty("reduction").GetDouble(), 1));
    }

    [Fact]
    public void LayerTimesBothVariants()
    {
        var (code, stdout, _) = CliRunner.Run("layer", "--in", "16", "--out", "32", "--size", "14", "--threads", "1", "--json");
        Assert.Equal(0, code);
        var j = JsonDocument.Parse(stdout).RootElement;
        Assert.True(j.GetProperty("standard").GetProperty("medianMs").GetDouble() > 0);
        Assert.True(j.GetProperty("latencyRatio").GetDouble() > 0);
    }

    [Fact]
    public void CompareJsonCarriesTheRatios()
    {
        var (code, stdout, _) = CliRunner.Run("compare", "--width", "0.25", "--resolution", "64", "--runs", "2", "--threads", "1", "--json");
        Assert.Equal(0, code);
        var j = JsonDocument.Parse(stdout).RootElement;
        // The twin of MobileNetV1 at any width/resolution costs 8-9x the MACs.
        Assert.InRange(j.GetProperty("macsRatio").GetDouble(), 5.0, 9.0);
        Assert.True(j.GetProperty("paramsRatio").GetDouble() > 1);
        Assert.True(j.GetProperty("latencyRatio").GetDouble() > 0);
        Assert.Equal(j.GetProperty("standard").GetProperty("macs").GetInt64() / (double)j.GetProperty("separable").GetProperty("macs").GetInt64(),
            j.GetProperty("macsRatio").GetDouble(), 9);
    }

    [Fact]
    public void CompareWorksForOtherArchitecturesThroughTheGenericTwin()
    {
        var (code, stdout, _) = CliRunner.Run("compare", "--arch", "mobilenet_v2", "--width", "0.35", "--resolution", "64", "--runs", "1", "--threads", "1", "--json");
        Assert.Equal(0, code);
        Assert.True(JsonDocument.Parse(stdout).RootElement.GetProperty("macsRatio").GetDouble() > 1.5);
    }

    [Fact]
    public void ListAndProfileRun()
    {
        var (code, stdout, _) = CliRunner.Run("list");
        Assert.Equal(0, code);
        foreach (var a in MobileNetSharp.Models.ModelZoo.All) Assert.Contains(a.Name, stdout);
        (code, stdout, _) = CliRunner.Run("profile", "mobilenet_v3_small", "--width", "0.5", "--resolution", "96", "--runs", "2", "--threads", "1", "--json");
        Assert.Equal(0, code);
        Assert.True(JsonDocument.Parse(stdout).RootElement.GetProperty("steps").GetArrayLength() > 10);
    }

    [Fact]
    public void SummaryOfAnExportedOnnxFileMatchesTheBuilder()
    {
        string dir = Directory.CreateTempSubdirectory("mnet-cli").FullName;
        try
        {
            string path = Path.Combine(dir, "v3l.onnx");
            var (code, _, err) = CliRunner.Run("convert", "mobilenet_v3_large", "--width", "0.5", "--resolution", "160", "--to", path);
            Assert.True(code == 0, err);
            var fromFile = JsonDocument.Parse(CliRunner.Run("summary", path, "--json").Out).RootElement;
            var fromBuilder = JsonDocument.Parse(CliRunner.Run("summary", "mobilenet_v3_large", "--width", "0.5", "--resolution", "160", "--json").Out).RootElement;
            Assert.Equal(fromBuilder.GetProperty("params").GetInt64(), fromFile.GetProperty("params").GetInt64());
            Assert.Equal(fromBuilder.GetProperty("macs").GetInt64(), fromFile.GetProperty("macs").GetInt64());
            var (bad, _, msg) = CliRunner.Run("summary", path, "--width", "0.5");
            Assert.Equal(1, bad);
            Assert.Contains("apply to architectures", msg);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Theory]
    [InlineData("Unknown architecture 'resnet9000'", "summary", "resnet9000")]
    [InlineData("width multiplier must be in (0, 8]", "summary", "mobilenet_v1", "--width", "0")]
    [InlineData("width multiplier must be in (0, 8]", "summary", "mobilenet_v2", "--width", "-0.5")]
    [InlineData("resolution must be between 32", "summary", "mobilenet_v3_small", "--resolution", "16")]
    [InlineData("classes must be between 1", "summary", "efficientnet_lite0", "--classes", "0")]
    [InlineData("Threads must be between 1 and 256", "compare", "--width", "0.25", "--resolution", "32", "--threads", "0")]
    [InlineData("Unknown architecture", "compare", "--arch", "nope")]
    [InlineData("--kernel in 1..31", "layer", "--kernel", "0")]
    [InlineData("No such model file", "summary", "missing.onnx")]
    [InlineData("--dim and --shape apply to .onnx models", "summary", "mobilenet_v1", "--dim", "H=160")]
    [InlineData("--dim and --shape apply to .onnx models", "profile", "mobilenet_v1", "--shape", "x=1x3x64x64")]
    [InlineData("'abc' is not a size", "convert", "mobilenet_v1", "--shape", "x=1x3xabc", "--to", "never.onnx")]
    public void BadArgumentsGiveAClearMessageAndExitCodeOne(string message, params string[] args)
    {
        var (code, _, stderr) = CliRunner.Run(args);
        Assert.Equal(1, code);
        Assert.Contains(message, stderr);
        Assert.DoesNotContain("   at ", stderr); // no stack trace
    }

    /// <summary>Options the parser rejects (unknown, unparsable, missing) get one line naming the problem and where the help is, not the help itself.</summary>
    [Theory]
    [InlineData("'abc' for option '--width'", "mnet summary --help", "summary", "mobilenet_v1", "--width", "abc")]
    [InlineData("Unrecognized command or argument '--batch'", "mnet profile --help", "profile", "mobilenet_v2", "--batch", "0")]
    [InlineData("Unrecognized command or argument 'abc'", "mnet bench --help", "bench", "mobilenet_v2", "--no-fuse=abc")]
    [InlineData("Required argument missing", "mnet profile --help", "profile")]
    [InlineData("Unrecognized command or argument 'nosuch'", "mnet --help", "nosuch")]
    public void ParseErrorsAreOneLineWithoutAStackTrace(string message, string help, params string[] args)
    {
        var (code, stdout, stderr) = CliRunner.Run(args);
        Assert.Equal(1, code);
        Assert.Contains(message, stderr);
        Assert.Contains(help, stderr);
        Assert.Single(stderr.TrimEnd().Split('\n'));
        Assert.DoesNotContain("Usage:", stdout + stderr);
        Assert.DoesNotContain("   at ", stderr);
    }
}

[Collection("Console")]
public class RunOutputNameTests
{
    [Fact]
    public void OutputsWhoseNamesSanitizeAlikeGetDistinctFiles()
    {
        string dir = Directory.CreateTempSubdirectory("mnet-run").FullName;
        try
        {
            var b = new MobileNetSharp.Graph.GraphBuilder("two", 1);
            var x = b.Input("x", 1, 4);
            var relu = b.Activate(x, MobileNetSharp.Graph.Activation.Relu);
            var sig = b.Activate(x, MobileNetSharp.Graph.Activation.Sigmoid);
            relu.Name = "out/1";
            sig.Name = "out:1";
            b.Output(relu);
            b.Output(sig);
            string model = Path.Combine(dir, "two.onnx"), input = Path.Combine(dir, "x.npy");
            MobileNetSharp.Onnx.OnnxExporter.Save(b.Graph, model);
            MobileNetSharp.Tensors.Npy.Write(input, MobileNetSharp.Tensors.Tensor.Random(1, [1, 4]));
            var (code, _, err) = CliRunner.Run("run", model, "--input", $"x={input}", "--output", dir);
            Assert.True(code == 0, err);
            var relu1 = MobileNetSharp.Tensors.Npy.Read(Path.Combine(dir, "out_1.npy")).Floats;
            var sig1 = MobileNetSharp.Tensors.Npy.Read(Path.Combine(dir, "out_1_2.npy")).Floats;
            Assert.True(relu1.All(v => v >= 0) && sig1.All(v => v > 0 && v < 1));
            Assert.NotEqual(relu1, sig1);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
