using MobileNetSharp.Graph;

namespace MobileNetSharp.Passes;

/// <summary>Drops Identity nodes (ONNX Identity, Dropout at inference) by rewiring their readers.</summary>
public static class RemoveIdentity
{
    public static int Run(ModelGraph g)
    {
        int removed = 0;
        foreach (var n in g.Nodes.ToList())
        {
            if (n.Op is not Identity) continue;
            var src = n.Input(0);
            // An identity from a graph input to a graph output must stay: the output needs its own name.
            if (g.Outputs.Contains(n.Output) && (g.Inputs.Contains(src) || g.Outputs.Contains(src) || src.IsConstant)) continue;
            g.Nodes.Remove(n);
            GraphRewriter.ReplaceUses(g, n.Output, src);
            removed++;
        }
        return removed;
    }
}
