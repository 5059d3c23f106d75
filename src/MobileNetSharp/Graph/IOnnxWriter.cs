using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// What an op needs to write itself as ONNX nodes (<see cref="Op.ExportOnnx"/>), without the core
/// depending on a protobuf library: the ONNX project implements it. Names are ONNX value names.
/// </summary>
public interface IOnnxWriter
{
    /// <summary>The opset being written (default domain).</summary>
    int Opset { get; }
    /// <summary>The ONNX name of a value; a constant becomes an initializer on first use.</summary>
    string Name(Value value);
    /// <summary>A value name not used yet, based on <paramref name="hint"/>.</summary>
    string Fresh(string hint);
    /// <summary>A new initializer holding <paramref name="tensor"/>; returns its name.</summary>
    string Constant(string hint, Tensor tensor);
    /// <summary>A new int64 1-D initializer (shapes, axes, pads).</summary>
    string Ints(string hint, IEnumerable<long> values);
    /// <summary>A new float32 scalar initializer.</summary>
    string Scalar(string hint, float value);
    /// <summary>Clip's min and max initializers in the clipped tensor's element type, shared between nodes.</summary>
    (string Min, string Max) ClipBounds(float min, float max, DataType type);
    /// <summary>Appends one node (default domain).</summary>
    void Node(string opType, string name, string[] inputs, string[] outputs, params OnnxAttribute[] attributes);
}

/// <summary>An ONNX node attribute: <see cref="Value"/> is a long, float, string, long[] or float[].</summary>
public sealed record OnnxAttribute(string Name, object Value)
{
    public static OnnxAttribute Of(string name, long value) => new(name, value);
    public static OnnxAttribute Of(string name, float value) => new(name, value);
    public static OnnxAttribute Of(string name, string value) => new(name, value);
    public static OnnxAttribute Of(string name, IEnumerable<long> values) => new(name, values.ToArray());
    public static OnnxAttribute Of(string name, IEnumerable<int> values) => new(name, values.Select(v => (long)v).ToArray());
    public static OnnxAttribute Of(string name, IEnumerable<float> values) => new(name, values.ToArray());
}
