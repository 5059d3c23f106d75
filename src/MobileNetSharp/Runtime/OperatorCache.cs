using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Runtime;

/// <summary>
/// Operators own packed weights, which are costly to build; plans for other batch sizes of the same
/// session reuse them. Keys hold the source constant arrays by reference (plans for new batch sizes are
/// compiled from the same optimized graph, so they see the same arrays) plus everything else the packed
/// form depends on, so two nodes get one operator only when it computes exactly what each needs.
/// </summary>
internal sealed class OperatorCache
{
    private readonly Dictionary<object, object> _operators = [];

    public int Count => _operators.Count;

    /// <summary>
    /// The convolution for one geometry. The weights are packed once per (weights, kernel geometry) and shared
    /// by the operators of every input size: a plan for another H x W gets a resized view, not a re-pack.
    /// </summary>
    public Conv2dOperator Conv(Conv2dGeometry g, float[] weights, float[] bias, Activation act, IsaLevel? isa)
    {
        var exact = g with { Batch = 1 };
        var packed = GetOrAdd((exact with { InH = 0, InW = 0 }, weights, bias, act, isa), () => new Conv2dOperator(g, weights, bias, act, isa));
        // The view is cheap (a few size-dependent tables) and not cached: the plans that use it own it.
        return packed.Geometry == exact ? packed : packed.Resized(exact);
    }

    /// <summary>A fully connected operator built from source constants by <paramref name="create"/> on a miss.</summary>
    public FullyConnectedOperator FullyConnected(object key, Func<FullyConnectedOperator> create) => GetOrAdd(key, create);

    private T GetOrAdd<T>(object key, Func<T> create) where T : class
    {
        if (!_operators.TryGetValue(key, out var op)) _operators[key] = op = create();
        return (T)op;
    }
}
