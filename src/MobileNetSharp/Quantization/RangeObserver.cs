using System.Numerics.Tensors;

namespace MobileNetSharp.Quantization;

/// <summary>
/// What calibration learns about one tensor: its minimum and maximum (first pass) and, for the percentile and
/// entropy methods, a histogram (second pass, once the first pass has fixed its span). <see cref="Range"/> turns
/// that into the real range the tensor is quantized over; it always contains 0, so zero padding is exact.
/// </summary>
public sealed class RangeObserver
{
    /// <summary>Bins of the histograms (TensorRT's and ONNX Runtime's calibrators use 2048).</summary>
    public const int Bins = 2048;

    private long[]? _values;   // over [Min, Max]
    private long[]? _positive; // x > 0 over [0, Max]
    private long[]? _negative; // -x for x < 0 over [0, -Min]

    public float Min { get; private set; } = float.PositiveInfinity;
    public float Max { get; private set; } = float.NegativeInfinity;
    public long Count { get; private set; }

    /// <summary>First pass: widens [Min, Max]. NaN is ignored (it has no place in a range).</summary>
    public void ObserveRange(ReadOnlySpan<float> x)
    {
        if (x.IsEmpty) return;
        float lo = TensorPrimitives.MinNumber(x), hi = TensorPrimitives.MaxNumber(x);
        if (float.IsNaN(lo)) return; // every element NaN
        Min = Math.Min(Min, lo);
        Max = Math.Max(Max, hi);
        Count += x.Length;
    }

    /// <summary>Second pass: counts values into histograms over the span the first pass found.</summary>
    public void ObserveHistogram(ReadOnlySpan<float> x)
    {
        if (Count == 0) return;
        _values ??= new long[Bins];
        _positive ??= new long[Bins];
        _negative ??= new long[Bins];
        float span = Max - Min;
        float toBin = span > 0 ? Bins / span : 0, toPos = Max > 0 ? Bins / Max : 0, toNeg = Min < 0 ? Bins / -Min : 0;
        foreach (float v in x)
        {
            if (float.IsNaN(v)) continue;
            _values[Math.Clamp((int)((v - Min) * toBin), 0, Bins - 1)]++;
            // Exact zeros (half of a ReLU output) are in neither side: the zero point represents them without error
            // whatever the thresholds, and their spike would make KL prefer the narrowest range.
            if (v > 0) _positive[Math.Clamp((int)(v * toPos), 0, Bins - 1)]++;
            else if (v < 0) _negative[Math.Clamp((int)(-v * toNeg), 0, Bins - 1)]++;
        }
    }

    /// <summary>The range to quantize over, [lo, hi] with lo &lt;= 0 &lt;= hi. A tensor never seen gives [0, 0].</summary>
    public (float Lo, float Hi) Range(CalibrationMethod method, double percentile, int levels)
    {
        if (Count == 0) return (0, 0);
        float lo = Min, hi = Max;
        switch (method)
        {
            case CalibrationMethod.Percentile when _values is not null:
                (lo, hi) = PercentileRange(percentile);
                break;
            case CalibrationMethod.Entropy when _positive is not null && _negative is not null:
                // Each side on its own, with the share of the integer codes its span takes: activations are asymmetric
                // (a zero point), so a normalized image's dark spike at -0.8 must not set the bright side's threshold.
                float posSpan = Math.Max(Max, 0), negSpan = Math.Max(-Min, 0);
                int posLevels = (int)Math.Round(levels * posSpan / (posSpan + negSpan));
                if (Max > 0) hi = EntropyThreshold(_positive, Max, Math.Max(2, posLevels));
                if (Min < 0) lo = -EntropyThreshold(_negative, -Min, Math.Max(2, levels - posLevels));
                break;
        }
        return (Math.Min(lo, 0), Math.Max(hi, 0));
    }

    private (float, float) PercentileRange(double percentile)
    {
        var h = _values!;
        long total = 0;
        foreach (var c in h) total += c;
        double tail = total * (100 - percentile) / 100;
        float width = (Max - Min) / Bins;
        int first = 0, last = Bins - 1;
        for (long seen = 0; first < Bins - 1 && seen + h[first] <= tail; first++) seen += h[first];
        for (long seen = 0; last > first && seen + h[last] <= tail; last--) seen += h[last];
        // The outer edges of the first and last bins kept: percentile 100 gives [Min, Max] exactly.
        return (first == 0 ? Min : Min + first * width, last == Bins - 1 ? Max : Min + (last + 1) * width);
    }

    /// <summary>
    /// The threshold on a one-sided histogram (of x or -x, over [0, <paramref name="absMax"/>]) whose clipped,
    /// <paramref name="levels"/>-level copy is closest in KL divergence to the histogram with the clipped mass folded
    /// into its last bin (Migacz 2017, slides 29-37). A histogram whose mass sits at its far end keeps it all.
    /// </summary>
    internal static float EntropyThreshold(long[] hist, float absMax, int levels)
    {
        int bins = hist.Length;
        if (absMax <= 0) return 0;
        levels = Math.Clamp(levels, 2, bins);
        double best = double.PositiveInfinity;
        int bestEnd = bins;
        var p = new double[bins];
        var q = new double[bins];
        long beyond = 0;
        for (int i = levels; i < bins; i++) beyond += hist[i];
        for (int end = levels; end <= bins; end++)
        {
            // P: bins [0, end) with everything beyond folded into the last.
            for (int i = 0; i < end; i++) p[i] = hist[i];
            p[end - 1] += beyond;
            if (end < bins) beyond -= hist[end];
            // Q: the same bins merged into `levels` groups, each group's mass spread over its non-empty bins.
            for (int j = 0; j < levels; j++)
            {
                int from = (int)((long)j * end / levels), to = (int)((long)(j + 1) * end / levels);
                double mass = 0;
                int nonEmpty = 0;
                for (int i = from; i < to; i++) { mass += hist[i]; if (hist[i] > 0) nonEmpty++; }
                for (int i = from; i < to; i++) q[i] = hist[i] > 0 ? mass / nonEmpty : 0;
            }
            double kl = Divergence(p.AsSpan(0, end), q.AsSpan(0, end));
            if (kl < best) (best, bestEnd) = (kl, end);
        }
        return bestEnd * absMax / bins;
    }

    /// <summary>KL(P || Q) of two unnormalized histograms; a bin where P has mass and Q none costs as if Q held a tiny share.</summary>
    private static double Divergence(ReadOnlySpan<double> p, ReadOnlySpan<double> q)
    {
        double sp = 0, sq = 0;
        foreach (var v in p) sp += v;
        foreach (var v in q) sq += v;
        if (sp == 0 || sq == 0) return double.PositiveInfinity;
        double kl = 0;
        for (int i = 0; i < p.Length; i++)
        {
            if (p[i] == 0) continue;
            double pi = p[i] / sp, qi = Math.Max(q[i] / sq, 1e-10);
            kl += pi * Math.Log(pi / qi);
        }
        return kl;
    }
}
