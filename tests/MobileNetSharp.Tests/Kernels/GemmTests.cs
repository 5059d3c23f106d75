using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>FullyConnectedOperator and MatMul against the reference over row/column counts around the tile sizes.</summary>
public class GemmTests
{
    public static IEnumerable<object[]> Shapes =>
    [
        [1, 1, 1], [1, 1280, 1000], [2, 7, 3], [5, 17, 33], [6, 16, 32], [7, 33, 17], [13, 5, 65], [3, 64, 40], [25, 100, 9], [49, 96, 24],
        // GEMV path (rows <= 3): odd k, columns off the panel width, a last narrow panel, the classifier heads.
        [1, 576, 1024], [2, 33, 47], [3, 17, 15], [2, 1, 40], [3, 1024, 1000], [1, 5, 16], [4, 9, 33],
        // MatMul packs B (m >= 48, k·n >= 16K): ragged last panels, one row past a tile, the 1x1 input gradient's shape.
        [48, 128, 128], [50, 130, 131], [97, 300, 70], [64, 1280, 17], [61, 160, 200],
    ];

    [Theory]
    [MemberData(nameof(Shapes))]
    public void FullyConnectedMatchesReference(int rows, int inF, int outF)
    {
        var rng = new Random(rows * 1000 + inF * 10 + outF);
        float[] x = TestData.Random(rng, rows * inF), w = TestData.Random(rng, inF * outF), b = TestData.Random(rng, outF);
        int i = 0;
        foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
        {
            Activation act = TestData.Activations[i++ % TestData.Activations.Length];
            float[] bias = i % 3 == 0 ? [] : b;
            float[] expected = Reference.FullyConnected(rows, inF, outF, x, w, bias, act);
            var op = new FullyConnectedOperator(inF, outF, w, bias, act, isa);
            var y = new float[rows * outF];
            op.Run(rows, x, y, workers);
            TestData.AssertClose(expected, y, inF, $"FC {rows}x{inF}->{outF} {act} {isa} t{workers.Count}");
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MatMulMatchesReference(int m, int k, int n)
    {
        var rng = new Random(m * 7 + k * 13 + n);
        float[] a = TestData.Random(rng, m * k), b = TestData.Random(rng, k * n);
        float[] expected = Reference.MatMul(a, b, m, k, n);
        foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
        {
            var c = new float[m * n + 5];
            c.AsSpan(m * n).Fill(-7f);
            MobileNetSharp.Kernels.MatMul.Run(a, b, c, m, k, n, workers, isa);
            TestData.AssertClose(expected, c, k, $"MatMul {m}x{k}x{n} {isa} t{workers.Count}");
            Assert.All(c[(m * n)..], v => Assert.Equal(-7f, v));
        }
    }

    /// <summary>Packing B changes where it is read from, not the order of the sums: the same bits as reading it in place.</summary>
    [Theory]
    [InlineData(48, 128, 128)]
    [InlineData(50, 130, 131)]
    [InlineData(97, 300, 70)]
    public unsafe void MatMulPackedEqualsInPlace(int m, int k, int n)
    {
        // These shapes must take the packed path, or the test compares in-place with in-place.
        Assert.True(m >= MobileNetSharp.Kernels.MatMul.MinRowsToPack && (long)k * n >= MobileNetSharp.Kernels.MatMul.MinFloatsToPack);
        var rng = new Random(m + k + n);
        float[] a = TestData.Random(rng, m * k), b = TestData.Random(rng, k * n);
        foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
        {
            Assert.True(n > Isa.Width(isa));
            var (packed, inPlace) = (new float[m * n], new float[m * n]);
            MobileNetSharp.Kernels.MatMul.Run(a, b, packed, m, k, n, workers, isa);
            fixed (float* pa = a, pb = b, pc = inPlace)
                MobileNetSharp.Kernels.Gemm.GemmDriver.RunUnpacked(isa, m, n, k, pa, k, pb, n, pc, n, workers);
            Assert.Equal(inPlace, packed);
        }
    }

    [Fact]
    public void MatMulWithEmptyInnerDimensionIsZero()
    {
        var c = new float[6];
        c.AsSpan().Fill(3f);
        MobileNetSharp.Kernels.MatMul.Run([], [], c, 2, 0, 3, Workers.Single);
        Assert.All(c, v => Assert.Equal(0f, v));
    }
}
