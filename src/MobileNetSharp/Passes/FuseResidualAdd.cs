using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Passes;

/// <summary>
/// Turns conv(x) + r into a conv with a residual input: the GEMM epilogue adds r while the tile is in
/// registers (MobileNetV2's linear bottleneck, ResNet's shortcut). The add's own activation, if fused,
/// moves to the conv, which applies it after the residual.
/// </summary>
public static class FuseResidualAdd
{
    public static int Run(ModelGraph g)
    {
        int fused = 0;
        var consumers = g.Consumers();
        foreach (var add in g.Nodes.ToList())
        {
            if (add.Op is not BinaryOp { Kind: BinaryKind.Add } b) continue;
            for (int side = 0; side < 2; side++)
            {
                var convOut = add.Input(side);
                var other = add.Input(1 - side);
                if (convOut.Producer is not { Op: Conv c } conv || !c.Activation.IsNone || conv.OptionalInput(3) is not null) continue;
                if (!GraphRewriter.HasSingleInternalUse(g, consumers, convOut)) continue;
                if (other.IsConstant || !Tensors.Shape.Equal(other.Shape, add.Output.Shape) || !Tensors.Shape.Equal(convOut.Shape, add.Output.Shape)) continue;
                var inputs = new Value?[4];
                Array.Copy(conv.Inputs, inputs, Math.Min(3, conv.Inputs.Length));
                inputs[3] = other;
                GraphRewriter.Rebuild(g, conv, c with { Activation = b.Activation }, inputs, add.Output);
                g.Nodes.Remove(add);
                consumers = g.Consumers();
                fused++;
                break;
            }
        }
        return fused;
    }
}
