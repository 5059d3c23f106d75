using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Models;

/// <summary>
/// EfficientNet-Lite0..4 (TensorFlow TPU models, efficientnet/lite): EfficientNet-B0's MBConv stages
/// without squeeze-and-excite, ReLU6 instead of swish, and a fixed stem (32) and head (1280) so the
/// models quantize well. Width scales channels (multiples of 8); depth scales repeats (ceil) except
/// in the first and last stages.
/// </summary>
public static class EfficientNetLite
{
    /// <summary>(expansion, kernel, stride, in, out, repeats) of EfficientNet-B0.</summary>
    private static readonly (int E, int K, int S, int In, int Out, int N)[] Stages =
    [
        (1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
        (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1),
    ];

    /// <summary>The stage that runs at stride 1 in small-input mode (24 channels at width 1).</summary>
    private const int FirstStrided = 1;

    /// <summary>(width, depth, resolution) for lite0..lite4.</summary>
    public static readonly (float Width, float Depth, int Resolution)[] Variants =
        [(1.0f, 1.0f, 224), (1.0f, 1.1f, 240), (1.1f, 1.2f, 260), (1.2f, 1.4f, 280), (1.4f, 1.8f, 300)];

    /// <summary>Builds lite{variant}; options.Width multiplies the variant's own width coefficient.</summary>
    public static ModelGraph Build(int variant, ModelOptions o)
    {
        if (variant < 0 || variant >= Variants.Length) throw new ArgumentException($"EfficientNet-Lite variant must be 0..4, got {variant}.");
        string arch = $"efficientnet_lite{variant}";
        var (w0, depth, defaultRes) = Variants[variant];
        int res = o.Validate(arch, defaultRes);
        double width = w0 * o.Width;
        var b = new GraphBuilder(arch, o.Seed);
        var act = Activation.Relu6;
        int Scale(int c) => Channels.MakeDivisible(c * width);
        var x = b.Input("input", o.Batch, o.InChannels, res, res);
        using (b.Scope("stem")) x = b.ConvBnAct(x, 32, 3, o.EarlyStride(2), act, kind: "conv");
        int block = 0;
        for (int s = 0; s < Stages.Length; s++)
        {
            var (e, k, stride, _, outC, n) = Stages[s];
            if (s == FirstStrided) stride = o.EarlyStride(stride); // small-input mode: stride 1, as is the stem
            bool fixedRepeats = s == 0 || s == Stages.Length - 1;
            int repeats = fixedRepeats ? n : (int)Math.Ceiling(depth * n);
            for (int i = 0; i < repeats; i++)
            {
                using var _ = b.Scope($"block{++block}");
                x = MobileNetV2.InvertedResidual(b, x, Scale(outC), i == 0 ? stride : 1, e, k, act, se: false, seGate: default);
            }
        }
        using (b.Scope("head"))
        {
            x = b.ConvBnAct(x, 1280, 1, 1, act);
            x = b.Flatten(b.GlobalAveragePool(x));
            x = b.Linear(b.Dropout(x, 0.2f), o.Classes); // the paper's (and timm's) 0.2 for Lite0
        }
        b.Output(x);
        return o.Describe(b.Graph, res);
    }
}
