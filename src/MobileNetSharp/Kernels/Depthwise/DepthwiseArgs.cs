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
    public int Rows, Chunks;
}
