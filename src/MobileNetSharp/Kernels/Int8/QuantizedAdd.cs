using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MobileNetSharp.Kernels.Int8;

/// <summary>
/// y = QuantizeLinear(act(DequantizeLinear(a) + DequantizeLinear(b))) for uint8 tensors of one shape, in one pass over
/// the codes: per element (a - za) * sa + (b - zb) * sb in float, ReLU when asked, then divided by the output scale,
/// rounded half to even, offset and saturated, exactly the float operations the QDQ form defines (and ONNX Runtime's
/// QLinearAdd approximates), so the result is bit-identical to running the QDQ nodes one by one.
/// </summary>
public static class QuantizedAdd
{
    /// <exception cref="ArgumentException">The spans differ in length or a scale is not positive and finite.</exception>
    public static void Run(ReadOnlySpan<byte> a, float aScale, byte aZeroPoint, ReadOnlySpan<byte> b, float bScale, byte bZeroPoint,
        Span<byte> y, float yScale, byte yZeroPoint, bool relu, IsaLevel? isa = null)
    {
        if (a.Length != y.Length || b.Length != y.Length) throw new ArgumentException($"QLinearAdd: inputs of {a.Length} and {b.Length} bytes for an output of {y.Length}.");
        foreach (var s in new[] { aScale, bScale, yScale })
            if (!(s > 0) || !float.IsFinite(s)) throw new ArgumentException($"QLinearAdd: scale {s} must be positive and finite.");
        float lo = -yZeroPoint, hi = 255 - yZeroPoint;
        int i = Isa.Resolve(isa) >= IsaLevel.Vector256 ? Run256(a, aScale, aZeroPoint, b, bScale, bZeroPoint, y, yScale, yZeroPoint, relu) : 0;
        for (; i < y.Length; i++)
        {
            float v = (a[i] - aZeroPoint) * aScale + (b[i] - bZeroPoint) * bScale;
            if (relu) v = Math.Max(v, 0f);
            y[i] = (byte)(QuantizeLinearKernel.QuantizeOne(v, yScale, lo, hi) + yZeroPoint);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int Run256(ReadOnlySpan<byte> a, float sa, byte za, ReadOnlySpan<byte> b, float sb, byte zb, Span<byte> y, float sy, byte zy, bool relu)
    {
        int n = y.Length - y.Length % 32;
        ref byte pa = ref MemoryMarshal.GetReference(a), pb = ref MemoryMarshal.GetReference(b), py = ref MemoryMarshal.GetReference(y);
        var vsa = Vector256.Create(sa);
        var vsb = Vector256.Create(sb);
        var vsy = Vector256.Create(sy);
        var vza = Vector256.Create((int)za);
        var vzb = Vector256.Create((int)zb);
        var vzy = Vector256.Create((int)zy);
        var lo = Vector256.Create((float)-zy);
        var hi = Vector256.Create((float)(255 - zy));
        for (int i = 0; i < n; i += 32)
        {
            var ca = Vector256.LoadUnsafe(ref pa, (nuint)i);
            var cb = Vector256.LoadUnsafe(ref pb, (nuint)i);
            // WidenLower/WidenUpper, not the tuple-returning Widen: .NET 10 does not accelerate that one (a scalar
            // fallback, 7x slower here).
            Vector256<ushort> a0 = Vector256.WidenLower(ca), a1 = Vector256.WidenUpper(ca);
            Vector256<ushort> b0 = Vector256.WidenLower(cb), b1 = Vector256.WidenUpper(cb);
            var q0 = Sum(Vector256.WidenLower(a0), Vector256.WidenLower(b0), vza, vsa, vzb, vsb, vsy, lo, hi, vzy, relu);
            var q1 = Sum(Vector256.WidenUpper(a0), Vector256.WidenUpper(b0), vza, vsa, vzb, vsb, vsy, lo, hi, vzy, relu);
            var q2 = Sum(Vector256.WidenLower(a1), Vector256.WidenLower(b1), vza, vsa, vzb, vsb, vsy, lo, hi, vzy, relu);
            var q3 = Sum(Vector256.WidenUpper(a1), Vector256.WidenUpper(b1), vza, vsa, vzb, vsb, vsy, lo, hi, vzy, relu);
            Vector256.Narrow(Vector256.Narrow(q0.AsUInt32(), q1.AsUInt32()), Vector256.Narrow(q2.AsUInt32(), q3.AsUInt32())).StoreUnsafe(ref py, (nuint)i);
        }
        return n;
    }

    /// <summary>8 consecutive elements: dequantize both, add, ReLU, quantize. A static method, not a capturing local function,
    /// so that the JIT inlines it (a closure kept it a call with its vectors spilled).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Sum(Vector256<uint> x, Vector256<uint> z, Vector256<int> za, Vector256<float> sa, Vector256<int> zb, Vector256<float> sb,
        Vector256<float> sy, Vector256<float> lo, Vector256<float> hi, Vector256<int> zy, bool relu)
    {
        var v = Vector256.ConvertToSingle(x.AsInt32() - za) * sa + Vector256.ConvertToSingle(z.AsInt32() - zb) * sb;
        if (relu) v = Vector256.MaxNative(v, Vector256<float>.Zero); // v is finite: codes times finite scales
        return QuantizeLinearKernel.Code(v, sy, lo, hi, zy);
    }
}
