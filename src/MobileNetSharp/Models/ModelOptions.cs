namespace MobileNetSharp.Models;

/// <summary>
/// The knobs every architecture takes. Width scales channel counts (alpha), Resolution is the square
/// input size (null: the architecture's own default), Seed fixes the untrained weights.
/// <para>
/// <see cref="InChannels"/> is the number of input channels (3 for RGB, 1 for grey-scale images such as
/// Fashion-MNIST); it changes only the stem's weights. <see cref="SmallInput"/> is the small-image mode
/// of every architecture: the stem and the first stride-2 stage after it run at stride 1, so the network
/// downsamples by 8 instead of 32 and a 28x28 image still ends in a 4x4 feature map. Which stage that is:
/// MobileNetV1 block 2 (128 channels), MobileNetV2 the 24-channel stage, MobileNetV3-Large block 2
/// (24 channels), MobileNetV3-Small block 1 (16 channels, with SE; at stride 1 its input and output shapes agree, so it gains
/// the residual connection, as torchvision's rule "stride 1 and in == out" gives), EfficientNet-Lite the 24-channel
/// stage. Channel counts and parameters stay as they are; only strides (and so MACs) change.
/// </para>
/// </summary>
public sealed record ModelOptions(float Width = 1f, int? Resolution = null, int Classes = 1000, int Batch = 1, int Seed = 0,
    int InChannels = 3, bool SmallInput = false)
{
    /// <summary>Every MobileNet downsamples by 32; smaller inputs cannot pass through the network.</summary>
    public const int MinResolution = 32;
    /// <summary>The smallest input in small-input mode, which downsamples by 8.</summary>
    public const int MinSmallResolution = 8;
    public const int MaxResolution = 4096;
    public const int MaxInChannels = 1024;

    /// <summary>
    /// MobileNetV2 only: ReLU6 after each block's projection instead of the linear bottleneck, the ablation of the V2
    /// paper (Sandler et al. 2018, section 6.4 and Figure 6a) that shows the linear bottleneck preserves information.
    /// </summary>
    public bool NonLinearBottleneck { get; init; }

    /// <summary>How much the network shrinks the input: 32, or 8 in small-input mode.</summary>
    public int Downsampling => SmallInput ? 8 : 32;

    /// <summary>The stride of the stem and of the first stride-2 stage: 2, or 1 in small-input mode.</summary>
    internal int EarlyStride(int stride) => SmallInput && stride == 2 ? 1 : stride;

    internal int Validate(string arch, int defaultResolution)
    {
        if (!(Width > 0f) || float.IsInfinity(Width) || Width > 8f)
            throw new ArgumentException($"{arch}: width multiplier must be in (0, 8], got {Width}.");
        int r = Resolution ?? defaultResolution;
        int min = SmallInput ? MinSmallResolution : MinResolution;
        if (r < min || r > MaxResolution)
            throw new ArgumentException(SmallInput
                ? $"{arch}: resolution must be between {min} and {MaxResolution} in small-input mode (the network downsamples by 8), got {r}."
                : $"{arch}: resolution must be between {min} and {MaxResolution} (the network downsamples by 32; --small-input takes images down to {MinSmallResolution}), got {r}.");
        if (Classes < 1 || Classes > 1_000_000) throw new ArgumentException($"{arch}: classes must be between 1 and 1000000, got {Classes}.");
        if (Batch < 1 || Batch > 65536) throw new ArgumentException($"{arch}: batch must be between 1 and 65536, got {Batch}.");
        if (InChannels < 1 || InChannels > MaxInChannels)
            throw new ArgumentException($"{arch}: input channels must be between 1 and {MaxInChannels}, got {InChannels}.");
        return r;
    }

    /// <summary>Records the architecture and these options in the graph's metadata (kept by ONNX export).</summary>
    internal Graph.ModelGraph Describe(Graph.ModelGraph g, int resolution)
    {
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        g.Metadata["architecture"] = g.Name;
        g.Metadata["width"] = Width.ToString(inv);
        g.Metadata["resolution"] = resolution.ToString(inv);
        g.Metadata["classes"] = Classes.ToString(inv);
        g.Metadata["seed"] = Seed.ToString(inv);
        g.Metadata["channels"] = InChannels.ToString(inv);
        g.Metadata["small_input"] = SmallInput ? "true" : "false";
        if (NonLinearBottleneck) g.Metadata["bottleneck"] = "relu6";
        return g;
    }
}
