using System.Runtime.InteropServices;
using Google.Protobuf;
using MobileNetSharp.Onnx.Import;
using MobileNetSharp.Onnx.Proto;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Onnx.Export;

/// <summary><see cref="Tensor"/> -> TensorProto with little-endian raw_data, the compact form every ONNX reader accepts.</summary>
internal static class TensorWriter
{
    public static TensorProto Write(Tensor t, string name)
    {
        var proto = new TensorProto { Name = name, DataType = (int)t.DataType, RawData = ByteString.CopyFrom(RawBytes(t)) };
        proto.Dims.AddRange(t.Shape.Select(d => (long)d));
        return proto;
    }

    private static byte[] RawBytes(Tensor t) => t.DataType switch
    {
        DataType.Float32 => LittleEndian((float[])t.Data),
        DataType.Int32 => LittleEndian((int[])t.Data),
        DataType.Int64 => LittleEndian((long[])t.Data),
        DataType.Int8 => MemoryMarshal.AsBytes(((sbyte[])t.Data).AsSpan()).ToArray(),
        DataType.UInt8 => (byte[])((byte[])t.Data).Clone(),
        DataType.Bool => Array.ConvertAll((bool[])t.Data, b => b ? (byte)1 : (byte)0),
        DataType.Float16 => LittleEndian((Half[])t.Data),
        _ => throw new ArgumentException($"Cannot write {t.DataType} tensors."),
    };

    private static byte[] LittleEndian<T>(T[] a) where T : unmanaged
    {
        var bytes = MemoryMarshal.AsBytes(a.AsSpan()).ToArray();
        if (!BitConverter.IsLittleEndian) TensorReader.SwapEach<T>(bytes);
        return bytes;
    }
}
