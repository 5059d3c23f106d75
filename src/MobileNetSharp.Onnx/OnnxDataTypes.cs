using MobileNetSharp.Graph;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Onnx;

/// <summary>ONNX TensorProto element-type codes: names for messages, and the mapping to our <see cref="DataType"/>.</summary>
internal static class OnnxDataTypes
{
    private static readonly string[] Names =
    [
        "UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING", "BOOL", "FLOAT16",
        "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16", "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ",
        "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4", "INT4",
    ];

    public static string Name(int code) => code >= 0 && code < Names.Length ? Names[code] : $"unknown type {code}";

    public static bool IsSupported(int code) => Enum.IsDefined(typeof(DataType), code);

    /// <summary>Our type for an ONNX code; <paramref name="what"/> names the tensor in the error.</summary>
    public static DataType ToDataType(int code, string what) => IsSupported(code)
        ? (DataType)code
        : throw new ModelFormatException($"{what} has element type {Name(code)}, which is not supported (supported: FLOAT, FLOAT16, UINT8, INT8, INT32, INT64, BOOL).");
}
