using MobileNetSharp.Graph;
namespace MobileNetSharp.Kernels.Depthwise;

/// <summary>One depthwise Run's pointers and sizes, on the caller's stack, shared with workers by pointer.</summary>
internal unsafe struct DepthwiseArgs
{
    public float* Input, Output, Residual, Weights, Bias;
    public int InH, InW, InC, OutC, Multiplier, OutH, OutW;
    public int KH, KW, SH, SW, DH, DW, PadTop, PadLeft;
    /// <summary>Row stride of the packed weights: OutC rounded up to 16 (zero padded), so weight and bias
    /// vectors are always read whole even for the channel tail.</summary>
    public int CPad;
    public Activation Activation;
    public IsaLevel Isa;
    /// <summary>Output pixels may be computed twice (the last four-pixel group of a row overlapping the one before):
    /// false when the output is the residual buffer, whose values the first computation already replaced.</summary>
    public bool OverlapOk;
    public int Rows, Chunks;
    /// <summary>When not null, the output's <see cref="ChannelMoments"/> partials [blocks][2][OutC] (blocks cut in whole
    /// output rows of OutW pixels), gathered row by row while each is in L1.</summary>
    public double* Moments;
}
