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
        ["DepthToSpace"] = n => ShapeOpConverters.DepthToSpace(n, inverse: false),
        ["SpaceToDepth"] = n => ShapeOpConverters.DepthToSpace(n, inverse: true),
        // Point-wise math, arg/reductions, comparisons and logic, Cast, Expand and Tile on runtime tensors.
        ["Abs"] = n => ComputeOpConverters.Unary(n, UnaryKind.Abs),
        ["Neg"] = n => ComputeOpConverters.Unary(n, UnaryKind.Neg),
        ["Sqrt"] = n => ComputeOpConverters.Unary(n, UnaryKind.Sqrt),
        ["Exp"] = n => ComputeOpConverters.Unary(n, UnaryKind.Exp),
        ["Log"] = n => ComputeOpConverters.Unary(n, UnaryKind.Log),
        ["Reciprocal"] = n => ComputeOpConverters.Unary(n, UnaryKind.Reciprocal),
        ["Floor"] = n => ComputeOpConverters.Unary(n, UnaryKind.Floor),
        ["Ceil"] = n => ComputeOpConverters.Unary(n, UnaryKind.Ceil),
        ["Round"] = n => ComputeOpConverters.Unary(n, UnaryKind.Round),
        ["Sign"] = n => ComputeOpConverters.Unary(n, UnaryKind.Sign),
        ["Sin"] = n => ComputeOpConverters.Unary(n, UnaryKind.Sin),
        ["Cos"] = n => ComputeOpConverters.Unary(n, UnaryKind.Cos),
        ["Erf"] = n => ComputeOpConverters.Unary(n, UnaryKind.Erf),
        ["Softplus"] = n => ComputeOpConverters.Unary(n, UnaryKind.Softplus),
        ["Softsign"] = n => ComputeOpConverters.Unary(n, UnaryKind.Softsign),
        ["Elu"] = ComputeOpConverters.Elu,
        ["Selu"] = ComputeOpConverters.Selu,
        ["Gelu"] = ComputeOpConverters.Gelu,
        ["Tanh"] = n => Activation(n, Graph.Activation.Tanh),
        ["LeakyRelu"] = ComputeOpConverters.LeakyRelu,
        ["PRelu"] = ComputeOpConverters.PRelu,
        ["ArgMax"] = n => ComputeOpConverters.ArgReduce(n, max: true),
        ["ArgMin"] = n => ComputeOpConverters.ArgReduce(n, max: false),
        ["ReduceProd"] = n => TensorOpConverters.Reduce(n, ReduceKind.Prod, axesInputSince: 18),
        ["ReduceL1"] = n => TensorOpConverters.Reduce(n, ReduceKind.L1, axesInputSince: 18),
        ["ReduceL2"] = n => TensorOpConverters.Reduce(n, ReduceKind.L2, axesInputSince: 18),
        ["ReduceSumSquare"] = n => TensorOpConverters.Reduce(n, ReduceKind.SumSquare, axesInputSince: 18),
        ["ReduceLogSum"] = n => TensorOpConverters.Reduce(n, ReduceKind.LogSum, axesInputSince: 18),
        ["ReduceLogSumExp"] = n => TensorOpConverters.Reduce(n, ReduceKind.LogSumExp, axesInputSince: 18),
        ["Equal"] = n => ComputeOpConverters.Compare(n, CompareKind.Equal),
        ["Less"] = n => ComputeOpConverters.Compare(n, CompareKind.Less),
        ["LessOrEqual"] = n => ComputeOpConverters.Compare(n, CompareKind.LessOrEqual),
        ["Greater"] = n => ComputeOpConverters.Compare(n, CompareKind.Greater),
        ["GreaterOrEqual"] = n => ComputeOpConverters.Compare(n, CompareKind.GreaterOrEqual),
        ["Not"] = ComputeOpConverters.Not,
        ["And"] = n => ComputeOpConverters.Logical(n, LogicalKind.And),
        ["Or"] = n => ComputeOpConverters.Logical(n, LogicalKind.Or),
        ["Xor"] = n => ComputeOpConverters.Logical(n, LogicalKind.Xor),
        ["Where"] = ComputeOpConverters.Where,
        ["Cast"] = ComputeOpConverters.Cast,
        ["QuantizeLinear"] = QuantizationConverters.QuantizeLinear,
        ["DequantizeLinear"] = QuantizationConverters.DequantizeLinear,
        ["QLinearConv"] = QuantizationConverters.QLinearConv,
        ["QLinearMatMul"] = QuantizationConverters.QLinearMatMul,
        ["CastLike"] = ComputeOpConverters.CastLike,
        ["Expand"] = ComputeOpConverters.Expand,
        ["Tile"] = ComputeOpConverters.Tile,
    };

    /// <summary>Every op_type the importer accepts: graph ops plus those evaluated at load time.</summary>
    public static IReadOnlyCollection<string> Supported { get; } =
        Converters.Keys.Union(LoadTimeOps.Names).Order(StringComparer.Ordinal).ToArray();

    public static bool TryGet(string opType, out Action<NodeContext> converter) => Converters.TryGetValue(opType, out converter!);

    /// <summary>ONNX Runtime's contrib operators that its quantizer writes (domain com.microsoft).</summary>
    private static readonly Dictionary<string, Action<NodeContext>> MicrosoftConverters = new()
    {
        ["QLinearAdd"] = QuantizationConverters.QLinearAdd,
        ["QLinearGlobalAveragePool"] = QuantizationConverters.QLinearGlobalAveragePool,
    };

    public const string MicrosoftDomain = "com.microsoft";

    /// <summary>The converter for an op of the default domain or of <see cref="MicrosoftDomain"/>.</summary>
    public static bool TryGet(string domain, string opType, out Action<NodeContext> converter) =>
        domain is "" or "ai.onnx" ? TryGet(opType, out converter) : domain == MicrosoftDomain
            ? MicrosoftConverters.TryGetValue(opType, out converter!) : (converter = null!) is not null;
}
