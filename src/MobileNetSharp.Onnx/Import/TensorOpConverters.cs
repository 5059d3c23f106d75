using MobileNetSharp.Graph;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Onnx.Import;

/// <summary>
/// BatchNormalization, Gemm, MatMul, Softmax, pooling over whole axes and Dropout: ops that map to one graph
/// node but whose attributes changed across opsets.
/// </summary>
internal static class TensorOpConverters
{
    public static void BatchNormalization(NodeContext n)
    {
        if (n.Opset >= 14 && n.Attr.Int("training_mode", 0) != 0) throw n.Error("training_mode=1 is not supported (inference only).");
        if (n.Opset < 9 && n.Attr.Int("spatial", 1) == 0 && n.Input(1).Rank != 1)
            throw n.Error("spatial=0 with per-activation parameters is not supported.");
        for (int i = 1; i < n.OutputCount; i++)
            if (n.OutputUsed(i)) throw n.Error($"output #{i} ('{n.Proto.Output[i]}', a training statistic) is not supported.");
        var inputs = Enumerable.Range(0, 5).Select(n.Input).ToArray();
        string[] roles = ["X", "scale", "B", "input_mean", "input_var"];
        for (int i = 0; i < inputs.Length; i++)
            if (inputs[i].DataType != DataType.Float32) throw n.Error($"{roles[i]} '{inputs[i].Name}' is {inputs[i].DataType}; only FLOAT is supported.");
        n.Emit(new BatchNorm(n.Attr.Float("epsilon", 1e-5f), n.Attr.Float("momentum", 0.9f)), inputs);
    }

    public static void Gemm(NodeContext n) =>
        n.Emit(new Graph.Gemm(n.Attr.Float("alpha", 1f), n.Attr.Float("beta", 1f), n.Attr.Int("transA", 0) != 0, n.Attr.Int("transB", 0) != 0),
            n.Input(0), n.Input(1), n.OptionalInput(2));

    public static void MatMul(NodeContext n) => n.Emit(new Graph.MatMul(), n.Input(0), n.Input(1));

    /// <summary>Before opset 13 Softmax flattens at the axis (default 1); where that axis is the last one both forms agree.</summary>
    public static void Softmax(NodeContext n, bool log)
    {
        var x = n.Input(0);
        bool legacy = n.Opset < 13;
        int axis = n.Axis(n.Attr.Int("axis", legacy ? 1 : -1), Math.Max(1, x.Rank));
        n.Emit(new Graph.Softmax(axis, log, legacy && axis != x.Rank - 1), x);
    }

    public static void GlobalPool(NodeContext n, PoolKind kind) => n.Emit(new Graph.GlobalPool(kind), n.Input(0));

    /// <summary>Reductions: axes are an attribute before <paramref name="axesInputSince"/> and an optional input from then on.</summary>
    public static void Reduce(NodeContext n, ReduceKind kind, int axesInputSince)
    {
        var x = n.Input(0);
        long[]? axes = n.Opset < axesInputSince ? n.Attr.Ints("axes") : n.OptionalInts(1, "axes");
        bool keep = n.Attr.Int("keepdims", 1) != 0;
        if (axes is null or { Length: 0 } && n.Opset >= axesInputSince && n.Attr.Int("noop_with_empty_axes", 0) != 0)
        {
            n.Emit(new Identity(), x);
            return;
        }
        var normalized = axes?.Select(a => n.Axis(a, x.Rank)).ToArray();
        n.Emit(new Graph.Reduce(kind, normalized is { Length: > 0 } ? normalized : null, keep), x);
    }

    /// <summary>
    /// Dropout is the identity at inference. Its mask output, when read, is all ones. Training mode with a
    /// non-zero ratio is random and refused.
    /// </summary>
    public static void Dropout(NodeContext n)
    {
        var x = n.Input(0);
        if (n.Opset >= 12 && n.OptionalConstant(2, "training_mode") is { } training && TensorArithmetic.Int64s(training).Any(v => v != 0)
            && (n.OptionalScalar(1, "ratio") ?? 0.5f) != 0f)
            throw n.Error("training_mode=true with a non-zero ratio is random and not supported.");
        n.Emit(new Identity(), x);
        if (n.OutputUsed(1))
        {
            n.Import.ChargeFolded(x.Length, n.Error);
            var type = n.Opset >= 10 ? DataType.Bool : x.DataType;
            var mask = TensorArithmetic.Cast(new Tensor(DataType.Bool, x.Shape, Enumerable.Repeat(true, (int)x.Length).ToArray()), type);
            n.BindConstant(1, mask);
        }
    }
}
