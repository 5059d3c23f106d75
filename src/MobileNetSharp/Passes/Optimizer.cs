using MobileNetSharp.Graph;

namespace MobileNetSharp.Passes;

/// <summary>What the optimizer changed, for summaries and tests.</summary>
/// <param name="HardActivationsRecognized">Hard-sigmoids and hard-swishes written out in arithmetic, now one activation each.</param>
/// <param name="ExpandsDropped">Expands (and size-1 Tiles) removed because every reader broadcasts by itself.</param>
/// <param name="QuantizedOpsFused">DequantizeLinear -> op [-> QuantizeLinear] patterns now one op on the codes (QLinearConv, QLinearAdd, QGemm).</param>
public sealed record OptimizationReport(int IdentitiesRemoved, int BatchNormsFolded, int SwishesFused, int ActivationsFused, int ResidualsFused,
    int HardActivationsRecognized = 0, int ExpandsDropped = 0, int QuantizedOpsFused = 0);

/// <summary>The standard pass pipeline, in the order that lets each pass see the previous one's result.</summary>
public static class Optimizer
{
    /// <summary>Rewrites <paramref name="g"/> in place (callers clone first if they keep the original).</summary>
    /// <param name="fuseResiduals">False keeps residual Adds as nodes of their own: post-training quantization gives
    /// an Add its own output range, so it must see the Add (see Quantization.PostTrainingQuantizer).</param>
    /// <param name="integerKernels">False leaves a QDQ model's QuantizeLinear/DequantizeLinear as written (float kernels between them).</param>
    public static OptimizationReport Run(ModelGraph g, bool fuseResiduals = true, bool integerKernels = true)
    {
        int ids = RemoveIdentity.Run(g);
        int expands = DropBroadcastExpand.Run(g); // before fusion: the SE Mul then reads the squeezed tensor directly
        int bn = FoldBatchNorm.Run(g);
        // Spelled-out hard-sigmoid/hard-swish first: x * (clip / 6) becomes x * HardSigmoid(x), which FuseSwish completes.
        int hard = FuseHardActivation.Run(g);
        int swish = FuseSwish.Run(g); // before activation fusion: the merged activation then folds into the conv
        // Activations first: Add+Relu becomes one node, which then folds into the conv before it.
        int acts = FuseActivation.Run(g);
        // After activation fusion: a ReLU6 between a conv and its QuantizeLinear is then the conv's, a clamp on the codes.
        int qops = integerKernels ? FuseQuantizedOps.Run(g) : 0;
        int res = fuseResiduals ? FuseResidualAdd.Run(g) : 0;
        g.InferShapes();
        return new OptimizationReport(ids, bn, swish, acts, res, hard, expands, qops);
    }
}
