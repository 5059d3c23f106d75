using System.Runtime.InteropServices;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tensors;

/// <summary>
/// Raw element bytes of arrays and tensors, so that an op's load-time <c>Op.Fold</c> runs the very code
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

    /// <summary>A copy whose element type does not matter, only its size (Expand, Tile).</summary>
    internal interface IShapedCopy
    {
        static abstract void Copy<T>(ReadOnlySpan<T> x, int[] xShape, Span<T> y, int[] yShape) where T : unmanaged;
    }

    /// <summary>Runs <typeparamref name="TCopy"/> through a stand-in type of the element size (bool as byte, float as int, ...).</summary>
    internal static void Run<TCopy>(string op, int size, ReadOnlySpan<byte> x, int[] xShape, Span<byte> y, int[] yShape) where TCopy : IShapedCopy
    {
        switch (size)
        {
            case 1: TCopy.Copy(x, xShape, y, yShape); break;
            case 2: TCopy.Copy(MemoryMarshal.Cast<byte, short>(x), xShape, MemoryMarshal.Cast<byte, short>(y), yShape); break;
            case 4: TCopy.Copy(MemoryMarshal.Cast<byte, int>(x), xShape, MemoryMarshal.Cast<byte, int>(y), yShape); break;
            case 8: TCopy.Copy(MemoryMarshal.Cast<byte, long>(x), xShape, MemoryMarshal.Cast<byte, long>(y), yShape); break;
            default: throw new ArgumentException($"{op} of {size}-byte elements is not supported.");
        }
    }

    /// <summary>Load-time evaluation of such a copy: the node's constant input 0 into a new tensor of its output shape.</summary>
    internal static Tensor[] Fold<TCopy>(string op, Tensor x, int[] outputShape) where TCopy : IShapedCopy
    {
        var y = Allocate(x.DataType, outputShape, out var bytes);
        Run<TCopy>(op, x.DataType.SizeOf(), Of(x), x.Shape, bytes, outputShape);
        return [y];
    }
}
