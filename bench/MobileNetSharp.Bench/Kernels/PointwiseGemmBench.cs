using BenchmarkDotNet.Attributes;

namespace MobileNetSharp.Bench.Kernels;

/// <summary>
/// The pointwise (1x1) GEMM on MobileNetV2 shapes (rows = H*W, InC, OutC) with ReLU6 fused, reported in GFLOP/s.
/// Peak on the reference machine (AMD EPYC family 26, full-width AVX-512) measured ~220-270 GFLOP/s per core
/// with a register-only FMA loop; the 6x32 Vector512 tile reaches most of it.
/// </summary>
[Config(typeof(GflopsConfig))]
public class PointwiseGemmBench
{
    public static IEnumerable<ConvCase> Cases =>
    [
        ConvCase.Pointwise(56, 16, 96), ConvCase.Pointwise(28, 144, 32), ConvCase.Pointwise(14, 384, 64),
        ConvCase.Pointwise(7, 960, 160), ConvCase.Pointwise(56, 96, 24), ConvCase.Pointwise(112, 32, 16),
    ];

    [ParamsSource(nameof(Cases))] public ConvCase Case { get; set; } = null!;
    [Params(1, 2)] public int Threads { get; set; }

    private ConvHarness _harness = null!;

    [GlobalSetup] public void Setup() => _harness = new ConvHarness(Case, Threads);
    [GlobalCleanup] public void Cleanup() => _harness.Dispose();
    [Benchmark] public void Run() => _harness.Run();
}
