namespace MobileNetSharp.Kernels.Int8;

/// <summary>
/// How <see cref="QuantizedGemm"/> turns an int32 accumulator of output channel j back into uint8: the
/// float-multiplier requantization of ONNX Runtime's MLAS (MlasRequantizeOutput), which is what its
/// QLinearConv and QLinearMatMul kernels run:
/// <code>
/// f    = (float)acc * Multiplier[j]                          float32 multiply
/// f    = min(max(f, (float)(Min - ZeroPoint)), (float)(Max - ZeroPoint))
/// C    = (byte)(roundHalfToEven(f) + ZeroPoint)
/// </code>
/// where acc already holds bias[j]. Multiplier[j] = inputScale · weightScale[j] / outputScale (ONNX
/// QLinearConv: y = saturate(round(x_scale · w_scale / y_scale · acc) + y_zero_point)); per-tensor weights
/// give N equal multipliers. A fused ReLU or ReLU6 is expressed by the caller as tighter [Min, Max].
/// <para>Built once at load time; the arrays are padded to whole 16-column panels so the kernels load
/// full vectors with no tail case.</para>
/// </summary>
public sealed class Requantization
{
    /// <param name="multipliers">N per-output-channel multipliers, each finite and &gt; 0.</param>
    /// <param name="bias">N int32 biases (ONNX QLinearConv B, in units of inputScale · weightScale[j]), or empty for zeros.</param>
    /// <param name="outputZeroPoint">zpC, the uint8 output's zero point.</param>
    /// <param name="min">Smallest output value (0 for a plain uint8 output; the zero point for a fused ReLU).</param>
    /// <param name="max">Largest output value (255, or the quantized 6 for a fused ReLU6).</param>
    /// <exception cref="ArgumentException">No multipliers, a multiplier that is zero, negative, NaN or infinite,
    /// a bias of another length than the multipliers, or <paramref name="min"/> &gt; <paramref name="max"/>.</exception>
    public Requantization(ReadOnlySpan<float> multipliers, ReadOnlySpan<int> bias, byte outputZeroPoint, byte min = 0, byte max = 255)
    {
        if (multipliers.IsEmpty) throw new ArgumentException("Requantization needs one multiplier per output channel, got none.", nameof(multipliers));
        if (!bias.IsEmpty && bias.Length != multipliers.Length)
            throw new ArgumentException($"Requantization bias has {bias.Length} values for {multipliers.Length} output channels; pass one per channel or none.", nameof(bias));
        if (min > max) throw new ArgumentException($"Requantization clamp is empty: min {min} > max {max}.", nameof(min));
        for (int j = 0; j < multipliers.Length; j++)
        {
            float m = multipliers[j];
            // Zero or negative scales are not valid ONNX quantization parameters, and NaN or infinity would turn
            // into arbitrary bytes after the clamp.
            if (!float.IsFinite(m) || m <= 0)
                throw new ArgumentException($"Requantization multiplier {j} is {m}; multipliers must be finite and > 0.", nameof(multipliers));
        }
        Channels = multipliers.Length;
        OutputZeroPoint = outputZeroPoint;
        Min = min;
        Max = max;
        int padded = (Channels + PackedInt8Weights.PanelWidth - 1) / PackedInt8Weights.PanelWidth * PackedInt8Weights.PanelWidth;
        PaddedMultipliers = GC.AllocateArray<float>(padded, pinned: true);
        PaddedBias = GC.AllocateArray<int>(padded, pinned: true);
        multipliers.CopyTo(PaddedMultipliers);
        bias.CopyTo(PaddedBias);
        HasBias = !bias.IsEmpty;
        ClampAfterRounding = true;
        foreach (float m in multipliers) ClampAfterRounding &= m < 1f;
    }

    /// <summary>The same multiplier for all <paramref name="channels"/> output channels (per-tensor weight scale).</summary>
    public static Requantization PerTensor(int channels, float multiplier, ReadOnlySpan<int> bias, byte outputZeroPoint, byte min = 0, byte max = 255)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        var m = new float[channels];
        Array.Fill(m, multiplier);
        return new Requantization(m, bias, outputZeroPoint, min, max);
    }

    /// <summary>
    /// Multipliers from the ONNX scales, computed as ONNX Runtime does: (inputScale · weightScales[j]) / outputScale
    /// in float32. One weight scale means per-tensor (broadcast to <paramref name="channels"/>).
    /// </summary>
    public static Requantization FromScales(int channels, float inputScale, ReadOnlySpan<float> weightScales, float outputScale,
        ReadOnlySpan<int> bias, byte outputZeroPoint, byte min = 0, byte max = 255)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        if (weightScales.Length != 1 && weightScales.Length != channels)
            throw new ArgumentException($"Expected 1 or {channels} weight scales, got {weightScales.Length}.", nameof(weightScales));
        var m = new float[channels];
        for (int j = 0; j < channels; j++) m[j] = inputScale * weightScales[weightScales.Length == 1 ? 0 : j] / outputScale;
        return new Requantization(m, bias, outputZeroPoint, min, max);
    }

    /// <summary>
    /// The same, with a hard-swish between the convolution and the output quantization (MobileNetV3's layers), which a
    /// clamp on the codes cannot express. Per value:
    /// <code>
    /// v = (float)acc · dequantize[j]                       dequantize[j] = inputScale · weightScale[j]
    /// h = v · min(max(alpha · v + beta, 0), 1)             hard-swish (ONNX HardSwish: alpha 1/6, beta 0.5)
    /// C = saturate(roundHalfToEven(h / outputScale) + zpC)  QuantizeLinear: a division, as the QDQ form defines it
    /// </code>
    /// which is DequantizeLinear -> Conv -> HardSwish -> QuantizeLinear with the convolution's sum exact. The float
    /// simulation sums float products, so the two may differ by one code where a value falls near a rounding tie.
    /// </summary>
    /// <exception cref="ArgumentException">As the constructor, or an output scale that is not finite and &gt; 0.</exception>
    public static Requantization WithHardSwish(int channels, float inputScale, ReadOnlySpan<float> weightScales, float outputScale,
        ReadOnlySpan<int> bias, byte outputZeroPoint, float alpha = 1f / 6, float beta = 0.5f)
    {
        if (!float.IsFinite(outputScale) || outputScale <= 0)
            throw new ArgumentException($"Requantization output scale is {outputScale}; it must be finite and > 0.", nameof(outputScale));
        var r = FromScales(channels, inputScale, weightScales, 1f, bias, outputZeroPoint);
        r.HardSwish = true;
        r.OutputScale = outputScale;
        r.HardSwishAlpha = alpha;
        r.HardSwishBeta = beta;
        r.ClampAfterRounding = false;
        return r;
    }

    /// <summary>True when the multipliers dequantize and a hard-swish and a division by <see cref="OutputScale"/> follow (<see cref="WithHardSwish"/>).</summary>
    public bool HardSwish { get; private set; }
    /// <summary>y_scale, divided by after the hard-swish; 1 otherwise (folded into the multipliers).</summary>
    public float OutputScale { get; private set; } = 1f;
    internal float HardSwishAlpha { get; private set; }
    internal float HardSwishBeta { get; private set; }

    /// <summary>N, the output channels this applies to.</summary>
    public int Channels { get; }
    /// <summary>zpC.</summary>
    public byte OutputZeroPoint { get; }
    public byte Min { get; }
    public byte Max { get; }
    /// <summary>False when constructed with an empty bias (all zeros).</summary>
    public bool HasBias { get; }

    public float Multiplier(int channel) => PaddedMultipliers[CheckChannel(channel)];
    public int Bias(int channel) => PaddedBias[CheckChannel(channel)];

    /// <summary>Multipliers padded with zeros to whole 16-column panels (pinned).</summary>
    internal float[] PaddedMultipliers { get; }
    /// <summary>Bias padded with zeros to whole 16-column panels (pinned).</summary>
    internal int[] PaddedBias { get; }
    /// <summary>
    /// Every multiplier is below 1, so |(float)acc · M| &lt; 2^31 for every int32 acc and a kernel may round
    /// first and clamp the integers (same result: rounding is monotone and keeps the integer bounds).
    /// </summary>
    internal bool ClampAfterRounding { get; private set; }
    /// <summary>The float clamp bounds of the contract, relative to the zero point.</summary>
    internal float LowerBound => Min - OutputZeroPoint;
    internal float UpperBound => Max - OutputZeroPoint;

    private int CheckChannel(int channel)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(channel);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(channel, Channels);
        return channel;
    }
}
