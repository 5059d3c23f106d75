using Google.Protobuf;
using MobileNetSharp.Graph;
using MobileNetSharp.Onnx.Export;
using MobileNetSharp.Onnx.Import;
using MobileNetSharp.Onnx.Proto;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Onnx;

/// <summary>
/// Single serialized ONNX TensorProto files (.pb), the format of the ONNX test suites' inputs and
/// outputs. Bad files throw <see cref="ModelFormatException"/>.
/// </summary>
public static class TensorProtoFile
{
    public static Tensor Read(string path) => ReadNamed(path).Tensor;

    /// <summary>The tensor and the name stored with it (the test suites name the model input it feeds; may be empty).</summary>
    public static (string Name, Tensor Tensor) ReadNamed(string path) => Parse(File.ReadAllBytes(path), $"Tensor file '{path}'");

    public static (string Name, Tensor Tensor) Parse(ReadOnlySpan<byte> bytes, string what = "Tensor")
    {
        TensorProto proto;
        try { proto = TensorProto.Parser.ParseFrom(bytes); }
        catch (InvalidProtocolBufferException e) { throw new ModelFormatException($"{what} is not a valid TensorProto ({e.Message}).", e); }
        return (proto.Name, TensorReader.Read(proto, null, what));
    }

    public static void Write(string path, Tensor t, string name = "") => File.WriteAllBytes(path, TensorWriter.Write(t, name).ToByteArray());
}
