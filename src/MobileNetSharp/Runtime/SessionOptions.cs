using MobileNetSharp.Kernels;

namespace MobileNetSharp.Runtime;

/// <summary>How a session compiles and runs a graph.</summary>
public sealed record SessionOptions
{
    public const int MaxThreads = 256;

    /// <summary>Worker threads for the kernels (the calling thread is one of them).</summary>
    public int Threads { get; init; } = Math.Min(Environment.ProcessorCount, MaxThreads);

    /// <summary>
    /// Largest activation arena a plan may allocate (default 4 GiB). A tiny hostile model can declare
    /// enormous activations; this turns that into a clear error instead of an out-of-memory crash.
    /// </summary>
    public long MaxArenaBytes { get; init; } = 4L << 30;
    /// <summary>Fold batch norms and fuse activations and residual adds before compiling.</summary>
    public bool Optimize { get; init; } = true;
    /// <summary>Cap the SIMD level (null: the best the CPU has). For tests and comparisons.</summary>
    public IsaLevel? Isa { get; init; }

    /// <summary>
    /// Run each 1x1 -> depthwise -> 1x1 chain (an inverted residual block) and each depthwise -> 1x1 pair as one
    /// step, in bands of output rows, so the wide tensors between the layers are never written whole (default
    /// true; needs <see cref="Optimize"/>). Only chains with nothing in between (squeeze-excite breaks one), a 3x3
    /// or 5x5 depthwise and intermediates too large for the cache budget, where the traffic saved outweighs the
    /// weights each band re-reads (see Kernels/Fused/BandedBlock). The results are bit-identical either way;
    /// false gives per-layer steps, e.g. for a per-layer profile.
    /// </summary>
    public bool FuseBlocks { get; init; } = true;

    /// <summary>
    /// Compute a quantized (QDQ) model's supported convolutions in integers and its residual Adds on the codes
    /// (<see cref="Passes.FuseQuantizedOps"/>; default true; needs <see cref="Optimize"/>). False runs every
    /// QuantizeLinear/DequantizeLinear as written, around float kernels: ONNX's definition, simulated. The two agree
    /// to within one output step.
    /// </summary>
    public bool IntegerKernels { get; init; } = true;

    /// <summary>256 KiB: half of a 512 KiB L2 (Zen 3; recent cores have 1-2 MiB), the rest left for weights and outputs.</summary>
    internal const long DefaultFusionCacheBytes = 256 * 1024;

    /// <summary>Per-thread scratch budget of a fused block, and the intermediate size below which layers are left unfused. Tests lower it to fuse small maps.</summary>
    internal long FusionCacheBytes { get; init; } = DefaultFusionCacheBytes;

    /// <summary>See <see cref="Kernels.Fused.BandedBlock.TryCreate"/>; tests set 0 to fuse every chain they can.</summary>
    internal long FusionSavingsFactor { get; init; } = Kernels.Fused.BandedBlock.DefaultSavingsFactor;
}

/// <summary>Name, logical shape (NCHW for images, as declared) and element type of a session input or output.</summary>
public sealed record TensorInfo(string Name, int[] Shape, Tensors.DataType DataType = Tensors.DataType.Float32)
{
    public override string ToString() => $"{Name}: {DataType} {Tensors.Shape.Format(Shape)}";
}

/// <summary>Time spent in one step of a plan, from <see cref="InferenceSession.Profile"/>.</summary>
public sealed record StepProfile(string Name, string Kernel, double Milliseconds)
{
    /// <summary>The graph nodes the step computes when it is a fused block (several); null for a step of one node, <see cref="Name"/>.</summary>
    public IReadOnlyList<string>? Nodes { get; init; }
}
