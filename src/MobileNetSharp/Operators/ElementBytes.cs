using System.Runtime.InteropServices;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// Raw element bytes of constant tensors, so that an op's load-time <see cref="Op.Fold"/> runs the very code
/// its plan step runs (both see spans of bytes reinterpreted as the element type, or a same-sized stand-in).
/// </summary>
internal static class ElementBytes
{
    /// <summary>The writable bytes of an array of any unmanaged element type.</summary>
    public static Span<byte> Of(Array a) =>
        MemoryMarshal.CreateSpan(ref MemoryMarshal.GetArrayDataReference(a), checked(a.Length * ElementSize(a)));

    /// <summary>A tensor's bytes, read only.</summary>
    public static ReadOnlySpan<byte> Of(Tensor t) => Of(t.Data);

    /// <summary>A new zeroed tensor and its bytes.</summary>
    public static Tensor Allocate(DataType type, int[] shape, out Span<byte> bytes)
    {
        var t = Tensor.Create(type, shape);
        bytes = Of(t.Data);
        return t;
    }

    private static int ElementSize(Array a) => a switch
    {
        float[] or int[] => 4,
        long[] or double[] => 8,
        Half[] or short[] or ushort[] => 2,
        _ => 1,
    };
}
