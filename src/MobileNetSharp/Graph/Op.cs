using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// What a node computes. An op is an immutable record holding the operator's attributes, with ONNX
/// semantics (NCHW, ONNX names) so that importers and exporters map one-to-one; the runtime chooses
/// physical layouts.
/// </summary>
/// <remarks>
/// <para><b>One place per operator.</b> Everything an operator is lives on its record, in one file under
/// <c>Operators/</c>, as overrides of the virtual members below: shape and type inference, cost
/// (<see cref="Cost"/>), fusion with a following activation (<see cref="WithActivation"/>), load-time
/// evaluation (<see cref="Fold"/>), its standard ONNX form (<see cref="ExportOnnx"/>), and how it runs:
/// the record implements the runtime's internal <c>IRunnable</c> interface, whose <c>Lower</c> method turns
/// a node into plan steps (the step classes live in the same file). Adding an operator, an activation,
/// or later a gradient or an int8 variant is one new file (or one new member on one record), not an edit
/// in every layer of the engine. The defaults say "not supported" so a missing piece fails with the op named.</para>
/// <para>The IR itself (this folder: <see cref="Op"/>, <see cref="Node"/>, <see cref="Value"/>,
/// <see cref="ModelGraph"/>, <see cref="CostModel"/>) depends on no kernel and no runtime type.</para>
/// </remarks>
public abstract record Op
{
    /// <summary>The ONNX-style operator name, e.g. "Conv".</summary>
    public abstract string Type { get; }

    /// <summary>Output shapes for the node's current input shapes. Throws <see cref="GraphException"/> on a mismatch.</summary>
    public abstract int[][] InferShapes(Node node);

    /// <summary>Output element types; by default the first input's.</summary>
    public virtual DataType[] InferTypes(Node node) => [node.Input(0).DataType];

    /// <summary>A short human description, e.g. "Conv 3x3/s2 g32 +Relu6".</summary>
    public virtual string Describe() => Type;

    /// <summary>
    /// Multiply-accumulates, layer family and which inputs are trainable parameters, under the conventions
    /// of <see cref="CostModel"/>. Called after shape inference. Default: no MACs, no parameters.
    /// </summary>
    public virtual OpCost Cost(Node node) => OpCost.None;

    /// <summary>This op with <paramref name="activation"/> applied in its epilogue, or null when it cannot take one.</summary>
    public virtual Op? WithActivation(Activation activation) => null;

    /// <summary>As <see cref="WithActivation(Activation)"/>, for ops whose answer depends on the node's inputs.</summary>
    public virtual Op? WithActivation(Node node, Activation activation) => WithActivation(activation);

    /// <summary>
    /// The outputs computed at load time when every input is a constant (shapes already inferred on the
    /// node), or null when this op is left for the runtime. Throws ArgumentException for impossible inputs.
    /// </summary>
    public virtual Tensor[]? Fold(Node node) => null;

    /// <summary>True when <see cref="Fold"/> returns views of its input's data (no new elements are allocated).</summary>
    public virtual bool FoldSharesData => false;

    /// <summary>The lowest ONNX opset (default domain) that can express this node; exporters take the maximum.</summary>
    public virtual int OnnxOpset(Node node) => 1;

    /// <summary>
    /// Writes the node as standard ONNX nodes (fused epilogues expanded back into separate nodes).
    /// Throws ArgumentException when the op has no standard ONNX form.
    /// </summary>
    public virtual void ExportOnnx(Node node, IOnnxWriter writer) =>
        throw new ArgumentException($"Cannot export node '{node.Name}': {Type} has no standard ONNX form.");

    protected static GraphException Error(Node node, string message) => new(node, message);
}

/// <summary>What one node costs: MACs, the MobileNet paper's layer family, and which inputs are parameters.</summary>
/// <param name="Macs">Multiply-accumulates for the node's shapes (batch included).</param>
/// <param name="Kind">The layer family (MobileNetV1 Table 2).</param>
/// <param name="ParameterInputs">Input positions whose constants count as trainable parameters.</param>
public sealed record OpCost(long Macs, LayerKind Kind, int[] ParameterInputs)
{
    public static OpCost None { get; } = new(0, LayerKind.Other, []);
}
