using IsaLevel = MobileNetSharp.Kernels.IsaLevel;
using KernelIsa = MobileNetSharp.Kernels.Isa;

namespace MobileNetSharp.Bench;

/// <summary>The options of the single-kernel modes (int8gemm, int8dw): `--threads 1,2 --runs N --isa scalar|v128|v256|v512 --shape NAME`.</summary>
internal sealed record KernelBenchOptions(int[] Threads, int Runs, IsaLevel Isa, string? Shape)
{
    public static KernelBenchOptions Parse(string[] args)
    {
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
                default: throw reader.Unknown();
            }
        return new KernelBenchOptions(threads, runs, isa, shape);
    }
}
