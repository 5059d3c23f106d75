using System.Text.Json;

namespace MobileNetSharp.Tests.Cli;

/// <summary>--channels and --small-input on every command that builds a model.</summary>
[Collection("Console")]
public class SmallInputCliTests
{
    private static readonly string[] Benchmark = ["--width", "0.5", "--resolution", "28", "--channels", "1", "--classes", "10", "--small-input"];

    [Fact]
    public void SummaryBuildsTheBenchmarkNetwork()
    {
        var (code, stdout, err) = CliRunner.Run(["summary", "mobilenet_v2", .. Benchmark, "--json"]);
        Assert.True(code == 0, err);
        var j = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(700_202, j.GetProperty("params").GetInt64());
        Assert.Equal(23_111_712, j.GetProperty("macs").GetInt64());
        Assert.Equal([1, 1, 28, 28], j.GetProperty("input")[0].GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()));
    }

    [Fact]
    public void CompareBuildsBothTwinsSmall()
    {
        var (code, stdout, err) = CliRunner.Run(["compare", "--arch", "mobilenet_v2", .. Benchmark, "--runs", "1", "--threads", "1", "--json"]);
        Assert.True(code == 0, err);
        var j = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(700_202, j.GetProperty("separable").GetProperty("params").GetInt64());
        Assert.Equal(1, j.GetProperty("channels").GetInt32());
        Assert.True(j.GetProperty("smallInput").GetBoolean());
        Assert.True(j.GetProperty("macsRatio").GetDouble() > 1);
    }

    [Fact]
    public void ConvertWritesTheSmallModel()
    {
        string path = Path.Combine(Path.GetTempPath(), $"mnet-small-{Guid.NewGuid():N}.onnx");
        try
        {
            var (code, stdout, err) = CliRunner.Run(["convert", "mobilenet_v3_small", .. Benchmark, "--to", path]);
            Assert.True(code == 0, err);
            Assert.Contains("[1,1,28,28]", stdout);
            var g = MobileNetSharp.Onnx.OnnxImporter.Load(path);
            Assert.Equal([1, 1, 28, 28], g.Inputs[0].Shape);
            Assert.Equal("true", g.Metadata["small_input"]);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void ProfileAndListTakeTheOptions()
    {
        var (code, stdout, err) = CliRunner.Run(["profile", "mobilenet_v1", .. Benchmark, "--runs", "1", "--threads", "1", "--json"]);
        Assert.True(code == 0, err);
        Assert.Equal(JsonValueKind.Array, JsonDocument.Parse(stdout).RootElement.GetProperty("steps").ValueKind);

        (code, stdout, err) = CliRunner.Run(["list", .. Benchmark, "--json"]);
        Assert.True(code == 0, err);
        var v2 = JsonDocument.Parse(stdout).RootElement.EnumerateArray().Single(a => a.GetProperty("name").GetString() == "mobilenet_v2");
        Assert.Equal(700_202, v2.GetProperty("params").GetInt64());
        Assert.Equal(28, v2.GetProperty("resolution").GetInt32());
    }

    [Fact]
    public void TooSmallWithoutSmallInputIsAClearError()
    {
        var (code, _, err) = CliRunner.Run("summary", "mobilenet_v2", "--resolution", "28");
        Assert.Equal(1, code);
        Assert.Contains("--small-input", err);
        (code, _, err) = CliRunner.Run("summary", "mobilenet_v2", "--channels", "0");
        Assert.Equal(1, code);
        Assert.Contains("input channels", err);
    }
}
