using System.Runtime.InteropServices;
using Google.Protobuf.Collections;
using MobileNetSharp.Graph;
using MobileNetSharp.Onnx.Proto;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Onnx.Import;

/// <summary>
/// TensorProto -> <see cref="Tensor"/>. Every size comes from the dims, and the data actually present
/// (raw bytes, typed fields or the external file) must match it exactly before anything is allocated.
/// </summary>
internal static class TensorReader
{
    public static Tensor Read(TensorProto t, ExternalDataSource? external, string what)
    {
        var type = OnnxDataTypes.ToDataType(t.DataType, what);
        var shape = Dims(t.Dims, what);
        int count = (int)Shape.Size(shape);
        long bytes = (long)count * type.SizeOf();

        if (t.DataLocation == TensorProto.Types.DataLocation.External)
        {
            if (external is null)
                throw new ModelFormatException($"{what} is stored in an external file; load the model from its path or set OnnxImportOptions.ExternalDataDirectory.");
            return new Tensor(type, shape, external.Read(t, type, count, what));
        }
        if (!t.RawData.IsEmpty)
        {
            if (t.RawData.Length != bytes)
                throw new ModelFormatException($"{what}: raw_data holds {t.RawData.Length} bytes, but shape {Shape.Format(shape)} of {type} needs {bytes}.");
            return FromBytes(type, shape, t.RawData.Span);
        }
        return type switch
        {
            DataType.Float32 => new Tensor(type, shape, Typed(t.FloatData, count, "float_data", what)),
            DataType.Int64 => new Tensor(type, shape, Typed(t.Int64Data, count, "int64_data", what)),
            DataType.Int32 => new Tensor(type, shape, Typed(t.Int32Data, count, "int32_data", what)),
            DataType.UInt8 => new Tensor(type, shape, Array.ConvertAll(Typed(t.Int32Data, count, "int32_data", what), v => unchecked((byte)v))),
            DataType.Int8 => new Tensor(type, shape, Array.ConvertAll(Typed(t.Int32Data, count, "int32_data", what), v => unchecked((sbyte)v))),
            DataType.Bool => new Tensor(type, shape, Array.ConvertAll(Typed(t.Int32Data, count, "int32_data", what), v => v != 0)),
            // ONNX stores float16 in int32_data, one value's 16 bits per entry.
            DataType.Float16 => new Tensor(type, shape, Array.ConvertAll(Typed(t.Int32Data, count, "int32_data", what), v => BitConverter.UInt16BitsToHalf(unchecked((ushort)v)))),
            _ => throw new ModelFormatException($"{what}: element type {type} cannot be read."),
        };
    }

    /// <summary>Validated dimensions: each in [0, int.MaxValue], product within <see cref="Shape.MaxElements"/>.</summary>
    public static int[] Dims(IList<long> dims, string what)
    {
        if (dims.Count > Shape.MaxRank) throw new ModelFormatException($"{what} has rank {dims.Count}; at most {Shape.MaxRank} is supported.");
        var shape = new int[dims.Count];
        for (int i = 0; i < shape.Length; i++)
        {
            if (dims[i] < 0 || dims[i] > int.MaxValue) throw new ModelFormatException($"{what} has invalid dimension {dims[i]} at axis {i}.");
            shape[i] = (int)dims[i];
        }
        try { Shape.Size(shape); }
        catch (ArgumentException e) { throw new ModelFormatException($"{what}: {e.Message}", e); }
        return shape;
    }

    private static T[] Typed<T>(RepeatedField<T> field, int count, string fieldName, string what)
    {
        if (field.Count != count)
            throw new ModelFormatException($"{what}: {fieldName} holds {field.Count} values, but its shape needs {count}.");
        var a = new T[count];
        field.CopyTo(a, 0);
        return a;
    }

    private static Tensor FromBytes(DataType type, int[] shape, ReadOnlySpan<byte> bytes) => type switch
    {
        DataType.Float32 => new Tensor(type, shape, LittleEndian<float>(bytes)),
        DataType.Int32 => new Tensor(type, shape, LittleEndian<int>(bytes)),
        DataType.Int64 => new Tensor(type, shape, LittleEndian<long>(bytes)),
        DataType.UInt8 => new Tensor(type, shape, bytes.ToArray()),
        DataType.Int8 => new Tensor(type, shape, MemoryMarshal.Cast<byte, sbyte>(bytes).ToArray()),
        DataType.Bool => new Tensor(type, shape, ToBools(bytes)),
        DataType.Float16 => new Tensor(type, shape, LittleEndian<Half>(bytes)),
        _ => throw new ModelFormatException($"Element type {type} cannot be read from bytes."),
    };

    private static bool[] ToBools(ReadOnlySpan<byte> bytes)
    {
        var b = new bool[bytes.Length];
        for (int i = 0; i < b.Length; i++) b[i] = bytes[i] != 0;
        return b;
    }

    /// <summary>ONNX stores raw data little-endian; swap each element on a big-endian host.</summary>
    internal static T[] LittleEndian<T>(ReadOnlySpan<byte> bytes) where T : unmanaged
    {
        var a = MemoryMarshal.Cast<byte, T>(bytes).ToArray();
        if (!BitConverter.IsLittleEndian) SwapEach<T>(MemoryMarshal.AsBytes(a.AsSpan()));
        return a;
    }

    internal static void SwapEach<T>(Span<byte> bytes) where T : unmanaged
    {
        int size = Marshal.SizeOf<T>();
        for (int i = 0; i + size <= bytes.Length; i += size) bytes.Slice(i, size).Reverse();
    }
}
