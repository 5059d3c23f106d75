using MobileNetSharp.Graph;

namespace MobileNetSharp.Passes;

/// <summary>
/// Moves an activation into the epilogue of the op that produces its input (any op whose
/// <see cref="Op.WithActivation(Node, Activation)"/> accepts it: Conv, Gemm, a 2-D MatMul by constant weights, binary ops), so the
/// values are transformed while still in registers instead of in another pass over memory.
/// </summary>
public static class FuseActivation
{
    public static int Run(ModelGraph g) => Run(g, (_, _) => true);

    /// <summary>As <see cref="Run(ModelGraph)"/>, fusing only where <paramref name="accept"/>(producer, activation) says so (training fuses fewer).</summary>
    public static int Run(ModelGraph g, Func<Node, Activation, bool> accept)
    {
        int fused = 0;
        var consumers = g.Consumers();
        foreach (var act in g.Nodes.ToList())
        {
            if (act.Op is not ActivationOp a || act.Input(0).Producer is not { } producer) continue;
            if (!GraphRewriter.HasSingleInternalUse(g, consumers, producer.Output) || producer.Outputs.Length != 1) continue;
            if (ActivationOp.HasRuntimeBounds(act) || !accept(producer, a.Activation)) continue;
            if (producer.Op.WithActivation(producer, a.Activation) is not { } merged) continue;
            GraphRewriter.Rebuild(g, producer, merged, producer.Inputs, act.Output);
            g.Nodes.Remove(act);
            consumers = g.Consumers();
            fused++;
        }
        return fused;
    }
}
