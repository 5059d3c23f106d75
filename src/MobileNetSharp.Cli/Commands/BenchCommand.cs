using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using MobileNetSharp.Graph;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using Spectre.Console;

namespace MobileNetSharp.Cli.Commands;

/// <summary>
/// `mnet bench MODEL|ARCH`: what a user needs to size a deployment, measured on this machine: load time
/// (import + session), first run, latency quantiles, images/s, GFLOP/s, peak memory and managed
/// allocations per steady-state run.
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Architecture name (see `mnet list`) or a .onnx file" };
        var (width, res, classes, threads, json) = (Cli.Width(), Cli.Resolution(), Cli.Classes(), Cli.Threads(), Cli.Json());
        var (channels, small) = (Cli.Channels(), Cli.SmallInput());
        var batch = new Option<int?>("--batch", "-b") { Description = "Images per run: sets dimension 0 of every input (default: the model's own batch, 1 for architectures)" };
        var runs = new Option<int>("--runs") { Description = "Timed runs", DefaultValueFactory = _ => 50 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed runs after the first, before timing", DefaultValueFactory = _ => 5 };
        var noFuse = Cli.NoFuse();
        var cmd = new Command("bench", "Load time, first run, latency quantiles, images/s, GFLOP/s, peak memory and allocations per run")
            { model, width, res, classes, channels, small, threads, batch, runs, warmup, noFuse, json };
        var shapes = new ShapeOptions();
        shapes.AddTo(cmd);
        cmd.SetAction(r => Cli.Guard(() =>
        {
            int nRuns = r.GetValue(runs), nWarmup = r.GetValue(warmup), nThreads = r.GetValue(threads);
            int? nBatch = r.GetValue(batch);
            if (nRuns < 1 || nRuns > 100_000) throw new ArgumentException("--runs must be in 1..100000.");
            if (nWarmup < 0 || nWarmup > 100_000) throw new ArgumentException("--warmup must be in 0..100000.");
            if (nBatch is < 1 or > 4096) throw new ArgumentException("--batch must be in 1..4096.");
            if (nThreads < 1 || nThreads > SessionOptions.MaxThreads) throw new ArgumentException($"Threads must be between 1 and {SessionOptions.MaxThreads}, got {nThreads}.");
            string source = r.GetValue(model)!;
            bool quiet = r.GetValue(json);
            Result? result = null;
            Cli.WithStatus(quiet, status => result = Measure(source, r, shapes, width, res, classes, channels, small, nBatch, nThreads, nRuns, nWarmup, !r.GetValue(noFuse), status));
            var x = result!;
            if (quiet)
            {
                Cli.PrintJson(new
                {
                    model = x.Model, threads = nThreads, batch = x.Batch, shape = x.Inputs[0].Shape,
                    inputs = x.Inputs.Select(i => new { name = i.Name, shape = i.Shape }),
                    runs = nRuns, warmup = nWarmup, macs = x.Macs, fuseBlocks = !r.GetValue(noFuse),
                    loadMs = x.LoadMs, firstRunMs = x.FirstRunMs, medianMs = x.MedianMs, p90Ms = x.P90Ms, p99Ms = x.P99Ms, minMs = x.MinMs,
                    imagesPerSecond = x.ImagesPerSecond, gflops = x.Gflops,
                    peakWorkingSetBytes = x.PeakWorkingSetBytes, allocatedBytesPerRun = x.AllocatedBytesPerRun,
                    loadJitMs = x.LoadJitMs, firstRunJitMs = x.FirstRunJitMs,
                });
                return 0;
            }
            var inv = CultureInfo.InvariantCulture;
            string inputs = string.Join(", ", x.Inputs.Select(i => $"{i.Name} {string.Join("x", i.Shape)}"));
            var t = new Table().Title($"{Markup.Escape(x.Model)}: {Markup.Escape(inputs)}, {nThreads} thread(s), {nRuns} timed runs after {nWarmup} warm-up{(r.GetValue(noFuse) ? ", layer by layer (--no-fuse)" : "")}")
                .AddColumns("measure", "value");
            t.AddRow("load (import + session + plan)", $"{Cli.Ms(x.LoadMs)} (JIT {Cli.Ms(x.LoadJitMs)})");
            t.AddRow("first run", $"{Cli.Ms(x.FirstRunMs)} (JIT {Cli.Ms(x.FirstRunJitMs)})");
            t.AddRow("median", Cli.Ms(x.MedianMs));
            t.AddRow("p90", Cli.Ms(x.P90Ms));
            t.AddRow("p99", Cli.Ms(x.P99Ms));
            t.AddRow("min", Cli.Ms(x.MinMs));
            t.AddRow("images/s", x.ImagesPerSecond.ToString("0.0", inv));
            t.AddRow("GFLOP/s (2 x MACs / median)", $"{x.Gflops.ToString("0.0", inv)} ({Cli.Millions(x.Macs)} MACs per run)");
            t.AddRow("peak working set", $"{(x.PeakWorkingSetBytes / (1024.0 * 1024)).ToString("0.0", inv)} MiB");
            t.AddRow("managed bytes allocated per run", x.AllocatedBytesPerRun.ToString("0", inv));
            Cli.Out.Write(t);
            return 0;
        }));
        return cmd;
    }

    internal sealed record Result(string Model, int Batch, TensorInfo[] Inputs, long Macs, double LoadMs, double FirstRunMs,
        double MedianMs, double P90Ms, double P99Ms, double MinMs, double ImagesPerSecond, double Gflops,
        long PeakWorkingSetBytes, double AllocatedBytesPerRun, double LoadJitMs, double FirstRunJitMs);

    private static Result Measure(string source, ParseResult r, ShapeOptions shapes, Option<float> width, Option<int?> res, Option<int> classes,
        Option<int> channels, Option<bool> small, int? batch, int threads, int runs, int warmup, bool fuse, Action<string> status)
    {
        status($"loading {source}...");
        // Load = import (or build) + session creation + the plan for the shapes measured: what a user waits for before the first run.
        // JIT time is the process's (kernel workers included), and so includes what the kernel warm-up compiled meanwhile on its own thread.
        var jit0 = System.Runtime.JitInfo.GetCompilationTime();
        var sw = Stopwatch.StartNew();
        var graph = ModelSource.Load(source, r.GetValue(width), r.GetValue(res), r.GetValue(classes), shapes.ImportOptions(r), batch ?? 1,
            r.GetValue(channels), r.GetValue(small));
        using var session = new InferenceSession(graph, new SessionOptions { Threads = threads, FuseBlocks = fuse });
        var inputShapes = session.Inputs.Select(i => WithBatch(i.Shape, batch)).ToArray();
        var outputShapes = session.OutputShapes(inputShapes);
        double loadMs = sw.Elapsed.TotalMilliseconds;
        var jit1 = System.Runtime.JitInfo.GetCompilationTime();

        var inputs = session.Inputs.Select((i, k) => i.DataType == DataType.Float32 ? Tensor.Random(k + 1, inputShapes[k]) : Tensor.Create(i.DataType, inputShapes[k])).ToArray();
        var outputs = session.Outputs.Select((o, k) => Tensor.Create(o.DataType, outputShapes[k])).ToArray();
        status("first run...");
        sw.Restart();
        session.Run(inputs, outputs);
        double firstMs = sw.Elapsed.TotalMilliseconds;
        var jit2 = System.Runtime.JitInfo.GetCompilationTime();

        status($"{warmup} warm-up run(s)...");
        for (int i = 0; i < warmup; i++) session.Run(inputs, outputs);
        status($"{runs} timed run(s), {threads} thread(s)...");
        var samples = new double[runs];
        // Allocations are judged over three windows of the timed runs and the lowest is reported: a one-time
        // allocation by the runtime (a method reaching its optimized tier) is not a per-run cost.
        double allocated = double.MaxValue;
        for (int start = 0, w = 0; start < runs; w++)
        {
            int end = w == 2 ? runs : Math.Min(runs, start + Math.Max(1, runs / 3));
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = start; i < end; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                session.Run(inputs, outputs);
                samples[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            }
            allocated = Math.Min(allocated, (double)(GC.GetAllocatedBytesForCurrentThread() - before) / (end - start));
            start = end;
        }

        long macs = CostModel.Analyze(AtShapes(graph, inputShapes)).Macs;
        Array.Sort(samples);
        double median = samples.Length % 2 == 1 ? samples[samples.Length / 2] : (samples[samples.Length / 2 - 1] + samples[samples.Length / 2]) / 2;
        int images = inputShapes.Length > 0 && inputShapes[0].Length > 0 ? inputShapes[0][0] : 1;
        return new Result(graph.Name, images, session.Inputs.Select((i, k) => new TensorInfo(i.Name, inputShapes[k], i.DataType)).ToArray(), macs,
            loadMs, firstMs, median, Quantile(samples, 0.9), Quantile(samples, 0.99), samples[0],
            images * 1000.0 / median, 2.0 * macs / (median * 1e6), PeakWorkingSet(), allocated,
            (jit1 - jit0).TotalMilliseconds, (jit2 - jit1).TotalMilliseconds);
    }

    /// <summary>Nearest-rank quantile of sorted samples, as <see cref="LatencyStats"/> computes p90.</summary>
    internal static double Quantile(double[] sorted, double q) => sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];

    private static int[] WithBatch(int[] shape, int? batch)
    {
        var s = (int[])shape.Clone();
        if (batch is { } b && s.Length > 0) s[0] = b;
        return s;
    }

    /// <summary>The graph at the measured input shapes, so MACs count every image of the batch.</summary>
    private static ModelGraph AtShapes(ModelGraph g, int[][] shapes)
    {
        if (g.Inputs.Select((v, i) => Shape.Equal(v.Shape, shapes[i])).All(e => e)) return g;
        var copy = g.Clone();
        for (int i = 0; i < shapes.Length; i++) copy.Inputs[i].Shape = (int[])shapes[i].Clone();
        copy.InferShapes();
        return copy;
    }

    /// <summary>The process's peak resident set: VmHWM on Linux, the runtime's figure elsewhere.</summary>
    private static long PeakWorkingSet()
    {
        try
        {
            if (OperatingSystem.IsLinux())
                foreach (var line in File.ReadLines("/proc/self/status"))
                    if (line.StartsWith("VmHWM:", StringComparison.Ordinal)
                        && long.TryParse(line[6..].Trim().Split(' ')[0], NumberStyles.None, CultureInfo.InvariantCulture, out long kb))
                        return kb * 1024;
        }
        catch (IOException) { }
        using var p = Process.GetCurrentProcess();
        return p.PeakWorkingSet64;
    }
}
