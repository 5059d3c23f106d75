using System.Runtime.CompilerServices;

namespace MobileNetSharp.Graph;

/// <summary>Point-wise activations the kernels can apply in their epilogue (names and parameters as in ONNX).</summary>
public enum ActivationKind
{
    None,
    Relu,
    /// <summary>clamp(x, Alpha, Beta); ReLU6 is Clip(0, 6).</summary>
    Clip,
    /// <summary>x * clamp(Alpha*x + Beta, 0, 1) with ONNX's 1/6, 1/2.</summary>
    HardSwish,
    /// <summary>clamp(Alpha*x + Beta, 0, 1).</summary>
    HardSigmoid,
    Sigmoid,
    /// <summary>x * sigmoid(x), a.k.a. swish.</summary>
    Silu,
    /// <summary>Hyperbolic tangent.</summary>
    Tanh,
    /// <summary>x for x &gt;= 0, Alpha * x below (ONNX LeakyRelu, default alpha 0.01).</summary>
    LeakyRelu,
}

/// <summary>An activation with its parameters. A value type so epilogues carry it without allocation.</summary>
public readonly record struct Activation(ActivationKind Kind, float Alpha = 0f, float Beta = 0f)
{
    public static Activation None => new(ActivationKind.None);
    public static Activation Relu => new(ActivationKind.Relu);
    public static Activation Relu6 => new(ActivationKind.Clip, 0f, 6f);
    public static Activation Clip(float min, float max) => new(ActivationKind.Clip, min, max);
    public static Activation HardSwish => new(ActivationKind.HardSwish, 1f / 6f, 0.5f);
    public static Activation HardSigmoid(float alpha = 0.2f, float beta = 0.5f) => new(ActivationKind.HardSigmoid, alpha, beta);
    public static Activation Sigmoid => new(ActivationKind.Sigmoid);
    public static Activation Silu => new(ActivationKind.Silu);
    public static Activation Tanh => new(ActivationKind.Tanh);
    public static Activation LeakyRelu(float alpha = 0.01f) => new(ActivationKind.LeakyRelu, alpha);

    /// <summary>
    /// The activation the fused vector kernels run: ReLU as Clip(0, +inf), which gives the same values there (their
    /// max(x, 0) maps NaN to 0 either way, and the min by +inf changes nothing), so convolutions with ReLU and with
    /// ReLU6 share one compiled kernel instead of two (each
    /// generic kernel instantiation costs 8-14 ms of JIT on a first run, see KernelWarmup). One more min per output
    /// vector costs next to nothing beside the 9-25 multiply-adds (depthwise) or K of them (GEMM) that produce it.
    /// </summary>
    public Activation ForKernels() => Kind == ActivationKind.Relu ? new(ActivationKind.Clip, 0f, float.PositiveInfinity) : this;

    public bool IsNone => Kind == ActivationKind.None;

    /// <summary>Scalar definition; the reference every vectorized epilogue is tested against.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Apply(float x) => Kind switch
    {
        ActivationKind.None => x,
        ActivationKind.Relu => x > 0f ? x : 0f,
        ActivationKind.Clip => MathF.Min(MathF.Max(x, Alpha), Beta),
        ActivationKind.HardSwish => x * MathF.Min(MathF.Max(Alpha * x + Beta, 0f), 1f),
        ActivationKind.HardSigmoid => MathF.Min(MathF.Max(Alpha * x + Beta, 0f), 1f),
        ActivationKind.Sigmoid => 1f / (1f + MathF.Exp(-x)),
        ActivationKind.Silu => x / (1f + MathF.Exp(-x)),
        ActivationKind.Tanh => MathF.Tanh(x),
        ActivationKind.LeakyRelu => x >= 0f ? x : Alpha * x,
        _ => throw new InvalidOperationException($"Unknown activation {Kind}."),
    };

    public override string ToString() => Kind switch
    {
        ActivationKind.Clip when Alpha == 0f && Beta == 6f => "Relu6",
        ActivationKind.Clip => $"Clip({Alpha},{Beta})",
        ActivationKind.LeakyRelu => $"LeakyRelu({Alpha})",
        _ => Kind.ToString(),
    };
}
