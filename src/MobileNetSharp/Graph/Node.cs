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
public class GraphException(string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The node the message is about, when there is one (its context is then already in the message).</summary>
    public string? NodeName { get; init; }

    /// <summary>An error about <paramref name="node"/>, prefixed once with its name and op type.</summary>
    public static GraphException At(Node node, string message, Exception? inner = null) =>
        new($"Node '{node.Name}' ({node.Op.Type}): {message}", inner) { NodeName = node.Name };
}

/// <summary>
/// A model file is unreadable: truncated, corrupt, hostile, or using something we do not support.
/// Loaders throw only this (or a subclass) for bad files, never IndexOutOfRange or OutOfMemory.
/// </summary>
public class ModelFormatException(string message, Exception? inner = null) : Exception(message, inner);
