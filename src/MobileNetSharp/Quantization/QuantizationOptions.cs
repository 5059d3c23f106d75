using MobileNetSharp.Tensors;

namespace MobileNetSharp.Quantization;

/// <summary>How an activation's range is chosen from what calibration saw.</summary>
public enum CalibrationMethod
{
    /// <summary>The smallest and largest value seen: no clipping, coarsest steps when there are outliers.</summary>
    MinMax,
    /// <summary>The <see cref="QuantizationOptions.Percentile"/>-th percentile at each end of a 2048-bin histogram: clips rare outliers.
    /// Outputs of bounded activations (ReLU6, sigmoid) keep their whole range.</summary>
    Percentile,
    /// <summary>
    /// The clipping thresholds that minimize the KL divergence between the histogram and its quantized copy
    /// (Migacz, "8-bit Inference with TensorRT", GTC 2017), found for the positive and the negative side separately
    /// since activations are asymmetric. Outputs of bounded activations (ReLU6, sigmoid) keep their whole range.
    /// </summary>
    Entropy,
}

/// <summary>What <see cref="PostTrainingQuantizer"/> does. The defaults are ONNX Runtime's QDQ defaults: per-channel
/// symmetric int8 weights, asymmetric uint8 activations, int32 biases.</summary>
public sealed record QuantizationOptions
{
    public CalibrationMethod Method { get; init; } = CalibrationMethod.MinMax;

    /// <summary>For <see cref="CalibrationMethod.Percentile"/>: the share of values kept inside the range at each end, in percent (50..100).</summary>
    public double Percentile { get; init; } = 99.999;

    /// <summary>One weight scale per tensor instead of one per output channel. Per-tensor is what loses MobileNets
    /// their accuracy: a depthwise layer's channels differ in range by orders of magnitude.</summary>
    public bool PerTensor { get; init; }

    /// <summary>
    /// 7-bit weights ([-63, 63]) for ONNX Runtime on x86 CPUs without VNNI: its uint8 x int8 kernels multiply with
    /// vpmaddubsw, which saturates a pair of products above 32767 (255 x 127 x 2 does), so full-range weights give it
    /// wrong results (measured: a QLinearConv off by up to 70 steps). ONNX Runtime's quantizer calls this reduce_range.
    /// Our own integer kernels accumulate exactly and need no such limit.
    /// </summary>
    public bool ReduceRange { get; init; }

    /// <summary>UInt8 (default) or Int8 activations; either way asymmetric, with a zero point.</summary>
    public DataType ActivationType { get; init; } = DataType.UInt8;

    /// <summary>Node names left in float: their weights stay float (their neighbours' tensors are still quantized).</summary>
    public IReadOnlySet<string> Skip { get; init; } = new HashSet<string>();

    /// <summary>Worker threads for the calibration runs.</summary>
    public int Threads { get; init; } = Math.Min(Environment.ProcessorCount, Runtime.SessionOptions.MaxThreads);

    /// <summary>Throws ArgumentException for an option out of range.</summary>
    public void Validate()
    {
        if (!(Percentile >= 50 && Percentile <= 100)) throw new ArgumentException($"the percentile must be in 50..100, got {Percentile}.");
        if (ActivationType is not (DataType.UInt8 or DataType.Int8)) throw new ArgumentException($"activations are uint8 or int8, not {ActivationType}.");
        if (Threads < 1 || Threads > Runtime.SessionOptions.MaxThreads) throw new ArgumentException($"threads must be 1..{Runtime.SessionOptions.MaxThreads}, got {Threads}.");
    }
}
