using MobileNetSharp.Graph;
using BenchmarkDotNet.Attributes;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Bench.Kernels;

/// <summary>
/// Depthwise layers on the small maps of MobileNetV3 / EfficientNet, where border pixels are a large share of
/// the output (14x14 with a 5x5 kernel: over half), swept over the activations the models fuse. Each used to
/// take a per-element border path and an unoptimized tier; the times should now track the map size and not
/// depend on the activation. Inputs are plain arrays (arbitrary alignment, as an un-aligned arena would give).
/// </summary>
[Config(typeof(GflopsConfig))]
public class DepthwiseSmallMapBench
{
    public static IEnumerable<ConvCase> Cases =>
    [
        ConvCase.Depthwise(14, 240, 5, 1), ConvCase.Depthwise(28, 72, 5, 1), ConvCase.Depthwise(7, 576, 5, 1),
        ConvCase.Depthwise(14, 672, 5, 2), ConvCase.Depthwise(56, 16, 3, 2), ConvCase.Depthwise(7, 960, 3, 1),
    ];

    public static IEnumerable<string> Activations => ["None", "Relu", "Relu6", "HardSwish"];

    [ParamsSource(nameof(Cases))] public ConvCase Case { get; set; } = null!;
    [ParamsSource(nameof(Activations))] public string Act { get; set; } = "Relu6";
    [Params(1, 2)] public int Threads { get; set; }

    private ConvHarness _harness = null!;

    [GlobalSetup]
    public void Setup() => _harness = new ConvHarness(Case, Threads, Act switch
    {
        "None" => Activation.None,
        "Relu" => Activation.Relu,
        "HardSwish" => Activation.HardSwish,
        _ => Activation.Relu6,
    });

    [GlobalCleanup] public void Cleanup() => _harness.Dispose();
    [Benchmark] public void Run() => _harness.Run();
}

/// <summary>
/// Squeeze-and-excite pieces of MobileNetV3 in NHWC: the global average pool and the per-channel Mul of the
/// feature map by the gate ([1,H,W,C] x [1,1,1,C]); few channels (16, 24, 40) used to cost a library call per
/// pixel. Memory-bound: compare the time with the bytes moved.
/// </summary>
public class SqueezeExciteBench
{
    [Params("56x56x16", "28x28x96", "14x14x240", "7x7x576", "7x7x960")] public string Shape { get; set; } = "56x56x16";

    private int _spatial, _channels;
    private float[] _x = null!, _gate = null!, _y = null!, _pooled = null!;
    private int[] _xShape = null!, _gShape = null!;

    [GlobalSetup]
    public void Setup()
    {
        int[] d = Shape.Split('x').Select(int.Parse).ToArray();
        _spatial = d[0] * d[1];
        _channels = d[2];
        var rng = new Random(1);
        _x = Enumerable.Range(0, _spatial * _channels).Select(_ => (float)rng.NextDouble()).ToArray();
        _gate = Enumerable.Range(0, _channels).Select(_ => (float)rng.NextDouble()).ToArray();
        _y = new float[_x.Length];
        _pooled = new float[_channels];
        _xShape = [1, d[0], d[1], d[2]];
        _gShape = [1, 1, 1, d[2]];
    }

    [Benchmark] public void GlobalAveragePool() => Pooling.GlobalAveragePool(1, _spatial, _channels, _x, _pooled);
    [Benchmark] public void MulByGate() => Elementwise.Binary(BinaryKind.Mul, _x, _xShape, _gate, _gShape, _y, _xShape);
}

/// <summary>
/// Batch-1 classifier heads (one row): the GEMV path streams the packed weights once. Weight bytes per run:
/// 4 * in * out (2.4 MB for 576x1024, 4 MB for 1024x1000); compare the time with the cache/memory bandwidth.
/// </summary>
public class ClassifierGemvBench
{
    [Params("576x1024", "1024x1000", "960x1280", "1280x1000")] public string Shape { get; set; } = "576x1024";
    [Params(1, 2)] public int Threads { get; set; }

    private FullyConnectedOperator _op = null!;
    private float[] _x = null!, _y = null!;
    private Workers _workers = null!;

    [GlobalSetup]
    public void Setup()
    {
        int[] d = Shape.Split('x').Select(int.Parse).ToArray();
        var rng = new Random(2);
        float[] w = Enumerable.Range(0, d[0] * d[1]).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        _op = new FullyConnectedOperator(d[0], d[1], w, new float[d[1]], Activation.HardSwish);
        _x = Enumerable.Range(0, d[0]).Select(_ => (float)rng.NextDouble()).ToArray();
        _y = new float[d[1]];
        _workers = Threads == 1 ? Workers.Single : new Workers(Threads);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_workers != Workers.Single) _workers.Dispose();
    }

    [Benchmark] public void Run() => _op.Run(1, _x, _y, _workers);
}
