using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using MobileNetSharp.Models;
using MobileNetSharp.Tensors;
using MobileNetSharp.Training;

namespace MobileNetSharp.Bench;

/// <summary>
/// `training [--threads 1,2] [--networks mobilenet_v2,standard_conv_twin] [--rounds R] [--steps N] [--warmup N] [--batch B]
/// [--no-pytorch] [--json FILE]`: training images/s of the Fashion-MNIST MobileNetV2 (width 0.5, 28x28x1, --small-input:
/// 700,202 params) and its standard-convolution twin, ours and PyTorch's (tools/training/bench_pytorch.py, the identical
/// networks) in the same run. Each (network, threads) runs in a child process of its own so peak memory is that
/// configuration's. With --rounds R (default 3) ours and PyTorch alternate R times: a shared machine's load drifts over
/// minutes, so the ratio is the median of the R paired ratios, with their range, and images/s are medians.
/// Both engines warm up the same way before the timed steps: --warmup steps (default 40), or fewer when 30 s of warm-up have
/// passed (at least 3: the standard twin's steps take seconds, and its JIT is a small share of them). .NET's tiered compilation recompiles a
/// method with full optimization at its 30th call, on a background thread that takes a core from the step: a method
/// called once per step (the step's driver, the optimizer, the plan's single-use steps) is recompiled at step 30-31,
/// and those called a few times per step at steps 3-16 (`JitInfo` per step: 20-150 ms of JIT at steps 3, 4, 5, 9, 16
/// and 31). With the old 3 warm-up steps they fell in the timed window and cost ours about 5% (four interleaved pairs
/// of 20 timed steps at 2 threads: 243-267 against 260-270 images/s). The timed steps are a training run's steady state;
/// the child reports the JIT time that still fell inside them (jitMsTimed).
/// </summary>
public static class TrainingBench
{
    private static readonly string[] Networks = ["mobilenet_v2", "standard_conv_twin"];

    public static int Run(string[] args)
    {
        if (args.Length > 0 && args[0] == "--child") return Child(args[1], int.Parse(args[2], CultureInfo.InvariantCulture), int.Parse(args[3], CultureInfo.InvariantCulture),
            int.Parse(args[4], CultureInfo.InvariantCulture), int.Parse(args[5], CultureInfo.InvariantCulture));
        int[] threads = [1, 2];
        int steps = 20, warmup = 40, batch = 64, rounds = 3;
        string[] networks = Networks;
        string? json = null;
        bool pytorch = true;
        for (int i = 0; i < args.Length; i++)
            switch (args[i])
            {
                case "--threads": threads = args[++i].Split(',').Select(int.Parse).ToArray(); break;
                case "--steps": steps = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--warmup": warmup = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--batch": batch = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--rounds": rounds = Math.Max(1, int.Parse(args[++i], CultureInfo.InvariantCulture)); break;
                case "--networks": networks = args[++i].Split(','); break;
                case "--json": json = args[++i]; break;
                case "--no-pytorch": pytorch = false; break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        if (networks.FirstOrDefault(n => !Networks.Contains(n)) is { } unknown)
        {
            Console.Error.WriteLine($"unknown network {unknown}; the networks are {string.Join(", ", Networks)}");
            return 2;
        }
        var rows = new List<JsonObject>();
        foreach (var net in networks)
            foreach (var t in threads)
            {
                var ourRounds = new List<JsonObject>();
                var theirRounds = new List<JsonObject>();
                for (int round = 0; round < rounds; round++)
                {
                    ourRounds.Add(RunChild(net, t, warmup, steps, batch));
                    if (pytorch && PyTorch(net, t, warmup, steps, batch) is { } r) theirRounds.Add(r);
                }
                // The round whose images/s is the median stands for the rest (its step time, memory, load).
                var ours = ourRounds.OrderBy(r => (double)r["imagesPerSecond"]!).ElementAt(ourRounds.Count / 2);
                var theirs = theirRounds.Count == 0 ? null : theirRounds.OrderBy(r => (double)r["images_per_s"]!).ElementAt(theirRounds.Count / 2);
                double[] ratios = theirRounds.Count == ourRounds.Count
                    ? ourRounds.Zip(theirRounds, (a, b) => (double)a["imagesPerSecond"]! / (double)b["images_per_s"]!).Order().ToArray() : [];
                var row = new JsonObject
                {
                    ["network"] = net, ["threads"] = t, ["batch"] = batch, ["rounds"] = rounds, ["params"] = ours["params"]?.DeepClone(), ["macs"] = ours["macs"]?.DeepClone(),
                    ["oursImagesPerSecond"] = ours["imagesPerSecond"]?.DeepClone(), ["oursMedianStepMs"] = ours["medianStepMs"]?.DeepClone(),
                    ["oursPeakWorkingSetMb"] = ours["peakWorkingSetMb"]?.DeepClone(), ["oursJitMsTimed"] = ours["jitMsTimed"]?.DeepClone(),
                    ["oursWarmupSteps"] = ours["warmupSteps"]?.DeepClone(), ["pytorchWarmupSteps"] = theirs?["warmup_steps"]?.DeepClone(), ["timedSteps"] = steps,
                    ["oursImagesPerSecondRounds"] = new JsonArray(ourRounds.Select(r => r["imagesPerSecond"]!.DeepClone()).ToArray()),
                    ["pytorchImagesPerSecond"] = theirs?["images_per_s"]?.DeepClone(), ["pytorchMedianStepMs"] = theirs?["median_step_ms"]?.DeepClone(),
                    ["pytorchPeakRssMb"] = theirs?["peak_rss_mb"]?.DeepClone(),
                    ["pytorchImagesPerSecondRounds"] = new JsonArray(theirRounds.Select(r => r["images_per_s"]!.DeepClone()).ToArray()),
                    ["speedup"] = ratios.Length > 0 ? Math.Round(ratios[ratios.Length / 2], 2) : null,
                    ["speedupMin"] = ratios.Length > 0 ? Math.Round(ratios[0], 2) : null,
                    ["speedupMax"] = ratios.Length > 0 ? Math.Round(ratios[^1], 2) : null,
                    ["loadAverage1m"] = ours["loadAverage1m"]?.DeepClone(),
                };
                rows.Add(row);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{net,-20} {t} thread(s): ours {(double)row["oursImagesPerSecond"]!,7:F1} img/s ({(double)row["oursMedianStepMs"]!:F0} ms/step, {(double)row["oursPeakWorkingSetMb"]!:F0} MB, JIT {(double)row["oursJitMsTimed"]!:F0} ms in the timed steps)")
                    + (theirs is null ? "" : string.Create(CultureInfo.InvariantCulture,
                        $"  PyTorch {(double)theirs["images_per_s"]!,7:F1} img/s ({(double)theirs["median_step_ms"]!:F0} ms/step, {(double)theirs["peak_rss_mb"]!:F0} MB)")
                        + (ratios.Length == 0 ? "" : string.Create(CultureInfo.InvariantCulture, $"  x{ratios[ratios.Length / 2]:F2} (rounds x{ratios[0]:F2}-x{ratios[^1]:F2})"))));
            }
        if (json is not null) File.WriteAllText(json, new JsonArray(rows.Select(r => (JsonNode)r).ToArray()).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    private static JsonObject RunChild(string net, int threads, int warmup, int steps, int batch)
    {
        var self = Environment.ProcessPath!;
        var psi = new ProcessStartInfo(self) { RedirectStandardOutput = true, UseShellExecute = false };
        // Under `dotnet bench.dll` the process is dotnet itself: pass the assembly first.
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") psi.ArgumentList.Add(typeof(TrainingBench).Assembly.Location);
        foreach (var a in new[] { "training", "--child", net, threads.ToString(CultureInfo.InvariantCulture), warmup.ToString(CultureInfo.InvariantCulture),
                     steps.ToString(CultureInfo.InvariantCulture), batch.ToString(CultureInfo.InvariantCulture) }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return JsonNode.Parse(output.Trim().Split('\n')[^1]) as JsonObject ?? throw new InvalidOperationException($"child printed {output}");
    }

    private static JsonObject? PyTorch(string net, int threads, int warmup, int steps, int batch)
    {
        string script = Path.Combine(RepoRoot(), "tools", "training", "bench_pytorch.py");
        if (!File.Exists("/usr/bin/python3") || !File.Exists(script)) return null;
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { script, "--networks", net, "--threads", threads.ToString(CultureInfo.InvariantCulture), "--warmup", warmup.ToString(CultureInfo.InvariantCulture),
                     "--steps", steps.ToString(CultureInfo.InvariantCulture), "--batch", batch.ToString(CultureInfo.InvariantCulture) }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) { Console.Error.WriteLine($"PyTorch run failed (python3-torch installed?): exit {p.ExitCode}"); return null; }
        return output.Split('\n').Where(l => l.StartsWith('{')).Select(l => JsonNode.Parse(l) as JsonObject).LastOrDefault();
    }

    private static string RepoRoot()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d is not null && !File.Exists(Path.Combine(d.FullName, "MobileNetSharp.sln"))) d = d.Parent;
        return d?.FullName ?? Directory.GetCurrentDirectory();
    }

    /// <summary>Warm-up stops after this long once <see cref="MinWarmupSteps"/> have run (tools/training/bench_pytorch.py: the same).</summary>
    private const double MaxWarmupSeconds = 30;
    private const int MinWarmupSteps = 3;

    private static int Child(string net, int threads, int warmup, int steps, int batch)
    {
        var g = ModelZoo.Create("mobilenet_v2", new ModelOptions(0.5f, 28, 10, batch, InChannels: 1, SmallInput: true));
        if (net == "standard_conv_twin") g = StandardTwin.Of(g);
        var cost = Graph.CostModel.Analyze(g);
        using var session = new TrainingSession(g, new TrainingOptions { Threads = threads });
        var sgd = new Sgd(session.Parameters, 0.9f);
        var x = Tensor.Random(0, [batch, 1, 28, 28]);
        var labels = Enumerable.Range(0, batch).Select(i => i % 10).ToArray();
        long warmupStart = Stopwatch.GetTimestamp();
        int warmed = 0;
        for (; warmed < warmup && (warmed < MinWarmupSteps || Stopwatch.GetElapsedTime(warmupStart).TotalSeconds < MaxWarmupSeconds); warmed++)
        {
            session.Step(x, labels, (ulong)warmed);
            sgd.Step(0.01f);
        }
        var times = new List<double>();
        var jit0 = System.Runtime.JitInfo.GetCompilationTime();
        long methods0 = System.Runtime.JitInfo.GetCompiledMethodCount();
        for (int i = 0; i < steps; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            session.Step(x, labels, (ulong)(warmed + i));
            sgd.Step(0.01f);
            times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        double jitMs = (System.Runtime.JitInfo.GetCompilationTime() - jit0).TotalMilliseconds;
        long methods = System.Runtime.JitInfo.GetCompiledMethodCount() - methods0;
        double total = times.Sum();
        times.Sort();
        Console.WriteLine(new JsonObject
        {
            ["network"] = net, ["threads"] = threads, ["params"] = cost.Params, ["macs"] = cost.Macs,
            ["imagesPerSecond"] = Math.Round(batch * steps / (total / 1000), 1), ["medianStepMs"] = Math.Round(times[times.Count / 2], 1),
            ["peakWorkingSetMb"] = Math.Round(Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0, 1),
            ["jitMsTimed"] = Math.Round(jitMs, 1), ["methodsCompiledTimed"] = methods, ["warmupSteps"] = warmed,
            ["loadAverage1m"] = File.Exists("/proc/loadavg") ? double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture) : null,
        }.ToJsonString());
        return 0;
    }
}
