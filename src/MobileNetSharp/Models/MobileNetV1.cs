using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Models;

/// <summary>
/// MobileNetV1 (Howard et al. 2017): a 3x3 stem then 13 depthwise-separable blocks, global pooling and
/// a classifier. <see cref="BuildStandard"/> is the paper's "Conv MobileNet" twin, in which every
/// depthwise + pointwise pair is one full 3x3 convolution: the baseline that shows what separability saves.
/// </summary>
public static class MobileNetV1
{
    /// <summary>(output channels, stride of the depthwise conv) for each separable block.</summary>
    private static readonly (int Out, int Stride)[] Blocks =
    [
        (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
        (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
    ];

    /// <summary>The block that runs at stride 1 in small-input mode (block 2, 128 channels), as does the stem.</summary>
    private const int FirstStrided = 1;

    public static ModelGraph Build(ModelOptions o) => BuildCore(o, separable: true);

    public static ModelGraph BuildStandard(ModelOptions o) => BuildCore(o, separable: false);

    private static ModelGraph BuildCore(ModelOptions o, bool separable)
    {
        string arch = separable ? "mobilenet_v1" : "conv_mobilenet_v1";
        int res = o.Validate(arch, 224);
        var b = new GraphBuilder(arch, o.Seed);
        var act = Activation.Relu6; // as in TF-slim and Keras; the paper says ReLU, the counts are the same
        var x = b.Input("input", o.Batch, o.InChannels, res, res);
        using (b.Scope("stem")) x = b.ConvBnAct(x, Channels.Truncate(32, o.Width), 3, o.EarlyStride(2), act);
        for (int i = 0; i < Blocks.Length; i++)
        {
            var (outC, stride) = Blocks[i];
            if (i == FirstStrided) stride = o.EarlyStride(stride);
            int c = Channels.Truncate(outC, o.Width);
            using var _ = b.Scope($"block{i + 1}");
            if (separable)
            {
                x = b.ConvBnAct(x, x.Shape[1], 3, stride, act, groups: x.Shape[1], kind: "dw");
                x = b.ConvBnAct(x, c, 1, 1, act, kind: "pw");
            }
            else
            {
                x = b.ConvBnAct(x, c, 3, stride, act);
            }
        }
        using (b.Scope("head"))
        {
            x = b.Flatten(b.GlobalAveragePool(x));
            x = b.Linear(x, o.Classes);
        }
        b.Output(x);
        return o.Describe(b.Graph, res);
    }
}
