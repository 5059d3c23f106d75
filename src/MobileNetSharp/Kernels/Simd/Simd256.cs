using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileNetSharp.Kernels.Simd;

/// <summary>8 floats per register (AVX2 on x86).</summary>
internal readonly unsafe struct Simd256 : ISimd<Vector256<float>>
{
    public static int Count => 8;
    public static Vector256<float> Zero => Vector256<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Splat(float x) => Vector256.Create(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(float* p) => Vector256.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, Vector256<float> v) => v.Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Mask(int n) =>
        Vector256.LoadUnsafe(ref Unsafe.Add(ref MemoryMarshal.GetReference(SimdMasks.Table), 16 - n)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> LoadPartial(float* p, int n)
    {
        // AVX-512VL masks are cheap on AMD; vmaskmovps is the AVX fallback.
        if (Avx512F.VL.IsSupported) return Avx512F.VL.MaskLoad(p, Mask(n), Vector256<float>.Zero);
        if (Avx.IsSupported) return Avx.MaskLoad(p, Mask(n));
        Vector256<float> v = default;
        Buffer.MemoryCopy(p, &v, 32, n * sizeof(float));
        return v;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StorePartial(float* p, Vector256<float> v, int n)
    {
        if (Avx512F.VL.IsSupported) { Avx512F.VL.MaskStore(p, Mask(n), v); return; }
        if (Avx.IsSupported) { Avx.MaskStore(p, Mask(n), v); return; }
        Buffer.MemoryCopy(&v, p, n * sizeof(float), n * sizeof(float));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Fma(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.MultiplyAddEstimate(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Sub(Vector256<float> a, Vector256<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Mul(Vector256<float> a, Vector256<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Div(Vector256<float> a, Vector256<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> GreaterSelect(Vector256<float> a, Vector256<float> b, Vector256<float> ifGreater, Vector256<float> otherwise) => Vector256.ConditionalSelect(Vector256.GreaterThan(a, b), ifGreater, otherwise);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Vector256.MaxNative(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Min(Vector256<float> a, Vector256<float> b) => Vector256.MinNative(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Exp(Vector256<float> x) => Vector256.Exp(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector256<float> x) => Vector256.Sum(x);
}
