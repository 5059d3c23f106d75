using MobileNetSharp;
using IsaLevel = MobileNetSharp.Kernels.IsaLevel;
using KernelIsa = MobileNetSharp.Kernels.Isa;

namespace MobileNetSharp.Bench;

/// <summary>
/// The options of the single-kernel modes (int8gemm, int8dw): `--threads 1,2 --runs N --isa scalar|v128|v256|v512
/// --shape NAME`, and for int8gemm `--weight-bits 8|7` (7: the weights ORT's reduce_range writes, which take the
/// AVX2 byte-quad kernel; 8: full-range weights, the int16-pair kernel).
/// </summary>
internal sealed record KernelBenchOptions(int[] Threads, int Runs, IsaLevel Isa, string? Shape, int WeightBits)
{
    public static KernelBenchOptions Parse(string[] args, bool weightBits = false)
    {
        int bits = 8;
        int[] threads = [1, 2];
        int runs = 60;
        var isa = KernelIsa.Best;
        string? shape = null;
        var reader = new BenchArgs(args);
        foreach (var option in reader.Options())
            switch (option)
            {
                case "--threads": threads = [.. reader.Ints(1)]; break;
                case "--runs": runs = reader.Int(1); break;
                case "--isa":
                    string level = reader.Value();
                    if (level is not ("scalar" or "v128" or "v256" or "v512")) throw new ArgumentException($"--isa '{level}' is not scalar, v128, v256 or v512");
                    isa = KernelIsa.Resolve(KernelIsa.Cap(KernelIsa.Hardware, level));
                    break;
                case "--shape": shape = reader.Value(); break;
                case "--weight-bits" when weightBits:
                    bits = reader.Int(7);
                    if (bits is not (7 or 8)) throw new ArgumentException($"--weight-bits {bits} is not 7 or 8");
                    break;
                default: throw reader.Unknown();
            }
        return new KernelBenchOptions(threads, runs, isa, shape, bits);
    }
}

/// <summary>The table the single-kernel modes print: fp32 against int8 per shape and thread count, then the sums.</summary>
internal static class KernelComparison
{
    public static void Header(string shape) =>
        Console.WriteLine($"{shape,-18} {"T",2} {"fp32 ms",9} {"int8 ms",9} {"int8/fp32",9} {"fp32 GOPS",9} {"int8 GOPS",9} {"fp32 min",9} {"int8 min",9}");

    /// <summary>Prints one row (medians, the median per-run ratio, GOPS for <paramref name="ops"/> operations, minima); returns the two medians.</summary>
    public static (double Fp32, double Int8) Row(string name, int threads, List<double> fp32, List<double> int8, List<double> ratio, double ops)
    {
        var f = Runtime.LatencyStats.From(fp32);
        var q = Runtime.LatencyStats.From(int8);
        Console.WriteLine($"{name,-18} {threads,2} {f.Median,9:F3} {q.Median,9:F3} {Runtime.LatencyStats.From(ratio).Median,9:F2} {ops / f.Median / 1e6,9:F1} {ops / q.Median / 1e6,9:F1} {f.Min,9:F3} {q.Min,9:F3}");
        return (f.Median, q.Median);
    }

    public static void Totals(int[] threads, double[,] totals, double ops)
    {
        for (int ti = 0; ti < threads.Length; ti++)
            Console.WriteLine($"{"sum of shapes",-18} {threads[ti],2} {totals[ti, 0],9:F3} {totals[ti, 1],9:F3} {totals[ti, 1] / totals[ti, 0],9:F2} {ops / totals[ti, 0] / 1e6,9:F1} {ops / totals[ti, 1] / 1e6,9:F1}");
    }
}
