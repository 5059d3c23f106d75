using Google.Protobuf;
using MobileNetSharp.Graph;
using MobileNetSharp.Onnx.Proto;
using MobileNetSharp.Tensors;
using AttrType = MobileNetSharp.Onnx.Proto.AttributeProto.Types.AttributeType;

namespace MobileNetSharp.Onnx.Export;

/// <summary>
/// Builds one GraphProto: unique names for values, constants written once as initializers, node and
/// attribute construction.
/// </summary>
internal sealed class GraphWriter : IOnnxWriter
{
    private readonly HashSet<string> _taken;
    private readonly HashSet<string> _nodeNames = [];
    private readonly Dictionary<Value, string> _constants = [];
    private readonly Dictionary<(float, float, DataType), (string, string)> _clipBounds = [];

    public GraphProto Proto { get; } = new();
    public int Opset { get; }

    public GraphWriter(ModelGraph graph, int opset)
    {
        Opset = opset;
        Proto.Name = graph.Name;
        // Computed values and outputs keep their names; constants take theirs only where free.
        _taken = new HashSet<string>(graph.Inputs.Concat(graph.Nodes.SelectMany(n => n.Outputs)).Concat(graph.Outputs).Select(v => v.Name));
    }

    /// <summary>The ONNX name of a value; constants become initializers on first use.</summary>
    public string Name(Value v)
    {
        if (!v.IsConstant) return v.Name;
        if (_constants.TryGetValue(v, out var name)) return name;
        name = Fresh(v.Name);
        if (v.Constant!.Origin is { } origin && Tensors.Shape.Equal(origin.Values.Shape, v.Shape))
        {
            // Weights a quantized model's DequantizeLinear produced at load: written back as their integers and that
            // DequantizeLinear, so a converted QDQ file stays quantized (and as small).
            origin.Params.Write(this, name, out var scale, out var zeroPoint);
            Node("DequantizeLinear", Fresh(name + "_DequantizeLinear"), [Constant(name + "_quantized", origin.Values), scale, zeroPoint], [name],
                [.. origin.Params.AxisAttribute()]);
            return _constants[v] = name;
        }
        Proto.Initializer.Add(TensorWriter.Write(v.Constant!, name));
        return _constants[v] = name;
    }

    public string Fresh(string hint)
    {
        if (_taken.Add(hint)) return hint;
        for (int i = 1; ; i++)
            if (_taken.Add($"{hint}_{i}")) return $"{hint}_{i}";
    }

    public string Constant(string hint, Tensor t)
    {
        string name = Fresh(hint);
        Proto.Initializer.Add(TensorWriter.Write(t, name));
        return name;
    }

    public string Ints(string hint, IEnumerable<long> values)
    {
        var a = values.ToArray();
        return Constant(hint, new Tensor(a, a.Length));
    }

    public string Scalar(string hint, float value) => Constant(hint, new Tensor([value], []));

    /// <summary>
    /// Clip's bounds in the clipped tensor's type (ONNX requires it), shared by every Clip with the same range
    /// (ReLU6 appears dozens of times). Integer bounds saturate to the type's range.
    /// </summary>
    public (string Min, string Max) ClipBounds(float min, float max, DataType type)
    {
        if (!_clipBounds.TryGetValue((min, max, type), out var names))
            _clipBounds[(min, max, type)] = names = (Constant($"clip_min_{min}", Bound(min, type)), Constant($"clip_max_{max}", Bound(max, type)));
        return names;
    }

    private static Tensor Bound(float v, DataType type) => type switch
    {
        DataType.Float32 => new Tensor([v], []),
        DataType.Int64 => new Tensor([(long)Math.Clamp(v, long.MinValue, long.MaxValue)], []),
        DataType.Int32 => new Tensor(type, [], new[] { (int)Math.Clamp(v, int.MinValue, int.MaxValue) }),
        DataType.UInt8 => new Tensor(type, [], new[] { (byte)Math.Clamp(v, byte.MinValue, byte.MaxValue) }),
        DataType.Int8 => new Tensor(type, [], new[] { (sbyte)Math.Clamp(v, sbyte.MinValue, sbyte.MaxValue) }),
        _ => throw new ArgumentException($"Clip on {type} tensors cannot be exported."),
    };

    public void Node(string opType, string name, string[] inputs, string[] outputs, params OnnxAttribute[] attributes) =>
        Append(opType, name, inputs, outputs, attributes.Select(Convert).ToArray());

    private static AttributeProto Convert(OnnxAttribute a) => a.Value switch
    {
        long v => Attr(a.Name, v),
        int v => Attr(a.Name, (long)v),
        float v => Attr(a.Name, v),
        string v => Attr(a.Name, v),
        long[] v => Attr(a.Name, v),
        float[] v => Floats(a.Name, v),
        _ => throw new ArgumentException($"Attribute '{a.Name}' holds a {a.Value.GetType().Name}, which ONNX attributes cannot."),
    };

    public static AttributeProto Floats(string name, IEnumerable<float> values)
    {
        var a = new AttributeProto { Name = name, Type = AttrType.Floats };
        a.Floats.AddRange(values);
        return a;
    }

    private void Append(string opType, string name, string[] inputs, string[] outputs, AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = FreshNode(name) };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        Proto.Node.Add(node);
    }

    private string FreshNode(string hint)
    {
        if (_nodeNames.Add(hint)) return hint;
        for (int i = 1; ; i++)
            if (_nodeNames.Add($"{hint}_{i}")) return $"{hint}_{i}";
    }

    public static AttributeProto Attr(string name, long value) => new() { Name = name, Type = AttrType.Int, I = value };
    public static AttributeProto Attr(string name, float value) => new() { Name = name, Type = AttrType.Float, F = value };
    public static AttributeProto Attr(string name, string value) => new() { Name = name, Type = AttrType.String, S = ByteString.CopyFromUtf8(value) };

    public static AttributeProto Attr(string name, IEnumerable<long> values)
    {
        var a = new AttributeProto { Name = name, Type = AttrType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    public static AttributeProto Attr(string name, IEnumerable<int> values) => Attr(name, values.Select(v => (long)v));

    public static ValueInfoProto Info(string name, DataType type, int[] shape, string?[]? dimParams = null)
    {
        var tensor = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = new TensorShapeProto() };
        // Names only when they describe this shape; a graph whose rank changed since import writes sizes.
        if (dimParams?.Length != shape.Length) dimParams = null;
        for (int i = 0; i < shape.Length; i++)
            tensor.Shape.Dim.Add(dimParams?[i] switch
            {
                null => new TensorShapeProto.Types.Dimension { DimValue = shape[i] },
                "" => new TensorShapeProto.Types.Dimension(), // symbolic without a name
                var param => new TensorShapeProto.Types.Dimension { DimParam = param },
            });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensor } };
    }

    /// <summary>A graph input or output: the dimensions named in <see cref="Value.DimParams"/> stay symbolic (dim_param).</summary>
    public static ValueInfoProto Info(Value v) => Info(v.Name, v.DataType, v.Shape, v.DimParams);
}
