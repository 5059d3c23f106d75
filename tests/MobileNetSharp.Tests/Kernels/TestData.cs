using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>Seeded random data, the sweep axes (ISA x threads) and the tolerance check shared by the kernel tests.</summary>
internal static class TestData
{
    /// <summary>One 2-thread pool for all kernel tests (threads are background; never disposed).</summary>
    public static readonly Workers Two = new(2);

    public static IEnumerable<(IsaLevel Isa, Workers Workers)> Sweep()
    {
        foreach (IsaLevel isa in Isa.Supported)
        {
            yield return (isa, Workers.Single);
            yield return (isa, Two);
        }
    }

    public static readonly Activation[] Activations =
    [
        Activation.None, Activation.Relu, Activation.Relu6, Activation.Clip(-0.5f, 0.75f), Activation.HardSwish,
        Activation.HardSigmoid(), Activation.Sigmoid, Activation.Silu,
    ];

    public static float[] Random(Random rng, long length, float scale = 1f)
    {
        var a = new float[length];
        for (long i = 0; i < length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return a;
    }

    /// <summary>
    /// Tolerance: |got - ref| ≤ 1e-5 * sqrt(k) * max(1, max|ref|). fp32 accumulation of k products has a
    /// typical error ~ sqrt(k) * 6e-8 of the magnitude; 1e-5 leaves room for FMA vs. separate rounding,
    /// different summation orders and the vector Exp in Sigmoid/Silu, while a wrong tap or channel
    /// (an error of order 1/k of the output or more) still fails.
    /// </summary>
    public static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, int k, string context)
    {
        Assert.True(expected.Length <= actual.Length, $"{context}: output too short");
        float scale = 1f;
        foreach (float v in expected) scale = Math.Max(scale, Math.Abs(v));
        double tolerance = 1e-5 * Math.Sqrt(Math.Max(1, k)) * scale;
        for (int i = 0; i < expected.Length; i++)
        {
            double error = Math.Abs((double)expected[i] - actual[i]);
            if (!(error <= tolerance) && !(float.IsInfinity(expected[i]) && expected[i] == actual[i]))
                Assert.Fail($"{context}: element {i} expected {expected[i]} got {actual[i]} (|err| {error:g3} > tol {tolerance:g3})");
        }
    }
}
