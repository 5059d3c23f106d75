using System.Runtime.CompilerServices;

namespace MobileNetSharp.Kernels.Simd;

/// <summary>
/// An activation as a type, so fused epilogues are specialized per activation by the JIT with no
/// per-element branch. Alpha/Beta are the <see cref="Activation"/> parameters, splatted once per call.
/// Each must agree with <see cref="Activation.Apply"/>, the scalar reference.
/// </summary>
internal interface IActivationOp
{
    static abstract TV Apply<TS, TV>(TV x, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged;
}

internal readonly struct NoActivation : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Apply<TS, TV>(TV x, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged => x;
}

internal readonly struct ReluOp : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Apply<TS, TV>(TV x, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged => TS.Max(x, TS.Zero);
}

internal readonly struct ClipOp : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Apply<TS, TV>(TV x, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged => TS.Min(TS.Max(x, alpha), beta);
}

internal readonly struct HardSigmoidOp : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Apply<TS, TV>(TV x, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged =>
        TS.Min(TS.Max(TS.Fma(alpha, x, beta), TS.Zero), TS.Splat(1f));
}

internal readonly struct HardSwishOp : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Apply<TS, TV>(TV x, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged =>
        TS.Mul(x, HardSigmoidOp.Apply<TS, TV>(x, alpha, beta));
}

internal readonly struct SigmoidOp : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Apply<TS, TV>(TV x, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged
    {
        TV one = TS.Splat(1f);
        return TS.Div(one, TS.Add(one, TS.Exp(TS.Sub(TS.Zero, x))));
    }
}

internal readonly struct SiluOp : IActivationOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Apply<TS, TV>(TV x, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged =>
        TS.Div(x, TS.Add(TS.Splat(1f), TS.Exp(TS.Sub(TS.Zero, x))));
}

internal readonly struct TanhOp : IActivationOp
{
    /// <summary>tanh(x) = 1 - 2 / (exp(2x) + 1): saturates cleanly to +-1 when exp over- or underflows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Apply<TS, TV>(TV x, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged
    {
        TV one = TS.Splat(1f);
        return TS.Sub(one, TS.Div(TS.Splat(2f), TS.Add(TS.Exp(TS.Add(x, x)), one)));
    }
}

internal readonly struct LeakyReluOp : IActivationOp
{
    /// <summary>max(x, 0) + alpha * min(x, 0), exact for any alpha.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Apply<TS, TV>(TV x, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged =>
        TS.Fma(alpha, TS.Min(x, TS.Zero), TS.Max(x, TS.Zero));
}
