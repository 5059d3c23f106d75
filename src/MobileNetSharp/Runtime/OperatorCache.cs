using MobileNetSharp.Kernels;

namespace MobileNetSharp.Runtime;

/// <summary>
/// Operators own packed weights, which are costly to build; plans for other batch sizes of the same
/// session reuse them. Keyed by node name, geometry (without batch) and the identity of the weights.
/// </summary>
internal sealed class OperatorCache
{
    private readonly Dictionary<(string, Conv2dGeometry, float[], Activation), Conv2dOperator> _conv = [];
    private readonly Dictionary<(string, int, int, float[], Activation), FullyConnectedOperator> _fc = [];

    public Conv2dOperator Conv(string node, Conv2dGeometry g, float[] weights, float[] bias, Activation act, IsaLevel? isa)
    {
        var key = (node, g with { Batch = 1 }, weights, act);
        if (!_conv.TryGetValue(key, out var op)) _conv[key] = op = new Conv2dOperator(g, weights, bias, act, isa);
        return op;
    }

    public FullyConnectedOperator FullyConnected(string node, int inF, int outF, float[] weights, float[] bias, Activation act, IsaLevel? isa)
    {
        var key = (node, inF, outF, weights, act);
        if (!_fc.TryGetValue(key, out var op)) _fc[key] = op = new FullyConnectedOperator(inF, outF, weights, bias, act, isa);
        return op;
    }
}
