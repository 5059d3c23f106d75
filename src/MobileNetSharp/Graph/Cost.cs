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
            var cost = n.Op.Cost(n);
            long p = 0;
            foreach (int i in cost.ParameterInputs)
                if (n.OptionalInput(i) is { IsConstant: true } v && seen.Add(v)) p += v.Length;
            layers.Add(new LayerCost(n.Name, n.Op.Describe(), n.Output.Shape, p, cost.Macs, cost.Kind));
        }
        return new GraphCost(layers);
    }

    /// <summary>The family of a convolution: depthwise when every input channel is its own group, pointwise for an ungrouped 1x1.</summary>
    public static LayerKind ConvKind(int groups, int inChannels, bool unitKernel) =>
        groups > 1 && groups == inChannels ? LayerKind.Depthwise
        : unitKernel && groups == 1 ? LayerKind.Pointwise
        : LayerKind.StandardConv;
}
