using System.Diagnostics;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Runtime;

/// <summary>Latency statistics of repeated runs, in milliseconds.</summary>
public sealed record LatencyStats(double Median, double P90, double Min, double Mean, int Runs)
{
    public static LatencyStats From(IReadOnlyList<double> samples)
    {
        if (samples.Count == 0) throw new ArgumentException("No samples.");
        var s = samples.Order().ToArray();
        // Nearest-rank quantile: the smallest sample with at least q of the samples at or below it.
        double Quantile(double q) => s[Math.Clamp((int)Math.Ceiling(q * s.Length) - 1, 0, s.Length - 1)];
        double median = s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
        return new LatencyStats(median, Quantile(0.9), s[0], s.Average(), s.Length);
    }
}

/// <summary>Times a session: warm-up runs first (JIT tiers, caches), then timed runs.</summary>
public static class Latency
{
    /// <summary>
    /// Runs <paramref name="warmup"/> untimed runs, then at least <paramref name="minRuns"/> and at most
    /// <paramref name="maxRuns"/> timed ones, stopping early once <paramref name="budget"/> has passed.
    /// </summary>
    public static LatencyStats Measure(InferenceSession session, Tensor[] inputs, int warmup = 3, int minRuns = 5, int maxRuns = 50, TimeSpan? budget = null)
    {
        var outputs = session.Outputs.Select(o => Tensor.Zeros(BatchShape(o.Shape, inputs))).ToArray();
        for (int i = 0; i < warmup; i++) session.Run(inputs, outputs);
        var samples = new List<double>(maxRuns);
        var total = Stopwatch.StartNew();
        var limit = budget ?? TimeSpan.FromSeconds(5);
        while (samples.Count < maxRuns && (samples.Count < minRuns || total.Elapsed < limit))
        {
            long t0 = Stopwatch.GetTimestamp();
            session.Run(inputs, outputs);
            samples.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        return LatencyStats.From(samples);
    }

    private static int[] BatchShape(int[] shape, Tensor[] inputs)
    {
        var s = (int[])shape.Clone();
        if (s.Length > 0 && inputs.Length > 0 && inputs[0].Rank > 0) s[0] = inputs[0].Shape[0];
        return s;
    }
}
