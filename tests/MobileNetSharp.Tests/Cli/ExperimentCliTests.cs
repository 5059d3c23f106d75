using System.Text.Json;

namespace MobileNetSharp.Tests.Cli;

/// <summary>
/// `mnet experiment seed-claims --quick` end to end on real Fashion-MNIST: the plan trains and measures every network,
/// and the report, results and charts have the promised structure. Only structure is asserted: a quick run's numbers
/// say nothing about the claims, and timings are never asserted.
/// </summary>
[Collection("Console")]
public sealed class ExperimentCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mnet-experiment-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void QuickSeedClaimsWritesReportResultsAndCharts()
    {
        var (code, stdout, err) = CliRunner.Run("experiment", "seed-claims", "--quick", "--out", _dir, "--threads", "2");
        Assert.True(code == 0, err);
        Assert.Contains("report.md", stdout);

        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "results.json")));
        var root = doc.RootElement;
        var runs = root.GetProperty("runs");
        Assert.True(runs.GetArrayLength() >= 10, $"{runs.GetArrayLength()} runs");
        foreach (var run in runs.EnumerateArray())
            foreach (var key in new[] { "architecture", "width", "resolution", "seed", "params", "macs", "testAccuracy", "latencyMs", "trainImagesPerSecond" })
                Assert.True(run.TryGetProperty(key, out _), $"run without '{key}': {run}");
        var archs = runs.EnumerateArray().Select(r => r.GetProperty("architecture").GetString()).ToHashSet();
        Assert.Superset(new HashSet<string?> { "mobilenet_v1", "conv_mobilenet_v1", "mobilenet_v2" }, archs);
        Assert.Contains(runs.EnumerateArray(), r => r.GetProperty("bottleneck").GetString() == "relu6");
        Assert.True(runs.EnumerateArray().Select(r => r.GetProperty("width").GetDouble()).Distinct().Count() >= 4, "the width sweep has four widths");
        Assert.True(runs.EnumerateArray().Select(r => r.GetProperty("resolution").GetInt32()).Distinct().Count() >= 4, "the resolution sweep has four sizes");
        var claims = root.GetProperty("claims");
        Assert.Equal(5, claims.GetArrayLength());
        foreach (var c in claims.EnumerateArray())
            foreach (var key in new[] { "claim", "published", "measured", "verdict" })
                Assert.False(string.IsNullOrWhiteSpace(c.GetProperty(key).GetString()), $"claim without '{key}'");

        string report = File.ReadAllText(Path.Combine(_dir, "report.md"));
        Assert.Contains("| claim | published | measured here | verdict |", report);
        Assert.Contains("mnet experiment seed-claims --quick", report);
        foreach (var png in new[] { "pareto-macs.png", "pareto-latency.png", "claims-latency.png" })
        {
            var bytes = File.ReadAllBytes(Path.Combine(_dir, png));
            Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], bytes.Take(4));
            Assert.Contains($"({png})", report);
        }

        // The log has one line per finished run, with its numbers.
        string log = File.ReadAllText(Path.Combine(_dir, "log.txt"));
        foreach (var run in runs.EnumerateArray())
            Assert.Contains(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"test accuracy {100 * run.GetProperty("testAccuracy").GetDouble():F2}%"), log);

        // The same command again reuses every finished run (an interrupted experiment resumes) and reports the same accuracies.
        var (code2, _, err2) = CliRunner.Run("experiment", "seed-claims", "--quick", "--out", _dir, "--threads", "1");
        Assert.True(code2 == 0, err2);
        using var again = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "results.json")));
        var accuracies = runs.EnumerateArray().Select(r => r.GetProperty("testAccuracy").GetDouble()).ToArray();
        Assert.Equal(accuracies, again.RootElement.GetProperty("runs").EnumerateArray().Select(r => r.GetProperty("testAccuracy").GetDouble()));
        // One file per run, plus claim 2's pairing (reused too, so a resumed run trains the same networks).
        var cached = Directory.GetFiles(Path.Combine(_dir, "runs"), "*.json").Select(Path.GetFileName).ToArray();
        Assert.Contains("pairing.json", cached);
        Assert.Equal(runs.GetArrayLength(), cached.Length - 1);
        Assert.Equal(root.GetProperty("pairs").GetString(), again.RootElement.GetProperty("pairs").GetString());
        Assert.Equal(runs.GetArrayLength(), again.RootElement.GetProperty("reusedRuns").GetInt32());
        Assert.Contains("reused", File.ReadAllText(Path.Combine(_dir, "log.txt")));
    }

    [Fact]
    public void BadOptionsAreClearErrors()
    {
        string aFile = Path.Combine(_dir, "a-file");
        File.WriteAllText(aFile, "not a folder");
        foreach (var (args, expect) in new (string[], string)[]
        {
            (["experiment", "seed-claims", "--epochs", "0"], "--epochs"),
            (["experiment", "seed-claims", "--train-images", "10"], "--train-images"),
            (["experiment", "seed-claims", "--seeds", "0"], "--seeds"),
            (["experiment", "seed-claims", "--threads", "0"], "--threads"),
            (["experiment", "seed-claims", "--out", Path.Combine(aFile, "under-a-file")], "cannot create the folder"),
        })
        {
            var (code, _, err) = CliRunner.Run(args);
            Assert.Equal(1, code);
            Assert.Contains(expect, err);
        }
    }
}
