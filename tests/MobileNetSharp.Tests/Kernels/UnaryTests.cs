using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>Every <see cref="UnaryKind"/> against a float64 reference, on every ISA, in place, with lengths around the vector widths;
/// PRelu against a broadcasting reference for per-channel NCHW/NHWC and general shapes.</summary>
public class UnaryTests
{
    private const float LeakyAlpha = 0.1f, EluAlpha = 0.7f, SeluAlpha = 1.6732632f, SeluGamma = 1.050701f;

    /// <summary>erf in float64: Maclaurin series for |x| &lt; 2.5 (alternating terms at most ~e^6.25, so ~1e-13
    /// absolute), else 1 - erfc with erfc from its continued fraction (Abramowitz-Stegun 7.1.14), evaluated bottom-up.</summary>
    public static double ReferenceErf(double x)
    {
        if (double.IsNaN(x)) return double.NaN;
        double ax = Math.Abs(x);
        if (ax < 2.5)
        {
            double sum = 0, term = x; // term = (-1)^n x^(2n+1) / n!
            for (int n = 0; n < 200; n++)
            {
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17) break;
                term *= -x * x / (n + 1);
            }
            return 2 / Math.Sqrt(Math.PI) * sum;
        }
        if (ax > 10) return Math.Sign(x);
        // erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...)))))
        double f = ax;
        for (int k = 120; k >= 1; k--) f = ax + k / 2.0 / f;
        double erfc = Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / f;
        return Math.Sign(x) * (1 - erfc);
    }

    private static double Expected(UnaryKind kind, double x) => kind switch
    {
        UnaryKind.Abs => Math.Abs(x),
        UnaryKind.Neg => -x,
        UnaryKind.Sqrt => Math.Sqrt(x),
        UnaryKind.Exp => Math.Exp(x),
        UnaryKind.Log => Math.Log(x),
        UnaryKind.Tanh => Math.Tanh(x),
        UnaryKind.Reciprocal => 1 / x,
        UnaryKind.Floor => Math.Floor(x),
        UnaryKind.Ceil => Math.Ceiling(x),
        UnaryKind.Round => Math.Round(x, MidpointRounding.ToEven),
        UnaryKind.Sign => Math.Sign(x),
        UnaryKind.Sin => Math.Sin(x),
        UnaryKind.Cos => Math.Cos(x),
        UnaryKind.Erf => ReferenceErf(x),
        UnaryKind.Gelu => 0.5 * x * (1 + ReferenceErf(x / Math.Sqrt(2))),
        UnaryKind.Softplus => Math.Log(1 + Math.Exp(x)),
        UnaryKind.Softsign => x / (1 + Math.Abs(x)),
        UnaryKind.LeakyRelu => x >= 0 ? x : LeakyAlpha * x,
        UnaryKind.Elu => x > 0 ? x : EluAlpha * (Math.Exp(x) - 1),
        UnaryKind.Selu => SeluGamma * (x > 0 ? x : SeluAlpha * (Math.Exp(x) - 1)),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    private static (float Alpha, float Gamma) Parameters(UnaryKind kind) => kind switch
    {
        UnaryKind.LeakyRelu => (LeakyAlpha, 0),
        UnaryKind.Elu => (EluAlpha, 0),
        UnaryKind.Selu => (SeluAlpha, SeluGamma),
        _ => (0, 0),
    };

    /// <summary>Inputs in the operator's domain, with exact halves for Round and a wide range for the saturating ones.</summary>
    private static float[] Input(UnaryKind kind, Random rng, int n) => Enumerable.Range(0, n).Select(_ =>
    {
        double u = rng.NextDouble() * 2 - 1;
        return kind switch
        {
            UnaryKind.Sqrt or UnaryKind.Log => (float)(rng.NextDouble() * 50 + 1e-3),
            UnaryKind.Reciprocal => (float)((Math.Abs(u) + 0.05) * Math.Sign(u == 0 ? 1 : u) * 4),
            UnaryKind.Round => (float)(Math.Round(u * 20) / 2),
            UnaryKind.Erf or UnaryKind.Gelu => (float)(u * 6),
            UnaryKind.Exp => (float)(u * 20),
            _ => (float)(u * 12),
        };
    }).ToArray();

    [Fact]
    public void EveryUnaryMatchesFloat64OnEveryIsaAndInPlace()
    {
        var rng = new Random(31);
        foreach (UnaryKind kind in Enum.GetValues<UnaryKind>())
            foreach (int n in new[] { 0, 1, 3, 15, 17, 33, 100, 1031 })
            {
                float[] x = Input(kind, rng, n);
                (float alpha, float gamma) = Parameters(kind);
                double[] expected = x.Select(v => Expected(kind, v)).ToArray();
                foreach (IsaLevel isa in Isa.Supported)
                {
                    var y = new float[n + 3];
                    y.AsSpan(n).Fill(777f);
                    Elementwise.Unary(kind, x, y.AsSpan(0, n + 3), alpha, gamma, isa);
                    Check(kind, expected, y, $"{kind} {isa} n={n}");
                    Assert.All(y[n..], v => Assert.Equal(777f, v));
                    float[] inPlace = (float[])x.Clone();
                    Elementwise.Unary(kind, inPlace, inPlace, alpha, gamma, isa);
                    Check(kind, expected, inPlace, $"{kind} {isa} n={n} in place");
                }
            }
    }

    /// <summary>Relative 2e-6 (a few float ulps, the transcendental TensorPrimitives paths included) with an absolute
    /// floor of 1e-6 around zero; Erf and Gelu are held to 1e-6 absolute, the accuracy the kernel promises.</summary>
    private static void Check(UnaryKind kind, double[] expected, float[] actual, string context)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i];
            double tolerance = kind is UnaryKind.Erf ? 1e-6 : kind is UnaryKind.Gelu ? 1e-6 * Math.Max(1, Math.Abs(e)) : Math.Max(1e-6, 2e-6 * Math.Abs(e));
            if (kind == UnaryKind.Softplus) tolerance = Math.Max(tolerance, 2e-7 * 20); // log(1 + tiny) rounds in float
            if (!(Math.Abs(e - a) <= tolerance))
                Assert.Fail($"{context}: element {i} expected {e} got {a} (|err| {Math.Abs(e - a):g3} > {tolerance:g3})");
        }
    }

    [Fact]
    public void ErfIsAccurateOnADenseGridAndKeepsNaNAndInfinities()
    {
        float[] x = Enumerable.Range(-6000, 12001).Select(i => i / 1000f).Concat([float.NaN, float.PositiveInfinity, float.NegativeInfinity, 1e-30f, -0f]).ToArray();
        foreach (IsaLevel isa in Isa.Supported)
        {
            var y = new float[x.Length];
            Elementwise.Erf(x, y, isa);
            double worst = 0;
            for (int i = 0; i < x.Length - 5; i++) worst = Math.Max(worst, Math.Abs(ReferenceErf(x[i]) - y[i]));
            Assert.True(worst <= 1e-6, $"{isa}: max |erf error| {worst:g3}");
            Assert.True(float.IsNaN(y[^5]), $"{isa}: erf(NaN) = {y[^5]}");
            Assert.Equal(1f, y[^4]);
            Assert.Equal(-1f, y[^3]);
            Assert.Equal(1e-30 * 2 / Math.Sqrt(Math.PI), y[^2], 1e-35);
        }
    }

    [Fact]
    public void ErfMatchesTheOnnxBackendTestData()
    {
        string dir = "/usr/share/libonnx-testdata/data/node/test_erf/test_data_set_0";
        if (!Directory.Exists(dir)) return; // CI installs libonnx-testdata; without it there is nothing to compare
        float[] x = (float[])MobileNetSharp.Onnx.TensorProtoFile.Read(Path.Combine(dir, "input_0.pb")).Data;
        float[] expected = (float[])MobileNetSharp.Onnx.TensorProtoFile.Read(Path.Combine(dir, "output_0.pb")).Data;
        var y = new float[x.Length];
        Elementwise.Erf(x, y);
        for (int i = 0; i < x.Length; i++) Assert.True(Math.Abs(expected[i] - y[i]) <= 1e-6, $"erf({x[i]}) = {y[i]}, ONNX {expected[i]}");
    }

    public static IEnumerable<object[]> PReluShapes =>
    [
        [new[] { 2, 5, 3, 4 }, new[] { 5, 1, 1 }],      // NCHW per channel
        [new[] { 2, 3, 4, 17 }, new[] { 17 }],          // NHWC per channel
        [new[] { 1, 33, 7, 7 }, new[] { 1, 33, 1, 1 }], // NCHW per channel, rank-4 slope
        [new[] { 3, 4, 5 }, new[] { 1 }],               // one slope
        [new[] { 3, 4, 5 }, new[] { 3, 4, 5 }],         // full
        [new[] { 2, 3, 4, 5 }, new[] { 3, 1, 5 }],      // interleaved
        [new[] { 4, 1100 }, new[] { 1100 }],            // rows longer than the stack chunk
        [Array.Empty<int>(), Array.Empty<int>()],       // scalars
    ];

    [Theory]
    [MemberData(nameof(PReluShapes))]
    public void PReluBroadcastsTheSlope(int[] xShape, int[] slopeShape)
    {
        var rng = new Random(xShape.Sum() + 7 * slopeShape.Length);
        float[] x = TestData.Random(rng, xShape.Aggregate(1, (p, d) => p * d), 3f);
        float[] slope = TestData.Random(rng, slopeShape.Aggregate(1, (p, d) => p * d));
        var expected = new float[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            float s = slope[BroadcastOffset(Reference.Unravel(i, xShape), slopeShape)];
            expected[i] = x[i] >= 0 ? x[i] : s * x[i];
        }
        var y = new float[x.Length];
        Elementwise.PRelu(x, xShape, slope, slopeShape, y);
        TestData.AssertClose(expected, y, 1, $"PRelu [{string.Join(",", xShape)}] slope [{string.Join(",", slopeShape)}]");
        Elementwise.PRelu(x, xShape, slope, slopeShape, x); // in place
        TestData.AssertClose(expected, x, 1, "PRelu in place");
    }

    [Fact]
    public void PReluRejectsASlopeThatDoesNotBroadcast() =>
        Assert.Throws<ArgumentException>(() => Elementwise.PRelu(new float[24], [2, 3, 4], new float[3], [3], new float[24]));

    /// <summary>Offset of a right-aligned broadcast operand at an output multi-index.</summary>
    internal static int BroadcastOffset(int[] yIndex, int[] shape)
    {
        int offset = 0, shift = yIndex.Length - shape.Length;
        for (int d = 0; d < shape.Length; d++) offset = offset * shape[d] + (shape[d] == 1 ? 0 : yIndex[d + shift]);
        return offset;
    }
}
