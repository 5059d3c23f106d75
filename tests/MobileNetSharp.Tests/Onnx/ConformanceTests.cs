using System.Text;
using MobileNetSharp.Graph;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using Xunit.Abstractions;

namespace MobileNetSharp.Tests.Onnx;

/// <summary>
/// The ONNX backend node tests (and the pytorch-converted/-operator ones) for every operator we claim.
/// Outputs must match the reference to rtol 1e-3, atol 1e-5 (numpy.allclose; ONNX's runner uses rtol 1e-3).
/// A claimed test fails the run unless it is listed in <see cref="ConformanceSuite.ExpectedRejections"/>
/// and the importer refuses it with that reason. The summary (ran, passed, skipped with reasons) is printed.
/// </summary>
[Collection("Console")]
public class ConformanceTests(ITestOutputHelper output)
{
    /// <summary>
    /// Exactly as a user would: `mnet run model.onnx --input NAME=input_i.pb ...`, outputs read back from the
    /// .npy files it writes. No input is bound as a constant: weights, BatchNorm statistics and Clip bounds
    /// that the test feeds as graph inputs are runtime values here.
    /// </summary>
    [Fact]
    public void ClaimedBackendTestsPassThroughMnetRun() => RunAll("mnet run", "cli", RunThroughCli, typeRefusalSkips: true, deviations: new Dictionary<string, string>());

    [Fact]
    public void ClaimedBackendTestsPassInOurSession() => RunAll("our InferenceSession", "session", RunInSession, typeRefusalSkips: true, deviations: new Dictionary<string, string>());

    /// <summary>Import -> export -> ONNX Runtime: checks the importer's reading of each test independently of our kernels.</summary>
    [Fact]
    public void ClaimedBackendTestsSurviveImportAndExportToOrt() => RunAll("import -> export -> ONNX Runtime", "ort", RunInOrt, typeRefusalSkips: false, ConformanceSuite.OrtDeviations);

    private readonly HashSet<string> _boundBySessionLimits = [];

    private delegate string? Runner(ConformanceCase c, DataSet data, ModelGraph graph);

    /// <summary>What the plan compiler says when a kernel does not take an element type (PlanCompiler.Require).</summary>
    private const string TypeRefusal = "the runtime computes this op on";

    /// <param name="deviations">Tests whose expected output the engine is known not to reproduce (a mismatch there is reported, not failed).</param>
    private void RunAll(string engine, string reportName, Runner run, bool typeRefusalSkips, IReadOnlyDictionary<string, string> deviations)
    {
        Assert.True(ConformanceSuite.Available, $"ONNX backend test data not found under {ConformanceSuite.Root}; install libonnx-testdata.");
        var survey = ConformanceSuite.Scan();
        var failures = new List<string>();
        var rejected = new List<string>();
        var deviated = new List<string>();
        var typeSkips = new List<string>(survey.TypeSkips);
        int passed = 0, frozenRuns = 0;
        foreach (var c in survey.Claimed)
        {
            string? failure = null, skip = null;
            bool rejectedAsExpected = false, usedFrozen = false;
            try
            {
                foreach (var data in c.DataSets())
                {
                    if (ConformanceSuite.ExpectedRejections.TryGetValue(c.Id, out var reason))
                    {
                        var e = Assert.ThrowsAny<ModelFormatException>(() => ConformanceSuite.Load(c, data));
                        if (!e.Message.Contains(reason)) failure = $"rejected for another reason: {e.Message}";
                        rejectedAsExpected = true;
                        break;
                    }
                    var (graph, frozen) = ConformanceSuite.Load(c, data);
                    usedFrozen |= frozen.Count > 0;
                    failure = run(c, data, graph);
                    if (failure is not null) break;
                }
            }
            catch (GraphException e) when (typeRefusalSkips && e.Message.Contains(TypeRefusal)) { skip = e.Message; }
            catch (Exception e) { failure = $"{e.GetType().Name}: {e.Message}"; }

            if (failure is not null && deviations.TryGetValue(c.Id, out var known) && !failure.Contains("Exception")) deviated.Add($"{c.Id} ({known}: {failure})");
            else if (failure is not null) failures.Add($"{c.Id}: {failure}");
            else if (rejectedAsExpected) rejected.Add($"{c.Id} ({ConformanceSuite.ExpectedRejections[c.Id]})");
            else if (skip is not null) typeSkips.Add($"{c.Id} ({skip})");
            else { passed++; if (usedFrozen) frozenRuns++; }
        }

        var report = new StringBuilder();
        report.AppendLine($"ONNX backend tests through {engine}:");
        string departures = deviated.Count > 0 ? $", known engine departures {deviated.Count}" : "";
        report.AppendLine(reportName == "cli"
            ? $"  claimed {survey.Claimed.Count}: ran {passed + failures.Count + deviated.Count}, passed {passed}, failed {failures.Count}{departures}"
            : $"  claimed {survey.Claimed.Count}: ran {passed + failures.Count + deviated.Count}, passed {passed} ({frozenRuns} with parameter inputs bound at load time), failed {failures.Count}{departures}");
        if (_boundBySessionLimits.Count > 0)
        {
            report.AppendLine(reportName == "cli"
                ? $"  ran with inputs that must be known at load time (shapes, axes, indices, load-time-only operators) bound from their files by mnet run ({_boundBySessionLimits.Count}):"
                : $"  ran with the inputs after the first bound as constants, because the session refused them as runtime inputs ({_boundBySessionLimits.Count}):");
            foreach (var b in _boundBySessionLimits.Order()) report.AppendLine($"    {b}");
        }
        if (deviated.Count > 0)
        {
            report.AppendLine($"  known departures of the engine from the ONNX reference ({deviated.Count}):");
            foreach (var d in deviated) report.AppendLine($"    {d}");
        }
        report.AppendLine($"  refused on purpose ({rejected.Count}):");
        foreach (var r in rejected) report.AppendLine($"    {r}");
        report.AppendLine($"  skipped, claimed ops on element types we do not hold or whose kernels do not take them ({typeSkips.Count}):");
        foreach (var s in typeSkips) report.AppendLine($"    {s}");
        report.AppendLine($"  skipped as unclaimed ({survey.Unclaimed.Values.Sum(v => v.Count)} tests), by missing operators:");
        foreach (var (ops, tests) in survey.Unclaimed) report.AppendLine($"    {ops}: {tests.Count}");
        foreach (var f in failures) report.AppendLine($"  FAILED {f}");
        output.WriteLine(report.ToString());
        File.WriteAllText(Path.Combine(AppContext.BaseDirectory, $"onnx-conformance-{reportName}.txt"), report.ToString());
        Assert.True(failures.Count == 0, $"{failures.Count} claimed backend test(s) failed:\n{string.Join("\n", failures)}");
    }

    /// <summary>
    /// Constant outputs (computed at load time) are compared as they are; the session runs the rest. When
    /// the session cannot take the graph as the test feeds it (it wants weights constant and every input to
    /// share one batch size), the run is repeated with every input but the first bound as a constant, and
    /// the case is reported as such.
    /// </summary>
    private string? RunInSession(ConformanceCase c, DataSet data, ModelGraph graph)
    {
        var actual = new Dictionary<string, Tensor>();
        foreach (var o in graph.Outputs.Where(o => o.IsConstant)) actual[o.Name] = o.Constant!;
        var computed = graph.Clone();
        computed.Outputs.RemoveAll(o => o.IsConstant);
        if (computed.Outputs.Count > 0)
        {
            Dictionary<string, Tensor> Feeds(ModelGraph g) => g.Inputs.ToDictionary(v => v.Name, v => data.Inputs[Array.IndexOf(c.InputNames, v.Name)]);
            IReadOnlyDictionary<string, Tensor> results;
            try
            {
                using var session = new InferenceSession(computed, new SessionOptions { Threads = 2 });
                results = session.Run(Feeds(computed));
            }
            catch (Exception e) when (e is GraphException or ArgumentException && c.InputNames.Length > 1)
            {
                var bound = c.InputNames.Skip(1).ToDictionary(n => n, n => data.Inputs[Array.IndexOf(c.InputNames, n)]);
                var g = OnnxImporter.Load(c.ModelPath, new OnnxImportOptions { Constants = bound });
                g.Outputs.RemoveAll(o => o.IsConstant);
                using var session = new InferenceSession(g, new SessionOptions { Threads = 2 });
                results = session.Run(Feeds(g));
                _boundBySessionLimits.Add($"{c.Id} ({e.Message})");
            }
            foreach (var (name, t) in results) actual.TryAdd(name, t);
        }
        return CompareOutputs(c, data, actual);
    }

    private string? RunThroughCli(ConformanceCase c, DataSet data, ModelGraph graph)
    {
        string dir = Path.Combine(Path.GetTempPath(), "mnet-conformance", c.Suite, c.Name, Path.GetFileName(data.Folder));
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        var args = new List<string> { "run", c.ModelPath, "--threads", "2", "--output", dir };
        for (int i = 0; i < c.InputNames.Length; i++) args.AddRange(["--input", $"{c.InputNames[i]}={Path.Combine(data.Folder, $"input_{i}.pb")}"]);
        var (code, stdout, stderr) = Cli.CliRunner.Run([.. args]);
        if (code != 0 && stderr.Contains(TypeRefusal)) throw new GraphException(stderr.Trim());
        if (code != 0) return $"mnet run exited {code}: {stderr.Trim()}";
        if (stderr.Contains("must be known at load time")) _boundBySessionLimits.Add($"{c.Id} ({stderr.Trim()})");
        // Each output is reported as "NAME: [shape] -> FILE".
        var actual = new Dictionary<string, Tensor>();
        foreach (var line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            int arrow = line.LastIndexOf(" -> ", StringComparison.Ordinal), colon = line.LastIndexOf(": [", arrow, StringComparison.Ordinal);
            if (arrow > 0 && colon >= 0) actual[line[..colon]] = Npy.Read(line[(arrow + 4)..].Trim());
        }
        Directory.Delete(dir, recursive: true);
        return CompareOutputs(c, data, actual);
    }

    private string? RunInOrt(ConformanceCase c, DataSet data, ModelGraph graph)
    {
        var feeds = graph.Inputs.Select(v => new KeyValuePair<string, Tensor>(v.Name, data.Inputs[Array.IndexOf(c.InputNames, v.Name)]));
        return CompareOutputs(c, data, OrtRunner.Run(OnnxExporter.ToBytes(graph), feeds));
    }

    private static string? CompareOutputs(ConformanceCase c, DataSet data, IReadOnlyDictionary<string, Tensor> actual)
    {
        for (int i = 0; i < c.OutputNames.Length; i++)
        {
            if (!actual.TryGetValue(c.OutputNames[i], out var t)) return $"output '{c.OutputNames[i]}' missing";
            if (ConformanceSuite.Mismatch(data.Outputs[i], t) is { } m) return $"{Path.GetFileName(data.Folder)} output '{c.OutputNames[i]}': {m}";
        }
        return null;
    }
}
