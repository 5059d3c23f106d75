using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Models;

/// <summary>
/// MobileNetV2 (Sandler et al. 2018), torchvision-exact: inverted residual blocks that expand with a 1x1
/// conv, filter with a 3x3 depthwise conv and project back with a linear (no activation) 1x1 conv; a
/// residual joins input and output when the shape allows.
/// </summary>
public static class MobileNetV2
{
    /// <summary>(expansion t, output channels c, repeats n, first stride s), the paper's Table 2.</summary>
    private static readonly (int T, int C, int N, int S)[] Stages =
        [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)];

    public static ModelGraph Build(ModelOptions o)
    {
        int res = o.Validate("mobilenet_v2", 224);
        var b = new GraphBuilder("mobilenet_v2", o.Seed);
        var act = Activation.Relu6;
        var x = b.Input("input", o.Batch, o.InChannels, res, res);
        using (b.Scope("stem")) x = b.ConvBnAct(x, Channels.MakeDivisible(32 * o.Width), 3, o.EarlyStride(2), act);
        int block = 0;
        bool strided = false;
        foreach (var (t, c, n, stageStride) in Stages)
        {
            // Small-input mode: the first stride-2 stage (24 channels at width 1) runs at stride 1.
            int s = strided ? stageStride : o.EarlyStride(stageStride);
            strided |= stageStride == 2;
            int outC = Channels.MakeDivisible(c * o.Width);
            for (int i = 0; i < n; i++)
            {
                using var _ = b.Scope($"block{++block}");
                x = InvertedResidual(b, x, outC, i == 0 ? s : 1, t, 3, act, se: false, seGate: default, projection: o.NonLinearBottleneck ? act : default);
            }
        }
        int last = Channels.MakeDivisible(1280 * Math.Max(1f, o.Width));
        using (b.Scope("head"))
        {
            x = b.ConvBnAct(x, last, 1, 1, act);
            x = b.Flatten(b.GlobalAveragePool(x));
            x = b.Linear(b.Dropout(x, 0.2f), o.Classes); // torchvision's classifier: Dropout(0.2), Linear
        }
        b.Output(x);
        return o.Describe(b.Graph, res);
    }

    /// <summary>
    /// The inverted residual / MBConv block shared by V2, V3 and EfficientNet-Lite: optional 1x1 expansion,
    /// KxK depthwise, optional squeeze-and-excite, linear 1x1 projection (or <paramref name="projection"/>, for the V2 ablation),
    /// residual when stride 1 and in == out.
    /// </summary>
    internal static Value InvertedResidual(GraphBuilder b, Value x, int outC, int stride, int expandedOrRatio,
        int kernel, Activation act, bool se, Activation seGate, bool expansionIsChannels = false, Activation projection = default)
    {
        int inC = x.Shape[1];
        int hidden = expansionIsChannels ? expandedOrRatio : inC * expandedOrRatio;
        var input = x;
        if (hidden != inC) x = b.ConvBnAct(x, hidden, 1, 1, act, kind: "expand");
        x = b.ConvBnAct(x, hidden, kernel, stride, act, groups: hidden, kind: "dw");
        if (se) x = b.SqueezeExcite(x, Channels.MakeDivisible(hidden / 4), seGate);
        x = b.Activate(b.BatchNorm(b.Conv(x, outC, 1, kind: "project")), projection); // linear unless the ablation asks for ReLU6
        if (stride == 1 && inC == outC) x = b.Binary(BinaryKind.Add, x, input);
        return x;
    }
}
