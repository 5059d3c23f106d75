using MobileNetSharp.Graph;
using MobileNetSharp.Runtime;

namespace MobileNetSharp.Training;

/// <summary>
/// How an op trains: its forward pass in training mode and its backward pass, as plan steps. Implemented by the
/// op records in <c>Operators/</c>, beside <see cref="IRunnable"/>, so a gradient lives with its operator
/// (reverse-mode differentiation: each node turns the gradient of its outputs into gradients of its inputs).
/// </summary>
internal interface IDifferentiable
{
    /// <summary>
    /// Appends the steps of the forward pass in training mode. Most ops compute the same thing as at inference,
    /// which is the default; batch norm (batch statistics) and dropout (a random mask) override it and keep what
    /// their backward pass needs with <see cref="GradientCompiler.Save"/>.
    /// </summary>
    void LowerTraining(Node node, GradientCompiler t) => ((IRunnable)this).Lower(node, t.Plan);

    /// <summary>
    /// Appends the steps that compute this node's contributions to its inputs' gradients. Called in reverse
    /// topological order, only for nodes whose output has a gradient. Reads the output's gradient with
    /// <see cref="GradientCompiler.OutputGrad"/> and writes each input's contribution into the slot that
    /// <see cref="GradientCompiler.InputGrad"/> returns (null for inputs that need no gradient).
    /// Throws ArgumentException for what cannot be differentiated (named with the node by the compiler).
    /// </summary>
    void LowerBackward(Node node, GradientCompiler t);
}
