using MobileNetSharp.Graph;
using MobileNetSharp.Onnx.Proto;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Onnx.Import;

/// <summary>One ONNX node being converted: its inputs as graph values, its attributes, and emission of graph nodes.</summary>
internal sealed class NodeContext
{
    private readonly string _irName;

    public NodeProto Proto { get; }
    public ImportContext Import { get; }
    /// <summary>The name used in messages: the file's node name, or its position when it has none.</summary>
    public string DisplayName { get; }
    public string OpType => Proto.OpType;
    public int Opset => Import.Opset;
    public NodeAttributes Attr { get; }

    public NodeContext(NodeProto proto, int index, ImportContext import)
    {
        Proto = proto;
        Import = import;
        DisplayName = string.IsNullOrEmpty(proto.Name) ? $"#{index} (unnamed)" : proto.Name;
        _irName = import.NodeName(string.IsNullOrEmpty(proto.Name) ? $"{proto.OpType}_{index}" : proto.Name);
        Attr = new NodeAttributes(this);
    }

    /// <summary>How messages name this node: "Node 'name' (OpType, opset N)".</summary>
    public string Context => $"Node '{DisplayName}' ({OpType}, opset {Opset})";

    public ModelFormatException Error(string message) => new($"{Context}: {message}");

    public int InputCount => Proto.Input.Count;

    public Value? OptionalInput(int i)
    {
        if (i >= Proto.Input.Count || Proto.Input[i].Length == 0) return null;
        return Import.Find(Proto.Input[i]) ?? throw Error($"input '{Proto.Input[i]}' is not defined.");
    }

    public Value Input(int i) => OptionalInput(i) ?? throw Error($"required input #{i} is missing.");

    /// <summary>A load-time constant input, or null when the input is omitted.</summary>
    public Tensor? OptionalConstant(int i, string role) => OptionalInput(i) is { } v ? v.Constant ?? throw NeedsConstant(v, role) : null;

    public Tensor Constant(int i, string role) => OptionalConstant(i, role) ?? throw Error($"required input #{i} ({role}) is missing.");

    /// <summary>An integer list (shape, axes, pads, ...) given as a constant input.</summary>
    public long[]? OptionalInts(int i, string role)
    {
        if (OptionalConstant(i, role) is not { } t) return null;
        if (t.DataType is not (DataType.Int64 or DataType.Int32)) throw Error($"{role} must be INT64 or INT32, got {t.DataType}.");
        if (t.Rank > 1) throw Error($"{role} must be a scalar or 1-D, got shape {Shape.Format(t.Shape)}.");
        return TensorArithmetic.Int64s(t);
    }

    /// <summary>A scalar float (or single-element) constant input such as a clip bound.</summary>
    public float? OptionalScalar(int i, string role)
    {
        if (OptionalConstant(i, role) is not { } t) return null;
        if (t.Length != 1) throw Error($"{role} must hold exactly one value, got shape {Shape.Format(t.Shape)}.");
        return t.Data switch
        {
            float[] f => f[0],
            _ => TensorArithmetic.Int64s(t)[0],
        };
    }

    public ConstantInputRequiredException NeedsConstant(Value v, string role)
    {
        var inputs = Import.RuntimeInputsOf(v);
        return new ConstantInputRequiredException(
            $"{Context}: {role} '{v.Name}' must be known at load time, but it depends on runtime input(s) "
            + $"{string.Join(", ", inputs.Select(n => $"'{n}'"))}; bind them with OnnxImportOptions.Constants.", inputs);
    }

    /// <summary>Converts a possibly negative axis into [0, rank).</summary>
    public int Axis(long axis, int rank, string what = "axis")
    {
        long a = axis < 0 ? axis + rank : axis;
        return a >= 0 && a < rank ? (int)a : throw Error($"{what} {axis} is out of range for rank {rank}.");
    }

    public int OutputCount => Proto.Output.Count;

    /// <summary>Whether output <paramref name="i"/> is named and read by a node or the graph.</summary>
    public bool OutputUsed(int i) => i < Proto.Output.Count && Proto.Output[i].Length > 0 && Import.IsConsumed(Proto.Output[i]);

    /// <summary>Emits the node that produces this ONNX node's first output.</summary>
    public Value Emit(Op op, params Value?[] inputs) => EmitMany(op, 1, inputs)[0];

    /// <summary>Emits a node producing this ONNX node's first <paramref name="count"/> outputs.</summary>
    public Value[] EmitMany(Op op, int count, params Value?[] inputs)
    {
        var names = Enumerable.Range(0, count).Select(i => i < Proto.Output.Count && Proto.Output[i].Length > 0
            ? Proto.Output[i] : Import.FreshValueName($"{_irName}/out{i}")).ToArray();
        var outputs = Import.AddNode(_irName, op, inputs, names, Error);
        for (int i = 0; i < count; i++)
            if (i < Proto.Output.Count && Proto.Output[i].Length > 0) Import.Define(Proto.Output[i], outputs[i]);
        return outputs;
    }

    /// <summary>Emits a helper node (e.g. the reshape around a 1-D convolution) with fresh names.</summary>
    public Value EmitHelper(Op op, string suffix, params Value?[] inputs)
    {
        string name = $"{_irName}/{suffix}";
        return Import.AddNode(Import.NodeName(name), op, inputs, [Import.FreshValueName(name)], Error)[0];
    }

    /// <summary>A constant with a fresh name derived from this node.</summary>
    public Value NewConstant(string suffix, Tensor t) => Value.FromConstant(Import.FreshValueName($"{_irName}/{suffix}"), t);

    /// <summary>Binds output <paramref name="i"/> to a value computed at load time.</summary>
    public void BindConstant(int i, Tensor t)
    {
        ImportContext.CheckRank(t.Rank, $"output #{i}", Error);
        if (i < Proto.Output.Count && Proto.Output[i].Length > 0) Import.Define(Proto.Output[i], Value.FromConstant(Proto.Output[i], t));
    }
}
