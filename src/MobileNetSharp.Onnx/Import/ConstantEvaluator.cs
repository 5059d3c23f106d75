using MobileNetSharp.Graph;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Onnx.Import;

/// <summary>
/// Computes graph nodes whose inputs are all constant at load time: the data-movement ops and plain
/// arithmetic that exporters apply to weights and to shape tensors. Output shapes come from the op's
/// own shape inference, which has already run on the node.
/// </summary>
internal static class ConstantEvaluator
{
    public static bool CanEvaluate(Op op) => op is Identity or Reshape or Flatten or Squeeze or Unsqueeze
        or Transpose or Slice or Concat or Split or BinaryOp { Activation.IsNone: true };

    /// <summary>Ops whose folded result is a view of the input's data (no new elements).</summary>
    public static bool SharesData(Op op) => op is Identity or Reshape or Flatten or Squeeze or Unsqueeze;

    public static Tensor[] Evaluate(Node node)
    {
        var x = node.Input(0).Constant!;
        var y = node.Outputs[0].Shape;
        return node.Op switch
        {
            Identity or Reshape or Flatten or Squeeze or Unsqueeze => [new Tensor(x.DataType, y, x.Data)],
            Transpose t => [TensorIndexing.Transpose(x, t.Permutation(x.Rank))],
            Slice s => [TensorIndexing.Slice(x, s.Resolve(x.Shape))],
            Concat c => [TensorIndexing.Concat(Operands(node), Shape.Axis(c.Axis, x.Rank), y)],
            Split s => SplitParts(x, Shape.Axis(s.Axis, x.Rank), s.Sizes),
            BinaryOp b => [TensorArithmetic.Binary(b.Kind, x, node.Input(1).Constant!)],
            _ => throw new ArgumentException($"{node.Op.Type} cannot be evaluated at load time."),
        };
    }

    private static Tensor[] Operands(Node node)
    {
        var parts = node.Inputs.Select(i => i!.Constant!).ToArray();
        if (parts.Any(p => p.DataType != parts[0].DataType)) throw new ArgumentException("Concat inputs have different element types.");
        return parts;
    }

    private static Tensor[] SplitParts(Tensor x, int axis, int[] sizes)
    {
        var parts = new Tensor[sizes.Length];
        int start = 0;
        for (int i = 0; i < sizes.Length; i++)
        {
            var axes = x.Shape.Select(d => (0, 1, d)).ToArray();
            axes[axis] = (start, 1, sizes[i]);
            parts[i] = TensorIndexing.Slice(x, axes);
            start += sizes[i];
        }
        return parts;
    }
}
