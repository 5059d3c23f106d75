using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Kernels.Int8;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Quantization;

/// <summary>QuantizeLinear / DequantizeLinear kernels against ONNX's definition written out naively in double precision.</summary>
public class QuantizeLinearKernelTests
{
    public static TheoryData<IsaLevel> Levels() => [.. Isa.Supported];

    /// <summary>ONNX QuantizeLinear: saturate(round_half_to_even(x / scale) + zp); x / scale in float, as the spec's float tensors divide.</summary>
    private static int Reference(float x, float scale, int zp, DataType t)
    {
        var (lo, hi) = QuantParams.Limits(t);
        float q = x / scale;
        if (float.IsNaN(q)) return zp;
        double r = Math.Round((double)q, MidpointRounding.ToEven) + zp;
        return (int)Math.Clamp(r, lo, hi);
    }

    private static float[] Values(Random rng, int n, float spread)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            x[i] = (rng.Next(10)) switch
            {
                0 => (rng.Next(-300, 300) + 0.5f) * 0.25f, // exact halves of the step 0.25: the rounding ties
                1 => spread * 1000 * (rng.NextSingle() - 0.5f), // far outside the range: saturation
                _ => spread * (rng.NextSingle() * 2 - 1),
            };
        }
        return x;
    }

    [Theory, MemberData(nameof(Levels))]
    public void QuantizeMatchesTheDefinitionPerTensorAndPerChannel(IsaLevel isa)
    {
        var rng = new Random(11);
        foreach (var type in new[] { DataType.UInt8, DataType.Int8 })
            foreach (var (outer, channels, inner) in new[] { (1, 1, 1), (1, 1, 31), (1, 1, 32), (2, 3, 33), (3, 5, 7), (1, 4, 100), (2, 1, 129) })
            {
                var (lo, hi) = QuantParams.Limits(type);
                var scales = Enumerable.Range(0, channels).Select(_ => channels == 1 ? 0.25f : 0.01f + rng.NextSingle()).ToArray();
                var zps = Enumerable.Range(0, channels).Select(_ => rng.Next(lo, hi + 1)).ToArray();
                var p = new QuantParams(scales, zps, type, 1);
                var x = Values(rng, outer * channels * inner, 40);
                x[0] = float.NaN;
                if (x.Length > 2) (x[1], x[2]) = (float.PositiveInfinity, float.NegativeInfinity);
                var y = new byte[x.Length];
                QuantizeLinearKernel.Quantize(x, y, p, (outer, channels, inner), isa);
                for (int i = 0; i < x.Length; i++)
                {
                    int c = i / inner % channels;
                    int expected = Reference(x[i], scales[c], zps[c], type);
                    int actual = type == DataType.UInt8 ? y[i] : (sbyte)y[i];
                    Assert.True(expected == actual, $"{type} {isa} split ({outer},{channels},{inner}) [{i}]: x={x[i]:R} scale={scales[c]:R} zp={zps[c]} -> {actual}, expected {expected}");
                }
            }
    }

    [Theory, MemberData(nameof(Levels))]
    public void DequantizeMatchesTheDefinition(IsaLevel isa)
    {
        var rng = new Random(12);
        foreach (var type in new[] { DataType.UInt8, DataType.Int8, DataType.Int32 })
            foreach (var (outer, channels, inner) in new[] { (1, 1, 1), (1, 1, 15), (1, 1, 16), (2, 3, 17), (1, 4, 100) })
            {
                var (lo, hi) = QuantParams.Limits(type);
                int n = outer * channels * inner, size = type.SizeOf();
                var scales = Enumerable.Range(0, channels).Select(_ => 0.001f + rng.NextSingle()).ToArray();
                var zps = Enumerable.Range(0, channels).Select(_ => type == DataType.Int32 ? 0 : rng.Next(lo, hi + 1)).ToArray();
                var p = new QuantParams(scales, zps, type, 1);
                var raw = new byte[n * size];
                rng.NextBytes(raw);
                var y = new float[n];
                QuantizeLinearKernel.Dequantize(raw, y, p, (outer, channels, inner), isa);
                for (int i = 0; i < n; i++)
                {
                    int c = i / inner % channels;
                    long q = type switch { DataType.UInt8 => raw[i], DataType.Int8 => (sbyte)raw[i], _ => BitConverter.ToInt32(raw, i * 4) };
                    float expected = (float)(q - zps[c]) * scales[c];
                    Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(y[i]),
                        $"{type} {isa} [{i}]: q={q} zp={zps[c]} scale={scales[c]:R} -> {y[i]:R}, expected {expected:R}");
                }
            }
    }

    [Fact]
    public void MismatchedBuffersAreRefused()
    {
        var p = QuantParams.Of(0.1f, 0, DataType.UInt8);
        var e = Assert.Throws<ArgumentException>(() => QuantizeLinearKernel.Quantize(new float[10], new byte[9], p, (1, 1, 10)));
        Assert.Contains("buffers hold", e.Message);
        Assert.Throws<ArgumentException>(() => QuantizeLinearKernel.Dequantize(new byte[10], new float[10], p, (1, 2, 10)));
        Assert.Throws<ArgumentException>(() => QuantizeLinearKernel.Quantize(new float[4], new byte[16], QuantParams.Of(1, 0, DataType.Int32), (1, 1, 4)));
    }

    [Theory]
    [InlineData(0f, 0, "scale[0] is 0")]
    [InlineData(-1f, 0, "scale[0] is -1")]
    [InlineData(float.NaN, 0, "scale[0] is NaN")]
    [InlineData(float.PositiveInfinity, 0, "positive and finite")]
    [InlineData(0.5f, 256, "outside UInt8's range 0..255")]
    [InlineData(0.5f, -1, "outside UInt8's range 0..255")]
    public void HostileParametersAreNamed(float scale, int zp, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => QuantParams.Of(scale, zp, DataType.UInt8).Validate());
        Assert.Contains(message, e.Message);
        Assert.Contains("must have the same length", Assert.Throws<ArgumentException>(() => new QuantParams([1f, 2f], [0], DataType.Int8).Validate()).Message);
        Assert.Contains("int32 tensor's zero point must be 0", Assert.Throws<ArgumentException>(() => QuantParams.Of(1f, 3, DataType.Int32).Validate()).Message);
    }
}
