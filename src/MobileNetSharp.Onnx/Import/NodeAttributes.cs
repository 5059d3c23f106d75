using MobileNetSharp.Onnx.Proto;
using AttrType = MobileNetSharp.Onnx.Proto.AttributeProto.Types.AttributeType;

namespace MobileNetSharp.Onnx.Import;

/// <summary>Typed, validated access to a node's attributes; every mismatch is reported through the node's error.</summary>
internal sealed class NodeAttributes
{
    private readonly Dictionary<string, AttributeProto> _byName = [];
    private readonly NodeContext _node;

    public NodeAttributes(NodeContext node)
    {
        _node = node;
        foreach (var a in node.Proto.Attribute)
        {
            if (!string.IsNullOrEmpty(a.RefAttrName))
                throw node.Error($"attribute '{a.Name}' refers to a function attribute ('{a.RefAttrName}'), which only functions may do.");
            if (!_byName.TryAdd(a.Name, a)) throw node.Error($"attribute '{a.Name}' is given twice.");
        }
    }

    public bool Has(string name) => _byName.ContainsKey(name);

    public long Int(string name, long fallback) =>
        Get(name, AttrType.Int, a => a.HasI) is { } a ? a.I : fallback;

    /// <summary>An INT attribute that must fit an int (axes, sizes, flags).</summary>
    public int Int32(string name, int fallback)
    {
        long v = Int(name, fallback);
        return v is >= int.MinValue and <= int.MaxValue ? (int)v : throw _node.Error($"attribute '{name}' = {v} is out of range.");
    }

    public float Float(string name, float fallback) =>
        Get(name, AttrType.Float, a => a.HasF) is { } a ? a.F : fallback;

    public string String(string name, string fallback) =>
        Get(name, AttrType.String, a => a.HasS) is { } a ? a.S.ToStringUtf8() : fallback;

    public long[]? Ints(string name) =>
        Get(name, AttrType.Ints, a => a.Ints.Count > 0) is { } a ? a.Ints.ToArray() : null;

    public int[]? Int32s(string name) => Ints(name)?.Select(v =>
        v is >= int.MinValue and <= int.MaxValue ? (int)v : throw _node.Error($"attribute '{name}' holds {v}, which is out of range.")).ToArray();

    public float[]? Floats(string name) =>
        Get(name, AttrType.Floats, a => a.Floats.Count > 0) is { } a ? a.Floats.ToArray() : null;

    public TensorProto? Tensor(string name) =>
        Get(name, AttrType.Tensor, a => a.T is not null) is { } a
            ? a.T ?? throw _node.Error($"attribute '{name}' has no tensor.")
            : null;

    /// <summary>
    /// The attribute if present and of the expected type. Files from IR version 1 lack the type field;
    /// for those, <paramref name="present"/> decides from which value field is set.
    /// </summary>
    private AttributeProto? Get(string name, AttrType expected, Func<AttributeProto, bool> present)
    {
        if (!_byName.TryGetValue(name, out var a)) return null;
        if (a.Type == expected || (a.Type == AttrType.Undefined && present(a))) return a;
        throw _node.Error($"attribute '{name}' should be {expected.ToString().ToUpperInvariant()}, but is {a.Type.ToString().ToUpperInvariant()}.");
    }
}
