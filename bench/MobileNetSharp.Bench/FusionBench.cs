using System.Diagnostics;
using System.Globalization;
using MobileNetSharp.Models;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Bench;

/// <summary>
/// `fusion [--arch A,B] [--threads 1,2] [--batch B] [--runs N]`: each model with banded blocks
/// (<see cref="SessionOptions.FuseBlocks"/>) and layer by layer, two sessions in one process, runs alternated in
/// blocks of 10, and the ratio fused/unfused of the medians (below 1: fusion pays). Checks the outputs are identical.
/// </summary>
public static class FusionBench
{
    public static int Run(string[] args)
    {
        var archs = new List<string>();
        var threads = new List<int>();
        int runs = 100, batch = 1;
        var reader = new BenchArgs(args);
        foreach (var option in reader.Options())
            switch (option)
            {
                case "--arch": archs.AddRange(reader.Value().Split(',')); break;
                case "--threads": threads.AddRange(reader.Ints(min: 1)); break;
                case "--runs": runs = reader.Int(min: 1); break;
                case "--batch": batch = reader.Int(min: 1); break;
                default: throw reader.Unknown();
            }
        if (archs.Count == 0) archs.AddRange(["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_lite0"]);
        if (threads.Count == 0) threads.AddRange([1, Environment.ProcessorCount]);
        BenchArgs.CheckUpFront(archs, threads);
        Console.WriteLine($"# Banded blocks vs layer by layer, batch {batch}, {runs} runs each, alternated in blocks of 10");
        Console.WriteLine();
        Console.WriteLine("| model | threads | fused steps | fused median | fused p90 | unfused median | unfused p90 | fused/unfused |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        foreach (var arch in archs)
            foreach (int t in threads)
            {
                var graph = ModelZoo.Create(arch, new ModelOptions(Batch: batch));
                using var fused = new InferenceSession(graph, new SessionOptions { Threads = t });
                using var plain = new InferenceSession(graph, new SessionOptions { Threads = t, FuseBlocks = false });
                var input = Tensor.Random(1, graph.Inputs[0].Shape);
                Tensor[] ins = [input];
                Tensor[] outF = [Tensor.Zeros(fused.Outputs[0].Shape)], outP = [Tensor.Zeros(plain.Outputs[0].Shape)];
                for (int i = 0; i < 10; i++) { fused.Run(ins, outF); plain.Run(ins, outP); }
                if (!outF[0].Floats.AsSpan().SequenceEqual(outP[0].Floats)) throw new InvalidOperationException($"{arch}: fused and unfused outputs differ");
                var a = new List<double>(runs);
                var b = new List<double>(runs);
                while (a.Count < runs)
                {
                    for (int i = 0; i < 10; i++) a.Add(Time(() => fused.Run(ins, outF)));
                    for (int i = 0; i < 10; i++) b.Add(Time(() => plain.Run(ins, outP)));
                }
                int steps = fused.Profile(ins, 1).Count(s => s.Kernel.StartsWith("fused", StringComparison.Ordinal));
                var sa = LatencyStats.From(a);
                var sb = LatencyStats.From(b);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {arch} | {t} | {steps} | {sa.Median:F2} ms | {sa.P90:F2} | {sb.Median:F2} ms | {sb.P90:F2} | **{sa.Median / sb.Median:F2}** |"));
            }
        return 0;
    }

    private static double Time(Action run)
    {
        long t0 = Stopwatch.GetTimestamp();
        run();
        return Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
    }
}
