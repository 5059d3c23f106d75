using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests;

/// <summary>Tensor comparison with the tolerance rule the tests share.</summary>
public static class Compare
{
    /// <summary>
    /// Asserts max |a - b| &lt;= relTol * max(1e-6, max |expected|). Relative to the output's scale because
    /// fp32 sums over thousands of terms (and reordered by SIMD and fused BN) drift in proportion to it.
    /// </summary>
    public static void Close(Tensor expected, Tensor actual, double relTol = 1e-4, string what = "output")
    {
        Assert.Equal(expected.Shape, actual.Shape);
        var e = expected.Floats; var a = actual.Floats;
        double scale = Math.Max(1e-6, e.Max(v => Math.Abs((double)v)));
        double worst = 0; int at = -1;
        for (int i = 0; i < e.Length; i++)
        {
            double d = Math.Abs((double)e[i] - a[i]);
            if (double.IsNaN(a[i]) != double.IsNaN(e[i])) d = double.PositiveInfinity;
            if (d > worst) { worst = d; at = i; }
        }
        Assert.True(worst <= relTol * scale,
            $"{what}: max abs error {worst:g4} at {at} (expected {(at >= 0 ? e[at] : 0)}, got {(at >= 0 ? a[at] : 0)}) exceeds {relTol:g2} x scale {scale:g4}");
    }
}
