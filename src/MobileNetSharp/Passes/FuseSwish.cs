using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Passes;

/// <summary>
/// Recognizes x * HardSigmoid(x) as HardSwish and x * Sigmoid(x) as SiLU: exporters (PyTorch at opset
/// &lt; 14, tf2onnx) spell them out, which leaves the conv producing x with two readers, so nothing fuses and
/// every such layer costs two extra passes over memory. As one activation it folds into the conv epilogue.
/// </summary>
public static class FuseSwish
{
    public static int Run(ModelGraph g)
    {
        int fused = 0;
        var consumers = g.Consumers();
        foreach (var mul in g.Nodes.ToList())
        {
            if (mul.Op is not BinaryOp { Kind: BinaryKind.Mul, Activation.IsNone: true }) continue;
            for (int side = 0; side < 2; side++)
            {
                var x = mul.Input(side);
                var gated = mul.Input(1 - side);
                if (gated.Producer is not { Op: ActivationOp gate } gateNode || gateNode.Input(0) != x) continue;
                if (!GraphRewriter.HasSingleInternalUse(g, consumers, gated)) continue;
                Activation? swish = gate.Activation.Kind switch
                {
                    ActivationKind.HardSigmoid => new Activation(ActivationKind.HardSwish, gate.Activation.Alpha, gate.Activation.Beta),
                    ActivationKind.Sigmoid => Activation.Silu,
                    _ => null,
                };
                if (swish is null) continue;
                GraphRewriter.Rebuild(g, mul, new ActivationOp(swish.Value), [x], mul.Output);
                g.Nodes.Remove(gateNode);
                consumers = g.Consumers();
                fused++;
                break;
            }
        }
        return fused;
    }
}
