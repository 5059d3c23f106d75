using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using static MobileNetSharp.Onnx.Import.ElementwiseConverters;

namespace MobileNetSharp.Onnx.Import;

/// <summary>The ONNX operators (default domain) that become graph nodes, by op_type.</summary>
internal static class OpConverters
{
    private static readonly Dictionary<string, Action<NodeContext>> Converters = new()
    {
        ["Conv"] = ConvPoolConverters.Conv,
        ["MaxPool"] = ConvPoolConverters.MaxPool,
        ["AveragePool"] = ConvPoolConverters.AveragePool,
        ["ConvTranspose"] = ConvPoolConverters.ConvTranspose,
        ["Resize"] = ResizeConverters.Resize,
        ["Upsample"] = ResizeConverters.Upsample,
        ["GlobalAveragePool"] = n => TensorOpConverters.GlobalPool(n, PoolKind.Average),
        ["GlobalMaxPool"] = n => TensorOpConverters.GlobalPool(n, PoolKind.Max),
        ["BatchNormalization"] = TensorOpConverters.BatchNormalization,
        ["Gemm"] = TensorOpConverters.Gemm,
        ["MatMul"] = TensorOpConverters.MatMul,
        ["Softmax"] = n => TensorOpConverters.Softmax(n, log: false),
        ["LogSoftmax"] = n => TensorOpConverters.Softmax(n, log: true),
        ["ReduceMean"] = n => TensorOpConverters.Reduce(n, ReduceKind.Mean, axesInputSince: 18),
        ["ReduceSum"] = n => TensorOpConverters.Reduce(n, ReduceKind.Sum, axesInputSince: 13),
        ["ReduceMax"] = n => TensorOpConverters.Reduce(n, ReduceKind.Max, axesInputSince: 18),
        ["ReduceMin"] = n => TensorOpConverters.Reduce(n, ReduceKind.Min, axesInputSince: 18),
        ["Dropout"] = TensorOpConverters.Dropout,
        ["Relu"] = n => Activation(n, Graph.Activation.Relu),
        ["Sigmoid"] = n => Activation(n, Graph.Activation.Sigmoid),
        ["HardSwish"] = n => Activation(n, Graph.Activation.HardSwish),
        ["HardSigmoid"] = HardSigmoid,
        ["Clip"] = Clip,
        ["Add"] = n => Binary(n, BinaryKind.Add),
        ["Sub"] = n => Binary(n, BinaryKind.Sub),
        ["Mul"] = n => Binary(n, BinaryKind.Mul),
        ["Div"] = n => Binary(n, BinaryKind.Div),
        ["Pow"] = n => Binary(n, BinaryKind.Pow),
        ["Max"] = n => Variadic(n, BinaryKind.Max),
        ["Min"] = n => Variadic(n, BinaryKind.Min),
        ["Identity"] = ShapeOpConverters.Identity,
        ["Flatten"] = ShapeOpConverters.Flatten,
        ["Reshape"] = ShapeOpConverters.Reshape,
        ["Squeeze"] = ShapeOpConverters.Squeeze,
        ["Unsqueeze"] = ShapeOpConverters.Unsqueeze,
        ["Transpose"] = ShapeOpConverters.Transpose,
        ["Concat"] = ShapeOpConverters.Concat,
        ["Split"] = ShapeOpConverters.Split,
        ["Slice"] = ShapeOpConverters.Slice,
        ["Pad"] = ShapeOpConverters.Pad,
        ["Gather"] = ShapeOpConverters.Gather,
        ["Cast"] = ShapeOpConverters.Cast,
        ["Expand"] = BroadcastExpand.Expand, // of a runtime tensor; constant ones are computed at load time
        ["Tile"] = BroadcastExpand.Tile,
        ["DepthToSpace"] = n => ShapeOpConverters.DepthToSpace(n, inverse: false),
        ["SpaceToDepth"] = n => ShapeOpConverters.DepthToSpace(n, inverse: true),
    };

    /// <summary>Every op_type the importer accepts: graph ops plus those evaluated at load time.</summary>
    public static IReadOnlyCollection<string> Supported { get; } =
        Converters.Keys.Union(LoadTimeOps.Names).Order(StringComparer.Ordinal).ToArray();

    public static bool TryGet(string opType, out Action<NodeContext> converter) => Converters.TryGetValue(opType, out converter!);
}
