using MobileNetSharp.Graph;
using System.Runtime.Intrinsics;

namespace MobileNetSharp.Kernels.Simd;

/// <summary>A kernel invocation waiting for its vector width and activation type.</summary>
internal interface IKernelBody
{
    void Invoke<TS, TV, TA>() where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp;
}

/// <summary>A kernel invocation that only needs the vector width.</summary>
internal interface IWidthBody
{
    void Invoke<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged;
}

/// <summary>
/// The one place that maps runtime (IsaLevel, ActivationKind) to generic instantiations. Kernels put their
/// arguments in a struct implementing <see cref="IKernelBody"/>; the switch costs a few branches per call
/// (per thread task), never per element.
/// </summary>
internal static class KernelDispatch
{
    public static void Run<TBody>(IsaLevel isa, ActivationKind activation, ref TBody body) where TBody : struct, IKernelBody
    {
        switch (isa)
        {
            case IsaLevel.Vector512: WithActivation<TBody, Simd512, Vector512<float>>(activation, ref body); break;
            case IsaLevel.Vector256: WithActivation<TBody, Simd256, Vector256<float>>(activation, ref body); break;
            case IsaLevel.Vector128: WithActivation<TBody, Simd128, Vector128<float>>(activation, ref body); break;
            default: WithActivation<TBody, SimdScalar, float>(activation, ref body); break;
        }
    }

    public static void Run<TBody>(IsaLevel isa, ref TBody body) where TBody : struct, IWidthBody
    {
        switch (isa)
        {
            case IsaLevel.Vector512: body.Invoke<Simd512, Vector512<float>>(); break;
            case IsaLevel.Vector256: body.Invoke<Simd256, Vector256<float>>(); break;
            case IsaLevel.Vector128: body.Invoke<Simd128, Vector128<float>>(); break;
            default: body.Invoke<SimdScalar, float>(); break;
        }
    }

    private static void WithActivation<TBody, TS, TV>(ActivationKind activation, ref TBody body)
        where TBody : struct, IKernelBody where TS : unmanaged, ISimd<TV> where TV : unmanaged
    {
        switch (activation)
        {
            case ActivationKind.None: body.Invoke<TS, TV, NoActivation>(); break;
            case ActivationKind.Relu: body.Invoke<TS, TV, ReluOp>(); break;
            case ActivationKind.Clip: body.Invoke<TS, TV, ClipOp>(); break;
            case ActivationKind.HardSigmoid: body.Invoke<TS, TV, HardSigmoidOp>(); break;
            case ActivationKind.HardSwish: body.Invoke<TS, TV, HardSwishOp>(); break;
            case ActivationKind.Sigmoid: body.Invoke<TS, TV, SigmoidOp>(); break;
            case ActivationKind.Silu: body.Invoke<TS, TV, SiluOp>(); break;
            case ActivationKind.Tanh: body.Invoke<TS, TV, TanhOp>(); break;
            case ActivationKind.LeakyRelu: body.Invoke<TS, TV, LeakyReluOp>(); break;
            default: throw new ArgumentOutOfRangeException(nameof(activation), activation, "Unknown activation.");
        }
    }
}
