using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using MobileNetSharp.Graph;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Kernels.Int8;

/// <summary>
/// Element-wise QuantizeLinear and DequantizeLinear over (outer, channels, inner) blocks: the scale and zero point
/// change with the channel, so each channel's run of <c>inner</c> elements is one vector loop.
/// Quantize divides (as ONNX's definition and ONNX Runtime do, not multiply by a reciprocal, which rounds
/// differently), rounds half to even, adds the zero point and clamps to the integer type (ONNX's saturate);
/// NaN becomes an unspecified in-range value (ONNX leaves it undefined). Every ISA level gives identical bits.
/// </summary>
public static class QuantizeLinearKernel
{
    /// <summary>A split of at most 2 x Channels x 64 elements with <paramref name="split"/>'s channel count (the per-channel
    /// scales index it), for warming up the kernels on the same path.</summary>
    internal static (long Outer, int Channels, long Inner) MiniatureSplit((long Outer, int Channels, long Inner) split) =>
        (Math.Min(split.Outer, 2), split.Channels, Math.Min(split.Inner, 64));

    /// <summary>y = saturate(round(x / scale[c]) + zeroPoint[c]) into <paramref name="y"/> (bytes of UInt8 or Int8).</summary>
    /// <exception cref="ArgumentException">The spans do not match the split, or the type is not 8-bit.</exception>
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y, QuantParams p, (long Outer, int Channels, long Inner) split, IsaLevel? isa = null)
    {
        Check(x.Length, y.Length, 1, split);
        if (p.Type is not (DataType.UInt8 or DataType.Int8)) throw new ArgumentException($"QuantizeLinear writes uint8 or int8, not {p.Type}.");
        var (qmin, qmax) = p.Range;
        var level = Isa.Resolve(isa);
        long at = 0;
        for (long o = 0; o < split.Outer; o++)
            for (int c = 0; c < split.Channels; c++, at += split.Inner)
            {
                int k = p.PerTensor ? 0 : c;
                var src = x.Slice((int)at, (int)split.Inner);
                var dst = y.Slice((int)at, (int)split.Inner);
                float scale = p.Scales[k], lo = qmin - p.ZeroPoints[k], hi = qmax - p.ZeroPoints[k];
                int i = level >= IsaLevel.Vector256 ? Quantize256(src, dst, scale, lo, hi, p.ZeroPoints[k])
                    : level == IsaLevel.Vector128 ? Quantize128(src, dst, scale, lo, hi, p.ZeroPoints[k]) : 0;
                for (; i < src.Length; i++) dst[i] = (byte)(QuantizeOne(src[i], scale, lo, hi) + p.ZeroPoints[k]);
            }
    }

    /// <summary>One value: round(x / scale) clamped to [lo, hi] = [qmin - zp, qmax - zp], before the zero point is added.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int QuantizeOne(float x, float scale, float lo, float hi)
    {
        float r = MathF.Round(x / scale); // half to even
        return float.IsNaN(r) ? 0 : (int)Math.Clamp(r, lo, hi);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int Quantize256(ReadOnlySpan<float> x, Span<byte> y, float scale, float lo, float hi, int zp)
    {
        int n = x.Length - x.Length % 32;
        ref float src = ref MemoryMarshal.GetReference(x);
        ref byte dst = ref MemoryMarshal.GetReference(y);
        var s = Vector256.Create(scale);
        var l = Vector256.Create(lo);
        var h = Vector256.Create(hi);
        var z = Vector256.Create(zp);
        for (int i = 0; i < n; i += 32)
        {
            var a = Code(Vector256.LoadUnsafe(ref src, (nuint)i), s, l, h, z);
            var b = Code(Vector256.LoadUnsafe(ref src, (nuint)i + 8), s, l, h, z);
            var c = Code(Vector256.LoadUnsafe(ref src, (nuint)i + 16), s, l, h, z);
            var d = Code(Vector256.LoadUnsafe(ref src, (nuint)i + 24), s, l, h, z);
            // Codes are in 0..255 or -128..127: narrowing (element order kept) cannot wrap, and the low byte is the code either way.
            var ab = Vector256.Narrow(a.AsUInt32(), b.AsUInt32());
            var cd = Vector256.Narrow(c.AsUInt32(), d.AsUInt32());
            Vector256.Narrow(ab, cd).StoreUnsafe(ref dst, (nuint)i);
        }
        return n;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int Quantize128(ReadOnlySpan<float> x, Span<byte> y, float scale, float lo, float hi, int zp)
    {
        int n = x.Length - x.Length % 16;
        ref float src = ref MemoryMarshal.GetReference(x);
        ref byte dst = ref MemoryMarshal.GetReference(y);
        var s = Vector128.Create(scale);
        var l = Vector128.Create(lo);
        var h = Vector128.Create(hi);
        var z = Vector128.Create(zp);
        for (int i = 0; i < n; i += 16)
        {
            var a = Code(Vector128.LoadUnsafe(ref src, (nuint)i), s, l, h, z);
            var b = Code(Vector128.LoadUnsafe(ref src, (nuint)i + 4), s, l, h, z);
            var c = Code(Vector128.LoadUnsafe(ref src, (nuint)i + 8), s, l, h, z);
            var d = Code(Vector128.LoadUnsafe(ref src, (nuint)i + 12), s, l, h, z);
            var ab = Vector128.Narrow(a.AsUInt32(), b.AsUInt32());
            var cd = Vector128.Narrow(c.AsUInt32(), d.AsUInt32());
            Vector128.Narrow(ab, cd).StoreUnsafe(ref dst, (nuint)i);
        }
        return n;
    }

    /// <summary>
    /// round(v / s) clamped to [l, h], NaN to 0, plus the zero point, as int32 lanes. MinNative/MaxNative and
    /// ConvertToInt32Native, because since .NET 9 Min/Max follow IEEE 754-2019 (NaN and -0 fix-ups) and ConvertToInt32
    /// saturates, which cost 2.8x here; NaN is already gone and the value already in int range, so the native forms
    /// give the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<int> Code(Vector256<float> v, Vector256<float> s, Vector256<float> l, Vector256<float> h, Vector256<int> zp)
    {
        var r = Vector256.Round(v / s);
        r = Vector256.ConditionalSelect(Vector256.Equals(r, r), r, Vector256<float>.Zero); // NaN -> 0, as QuantizeOne
        r = Vector256.MinNative(Vector256.MaxNative(r, l), h);
        return Vector256.ConvertToInt32Native(r) + zp;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> Code(Vector128<float> v, Vector128<float> s, Vector128<float> l, Vector128<float> h, Vector128<int> zp)
    {
        var r = Vector128.Round(v / s);
        r = Vector128.ConditionalSelect(Vector128.Equals(r, r), r, Vector128<float>.Zero);
        r = Vector128.MinNative(Vector128.MaxNative(r, l), h);
        return Vector128.ConvertToInt32Native(r) + zp;
    }

    /// <summary>y = (x - zeroPoint[c]) * scale[c] from <paramref name="x"/> (bytes of UInt8, Int8 or Int32 elements).</summary>
    /// <exception cref="ArgumentException">The spans do not match the split.</exception>
    public static void Dequantize(ReadOnlySpan<byte> x, Span<float> y, QuantParams p, (long Outer, int Channels, long Inner) split, IsaLevel? isa = null)
    {
        int size = p.Type.SizeOf();
        Check(y.Length, x.Length, size, split);
        bool vector = Isa.Resolve(isa) >= IsaLevel.Vector256;
        long at = 0;
        for (long o = 0; o < split.Outer; o++)
            for (int c = 0; c < split.Channels; c++, at += split.Inner)
            {
                int k = p.PerTensor ? 0 : c;
                float scale = p.Scales[k];
                int zp = p.ZeroPoints[k];
                var dst = y.Slice((int)at, (int)split.Inner);
                var src = x.Slice((int)(at * size), (int)(split.Inner * size));
                int i = 0;
                switch (p.Type)
                {
                    case DataType.UInt8:
                        if (vector) i = Dequantize256(src, dst, scale, zp, signed: false);
                        for (; i < dst.Length; i++) dst[i] = (src[i] - zp) * scale;
                        break;
                    case DataType.Int8:
                        if (vector) i = Dequantize256(src, dst, scale, zp, signed: true);
                        for (; i < dst.Length; i++) dst[i] = ((sbyte)src[i] - zp) * scale;
                        break;
                    case DataType.Int32:
                        var ints = MemoryMarshal.Cast<byte, int>(src);
                        for (; i < dst.Length; i++) dst[i] = ints[i] * scale; // an int32 zero point is always 0
                        break;
                    default: throw new ArgumentException($"DequantizeLinear reads uint8, int8 or int32, not {p.Type}.");
                }
            }
    }

    /// <summary>8 codes at a time: widened to int32, the zero point subtracted exactly in integers, then converted and scaled.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int Dequantize256(ReadOnlySpan<byte> x, Span<float> y, float scale, int zp, bool signed)
    {
        int n = x.Length - x.Length % 16;
        ref byte src = ref MemoryMarshal.GetReference(x);
        ref float dst = ref MemoryMarshal.GetReference(y);
        var s = Vector256.Create(scale);
        var z = Vector256.Create(zp);
        for (int i = 0; i < n; i += 16)
        {
            var bytes = Vector128.LoadUnsafe(ref src, (nuint)i);
            Vector256<int> lo, hi;
            if (signed)
            {
                // Not the tuple-returning Widen, which .NET 10 leaves unaccelerated.
                Vector128<short> w0 = Vector128.WidenLower(bytes.AsSByte()), w1 = Vector128.WidenUpper(bytes.AsSByte());
                lo = Vector256.Create(Vector128.WidenLower(w0), Vector128.WidenUpper(w0));
                hi = Vector256.Create(Vector128.WidenLower(w1), Vector128.WidenUpper(w1));
            }
            else
            {
                Vector128<ushort> w0 = Vector128.WidenLower(bytes), w1 = Vector128.WidenUpper(bytes);
                lo = Vector256.Create(Vector128.WidenLower(w0), Vector128.WidenUpper(w0)).AsInt32();
                hi = Vector256.Create(Vector128.WidenLower(w1), Vector128.WidenUpper(w1)).AsInt32();
            }
            (Vector256.ConvertToSingle(lo - z) * s).StoreUnsafe(ref dst, (nuint)i);
            (Vector256.ConvertToSingle(hi - z) * s).StoreUnsafe(ref dst, (nuint)i + 8);
        }
        return n;
    }

    private static void Check(int floats, int bytes, int size, (long Outer, int Channels, long Inner) split)
    {
        long total = split.Outer * split.Channels * split.Inner;
        if (split.Outer < 0 || split.Channels < 1 || split.Inner < 0 || total != floats || total * size != bytes)
            throw new ArgumentException($"quantization split {split} covers {total} elements, but the buffers hold {floats} floats and {bytes} bytes of {size}-byte integers.");
    }
}
