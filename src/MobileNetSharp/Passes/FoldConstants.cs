using MobileNetSharp.Graph;

namespace MobileNetSharp.Passes;

/// <summary>
/// Evaluates, once, every node whose inputs are all constants (its <see cref="Op.Fold"/>), as the ONNX importer
/// does while it reads a file. Graphs built in memory need it when they carry load-time arithmetic, such as a
/// quantized model's DequantizeLinear of int8 weights: folded, the convolution sees float weights it can pack.
/// </summary>
public static class FoldConstants
{
    /// <returns>The number of nodes folded away.</returns>
    public static int Run(ModelGraph g)
    {
        int folded = 0;
        foreach (var n in g.Nodes.ToList())
        {
            if (!n.Inputs.All(i => i is null || i.IsConstant) || n.Op.Fold(n) is not { } results) continue;
            for (int i = 0; i < n.Outputs.Length; i++)
            {
                var constant = Value.FromConstant(n.Outputs[i].Name, results[i]);
                GraphRewriter.ReplaceUses(g, n.Outputs[i], constant);
            }
            g.Nodes.Remove(n);
            folded++;
        }
        return folded;
    }
}
