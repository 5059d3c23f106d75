using System.Diagnostics;
using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Kernels.Depthwise;
using MobileNetSharp.Kernels.Int8;

namespace MobileNetSharp.Bench;

/// <summary>
/// `int8dw [--threads 1,2] [--runs N] [--isa v128|v256|scalar] [--shape HxWxCkKsS]`: the int8 depthwise convolution
/// (<see cref="QuantizedDepthwise"/>, uint8 in, int8 weights, uint8 out with the requantization fused, a ReLU6-like
/// clamp) against the float depthwise kernel (<c>DepthwiseConvolution</c>, bias + ReLU6 fused) on MobileNetV2's
/// depthwise layers at 224x224 (pad 1) and one 5x5 layer of EfficientNet-Lite (pad 2). Shapes are the layer's
/// input. Both kernels of one shape and thread count run in the same process, alternating run by run after a
/// warm-up; the table gives medians, the median over runs of int8 time / fp32 time, GOPS = 2·MACs / median, and
/// the minimum of each (less sensitive to other processes on a shared machine).
/// </summary>
public static unsafe class Int8DepthwiseBench
{
    private static readonly (int H, int W, int C, int K, int S)[] Shapes =
    [
        (112, 112, 32, 3, 1), (112, 112, 96, 3, 2), (56, 56, 144, 3, 1), (56, 56, 144, 3, 2), (28, 28, 192, 3, 1),
        (28, 28, 192, 3, 2), (14, 14, 384, 3, 1), (14, 14, 576, 3, 1), (14, 14, 576, 3, 2), (7, 7, 960, 3, 1),
        (14, 14, 480, 5, 1),
        (112, 112, 16, 3, 1), (56, 56, 72, 3, 1), // MobileNetV3-Large's narrow early layers (channel counts off the 32-wide block)
    ];

    /// <summary>--shape HxWxCkKsS: any shape, not only the listed ones (a name that matched nothing used to print NaN sums).</summary>
    private static (int H, int W, int C, int K, int S)[] Select(string? shape)
    {
        if (shape is null) return Shapes;
        var m = System.Text.RegularExpressions.Regex.Match(shape, @"^(\d+)x(\d+)x(\d+)k(\d+)s(\d+)$");
        if (!m.Success) throw new ArgumentException($"--shape '{shape}' is not HxWxCkKsS, e.g. 112x112x16k3s1.");
        int V(int i) => int.Parse(m.Groups[i].Value, System.Globalization.CultureInfo.InvariantCulture);
        return [(V(1), V(2), V(3), V(4), V(5))];
    }

    public static int Run(string[] args)
    {
        var (threads, runs, isa, only, _) = KernelBenchOptions.Parse(args);
        Console.WriteLine($"isa {isa} (int8 path {QuantizedGemm.PathFor(isa)}), {runs} runs after warm-up, medians");
        KernelComparison.Header("HxWxC k s");
        var rng = new Random(1);
        var totals = new double[threads.Length, 2];
        double allOps = 0;
        foreach (var (h, w, c, k, s) in Select(only))
        {
            string name = $"{h}x{w}x{c}k{k}s{s}";
            int pad = k / 2;
            var g = new Conv2dGeometry(1, h, w, c, c, k, k, s, s, 1, 1, pad, pad, pad, pad, c);
            double ops = 2.0 * g.OutputLength * k * k;
            allOps += ops;
            // fp32: random input and weights, bias + ReLU6 fused.
            float[] xf = new float[g.InputLength], wf = new float[c * k * k], bf = new float[c], yf = new float[g.OutputLength];
            for (int i = 0; i < xf.Length; i++) xf[i] = rng.NextSingle();
            for (int i = 0; i < wf.Length; i++) wf[i] = rng.NextSingle() - 0.5f;
            for (int i = 0; i < bf.Length; i++) bf[i] = rng.NextSingle() - 0.5f;
            var dw = new DepthwiseConvolution(g, wf, bf, isa);
            float[] scratch = new float[Math.Max(1, dw.ScratchLength(1))];
            // int8: the same shape, random bytes, multipliers that spread the output over [zpY, 255].
            byte[] x8 = new byte[g.InputLength], y8 = new byte[g.OutputLength];
            sbyte[] w8 = new sbyte[c * k * k];
            rng.NextBytes(x8);
            for (int i = 0; i < w8.Length; i++) w8[i] = (sbyte)rng.Next(-127, 128);
            var packed = PackedInt8DepthwiseWeights.FromOihw(w8, c, k, k);
            float[] multipliers = Enumerable.Range(0, c).Select(_ => (0.5f + rng.NextSingle()) * 100f / (74f * 74f * k)).ToArray();
            var rq = new Requantization(multipliers, Enumerable.Range(0, c).Select(_ => rng.Next(-1000, 1000)).ToArray(), 10, 10, 200);
            for (int ti = 0; ti < threads.Length; ti++)
            {
                using var workers = new Workers(threads[ti]);
                using var burst = workers.Burst();
                var tf = new List<double>(); var t8 = new List<double>(); var ratio = new List<double>();
                int warmup = 5;
                for (int r = 0; r < runs + warmup; r++)
                {
                    double f, q;
                    fixed (float* px = xf, py = yf, ps = scratch)
                    {
                        long t0 = Stopwatch.GetTimestamp();
                        dw.Run(1, px, py, null, Activation.Relu6, workers, ps);
                        f = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                    }
                    fixed (byte* px = x8, py = y8)
                    {
                        long t0 = Stopwatch.GetTimestamp();
                        QuantizedDepthwise.Run(isa, g, px, 128, packed, rq, py, workers);
                        q = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                    }
                    if (r < warmup) continue; // JIT tiers, caches
                    tf.Add(f); t8.Add(q); ratio.Add(q / f);
                }
                var (mf, m8) = KernelComparison.Row(name, threads[ti], tf, t8, ratio, ops);
                totals[ti, 0] += mf;
                totals[ti, 1] += m8;
            }
        }
        KernelComparison.Totals(threads, totals, allOps);
        return 0;
    }
}
