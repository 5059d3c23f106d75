namespace MobileNetSharp.Kernels.Int8;

/// <summary>
/// Small stand-ins for the JIT warm-up (Runtime.KernelWarmup): weights and requantization that drive the integer
/// kernels down the same code as a real layer's, at a size that costs nothing to pack and run.
/// </summary>
internal static class Int8Miniature
{
    /// <summary>
    /// [n, k] weights packed like <paramref name="like"/>'s: zeros when it has the byte-quad layout, otherwise one
    /// column holding the pair (127, 127), which vpmaddubsw could saturate on, so the int16-pair kernel runs.
    /// </summary>
    public static PackedInt8Weights Weights(PackedInt8Weights like, int n, int k)
    {
        var w = new sbyte[n * k];
        if (!like.HasByteQuads && k >= 2) w[0] = w[1] = 127;
        return PackedInt8Weights.FromNxK(w, n, k);
    }

    /// <summary>A plain per-tensor requantization of <paramref name="channels"/> channels (multiplier 0.01, zero point 128),
    /// or its hard-swish form when <paramref name="like"/> has one (the epilogue branches on it at run time).</summary>
    public static Requantization Requantization(Requantization like, int channels) => like.HardSwish
        ? Int8.Requantization.WithHardSwish(channels, 0.1f, [0.01f], 0.1f, [], 128, like.HardSwishAlpha, like.HardSwishBeta)
        : Int8.Requantization.PerTensor(channels, 0.01f, [], 128);

    /// <summary>A GEMM reduction length as short as it can be while taking the same path as <paramref name="k"/>: A read in
    /// place when K is a multiple of 4, through a padded copy otherwise.</summary>
    public static int ReductionLength(int k) => k <= 24 ? k : k % 4 == 0 ? 24 : 23;
}
