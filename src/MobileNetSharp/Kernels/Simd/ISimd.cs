namespace MobileNetSharp.Kernels.Simd;

/// <summary>
/// The few vector operations the kernels need, as static abstract members so a kernel is written once
/// as a generic method and the JIT emits a specialized copy per width (the TensorPrimitives pattern).
/// TV is the register type: Vector512/256/128&lt;float&gt; or float for the scalar path.
/// All pointers are to pinned memory; partial loads zero the lanes past <c>n</c>, partial stores leave
/// memory past <c>n</c> untouched (masked on x86, via a register-sized copy elsewhere).
/// </summary>
internal unsafe interface ISimd<TV> where TV : unmanaged
{
    static abstract int Count { get; }
    static abstract TV Zero { get; }
    static abstract TV Splat(float x);
    static abstract TV Load(float* p);
    static abstract void Store(float* p, TV v);
    static abstract TV LoadPartial(float* p, int n);
    static abstract void StorePartial(float* p, TV v, int n);
    /// <summary>a * b + c, fused where the hardware has FMA.</summary>
    static abstract TV Fma(TV a, TV b, TV c);
    static abstract TV Add(TV a, TV b);
    static abstract TV Sub(TV a, TV b);
    static abstract TV Mul(TV a, TV b);
    static abstract TV Div(TV a, TV b);
    /// <summary>Native max/min (maxps semantics; no NaN canonicalisation) — what activations want.</summary>
    static abstract TV Max(TV a, TV b);
    static abstract TV Min(TV a, TV b);
    /// <summary>Lane-wise a &gt; b ? ifGreater : otherwise (false for NaN): the masks of activation gradients.</summary>
    static abstract TV GreaterSelect(TV a, TV b, TV ifGreater, TV otherwise);
    static abstract TV Exp(TV x);
    static abstract float Sum(TV x);
}

/// <summary>Lane masks for partial loads/stores: the first n lanes of MaskTable[16 - n ..] are all ones.</summary>
internal static class SimdMasks
{
    public static ReadOnlySpan<int> Table =>
    [
        -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
}
