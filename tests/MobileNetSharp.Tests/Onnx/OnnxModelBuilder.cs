using Google.Protobuf;
using MobileNetSharp.Onnx.Proto;
using MobileNetSharp.Tensors;
using AttrType = MobileNetSharp.Onnx.Proto.AttributeProto.Types.AttributeType;

namespace MobileNetSharp.Tests.Onnx;

/// <summary>Writes small ONNX models by hand, for tests of forms our exporter never produces (old opsets, hostile files).</summary>
public sealed class OnnxModelBuilder(int opset = 13)
{
    internal ModelProto Model { get; } = new()
    {
        IrVersion = 7,
        Graph = new GraphProto { Name = "test" },
        OpsetImport = { new OperatorSetIdProto { Domain = "", Version = opset } },
    };

    internal GraphProto Graph => Model.Graph;

    /// <summary>A float input; a string dimension is symbolic (dim_param).</summary>
    public OnnxModelBuilder Input(string name, params object[] dims) => Value(Graph.Input, name, 1, dims);
    public OnnxModelBuilder Output(string name, params object[] dims) => Value(Graph.Output, name, 1, dims);
    public OnnxModelBuilder TypedInput(string name, int elemType, params object[] dims) => Value(Graph.Input, name, elemType, dims);
    public OnnxModelBuilder TypedOutput(string name, int elemType, params object[] dims) => Value(Graph.Output, name, elemType, dims);

    private OnnxModelBuilder Value(Google.Protobuf.Collections.RepeatedField<ValueInfoProto> list, string name, int elemType, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d is string s ? new TensorShapeProto.Types.Dimension { DimParam = s } : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d) });
        list.Add(new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = elemType, Shape = shape } } });
        return this;
    }

    public OnnxModelBuilder Initializer(string name, Tensor t)
    {
        Graph.Initializer.Add(MobileNetSharp.Onnx.Export.TensorWriter.Write(t, name));
        return this;
    }

    internal OnnxModelBuilder Initializer(TensorProto t)
    {
        Graph.Initializer.Add(t);
        return this;
    }

    public OnnxModelBuilder Node(string op, string[] inputs, string[] outputs, string? name = null, params (string Name, object Value)[] attributes)
    {
        var n = new NodeProto { OpType = op, Name = name ?? $"{op}_{Graph.Node.Count}" };
        n.Input.AddRange(inputs);
        n.Output.AddRange(outputs);
        foreach (var (key, value) in attributes) n.Attribute.Add(Attribute(key, value));
        Graph.Node.Add(n);
        return this;
    }

    internal static AttributeProto Attribute(string name, object value) => value switch
    {
        int i => new AttributeProto { Name = name, Type = AttrType.Int, I = i },
        long l => new AttributeProto { Name = name, Type = AttrType.Int, I = l },
        float f => new AttributeProto { Name = name, Type = AttrType.Float, F = f },
        string s => new AttributeProto { Name = name, Type = AttrType.String, S = ByteString.CopyFromUtf8(s) },
        int[] a => Ints(name, a.Select(v => (long)v)),
        long[] a => Ints(name, a),
        float[] a => new AttributeProto { Name = name, Type = AttrType.Floats, Floats = { a } },
        Tensor t => new AttributeProto { Name = name, Type = AttrType.Tensor, T = MobileNetSharp.Onnx.Export.TensorWriter.Write(t, "") },
        _ => throw new ArgumentException($"Unsupported attribute value {value.GetType().Name}."),
    };

    private static AttributeProto Ints(string name, IEnumerable<long> values)
    {
        var a = new AttributeProto { Name = name, Type = AttrType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    public byte[] ToBytes() => Model.ToByteArray();
}
