using MobileNetSharp.Graph;
using MobileNetSharp.Kernels.Int8;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Quantization;

/// <summary>
/// Writes the quantization decisions into the graph in ONNX's QDQ form: each quantized activation gets a
/// QuantizeLinear -> DequantizeLinear pair after its producer, which every reader then reads; each quantized
/// layer's weights become an int8 constant read through DequantizeLinear, and its bias an int32 constant with
/// scale input_scale * weight_scale (so an integer kernel can add it to its int32 accumulator as is: ONNX
/// QLinearConv's bias contract). ONNX Runtime turns exactly this pattern into its integer kernels.
/// </summary>
internal static class QdqRewriter
{
    /// <summary>int8 weights use [-127, 127] so the range is symmetric (TFLite's quantization spec for weights).</summary>
    public const int WeightMax = 127;

    /// <summary>With <see cref="QuantizationOptions.ReduceRange"/>: [-63, 63], so two products of a uint8 and a weight stay within int16.</summary>
    public const int ReducedWeightMax = 63;

    /// <returns>The QDQ graph, and for each quantized activation the name of its DequantizeLinear output.</returns>
    public static (ModelGraph Graph, Dictionary<string, string> Dequantized) Rewrite(ModelGraph prepared, IReadOnlyDictionary<string, QuantParams> activations,
        IReadOnlyCollection<Node> layers, bool perTensor, int weightMax = WeightMax)
    {
        var g = prepared.Clone();
        var names = new HashSet<string>(Calibrator.Values(g).Keys, StringComparer.Ordinal);
        string Fresh(string hint)
        {
            string name = hint;
            for (int i = 1; !names.Add(name); i++) name = $"{hint}_{i}";
            return name;
        }
        var layerNames = layers.Select(n => n.Name).ToHashSet(StringComparer.Ordinal);
        var replaced = new Dictionary<Value, Value>(); // activation -> its dequantized copy
        var nodes = new List<Node>();

        void QuantizeActivation(Value v)
        {
            if (!activations.TryGetValue(v.Name, out var p) || replaced.ContainsKey(v)) return;
            var q = new Value(Fresh(v.Name + "_QuantizeLinear_Output"), p.Type, v.Shape);
            var dq = new Value(Fresh(v.Name + "_DequantizeLinear_Output"), DataType.Float32, v.Shape);
            nodes.Add(new Node(Fresh(v.Name + "_QuantizeLinear"), new QuantizeLinear(p), [v], [q]));
            nodes.Add(new Node(Fresh(v.Name + "_DequantizeLinear"), new DequantizeLinear(p), [q], [dq]));
            replaced[v] = dq;
        }

        foreach (var input in g.Inputs) QuantizeActivation(input);
        foreach (var n in g.Nodes)
        {
            if (layerNames.Contains(n.Name)) QuantizeParameters(n, activations, perTensor, weightMax, nodes, Fresh);
            for (int i = 0; i < n.Inputs.Length; i++)
                if (n.Inputs[i] is { } v && replaced.TryGetValue(v, out var dq)) n.Inputs[i] = dq;
            nodes.Add(n);
            foreach (var o in n.Outputs) QuantizeActivation(o);
        }
        g.Nodes.Clear();
        g.Nodes.AddRange(nodes);
        g.InferShapes();
        g.Validate();
        return (g, replaced.ToDictionary(kv => kv.Key.Name, kv => kv.Value.Name, StringComparer.Ordinal));
    }

    /// <summary>Weights (input 1) to int8 through DequantizeLinear, and the bias (input 2) to int32 when the layer's input is quantized.</summary>
    private static void QuantizeParameters(Node n, IReadOnlyDictionary<string, QuantParams> activations, bool perTensor, int weightMax,
        List<Node> nodes, Func<string, string> fresh)
    {
        var w = n.Input(1);
        int axis = WeightAxis(n);
        var (wq, wp) = QuantizeWeights(w.Constant!, axis, perTensor, weightMax);
        var wConst = Value.FromConstant(fresh(w.Name + "_quantized"), wq);
        var wOut = new Value(fresh(w.Name + "_DequantizeLinear_Output"), DataType.Float32, w.Shape);
        nodes.Add(new Node(fresh(w.Name + "_DequantizeLinear"), new DequantizeLinear(wp), [wConst], [wOut]));
        n.Inputs[1] = wOut;

        if (n.OptionalInput(2) is not { IsConstant: true, Rank: 1 } b || !BiasIsPlain(n)) return;
        if (!activations.TryGetValue(n.Input(0).Name, out var xp)) return; // float input: the bias stays float
        int channels = b.Shape[0];
        var scales = new float[channels];
        var q = new int[channels];
        var bias = b.Constant!.Floats;
        for (int c = 0; c < channels; c++)
        {
            scales[c] = xp.Scales[0] * wp.Scales[wp.PerTensor ? 0 : c];
            if (!(scales[c] > 0)) return; // underflow: an int32 bias could not represent it, keep it float
            q[c] = (int)Math.Clamp(Math.Round(bias[c] / (double)scales[c], MidpointRounding.ToEven), int.MinValue, int.MaxValue);
        }
        var bp = wp.PerTensor ? QuantParams.Of(scales[0], 0, DataType.Int32) : new QuantParams(scales, new int[channels], DataType.Int32, 0);
        var bConst = Value.FromConstant(fresh(b.Name + "_quantized"), new Tensor(DataType.Int32, [channels], q));
        var bOut = new Value(fresh(b.Name + "_DequantizeLinear_Output"), DataType.Float32, b.Shape);
        nodes.Add(new Node(fresh(b.Name + "_DequantizeLinear"), new DequantizeLinear(bp), [bConst], [bOut]));
        n.Inputs[2] = bOut;
    }

    /// <summary>The output-channel axis of a layer's weights: Conv [M, C/g, kH, kW] axis 0; Gemm B [K, N] axis 1 or, transposed, 0; MatMul B [K, N] axis 1.</summary>
    internal static int WeightAxis(Node n) => n.Op switch
    {
        Gemm { TransB: true } => 0,
        Gemm or MatMul => 1,
        _ => 0,
    };

    /// <summary>Gemm's C is a plain per-output bias only when alpha = beta = 1.</summary>
    private static bool BiasIsPlain(Node n) => n.Op is not Gemm gm || (gm.Alpha == 1f && gm.Beta == 1f);

    /// <summary>Symmetric int8 weights: scale = max|w| / <paramref name="weightMax"/> per output channel (or per tensor), zero point 0.</summary>
    internal static (Tensor Quantized, QuantParams Params) QuantizeWeights(Tensor w, int axis, bool perTensor, int weightMax = WeightMax)
    {
        var data = w.Floats;
        int channels = perTensor ? 1 : w.Shape[axis];
        var split = new QuantParams(new float[channels], new int[channels], DataType.Int8, axis).Split(w.Shape, perTensor ? -1 : axis);
        var absMax = new float[channels];
        long at = 0;
        for (long o = 0; o < split.Item1; o++)
            for (int c = 0; c < split.Item2; c++, at += split.Item3)
                absMax[perTensor ? 0 : c] = Math.Max(absMax[perTensor ? 0 : c],
                    System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(data.AsSpan((int)at, (int)split.Item3)) is var m && float.IsFinite(m) ? Math.Abs(m) : 0);
        var scales = absMax.Select(a => a > 0 ? a / weightMax : 1f).ToArray();
        var p = new QuantParams(scales, new int[channels], DataType.Int8, axis);
        var q = new sbyte[data.Length];
        QuantizeLinearKernel.Quantize(data, System.Runtime.InteropServices.MemoryMarshal.AsBytes(q.AsSpan()), p, split);
        return (new Tensor(DataType.Int8, (int[])w.Shape.Clone(), q), p);
    }

    /// <summary>
    /// Activation parameters for the real range [lo, hi] (lo &lt;= 0 &lt;= hi): scale = (hi - lo) / (qmax - qmin),
    /// zero point = qmin - round(lo / scale), so real 0 is exactly representable (Jacob et al. 2018, section 2.1).
    /// </summary>
    public static QuantParams ActivationParams(float lo, float hi, DataType type)
    {
        var (qmin, qmax) = QuantParams.Limits(type);
        float scale = (hi - lo) / (qmax - qmin);
        if (!(scale > 0) || !float.IsFinite(scale)) return QuantParams.Of(1f, 0, type);
        int zp = (int)Math.Clamp(Math.Round(qmin - lo / (double)scale, MidpointRounding.ToEven), qmin, qmax);
        return QuantParams.Of(scale, zp, type);
    }
}
