using MobileNetSharp.Graph;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Onnx.Import;

/// <summary>
/// Keeps a symbolic batch symbolic: an input whose leading dimension took the default batch gets its name
/// in <see cref="Value.DimParams"/>, and so does every output that scales with it, so that an exporter
/// writes them as dim_param again. Only when the graph as imported really works at any batch: nothing
/// computed at load time read the batch (a folded Shape chain bakes it into constants, e.g. a Reshape to
/// [1,-1]), and shape inference at another batch scales the leading dimension of every value and changes
/// nothing else. Otherwise the batch stays fixed at the size imported, as every other dimension.
/// </summary>
internal static class SymbolicBatch
{
    public static void Mark(ModelGraph graph, IReadOnlyList<(Value Input, string Param)> defaulted, int batch, bool batchFoldedAtLoadTime)
    {
        if (defaulted.Count == 0 || batchFoldedAtLoadTime) return;
        // They were given one size together; they stay one dimension, under the file's name for it.
        string name = defaulted.Select(d => d.Param).FirstOrDefault(p => p.Length > 0) ?? "batch";
        int probe = batch == 2 ? 3 : 2;
        var indices = defaulted.Select(d => graph.Inputs.IndexOf(d.Input)).ToArray();
        var copy = graph.Clone();
        foreach (int i in indices) copy.Inputs[i].Shape[0] = probe;
        // Any failure at the other batch only means the batch stays fixed, as it was before this check.
        try { copy.InferShapes(); }
        catch (Exception e) when (e is not OutOfMemoryException) { return; }

        bool Scaled(int[] was, int[] now) => was.Length == now.Length && was.Length > 0 && was[0] == batch && now[0] == probe
            && was.AsSpan(1).SequenceEqual(now.AsSpan(1));
        for (int n = 0; n < graph.Nodes.Count; n++)
            for (int j = 0; j < graph.Nodes[n].Outputs.Length; j++)
            {
                int[] was = graph.Nodes[n].Outputs[j].Shape, now = copy.Nodes[n].Outputs[j].Shape;
                if (!Shape.Equal(was, now) && !Scaled(was, now)) return;
            }

        string?[] Leading(int rank)
        {
            var p = new string?[rank];
            p[0] = name;
            return p;
        }
        foreach (int i in indices) graph.Inputs[i].DimParams = Leading(graph.Inputs[i].Rank);
        for (int k = 0; k < graph.Outputs.Count; k++)
            if (!Shape.Equal(graph.Outputs[k].Shape, copy.Outputs[k].Shape))
                graph.Outputs[k].DimParams = Leading(graph.Outputs[k].Rank);
    }
}
