using System.Diagnostics;
using System.Globalization;
using MobileNetSharp.Graph;
using MobileNetSharp.Models;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using Ort = Microsoft.ML.OnnxRuntime;

namespace MobileNetSharp.Bench;

/// <summary>
/// Whole models, ours against ONNX Runtime, in one process and one run: the same ONNX bytes, the same
/// input, the same thread count, warm-up first, then A/B alternated run by run so both see the same
/// machine load. Reports median/p90/min, the ratio ours/ORT, GFLOP/s, images/s, load and first-run times,
/// managed bytes allocated per run, and the largest output difference as a sanity check. With
/// `--batches 1,8,32` each model is exported and measured at each batch size (throughput); `--json FILE`
/// also writes the rows as a JSON array.
/// <para>
/// Between blocks the bench pauses (<c>--pause MS</c>, default 100) so that neither engine's worker threads
/// are still running when the other starts. ONNX Runtime's workers keep spinning on a core for about 50 ms
/// after its last run (measured here by sampling the process's CPU time in 10 ms windows after an ORT block:
/// 8-12 ms of CPU per window for five windows, then 0). With the earlier 20 ms pause our first three or four
/// runs after each ORT block had one core instead of two, which doubled our p90 at 2 threads while our
/// per-position medians after the fourth run matched ORT's. <c>--by-position</c> prints the median and
/// maximum latency of each run position within a block, the tool that showed it.
/// </para>
/// </summary>
public static class ModelBench
{
    private static readonly string[] DefaultArchs = ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_lite0"];

    public static int Run(string[] args)
    {
        var archs = new List<string>();
        int runs = 50;
        var batches = new List<int>();
        string? jsonPath = null;
        var threads = new List<int>();
        float width = 1f;
        bool ortSpin = true;
        int? res = null;
        int pauseMs = 100;
        bool byPosition = false;
        int coldRounds = 0;
        var reader = new BenchArgs(args);
        foreach (var option in reader.Options())
            switch (option)
            {
                case "--arch": archs.AddRange(reader.Value().Split(',')); break;
                case "--threads": threads.AddRange(reader.Ints(min: 1)); break;
                case "--runs": runs = reader.Int(min: 1); break;
                case "--batch" or "--batches": batches.AddRange(reader.Ints(min: 1)); break;
                case "--json": jsonPath = reader.Value(); break;
                case "--width": width = reader.Float(); break;
                case "--resolution": res = reader.Int(min: 1); break;
                case "--ort-no-spin": ortSpin = false; break;
                case "--pause": pauseMs = reader.Int(min: 0); break;
                case "--by-position": byPosition = true; break;
                case "--cold-start": coldRounds = reader.Int(min: 1); break;
                default: throw reader.Unknown();
            }
        if (archs.Count == 0) archs.AddRange(DefaultArchs);
        if (threads.Count == 0) threads.AddRange([1, Environment.ProcessorCount]);
        threads = threads.Distinct().ToList();
        if (batches.Count == 0) batches.Add(1);
        batches = batches.Distinct().ToList();
        BenchArgs.CheckUpFront(archs, threads, jsonPath);

        double peak = PeakProbe.SingleCoreGflops();
        Console.WriteLine($"# MobileNetSharp vs ONNX Runtime {typeof(Ort.InferenceSession).Assembly.GetName().Version}");
        Console.WriteLine($"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture}, ISA {MobileNetSharp.Kernels.Isa.Best}, " +
            $"measured fp32 FMA peak {peak:F0} GFLOP/s per core; batch {string.Join(", ", batches)}, {runs} timed runs each, alternated in blocks of {Block} with {pauseMs} ms pauses after warm-up; " +
            $"ORT worker spinning {(ortSpin ? "on (its default)" : "off")}.");
        Console.WriteLine();
        Console.WriteLine("| model | batch | threads | ours median | ours p90 | ours min | ORT median | ORT p90 | ORT min | ours/ORT | ours img/s | ORT img/s | ours GFLOP/s | % peak | load ours/ORT | first run ours/ORT | alloc/run | max rel diff |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        var rows = new List<Row>();
        foreach (var arch in archs)
            foreach (int batch in batches)
                foreach (int t in threads)
                {
                    var row = Measure(arch, width, res, batch, t, runs, ortSpin, pauseMs, byPosition, coldRounds);
                    rows.Add(row);
                    Console.WriteLine(row.Markdown(peak));
                }
        if (jsonPath is not null)
            File.WriteAllText(jsonPath, System.Text.Json.JsonSerializer.Serialize(rows, new System.Text.Json.JsonSerializerOptions
                { WriteIndented = true, PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.CamelCase }));
        if (coldRounds > 0)
        {
            Console.WriteLine();
            Console.WriteLine($"Cold start: each engine loads the model and runs it once in a fresh process, medians of {coldRounds} rounds (ours and ORT alternating).");
            Console.WriteLine();
            Console.WriteLine("| model | batch | threads | load ours/ORT | ratio | first run ours/ORT | ratio |");
            Console.WriteLine("|---|---|---|---|---|---|---|");
            foreach (var row in rows)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {row.Model} | {row.Batch} | {row.Threads} | {row.OursColdLoadMs:F0}/{row.OrtColdLoadMs:F0} ms | **{row.OursColdLoadMs / row.OrtColdLoadMs:F2}** | {row.OursColdFirstRunMs:F1}/{row.OrtColdFirstRunMs:F1} ms | **{row.OursColdFirstRunMs / row.OrtColdFirstRunMs:F2}** |"));
        }
        Console.WriteLine();
        Console.WriteLine($"Process peak working set: {Process.GetCurrentProcess().PeakWorkingSet64 / (1024 * 1024)} MiB.");
        return 0;
    }

    private const int Block = 10;

    /// <summary>ONNX Runtime's session options for the side-by-side rows (and the cold-start children): all graph
    /// optimizations, <paramref name="threads"/> intra-op threads, sequential execution; worker spinning as ORT's default
    /// unless <paramref name="spin"/> is false.</summary>
    internal static Ort.SessionOptions OrtOptions(int threads, bool spin = true)
    {
        var options = new Ort.SessionOptions
        {
            IntraOpNumThreads = threads, InterOpNumThreads = 1,
            GraphOptimizationLevel = Ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = Ort.ExecutionMode.ORT_SEQUENTIAL,
        };
        if (!spin) options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        return options;
    }

    /// <summary>One model at one batch and thread count, both engines (the JSON names are those of issue 9; the cold-start
    /// ones are null unless <c>--cold-start</c> was given).</summary>
    public sealed record Row(string Model, int Batch, int Threads, double OursMedianMs, double OrtMedianMs, double Ratio,
        double OursP90Ms, double OrtP90Ms, double OursMinMs, double OrtMinMs, double OursImagesPerSecond, double OrtImagesPerSecond,
        double OursGflops, double OursFirstRunMs, double OrtFirstRunMs, double OursLoadMs, double OrtLoadMs, long AllocatedBytesPerRun, double MaxRelDiff)
    {
        public double? OursColdLoadMs { get; init; }
        public double? OrtColdLoadMs { get; init; }
        public double? OursColdFirstRunMs { get; init; }
        public double? OrtColdFirstRunMs { get; init; }

        public string Markdown(double peak) => string.Create(CultureInfo.InvariantCulture,
            $"| {Model} | {Batch} | {Threads} | {OursMedianMs:F2} ms | {OursP90Ms:F2} | {OursMinMs:F2} | {OrtMedianMs:F2} ms | {OrtP90Ms:F2} | {OrtMinMs:F2} | **{Ratio:F2}** | {OursImagesPerSecond:F0} | {OrtImagesPerSecond:F0} | {OursGflops:F1} | {100 * OursGflops / (peak * Threads):F0}% | {OursLoadMs:F0}/{OrtLoadMs:F0} ms | {OursFirstRunMs:F1}/{OrtFirstRunMs:F1} ms | {AllocatedBytesPerRun} B | {MaxRelDiff:E1} |");
    }

    private static Row Measure(string arch, float width, int? res, int batch, int threads, int runs, bool ortSpin, int pauseMs, bool byPosition, int coldRounds)
    {
        var graph = ModelZoo.Create(arch, new ModelOptions(width, res, Batch: batch));
        byte[] onnx = OnnxExporter.ToBytes(graph);
        var row = MeasureInProcess(arch, width, graph, onnx, batch, threads, runs, ortSpin, pauseMs, byPosition);
        if (coldRounds == 0) return row;
        // After the in-process sessions are gone, so the children have the machine to themselves.
        var (coldOurs, coldOrt) = ColdStart.Measure(onnx, threads, coldRounds);
        return row with
        {
            OursColdLoadMs = coldOurs.LoadMs, OrtColdLoadMs = coldOrt.LoadMs,
            OursColdFirstRunMs = coldOurs.FirstRunMs, OrtColdFirstRunMs = coldOrt.FirstRunMs,
        };
    }

    private static Row MeasureInProcess(string arch, float width, ModelGraph graph, byte[] onnx, int batch, int threads, int runs, bool ortSpin, int pauseMs, bool byPosition)
    {
        long macs = CostModel.Analyze(graph).Macs;
        var inputShape = graph.Inputs[0].Shape;
        var input = Tensor.Random(1, inputShape);

        // Ours: from the same ONNX bytes, as a user would load it.
        var sw = Stopwatch.StartNew();
        using var ours = new InferenceSession(OnnxImporter.Load(onnx), new SessionOptions { Threads = threads });
        double oursLoad = sw.Elapsed.TotalMilliseconds;
        Tensor[] oursIn = [input];
        Tensor[] oursOut = [Tensor.Zeros(ours.Outputs[0].Shape)];
        sw.Restart();
        ours.Run(oursIn, oursOut);
        double oursFirst = sw.Elapsed.TotalMilliseconds;

        // Our kernel warm-up (a background thread started by the first load in the process) must not share the cores
        // with ORT's load and first run.
        KernelWarmup.Completion.Wait();

        // ONNX Runtime: all graph optimizations, intra-op threads = ours, pre-bound input and output.
        using var options = OrtOptions(threads, ortSpin);
        sw.Restart();
        using var ort = new Ort.InferenceSession(onnx, options);
        double ortLoad = sw.Elapsed.TotalMilliseconds;
        var ortOutData = new float[oursOut[0].Length];
        using var ortIn = Ort.OrtValue.CreateTensorValueFromMemory(input.Floats, inputShape.Select(d => (long)d).ToArray());
        using var ortOut = Ort.OrtValue.CreateTensorValueFromMemory(ortOutData, ours.Outputs[0].Shape.Select(d => (long)d).ToArray());
        using var runOptions = new Ort.RunOptions();
        string[] inNames = [ort.InputNames[0]], outNames = [ort.OutputNames[0]];
        Ort.OrtValue[] ortIns = [ortIn], ortOuts = [ortOut];
        sw.Restart();
        ort.Run(runOptions, inNames, ortIns, outNames, ortOuts);
        double ortFirst = sw.Elapsed.TotalMilliseconds;

        for (int i = 0; i < 10; i++) { ours.Run(oursIn, oursOut); ort.Run(runOptions, inNames, ortIns, outNames, ortOuts); }
        var a = new List<double>(runs);
        var b = new List<double>(runs);
        long allocated = 0;
        while (a.Count < runs)
        {
            Thread.Sleep(pauseMs);
            for (int i = 0; i < Block && a.Count < runs; i++)
            {
                long bytes = GC.GetAllocatedBytesForCurrentThread();
                long t0 = Stopwatch.GetTimestamp();
                ours.Run(oursIn, oursOut);
                a.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                allocated += GC.GetAllocatedBytesForCurrentThread() - bytes;
            }
            Thread.Sleep(pauseMs);
            for (int i = 0; i < Block && b.Count < runs; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                ort.Run(runOptions, inNames, ortIns, outNames, ortOuts);
                b.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            }
        }
        string label = $"{arch} {width.ToString(CultureInfo.InvariantCulture)}/{inputShape[2]}";
        if (byPosition) PrintByPosition(label, threads, a, b);
        var sa = LatencyStats.From(a);
        var sb = LatencyStats.From(b);
        double scale = Math.Max(1e-12, ortOutData.Max(Math.Abs));
        double diff = oursOut[0].Floats.Zip(ortOutData).Max(p => Math.Abs(p.First - p.Second)) / scale;
        double gflops = 2.0 * macs / (sa.Median * 1e6);
        return new Row(label, batch, threads, sa.Median, sb.Median, sa.Median / sb.Median, sa.P90, sb.P90, sa.Min, sb.Min,
            batch * 1000 / sa.Median, batch * 1000 / sb.Median, gflops, oursFirst, ortFirst, oursLoad, ortLoad, allocated / runs, diff);
    }

    /// <summary>Median and maximum of each run position within a block (run k of every block), to Console.Error.</summary>
    private static void PrintByPosition(string label, int threads, List<double> ours, List<double> ort)
    {
        Console.Error.WriteLine($"{label}, {threads} thread(s), latency by position in block (ms): position: ours median/max | ORT median/max");
        for (int pos = 0; pos < Block; pos++)
        {
            var pa = ours.Where((_, i) => i % Block == pos).ToList();
            var pb = ort.Where((_, i) => i % Block == pos).ToList();
            if (pa.Count == 0 || pb.Count == 0) break;
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {pos}: {LatencyStats.From(pa).Median:F2}/{pa.Max():F2} | {LatencyStats.From(pb).Median:F2}/{pb.Max():F2}"));
        }
    }
}
