using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileNetSharp.Kernels.Simd;

/// <summary>4 floats per register (SSE on x86, NEON on Arm).</summary>
internal readonly unsafe struct Simd128 : ISimd<Vector128<float>>
{
    public static int Count => 4;
    public static Vector128<float> Zero => Vector128<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Splat(float x) => Vector128.Create(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Load(float* p) => Vector128.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, Vector128<float> v) => v.Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Mask(int n) =>
        Vector128.LoadUnsafe(ref Unsafe.Add(ref MemoryMarshal.GetReference(SimdMasks.Table), 16 - n)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> LoadPartial(float* p, int n)
    {
        if (Avx512F.VL.IsSupported) return Avx512F.VL.MaskLoad(p, Mask(n), Vector128<float>.Zero);
        if (Avx.IsSupported) return Avx.MaskLoad(p, Mask(n));
        Vector128<float> v = default;
        Buffer.MemoryCopy(p, &v, 16, n * sizeof(float));
        return v;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StorePartial(float* p, Vector128<float> v, int n)
    {
        if (Avx512F.VL.IsSupported) { Avx512F.VL.MaskStore(p, Mask(n), v); return; }
        if (Avx.IsSupported) { Avx.MaskStore(p, Mask(n), v); return; }
        Buffer.MemoryCopy(&v, p, n * sizeof(float), n * sizeof(float));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Fma(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.MultiplyAddEstimate(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Sub(Vector128<float> a, Vector128<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Mul(Vector128<float> a, Vector128<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Div(Vector128<float> a, Vector128<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> GreaterSelect(Vector128<float> a, Vector128<float> b, Vector128<float> ifGreater, Vector128<float> otherwise) => Vector128.ConditionalSelect(Vector128.GreaterThan(a, b), ifGreater, otherwise);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Max(Vector128<float> a, Vector128<float> b) => Vector128.MaxNative(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Min(Vector128<float> a, Vector128<float> b) => Vector128.MinNative(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Exp(Vector128<float> x) => Vector128.Exp(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector128<float> x) => Vector128.Sum(x);
}
