using MobileNetSharp.Graph;

namespace MobileNetSharp.Onnx;

/// <summary>
/// An operator needs a value at load time (a shape, axes, pads, an index list, or a fold-only operator's
/// operand) that depends on runtime inputs. <see cref="RuntimeInputs"/> names the graph inputs involved;
/// binding them with <see cref="OnnxImportOptions.Constants"/> makes the model loadable.
/// </summary>
public sealed class ConstantInputRequiredException(string message, IReadOnlyList<string> runtimeInputs)
    : ModelFormatException(message)
{
    public IReadOnlyList<string> RuntimeInputs { get; } = runtimeInputs;
}
