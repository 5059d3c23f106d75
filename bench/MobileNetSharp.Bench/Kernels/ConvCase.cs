using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Bench.Kernels;

/// <summary>A convolution benchmark case: its geometry, a short display name and its flop count (2 per MAC).</summary>
public sealed record ConvCase(string Name, Conv2dGeometry Geometry)
{
    public double Flops => 2.0 * Geometry.OutH * Geometry.OutW * Geometry.OutC * Geometry.InCPerGroup * Geometry.KernelH * Geometry.KernelW;
    public override string ToString() => Name;

    public static ConvCase Pointwise(int hw, int inC, int outC) =>
        new($"{hw * hw}x{inC}x{outC}", new Conv2dGeometry(1, hw, hw, inC, outC, 1, 1));

    public static ConvCase Depthwise(int hw, int c, int k, int stride) =>
        new($"{hw}x{hw}x{c} {k}x{k}s{stride}", new Conv2dGeometry(1, hw, hw, c, c, k, k, stride, stride, 1, 1, k / 2, k / 2, k / 2, k / 2, c));
}

/// <summary>Builds an operator with random weights and buffers for a case; shared by the conv benchmarks.</summary>
public sealed class ConvHarness : IDisposable
{
    private readonly float[] _input, _output, _scratch;

    public ConvHarness(ConvCase c, int threads, Activation? activation = null)
    {
        var rng = new Random(42);
        float[] R(long n) { var a = new float[n]; for (long i = 0; i < n; i++) a[i] = (float)rng.NextDouble() - 0.5f; return a; }
        Conv2dGeometry g = c.Geometry;
        Operator = new Conv2dOperator(g, R(g.WeightLength), R(g.OutC), activation ?? Activation.Relu6);
        _input = R(g.InputLength);
        _output = new float[g.OutputLength];
        _scratch = new float[Operator.ScratchLength(1)];
        Workers = threads == 1 ? Workers.Single : new Workers(threads);
    }

    public Conv2dOperator Operator { get; }
    public Workers Workers { get; }

    public void Run() => Operator.Run(1, _input, _output, default, _scratch, Workers);

    public void Dispose()
    {
        if (Workers != Workers.Single) Workers.Dispose();
    }
}
