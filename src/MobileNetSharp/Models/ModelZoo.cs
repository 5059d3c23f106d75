using MobileNetSharp.Graph;

namespace MobileNetSharp.Models;

/// <summary>One buildable architecture: its registry name, what it is, and how to build it.</summary>
public sealed record Architecture(string Name, string Description, int DefaultResolution, Func<ModelOptions, ModelGraph> Build);

/// <summary>
/// The registry of architectures by name, with torchvision-style entry points
/// (<c>ModelZoo.Create("mobilenet_v2", new ModelOptions(Width: 0.75f))</c>).
/// </summary>
public static class ModelZoo
{
    public static IReadOnlyList<Architecture> All { get; } =
    [
        new("mobilenet_v1", "MobileNetV1: 13 depthwise-separable blocks; width 0.25-1.0+", 224, MobileNetV1.Build),
        new("conv_mobilenet_v1", "MobileNetV1's twin with every separable pair as one standard 3x3 conv (paper Table 4)", 224, MobileNetV1.BuildStandard),
        new("mobilenet_v2", "MobileNetV2: inverted residuals with linear bottlenecks; width 0.35-1.4", 224, MobileNetV2.Build),
        new("mobilenet_v3_large", "MobileNetV3-Large: 5x5 depthwise, squeeze-excite, hard-swish", 224, MobileNetV3.BuildLarge),
        new("mobilenet_v3_small", "MobileNetV3-Small: the low-latency variant", 224, MobileNetV3.BuildSmall),
        .. Enumerable.Range(0, EfficientNetLite.Variants.Length).Select(i => new Architecture(
            $"efficientnet_lite{i}",
            $"EfficientNet-Lite{i}: width x{EfficientNetLite.Variants[i].Width}, depth x{EfficientNetLite.Variants[i].Depth}, no SE, ReLU6",
            EfficientNetLite.Variants[i].Resolution,
            o => EfficientNetLite.Build(i, o))),
    ];

    public static Architecture Get(string name) =>
        All.FirstOrDefault(a => string.Equals(a.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"Unknown architecture '{name}'. Known: {string.Join(", ", All.Select(a => a.Name))}.");

    public static ModelGraph Create(string name, ModelOptions? options = null) => Get(name).Build(options ?? new ModelOptions());

    // torchvision-style shortcuts. inChannels and smallInput are ModelOptions.InChannels and SmallInput:
    // mobilenet_v2(0.5f, 28, 10, inChannels: 1, smallInput: true) is the Fashion-MNIST benchmark network.
    public static ModelGraph mobilenet_v1(float widthMult = 1f, int resolution = 224, int numClasses = 1000, int inChannels = 3, bool smallInput = false) =>
        MobileNetV1.Build(new(widthMult, resolution, numClasses, InChannels: inChannels, SmallInput: smallInput));
    public static ModelGraph mobilenet_v2(float widthMult = 1f, int resolution = 224, int numClasses = 1000, int inChannels = 3, bool smallInput = false) =>
        MobileNetV2.Build(new(widthMult, resolution, numClasses, InChannels: inChannels, SmallInput: smallInput));
    public static ModelGraph mobilenet_v3_large(float widthMult = 1f, int resolution = 224, int numClasses = 1000, int inChannels = 3, bool smallInput = false) =>
        MobileNetV3.BuildLarge(new(widthMult, resolution, numClasses, InChannels: inChannels, SmallInput: smallInput));
    public static ModelGraph mobilenet_v3_small(float widthMult = 1f, int resolution = 224, int numClasses = 1000, int inChannels = 3, bool smallInput = false) =>
        MobileNetV3.BuildSmall(new(widthMult, resolution, numClasses, InChannels: inChannels, SmallInput: smallInput));
}
