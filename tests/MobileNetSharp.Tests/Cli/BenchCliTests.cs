using System.Text.Json;

namespace MobileNetSharp.Tests.Cli;

/// <summary>`mnet bench`: the documented JSON fields are there and consistent with each other (no timing assertions).</summary>
[Collection("Console")]
public class BenchCliTests
{
    private static readonly string[] Fields =
        ["loadMs", "firstRunMs", "medianMs", "p90Ms", "p99Ms", "minMs", "imagesPerSecond", "gflops", "peakWorkingSetBytes", "allocatedBytesPerRun"];

    private static JsonElement Bench(params string[] args)
    {
        var (code, stdout, stderr) = CliRunner.Run(["bench", .. args, "--json"]);
        Assert.True(code == 0, stderr);
        return JsonDocument.Parse(stdout).RootElement;
    }

    private static void AssertConsistent(JsonElement j, int batch)
    {
        foreach (var f in Fields) Assert.Equal(JsonValueKind.Number, j.GetProperty(f).ValueKind);
        foreach (var f in Fields[..^1]) Assert.True(j.GetProperty(f).GetDouble() > 0, f);
        Assert.True(j.GetProperty("allocatedBytesPerRun").GetDouble() >= 0);
        double median = j.GetProperty("medianMs").GetDouble(), p90 = j.GetProperty("p90Ms").GetDouble(),
            p99 = j.GetProperty("p99Ms").GetDouble(), min = j.GetProperty("minMs").GetDouble();
        Assert.True(p99 >= p90 && p90 >= median && median >= min, $"p99 {p99}, p90 {p90}, median {median}, min {min}");
        Assert.Equal(batch, j.GetProperty("batch").GetInt32());
        Assert.Equal(batch, j.GetProperty("shape")[0].GetInt32());
        Assert.Equal(batch * 1000 / median, j.GetProperty("imagesPerSecond").GetDouble(), 6);
        Assert.Equal(2.0 * j.GetProperty("macs").GetInt64() / (median * 1e6), j.GetProperty("gflops").GetDouble(), 6);
    }

    [Fact]
    public void JsonHasTheDocumentedFieldsAndTheyAgree()
    {
        var j = Bench("mobilenet_v3_small", "--width", "0.5", "--resolution", "96", "--runs", "5", "--warmup", "2", "--threads", "1");
        AssertConsistent(j, 1);
        Assert.Equal("mobilenet_v3_small", j.GetProperty("model").GetString());
        Assert.Equal(1, j.GetProperty("threads").GetInt32());
        Assert.Equal([1, 3, 96, 96], j.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()));
        // Steady-state Run into caller-owned outputs allocates nothing on the calling thread.
        Assert.Equal(0, j.GetProperty("allocatedBytesPerRun").GetDouble());
    }

    [Fact]
    public void BatchScalesTheMacsAndAppliesToOnnxFilesToo()
    {
        string dir = Directory.CreateTempSubdirectory("mnet-bench").FullName;
        try
        {
            var one = Bench("mobilenet_v2", "--width", "0.35", "--resolution", "64", "--runs", "3", "--threads", "1");
            var three = Bench("mobilenet_v2", "--width", "0.35", "--resolution", "64", "--runs", "3", "--threads", "2", "--batch", "3");
            AssertConsistent(three, 3);
            Assert.Equal(3 * one.GetProperty("macs").GetInt64(), three.GetProperty("macs").GetInt64());

            // An exported file has a fixed batch of 1; --batch runs it at another (the session compiles that plan at load).
            string path = Path.Combine(dir, "v2.onnx");
            var (code, _, err) = CliRunner.Run("convert", "mobilenet_v2", "--width", "0.35", "--resolution", "64", "--to", path);
            Assert.True(code == 0, err);
            var file = Bench(path, "--runs", "3", "--warmup", "0", "--threads", "1", "--batch", "2");
            AssertConsistent(file, 2);
            Assert.Equal(2 * one.GetProperty("macs").GetInt64(), file.GetProperty("macs").GetInt64());
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void TableNamesEveryMeasure()
    {
        var (code, stdout, stderr) = CliRunner.Run("bench", "mobilenet_v3_small", "--width", "0.5", "--resolution", "64", "--runs", "2", "--threads", "1");
        Assert.True(code == 0, stderr);
        foreach (var s in new[] { "load", "first run", "median", "p90", "p99", "min", "images/s", "GFLOP/s", "peak working set", "allocated per run" })
            Assert.Contains(s, stdout);
        Assert.Equal("", stderr); // no spinner when stderr is not a terminal
    }

    [Theory]
    [InlineData("--runs must be in 1..100000", "bench", "mobilenet_v1", "--runs", "0")]
    [InlineData("--warmup must be in 0..100000", "bench", "mobilenet_v1", "--warmup", "-1")]
    [InlineData("--batch must be in 1..4096", "bench", "mobilenet_v1", "--batch", "0")]
    [InlineData("Threads must be between 1 and 256", "bench", "mobilenet_v1", "--threads", "0")]
    [InlineData("Unknown architecture 'nope'", "bench", "nope")]
    [InlineData("No such model file", "bench", "missing.onnx")]
    [InlineData("--dim and --shape apply to .onnx models", "bench", "mobilenet_v1", "--dim", "H=160")]
    [InlineData("resolution must be between 32", "bench", "mobilenet_v3_small", "--resolution", "16")]
    public void BadArgumentsGiveOneLineAndExitCodeOne(string message, params string[] args)
    {
        var (code, _, stderr) = CliRunner.Run(args);
        Assert.Equal(1, code);
        Assert.Contains(message, stderr);
        Assert.Single(stderr.TrimEnd().Split('\n'));
    }
}

/// <summary>`mnet profile`: MACs per step and per layer kind add up to the summary's, next to the old fields.</summary>
[Collection("Console")]
public class ProfileCostTests
{
    [Fact]
    public void StepsAndLayerKindsCarryMacsThatAddUpToTheSummary()
    {
        string[] model = ["mobilenet_v2", "--width", "0.35", "--resolution", "96"];
        var (code, stdout, stderr) = CliRunner.Run(["profile", .. model, "--runs", "2", "--threads", "1", "--json"]);
        Assert.True(code == 0, stderr);
        var j = JsonDocument.Parse(stdout).RootElement;
        long summaryMacs = JsonDocument.Parse(CliRunner.Run(["summary", .. model, "--json"]).Out).RootElement.GetProperty("macs").GetInt64();
        Assert.Equal(summaryMacs, j.GetProperty("macs").GetInt64());
        var steps = j.GetProperty("steps").EnumerateArray().ToArray();
        foreach (var s in steps)
        {
            foreach (var f in new[] { "name", "kernel", "ms", "layerKind", "macs", "gflops" }) Assert.True(s.TryGetProperty(f, out _), f);
            Assert.True(s.GetProperty("macs").GetInt64() >= 0 && s.GetProperty("gflops").GetDouble() >= 0);
        }
        Assert.Equal(summaryMacs, steps.Sum(s => s.GetProperty("macs").GetInt64()));
        Assert.Contains(steps, s => s.GetProperty("name").GetString() == "block17.project" && s.GetProperty("layerKind").GetString() == "pointwise1x1");
        Assert.Contains(steps, s => s.GetProperty("name").GetString() == "block17.dw" && s.GetProperty("layerKind").GetString() == "depthwise");

        var kinds = j.GetProperty("layerKinds").EnumerateArray().ToDictionary(k => k.GetProperty("layerKind").GetString()!);
        Assert.Equal(summaryMacs, kinds.Values.Sum(k => k.GetProperty("macs").GetInt64()));
        Assert.Equal(steps.Length, kinds.Values.Sum(k => k.GetProperty("steps").GetInt32()));
        Assert.True(kinds["pointwise1x1"].GetProperty("macShare").GetDouble() > kinds["depthwise"].GetProperty("macShare").GetDouble());
        Assert.True(kinds["pointwise1x1"].GetProperty("gflops").GetDouble() > 0);
        Assert.Equal(1.0, kinds.Values.Sum(k => k.GetProperty("share").GetDouble()), 6);
        Assert.True(j.GetProperty("kernels").GetArrayLength() > 0 && j.GetProperty("totalMs").GetDouble() > 0);
    }

    /// <summary>Banded blocks are one step each, listing their nodes and carrying their MACs; `--no-fuse` gives a step per layer and the same total.</summary>
    [Fact]
    public void FusedBlocksCarryTheirNodesAndMacs()
    {
        string[] model = ["mobilenet_v2", "--width", "0.5", "--resolution", "160"];
        long summaryMacs = JsonDocument.Parse(CliRunner.Run(["summary", .. model, "--json"]).Out).RootElement.GetProperty("macs").GetInt64();
        foreach (bool fuse in new[] { true, false })
        {
            var (code, stdout, stderr) = CliRunner.Run(["profile", .. model, "--runs", "1", "--threads", "2", "--json", .. fuse ? Array.Empty<string>() : ["--no-fuse"]]);
            Assert.True(code == 0, stderr);
            var steps = JsonDocument.Parse(stdout).RootElement.GetProperty("steps").EnumerateArray().ToArray();
            Assert.Equal(summaryMacs, steps.Sum(s => s.GetProperty("macs").GetInt64()));
            var fused = steps.Where(s => s.GetProperty("kernel").GetString()!.StartsWith("fused", StringComparison.Ordinal)).ToArray();
            if (!fuse) { Assert.Empty(fused); continue; }
            var block2 = Assert.Single(fused, s => s.GetProperty("name").GetString() == "block2.project");
            Assert.Equal(["block2.expand", "block2.dw", "block2.project"], block2.GetProperty("nodes").EnumerateArray().Select(n => n.GetString()!));
            Assert.Equal("pointwise1x1", block2.GetProperty("layerKind").GetString());
        }
    }

    [Fact]
    public void TableShowsTheSplitByLayerKind()
    {
        var (code, stdout, stderr) = CliRunner.Run("profile", "mobilenet_v1", "--width", "0.25", "--resolution", "64", "--runs", "1", "--threads", "1");
        Assert.True(code == 0, stderr);
        foreach (var s in new[] { "layer kind", "1x1 conv", "depthwise conv", "GFLOP/s", "MACs", "slowest steps" }) Assert.Contains(s, stdout);
    }
}
