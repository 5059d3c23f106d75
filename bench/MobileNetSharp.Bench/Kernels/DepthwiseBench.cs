using BenchmarkDotNet.Attributes;

namespace MobileNetSharp.Bench.Kernels;

/// <summary>Depthwise 3x3 at stride 1 and 2 (MobileNetV2) and 5x5 (MobileNetV3) with ReLU6 fused. Memory-bound:
/// compare the time with the input size over the machine's bandwidth rather than with the FMA peak.</summary>
[Config(typeof(GflopsConfig))]
public class DepthwiseBench
{
    public static IEnumerable<ConvCase> Cases =>
    [
        ConvCase.Depthwise(112, 96, 3, 2), ConvCase.Depthwise(56, 144, 3, 1), ConvCase.Depthwise(112, 32, 3, 1),
        ConvCase.Depthwise(14, 576, 3, 1), ConvCase.Depthwise(28, 72, 5, 1), ConvCase.Depthwise(14, 240, 5, 2),
    ];

    [ParamsSource(nameof(Cases))] public ConvCase Case { get; set; } = null!;
    [Params(1, 2)] public int Threads { get; set; }

    private ConvHarness _harness = null!;

    [GlobalSetup] public void Setup() => _harness = new ConvHarness(Case, Threads);
    [GlobalCleanup] public void Cleanup() => _harness.Dispose();
    [Benchmark] public void Run() => _harness.Run();
}
