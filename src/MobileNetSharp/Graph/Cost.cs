using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>The layer families the MobileNet papers account for separately (MobileNetV1 Table 2).</summary>
public enum LayerKind { Pointwise, Depthwise, StandardConv, FullyConnected, Other }

public sealed record LayerCost(string Name, string Op, int[] OutputShape, long Params, long Macs, LayerKind Kind);

public sealed record KindCost(long Params, long Macs);

/// <summary>Trainable parameters and multiply-accumulates of a graph, per node and in total.</summary>
public sealed record GraphCost(IReadOnlyList<LayerCost> Layers)
{
    public long Params => Layers.Sum(l => l.Params);
    public long Macs => Layers.Sum(l => l.Macs);

    public IReadOnlyDictionary<LayerKind, KindCost> ByKind =>
        Enum.GetValues<LayerKind>().ToDictionary(k => k, k => new KindCost(
            Layers.Where(l => l.Kind == k).Sum(l => l.Params),
            Layers.Where(l => l.Kind == k).Sum(l => l.Macs)));
}

/// <summary>
/// Counts costs under the conventions of shared/reference/published-figures.md: parameters are conv and
/// FC weights and biases plus BatchNorm gamma and beta (not running statistics); MACs count convolutions
/// (output elements * kernel volume * C_in/groups, for any number of spatial axes) and fully connected
/// layers only. A constant read by several nodes is counted once. Counts are for the graph's batch size as given.
/// </summary>
public static class CostModel
{
    public static GraphCost Analyze(ModelGraph graph)
    {
        var seen = new HashSet<Value>();
        var layers = new List<LayerCost>(graph.Nodes.Count);
        foreach (var n in graph.Nodes)
        {
            long Param(int i) => n.OptionalInput(i) is { IsConstant: true } v && seen.Add(v) ? v.Length : 0;
            var y = n.Output.Shape;
            (long p, long m, LayerKind kind) = n.Op switch
            {
                Conv c => (Param(1) + Param(2),
                    Shape.Size(y) * c.KernelH * c.KernelW * n.Input(0).Shape[1] / c.Groups,
                    ConvKind(c.Groups, n.Input(0).Shape[1], c.KernelH == 1 && c.KernelW == 1)),
                ConvNd c => (Param(1) + Param(2),
                    Shape.Size(y) * c.Kernel.Aggregate(1L, (a, k) => a * k) * n.Input(0).Shape[1] / c.Groups,
                    ConvKind(c.Groups, n.Input(0).Shape[1], c.Kernel.All(k => k == 1))),
                BatchNorm => (Param(1) + Param(2), 0L, LayerKind.Other),
                Gemm g => (Param(1) + Param(2),
                    Shape.Size(y) * (g.TransA ? n.Input(0).Shape[0] : n.Input(0).Shape[1]),
                    LayerKind.FullyConnected),
                MatMul => (Param(0) + Param(1), Shape.Size(y) * MatMulInner(n), LayerKind.FullyConnected),
                // tf2onnx writes a dense layer as MatMul + Add(constant bias): the bias is a trainable parameter.
                BinaryOp { Kind: BinaryKind.Add } when n.Inputs.Any(i => i?.Producer?.Op is MatMul) =>
                    (Param(0) + Param(1), 0L, LayerKind.FullyConnected),
                _ => (0L, 0L, LayerKind.Other),
            };
            layers.Add(new LayerCost(n.Name, n.Op.Describe(), y, p, m, kind));
        }
        return new GraphCost(layers);
    }

    private static LayerKind ConvKind(int groups, int inChannels, bool unitKernel) =>
        groups > 1 && groups == inChannels ? LayerKind.Depthwise
        : unitKernel && groups == 1 ? LayerKind.Pointwise
        : LayerKind.StandardConv;

    private static long MatMulInner(Node n) => n.Input(0).Shape[^1];
}
