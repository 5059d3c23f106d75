namespace MobileNetSharp.Graph;

/// <summary>One operation: an <see cref="Op"/> (what to compute, with its attributes) applied to values.</summary>
public sealed class Node
{
    public string Name { get; set; }
    public Op Op { get; set; }
    /// <summary>Inputs in the op's order; null marks an omitted optional input (e.g. a conv without bias).</summary>
    public Value?[] Inputs { get; set; }
    public Value[] Outputs { get; }

    public Node(string name, Op op, Value?[] inputs, Value[] outputs)
    {
        Name = name;
        Op = op;
        Inputs = inputs;
        Outputs = outputs;
        foreach (var o in outputs) o.Producer = this;
    }

    public Value Input(int i) => i < Inputs.Length && Inputs[i] is { } v ? v
        : throw new GraphException($"Node '{Name}' ({Op.Type}) is missing its input #{i}.");
    public Value? OptionalInput(int i) => i < Inputs.Length ? Inputs[i] : null;
    public Value Output => Outputs[0];

    public override string ToString() => $"{Name}: {Op}";
}

/// <summary>A graph is malformed (cycle, dangling value, impossible shape, ...). The message says where.</summary>
public class GraphException : Exception
{
    public GraphException(string message, Exception? inner = null) : base(message, inner) => Detail = message;

    /// <summary>A problem with one node: the message is "Node 'name' (Type): detail".</summary>
    public GraphException(Node node, string detail, Exception? inner = null) : base($"Node '{node.Name}' ({node.Op.Type}): {detail}", inner)
    {
        NodeName = node.Name;
        Detail = detail;
    }

    /// <summary>The node the message is about, when it is about one; its name and op type then lead the message.</summary>
    public string? NodeName { get; }

    /// <summary>The message without the node context, for callers that give the context themselves (the ONNX importer).</summary>
    public string Detail { get; }

    /// <summary>An error about <paramref name="node"/>, prefixed once with its name and op type.</summary>
    public static GraphException At(Node node, string message, Exception? inner = null) => new(node, message, inner);
}

/// <summary>
/// A model file is unreadable: truncated, corrupt, hostile, or using something we do not support.
/// Loaders throw only this (or a subclass) for bad files, never IndexOutOfRange or OutOfMemory.
/// </summary>
public class ModelFormatException(string message, Exception? inner = null) : Exception(message, inner);
