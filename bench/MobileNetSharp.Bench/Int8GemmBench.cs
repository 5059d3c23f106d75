using System.Diagnostics;
using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Kernels.Gemm;
using MobileNetSharp.Kernels.Int8;

namespace MobileNetSharp.Bench;

/// <summary>
/// `int8gemm [--threads 1,2] [--runs N] [--isa v128|v256|scalar] [--shape MxKxN] [--weight-bits 8|7]`: the int8 GEMM (<see cref="QuantizedGemm"/>,
/// uint8 x int8 -> uint8 with the requantization fused, a ReLU6-like clamp) against the float GEMM
/// (<c>GemmDriver</c> on packed B, bias + ReLU6 fused) on the 1x1 convolutions of MobileNetV2 at 224x224
/// (rows = H·W, K = input channels, N = output channels). Both kernels of one shape and thread count run in
/// the same process, alternating run by run after a warm-up; the table gives medians, the median over runs of
/// int8 time / fp32 time, GOPS = 2·M·K·N / median (a multiply-add is two operations in both), and the
/// minimum of each (less sensitive to other processes on a shared machine).
/// </summary>
public static unsafe class Int8GemmBench
{
    private static readonly (int Rows, int K, int N)[] Shapes =
    [
        (112 * 112, 16, 96), (56 * 56, 24, 144), (56 * 56, 144, 24), (28 * 28, 192, 32),
        (14 * 14, 384, 64), (14 * 14, 576, 96), (7 * 7, 960, 160), (7 * 7, 320, 1280),
    ];

    /// <summary>--shape MxKxN: any shape, not only the listed ones (a name that matched nothing used to print NaN sums).</summary>
    private static (int Rows, int K, int N)[] Select(string? shape)
    {
        if (shape is null) return Shapes;
        var m = System.Text.RegularExpressions.Regex.Match(shape, @"^(\d+)x(\d+)x(\d+)$");
        if (!m.Success) throw new ArgumentException($"--shape '{shape}' is not MxKxN, e.g. 12544x27x32.");
        int V(int i) => int.Parse(m.Groups[i].Value, System.Globalization.CultureInfo.InvariantCulture);
        return [(V(1), V(2), V(3))];
    }

    public static int Run(string[] args)
    {
        var (threads, runs, isa, only, bits) = KernelBenchOptions.Parse(args, weightBits: true);
        int wMax = bits == 7 ? 64 : 127;
        Console.WriteLine($"isa {isa} (int8 path {QuantizedGemm.PathFor(isa)}), {bits}-bit weights in [-{wMax}, {wMax}], {runs} runs after warm-up, medians");
        KernelComparison.Header("M x K x N");
        var rng = new Random(1);
        var totals = new double[threads.Length, 2];
        var shapes = Select(only);
        foreach (var (m, k, n) in shapes)
        {
            // fp32 operands and the float GEMM's packed B (bias in its panels).
            float[] af = new float[m * k], bf = new float[k * n], bias = new float[n], cf = new float[m * n];
            for (int i = 0; i < af.Length; i++) af[i] = rng.NextSingle();
            for (int i = 0; i < bf.Length; i++) bf[i] = rng.NextSingle() - 0.5f;
            var packedF = new PackedB(bf, k, n, n, 1, bias, Isa.Width(isa));
            // int8 operands: the same shapes, random bytes, multipliers that spread the output over [zpC, 255].
            byte[] a8 = new byte[m * k], c8 = new byte[m * n];
            sbyte[] b8 = new sbyte[k * n];
            rng.NextBytes(a8);
            for (int i = 0; i < b8.Length; i++) b8[i] = (sbyte)rng.Next(-wMax, wMax + 1);
            var packed8 = PackedInt8Weights.FromKxN(b8, k, n);
            if (m == shapes[0].Rows && k == shapes[0].K && n == shapes[0].N)
                Console.WriteLine($"kernel: {(QuantizedGemm.UsesQuads(QuantizedGemm.PathFor(isa), packed8) ? "byte quads (vpmaddubsw)" : "int16 pairs (vpmaddwd)")}");
            float[] multipliers = Enumerable.Range(0, n).Select(_ => (0.5f + rng.NextSingle()) * 100f / (74f * 74f * MathF.Sqrt(k))).ToArray();
            var rq = new Requantization(multipliers, Enumerable.Range(0, n).Select(_ => rng.Next(-1000, 1000)).ToArray(), 10, 10, 200);
            double ops = 2.0 * m * k * n;
            for (int ti = 0; ti < threads.Length; ti++)
            {
                using var workers = new Workers(threads[ti]);
                using var burst = workers.Burst();
                var tf = new List<double>(); var t8 = new List<double>(); var ratio = new List<double>();
                int warmup = 5;
                for (int r = 0; r < runs + warmup; r++)
                {
                    double f, q;
                    fixed (float* pa = af, pc = cf)
                    {
                        long t0 = Stopwatch.GetTimestamp();
                        GemmDriver.RunPacked(isa, Activation.Relu6, m, pa, k, packedF, pc, n, null, 0, workers);
                        f = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                    }
                    fixed (byte* pa = a8, pc = c8)
                    {
                        long t0 = Stopwatch.GetTimestamp();
                        QuantizedGemm.Run(isa, m, pa, k, 128, packed8, rq, pc, n, workers);
                        q = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                    }
                    if (r < warmup) continue; // JIT tiers, caches
                    tf.Add(f); t8.Add(q); ratio.Add(q / f);
                }
                var (mf, m8) = KernelComparison.Row($"{m}x{k}x{n}", threads[ti], tf, t8, ratio, ops);
                totals[ti, 0] += mf;
                totals[ti, 1] += m8;
            }
        }
        double allOps = shapes.Sum(s => 2.0 * s.Rows * s.K * s.N);
        KernelComparison.Totals(threads, totals, allOps);
        return 0;
    }
}
