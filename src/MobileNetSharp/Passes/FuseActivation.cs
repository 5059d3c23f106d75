using MobileNetSharp.Graph;

namespace MobileNetSharp.Passes;

/// <summary>
/// Moves an activation into the epilogue of the Conv, Gemm (or 2-D MatMul) or binary op that produces its input, so the
/// values are transformed while still in registers instead of in another pass over memory.
/// </summary>
public static class FuseActivation
{
    public static int Run(ModelGraph g)
    {
        int fused = 0;
        var consumers = g.Consumers();
        foreach (var act in g.Nodes.ToList())
        {
            if (act.Op is not ActivationOp a || act.Input(0).Producer is not { } producer) continue;
            if (!GraphRewriter.HasSingleInternalUse(g, consumers, producer.Output) || producer.Outputs.Length != 1) continue;
            Op? merged = producer.Op switch
            {
                Conv c when c.Activation.IsNone => c with { Activation = a.Activation },
                ConvNd c when c.Activation.IsNone => c with { Activation = a.Activation },
                Gemm m when m.Activation.IsNone => m with { Activation = a.Activation },
                // A 2-D MatMul by constant weights (a bias-free Linear, e.g. in squeeze-excite) is a Gemm, which has an epilogue.
                MatMul when producer.Input(0).Rank == 2 && producer.Input(1) is { IsConstant: true, Rank: 2 } => new Gemm(Activation: a.Activation),
                BinaryOp b when b.Activation.IsNone => b with { Activation = a.Activation },
                _ => null,
            };
            if (merged is null) continue;
            GraphRewriter.Rebuild(g, producer, merged, producer.Inputs, act.Output);
            g.Nodes.Remove(act);
            consumers = g.Consumers();
            fused++;
        }
        return fused;
    }
}
