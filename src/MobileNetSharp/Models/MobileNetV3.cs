using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Models;

/// <summary>
/// MobileNetV3 Large and Small (Howard et al. 2019), torchvision-exact: inverted residuals with 3x3/5x5
/// depthwise kernels, squeeze-and-excite gated by hard-sigmoid, ReLU early and hard-swish late.
/// </summary>
public static class MobileNetV3
{
    private readonly record struct Block(int Kernel, int Expanded, int Out, bool SE, bool HS, int Stride);

    private static readonly Block[] Large =
    [
        new(3, 16, 16, false, false, 1), new(3, 64, 24, false, false, 2), new(3, 72, 24, false, false, 1),
        new(5, 72, 40, true, false, 2), new(5, 120, 40, true, false, 1), new(5, 120, 40, true, false, 1),
        new(3, 240, 80, false, true, 2), new(3, 200, 80, false, true, 1), new(3, 184, 80, false, true, 1),
        new(3, 184, 80, false, true, 1), new(3, 480, 112, true, true, 1), new(3, 672, 112, true, true, 1),
        new(5, 672, 160, true, true, 2), new(5, 960, 160, true, true, 1), new(5, 960, 160, true, true, 1),
    ];

    private static readonly Block[] Small =
    [
        new(3, 16, 16, true, false, 2), new(3, 72, 24, false, false, 2), new(3, 88, 24, false, false, 1),
        new(5, 96, 40, true, true, 2), new(5, 240, 40, true, true, 1), new(5, 240, 40, true, true, 1),
        new(5, 120, 48, true, true, 1), new(5, 144, 48, true, true, 1), new(5, 288, 96, true, true, 2),
        new(5, 576, 96, true, true, 1), new(5, 576, 96, true, true, 1),
    ];

    public static ModelGraph BuildLarge(ModelOptions o) => BuildCore("mobilenet_v3_large", Large, 1280, o);

    /// <summary>Small with torchvision's 1024-wide classifier hidden layer (the paper says 1280).</summary>
    public static ModelGraph BuildSmall(ModelOptions o) => BuildCore("mobilenet_v3_small", Small, 1024, o);

    private static ModelGraph BuildCore(string arch, Block[] blocks, int lastHidden, ModelOptions o)
    {
        int res = o.Validate(arch, 224);
        var b = new GraphBuilder(arch, o.Seed);
        var hs = Activation.HardSwish;
        var gate = Activation.HardSigmoid(1f / 6f, 0.5f); // torchvision's relu6(x + 3) / 6
        int Scale(int c) => Channels.MakeDivisible(c * o.Width);
        var x = b.Input("input", o.Batch, o.InChannels, res, res);
        using (b.Scope("stem")) x = b.ConvBnAct(x, Scale(16), 3, o.EarlyStride(2), hs);
        int firstStrided = Array.FindIndex(blocks, k => k.Stride == 2); // stride 1 in small-input mode, as is the stem
        for (int i = 0; i < blocks.Length; i++)
        {
            var k = blocks[i];
            if (i == firstStrided) k = k with { Stride = o.EarlyStride(k.Stride) };
            using var _ = b.Scope($"block{i + 1}");
            x = MobileNetV2.InvertedResidual(b, x, Scale(k.Out), k.Stride, Scale(k.Expanded), k.Kernel,
                k.HS ? hs : Activation.Relu, k.SE, gate, expansionIsChannels: true);
        }
        using (b.Scope("head"))
        {
            x = b.ConvBnAct(x, 6 * x.Shape[1], 1, 1, hs);
            x = b.Flatten(b.GlobalAveragePool(x));
            x = b.Activate(b.Linear(x, Scale(lastHidden)), hs);
            x = b.Linear(b.Dropout(x, 0.2f), o.Classes, kind: "classifier"); // torchvision: Dropout(0.2) before the last Linear
        }
        b.Output(x);
        return o.Describe(b.Graph, res);
    }
}
