using MobileNetSharp.Kernels;

namespace MobileNetSharp.Graph;

/// <summary>ONNX Gemm: Y = act(alpha * A' * B' + beta * C) on 2-D A and B; C broadcasts to [M, N].</summary>
public sealed record Gemm(float Alpha = 1f, float Beta = 1f, bool TransA = false, bool TransB = false,
    Activation Activation = default) : Op
{
    public override string Type => "Gemm";

    public override int[][] InferShapes(Node node)
    {
        var a = node.Input(0).Shape;
        var b = node.Input(1).Shape;
        if (a.Length != 2 || b.Length != 2) throw Error(node, $"expects 2-D A and B, got {Tensors.Shape.Format(a)} and {Tensors.Shape.Format(b)}.");
        int m = TransA ? a[1] : a[0], k = TransA ? a[0] : a[1];
        int kb = TransB ? b[1] : b[0], n = TransB ? b[0] : b[1];
        if (k != kb) throw Error(node, $"inner dimensions differ: A {Tensors.Shape.Format(a)} and B {Tensors.Shape.Format(b)} (transA={TransA}, transB={TransB}).");
        if (node.OptionalInput(2) is { } c)
        {
            try
            {
                var bc = Tensors.Shape.Broadcast(c.Shape, [m, n]);
                if (!Tensors.Shape.Equal(bc, [m, n])) throw new ArgumentException("C is larger than the output.");
            }
            catch (ArgumentException e) { throw Error(node, $"C {Tensors.Shape.Format(c.Shape)} does not broadcast to [{m},{n}]: {e.Message}"); }
        }
        return [[m, n]];
    }

    public override string Describe() => Activation.IsNone ? "Gemm" : $"Gemm +{Activation}";
}

/// <summary>NumPy matmul: batched over leading dimensions with broadcasting; 1-D operands are promoted.</summary>
public sealed record MatMul : Op
{
    public override string Type => "MatMul";

    public override int[][] InferShapes(Node node)
    {
        var a = node.Input(0).Shape;
        var b = node.Input(1).Shape;
        if (a.Length == 0 || b.Length == 0) throw Error(node, "operands must have rank >= 1.");
        int[] a2 = a.Length == 1 ? [1, a[0]] : a;
        int[] b2 = b.Length == 1 ? [b[0], 1] : b;
        if (a2[^1] != b2[^2]) throw Error(node, $"inner dimensions differ: {Tensors.Shape.Format(a)} x {Tensors.Shape.Format(b)}.");
        int[] batch;
        try { batch = Tensors.Shape.Broadcast(a2.AsSpan(0, a2.Length - 2), b2.AsSpan(0, b2.Length - 2)); }
        catch (ArgumentException e) { throw Error(node, e.Message); }
        var y = new List<int>(batch);
        if (a.Length > 1) y.Add(a2[^2]);
        if (b.Length > 1) y.Add(b2[^1]);
        return [y.ToArray()];
    }
}
