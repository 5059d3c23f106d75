using BenchmarkDotNet.Attributes;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Bench.Kernels;

/// <summary>The MobileNet stem, 224x224x3 -> 112x112x32, 3x3 stride 2 (TF-style asymmetric and symmetric padding),
/// through the direct "stem3" kernel.</summary>
[Config(typeof(GflopsConfig))]
public class StemBench
{
    public static IEnumerable<ConvCase> Cases =>
    [
        new("224x224x3->32 pad1", new Conv2dGeometry(1, 224, 224, 3, 32, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1)),
        new("224x224x3->32 pad0011", new Conv2dGeometry(1, 224, 224, 3, 32, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1)),
        new("224x224x3->16 pad1", new Conv2dGeometry(1, 224, 224, 3, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1)),
    ];

    [ParamsSource(nameof(Cases))] public ConvCase Case { get; set; } = null!;
    [Params(1, 2)] public int Threads { get; set; }

    private ConvHarness _harness = null!;

    [GlobalSetup] public void Setup() => _harness = new ConvHarness(Case, Threads);
    [GlobalCleanup] public void Cleanup() => _harness.Dispose();
    [Benchmark] public void Run() => _harness.Run();
}
