using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>
/// Activation gradients against the analytic float64 derivative and against central finite differences of a
/// float64 forward, over ISA x threads, from the forward input and (where it determines the derivative) the output.
/// </summary>
public class ActivationBackwardTests
{
    public static readonly TheoryData<string> Kinds = new(
        TestData.Activations.Concat([Activation.Tanh, Activation.LeakyRelu(0.1f)]).Select(a => a.ToString()).Distinct());

    private static Activation Parse(string name) =>
        TestData.Activations.Concat([Activation.Tanh, Activation.LeakyRelu(0.1f)]).First(a => a.ToString() == name);

    private static double Forward(Activation a, double x)
    {
        double hs(double t) => Math.Min(Math.Max(t, 0), 1);
        return a.Kind switch
        {
            ActivationKind.None => x,
            ActivationKind.Relu => Math.Max(x, 0),
            ActivationKind.Clip => Math.Min(Math.Max(x, a.Alpha), a.Beta),
            ActivationKind.HardSigmoid => hs(a.Alpha * x + a.Beta),
            ActivationKind.HardSwish => x * hs(a.Alpha * x + a.Beta),
            ActivationKind.Sigmoid => 1 / (1 + Math.Exp(-x)),
            ActivationKind.Silu => x / (1 + Math.Exp(-x)),
            ActivationKind.Tanh => Math.Tanh(x),
            ActivationKind.LeakyRelu => x >= 0 ? x : a.Alpha * x,
            _ => throw new ArgumentException(a.ToString()),
        };
    }

    /// <summary>The derivative, with the flat side's value at kinks.</summary>
    private static double Derivative(Activation a, double x)
    {
        double t = a.Alpha * x + a.Beta, s = 1 / (1 + Math.Exp(-x));
        bool linear = t > 0 && t < 1;
        return a.Kind switch
        {
            ActivationKind.None => 1,
            ActivationKind.Relu => x > 0 ? 1 : 0,
            ActivationKind.Clip => x > a.Alpha && x < a.Beta ? 1 : 0,
            ActivationKind.HardSigmoid => linear ? a.Alpha : 0,
            ActivationKind.HardSwish => Math.Min(Math.Max(t, 0), 1) + (linear ? a.Alpha * x : 0),
            ActivationKind.Sigmoid => s * (1 - s),
            ActivationKind.Silu => s * (1 + x * (1 - s)),
            ActivationKind.Tanh => 1 - Math.Tanh(x) * Math.Tanh(x),
            ActivationKind.LeakyRelu => x >= 0 ? 1 : a.Alpha,
            _ => throw new ArgumentException(a.ToString()),
        };
    }

    /// <summary>The points where the derivative jumps.</summary>
    private static double[] Kinks(Activation a) => a.Kind switch
    {
        ActivationKind.Relu or ActivationKind.LeakyRelu => [0],
        ActivationKind.Clip => [a.Alpha, a.Beta],
        ActivationKind.HardSigmoid or ActivationKind.HardSwish => [-a.Beta / a.Alpha, (1 - a.Beta) / a.Alpha],
        _ => [],
    };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void MatchesDerivativeAndFiniteDifferences(string name)
    {
        var act = Parse(name);
        var rng = new Random(name.Length * 31 + (int)act.Kind);
        foreach (int length in new[] { 1, 37, 1000 + 7, 70_001 })
        {
            var x = TestData.Random(rng, length, 7f);
            var kinks = Kinks(act);
            // Some inputs exactly at the kinks: the flat side's derivative must be taken there.
            for (int i = 0; i < kinks.Length && i < length; i++) x[i] = (float)kinks[i];
            var dy = TestData.Random(rng, length);
            var expected = new float[length];
            for (int i = 0; i < length; i++) expected[i] = (float)(dy[i] * Derivative(act, x[i]));

            // The analytic derivative against finite differences, away from the kinks.
            const double h = 1e-5;
            for (int i = 0; i < Math.Min(length, 200); i++)
            {
                double xi = x[i];
                if (kinks.Any(k => Math.Abs(k - xi) < 1e-3)) continue;
                double fd = (Forward(act, xi + h) - Forward(act, xi - h)) / (2 * h);
                Assert.True(Math.Abs(fd - Derivative(act, xi)) < 1e-6, $"{name}: f'({xi}) = {Derivative(act, xi)}, finite differences {fd}");
            }

            foreach (var (isa, workers) in TestData.Sweep())
            {
                string ctx = $"{name} n={length} {isa} {workers.Count}T";
                var dx = new float[length];
                ActivationBackward.FromInput(act, x, dy, dx, workers, isa);
                TestData.AssertClose(expected, dx, 2, ctx);
                if (ActivationBackward.OutputDetermines(act.Kind))
                {
                    var y = x.Select(v => (float)Forward(act, v)).ToArray();
                    var dx2 = (float[])dy.Clone(); // and in place: dx aliases dy
                    ActivationBackward.FromOutput(act, y, dx2, dx2, workers, isa);
                    TestData.AssertClose(expected, dx2, 2, ctx + " from output");
                }
            }
        }
    }

    [Fact]
    public void FromOutputRefusesWhatTheOutputCannotTell()
    {
        Assert.Throws<ArgumentException>(() => ActivationBackward.FromOutput(Activation.HardSwish, new float[2], new float[2], new float[2]));
        Assert.Throws<ArgumentException>(() => ActivationBackward.FromOutput(Activation.Silu, new float[2], new float[2], new float[2]));
        Assert.Throws<ArgumentException>(() => ActivationBackward.FromInput(Activation.Relu, new float[2], new float[3], new float[2]));
    }
}
