using MobileNetSharp.Graph;
using MobileNetSharp.Passes;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Quantization;

/// <summary>One quantized activation: what calibration saw, the range chosen and the parameters that follow.</summary>
/// <param name="Name">The tensor (value) name in the prepared float graph.</param>
/// <param name="Producer">The node that writes it ("input" for a graph input).</param>
/// <param name="Dequantized">The name of its DequantizeLinear output in the quantized model (what later layers read).</param>
public sealed record ActivationRange(string Name, string Producer, float SeenMin, float SeenMax, float Lo, float Hi, QuantParams Params,
    string Dequantized = "");

/// <summary>The result of <see cref="PostTrainingQuantizer.Quantize"/>.</summary>
/// <param name="Model">The QDQ graph: export it with the ONNX exporter (opset 13) for ONNX Runtime or `mnet`.</param>
/// <param name="Prepared">The float graph the decisions refer to (batch norm folded, activations fused).</param>
/// <param name="Activations">Every quantized activation, in graph order.</param>
/// <param name="QuantizedLayers">Layers whose weights are int8.</param>
/// <param name="FloatLayers">Layers with weights left in float (skipped by the user).</param>
public sealed record QuantizationResult(ModelGraph Model, ModelGraph Prepared, IReadOnlyList<ActivationRange> Activations,
    IReadOnlyList<string> QuantizedLayers, IReadOnlyList<string> FloatLayers, int CalibrationImages, QuantizationOptions Options);

/// <summary>
/// Post-training static quantization to ONNX QDQ form (the form ONNX Runtime's quantizer writes and runs with
/// integer kernels): batch norm folded into convolutions first, ReLU/ReLU6 fused so their clipping becomes the
/// output range, per-channel symmetric int8 weights, asymmetric 8-bit activations with ranges from calibration,
/// int32 biases. What is quantized: convolutions (standard, depthwise, pointwise), Gemm and MatMul with constant
/// weights, residual Adds, average/max/global-average pooling and Concat, and every tensor they read or write.
/// Everything else (softmax, sigmoid gates, hard-swish not fused into a convolution) runs in float on
/// dequantized inputs.
/// </summary>
public static class PostTrainingQuantizer
{
    /// <summary>The float graph quantization starts from: a clone with the inference passes applied except residual fusion.</summary>
    public static ModelGraph Prepare(ModelGraph model)
    {
        var g = model.Clone();
        g.InferShapes();
        FoldConstants.Run(g);
        Optimizer.Run(g, fuseResiduals: false);
        return g;
    }

    /// <summary>
    /// The largest batch (1..<paramref name="max"/>) whose float activations, all held at once, fit in
    /// <paramref name="budgetBytes"/>: calibration and the report expose every tensor of the model as an output, so a
    /// batch costs the sum of all activation sizes (about 27 MB an image for MobileNetV2 at 224), not the peak of a run.
    /// </summary>
    public static int BatchFor(ModelGraph model, long budgetBytes = 256L << 20, int max = 32)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        var g = model.Clone();
        g.InferShapes();
        long perImage = 0;
        foreach (var n in g.Nodes)
            foreach (var o in n.Outputs)
                if (o is { DataType: DataType.Float32, Shape.Length: > 1 } && o.Shape.Skip(1).All(d => d > 0))
                    perImage += 4L * o.Shape.Skip(1).Aggregate(1L, (a, d) => a * d);
        return (int)Math.Clamp(budgetBytes / Math.Max(1, perImage), 1, max);
    }

    /// <summary>True for the layers whose weights are quantized.</summary>
    public static bool HasQuantizableWeights(Node n) => n.Op switch
    {
        Conv => IsFloatConstant(n.Input(1)) && n.OptionalInput(3) is null && n.OptionalInput(2) is null or { IsConstant: true },
        Gemm g => !g.TransA && IsFloatConstant(n.Input(1)) && n.OptionalInput(2) is null or { IsConstant: true },
        MatMul => IsFloatConstant(n.Input(1)) && n.Input(1).Rank == 2,
        _ => false,
    };

    /// <summary>True for nodes whose float inputs and outputs are quantized (an integer runtime computes them in 8 bits).</summary>
    public static bool IsQuantizable(Node n) => HasQuantizableWeights(n) || n.Op switch
    {
        BinaryOp { Kind: BinaryKind.Add } => n.Inputs.All(i => i is { IsConstant: false }),
        GlobalPool { Kind: PoolKind.Average } or Pool or Concat => true,
        _ => false,
    };

    /// <summary>The activation a node applies last (fused into it, or the node itself), if any.</summary>
    internal static Activation? FusedActivation(Node n) => n.Op switch
    {
        Conv c => c.Activation,
        Gemm g => g.Activation,
        BinaryOp b => b.Activation,
        BatchNorm bn => bn.Activation,
        ActivationOp a => a.Activation,
        _ => null,
    };

    /// <summary>Activations whose output range is bounded above: ReLU6 and other clips, hard-sigmoid, sigmoid, tanh.</summary>
    internal static bool IsBounded(Activation? a) => a is { } x && (x.Kind is ActivationKind.HardSigmoid or ActivationKind.Sigmoid or ActivationKind.Tanh
        || (x.Kind == ActivationKind.Clip && float.IsFinite(x.Beta)));

    private static bool IsFloatConstant(Value v) => v is { IsConstant: true, DataType: DataType.Float32 };

    /// <summary>
    /// Quantizes <paramref name="model"/> with activation ranges calibrated on <paramref name="batches"/>
    /// (float NCHW batches as the model takes them, e.g. from <see cref="Training.Data.BatchSource"/>).
    /// </summary>
    /// <param name="progress">(pass, images done): pass 1 records ranges, pass 2 (percentile, entropy) histograms.</param>
    /// <exception cref="ArgumentException">Bad options, a skip name that is no node, no calibration data, or a model with nothing to quantize.</exception>
    /// <exception cref="GraphException">The model cannot run.</exception>
    public static QuantizationResult Quantize(ModelGraph model, Func<IEnumerable<Tensor>> batches, QuantizationOptions? options = null,
        Action<int, int>? progress = null, CancellationToken cancellation = default)
    {
        options ??= new QuantizationOptions();
        options.Validate();
        RefuseQuantized(model);
        var prepared = Prepare(model);
        var nodeNames = model.Nodes.Select(n => n.Name).Concat(prepared.Nodes.Select(n => n.Name)).ToHashSet(StringComparer.Ordinal);
        var unknown = options.Skip.Where(s => !nodeNames.Contains(s)).ToList();
        if (unknown.Count > 0)
            throw new ArgumentException($"--skip names no node: {string.Join(", ", unknown.Take(5))} (node names: {string.Join(", ", prepared.Nodes.Take(8).Select(n => n.Name))}, ...).");

        var quantizable = prepared.Nodes.Where(n => IsQuantizable(n) && !options.Skip.Contains(n.Name)).ToList();
        var layers = quantizable.Where(HasQuantizableWeights).ToList();
        if (layers.Count == 0) throw new ArgumentException("the model has no convolution or fully connected layer with constant float weights to quantize.");
        var points = ActivationPoints(prepared, quantizable);
        bool histograms = options.Method != CalibrationMethod.MinMax;
        var (observers, images) = Calibrator.Run(prepared, points.Select(p => p.Value.Name).ToList(), batches, histograms, options.Threads, progress, cancellation);

        var (qmin, qmax) = QuantParams.Limits(options.ActivationType);
        var ranges = new List<ActivationRange>();
        var parameters = new Dictionary<string, QuantParams>(StringComparer.Ordinal);
        foreach (var (v, producer) in points)
        {
            var o = observers[v.Name];
            // A bounded activation's output keeps its whole range: what piles up at ReLU6's 6 is signal, not an outlier
            // tail, and clipping it (entropy chose [0, 0.9] for such tensors) cost the built-in model 12 points.
            var method = v.Producer is { } n && IsBounded(FusedActivation(n)) ? CalibrationMethod.MinMax : options.Method;
            var (lo, hi) = o.Range(method, options.Percentile, qmax - qmin + 1);
            var p = QdqRewriter.ActivationParams(lo, hi, options.ActivationType);
            parameters[v.Name] = p;
            ranges.Add(new ActivationRange(v.Name, producer, o.Min, o.Max, lo, hi, p));
        }
        var (quantized, dequantized) = QdqRewriter.Rewrite(prepared, parameters, layers, options.PerTensor,
            options.ReduceRange ? QdqRewriter.ReducedWeightMax : QdqRewriter.WeightMax);
        ranges = ranges.Select(r => r with { Dequantized = dequantized[r.Name] }).ToList();
        quantized.Metadata["mnet.quantization"] = $"method={options.Method.ToString().ToLowerInvariant()}"
            + (options.Method == CalibrationMethod.Percentile ? $" percentile={options.Percentile}" : "")
            + $" weights=int{(options.ReduceRange ? 7 : 8)}-{(options.PerTensor ? "per-tensor" : "per-channel")} activations={options.ActivationType.ToString().ToLowerInvariant()}"
            + $" calibration-images={images}";
        var skipped = prepared.Nodes.Where(n => HasQuantizableWeights(n) && options.Skip.Contains(n.Name)).Select(n => n.Name).ToList();
        return new QuantizationResult(quantized, prepared, ranges, layers.Select(n => n.Name).ToList(), skipped, images, options);
    }

    /// <summary>
    /// Quantizing twice would calibrate on already-rounded values and stack a second rounding on every weight: the
    /// user almost surely meant the float original, so say so rather than write a worse copy.
    /// </summary>
    private static void RefuseQuantized(ModelGraph model)
    {
        var q = model.Nodes.FirstOrDefault(n => n.Op is QuantizeLinear or DequantizeLinear
            || n.Inputs.Any(i => i is { Constant.Origin: not null }));
        if (q is not null)
            throw new ArgumentException($"the model is already quantized (node '{q.Name}', {q.Op.Type}, "
                + (q.Op is QuantizeLinear or DequantizeLinear ? "is a Q/DQ node" : "reads int8 weights")
                + "): quantize its float original instead.");
    }

    /// <summary>
    /// The float tensors to quantize, in graph order: every input and output of a quantizable node that is not a
    /// constant and not a graph output (the model's outputs stay float so its callers see no change).
    /// </summary>
    internal static List<(Value Value, string Producer)> ActivationPoints(ModelGraph g, IReadOnlyCollection<Node> quantizable)
    {
        var set = quantizable.ToHashSet();
        var outputs = g.Outputs.ToHashSet();
        var chosen = new HashSet<Value>();
        var points = new List<(Value, string)>();
        void Consider(Value? v, string producer)
        {
            if (v is null || v.IsConstant || v.DataType != DataType.Float32 || outputs.Contains(v) || !chosen.Add(v)) return;
            points.Add((v, producer));
        }
        var consumers = g.Consumers();
        foreach (var input in g.Inputs)
            if (consumers.TryGetValue(input, out var readers) && readers.Any(set.Contains)) Consider(input, "input");
        foreach (var n in g.Nodes)
        {
            // An output is quantized when its producer or any reader is quantized.
            foreach (var o in n.Outputs)
                if (set.Contains(n) || (consumers.TryGetValue(o, out var readers) && readers.Any(set.Contains))) Consider(o, n.Name);
        }
        return points;
    }
}
