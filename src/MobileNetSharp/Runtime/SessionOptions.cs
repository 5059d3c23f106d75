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
}

/// <summary>Name, logical shape (NCHW for images, as declared) and element type of a session input or output.</summary>
public sealed record TensorInfo(string Name, int[] Shape, Tensors.DataType DataType = Tensors.DataType.Float32)
{
    public override string ToString() => $"{Name}: {DataType} {Tensors.Shape.Format(Shape)}";
}

/// <summary>Time spent in one step of a plan, from <see cref="InferenceSession.Profile"/>.</summary>
public sealed record StepProfile(string Name, string Kernel, double Milliseconds);
