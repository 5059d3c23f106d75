namespace MobileNetSharp.Tensors;

/// <summary>Element types. The numeric values are ONNX's TensorProto codes so importers map them 1:1.</summary>
public enum DataType
{
    Float32 = 1,
    UInt8 = 2,
    Int8 = 3,
    Int32 = 6,
    Int64 = 7,
    Bool = 9,
    /// <summary>IEEE 754 half precision (System.Half).</summary>
    Float16 = 10,
}

public static class DataTypes
{
    public static int SizeOf(this DataType t) => t switch
    {
        DataType.Float32 or DataType.Int32 => 4,
        DataType.Int64 => 8,
        DataType.UInt8 or DataType.Int8 or DataType.Bool => 1,
        DataType.Float16 => 2,
        _ => throw new NotSupportedException($"Unsupported data type {t}."),
    };

    public static Type ClrType(this DataType t) => t switch
    {
        DataType.Float32 => typeof(float),
        DataType.Int32 => typeof(int),
        DataType.Int64 => typeof(long),
        DataType.UInt8 => typeof(byte),
        DataType.Int8 => typeof(sbyte),
        DataType.Bool => typeof(bool),
        DataType.Float16 => typeof(Half),
        _ => throw new NotSupportedException($"Unsupported data type {t}."),
    };
}
