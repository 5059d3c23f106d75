using MobileNetSharp.Graph;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Quantization;

/// <summary>
/// Runs a float graph over calibration batches with the tensors to be quantized exposed as extra outputs, and
/// feeds each to its <see cref="RangeObserver"/>. The same engine as inference (one session, the graph's own
/// kernels), so the ranges are those the deployed model will see.
/// </summary>
internal static class Calibrator
{
    /// <param name="graph">The prepared float graph (see <see cref="PostTrainingQuantizer.Prepare"/>).</param>
    /// <param name="tensors">Names of the values to observe.</param>
    /// <param name="batches">Makes the calibration batches; enumerated once per pass (two for histogram methods).</param>
    /// <param name="progress">(pass, images done); called after each batch.</param>
    /// <returns>The observers by tensor name, and the images seen in one pass.</returns>
    public static (Dictionary<string, RangeObserver> Observers, int Images) Run(ModelGraph graph, IReadOnlyList<string> tensors, Func<IEnumerable<Tensor>> batches,
        bool histograms, int threads, Action<int, int>? progress, CancellationToken cancellation)
    {
        var probe = WithOutputs(graph, tensors);
        var observers = tensors.ToDictionary(t => t, _ => new RangeObserver(), StringComparer.Ordinal);
        using var session = new InferenceSession(probe, new SessionOptions { Threads = threads, Optimize = false });
        int first = probe.Outputs.Count - tensors.Count, seen = 0;
        for (int pass = 1; pass <= (histograms ? 2 : 1); pass++)
        {
            int images = 0;
            foreach (var batch in batches())
            {
                cancellation.ThrowIfCancellationRequested();
                var outputs = session.Run(batch);
                for (int i = 0; i < tensors.Count; i++)
                {
                    var o = observers[tensors[i]];
                    if (pass == 1) o.ObserveRange(outputs[first + i].Floats);
                    else o.ObserveHistogram(outputs[first + i].Floats);
                }
                images += batch.Shape.Length > 0 ? batch.Shape[0] : 1;
                progress?.Invoke(pass, images);
            }
            if (images == 0) throw new ArgumentException("the calibration data holds no images.");
            seen = images;
        }
        return (observers, seen);
    }

    /// <summary>A copy of <paramref name="graph"/> whose outputs are its own followed by <paramref name="tensors"/>.</summary>
    internal static ModelGraph WithOutputs(ModelGraph graph, IReadOnlyList<string> tensors)
    {
        var g = graph.Clone();
        var byName = Values(g);
        foreach (var t in tensors)
            g.Outputs.Add(byName.TryGetValue(t, out var v) ? v : throw new ArgumentException($"the graph has no tensor named '{t}'."));
        return g;
    }

    /// <summary>Every value of the graph by name (inputs, node outputs, constants read by nodes).</summary>
    internal static Dictionary<string, Value> Values(ModelGraph g)
    {
        var map = new Dictionary<string, Value>(StringComparer.Ordinal);
        foreach (var v in g.Inputs) map.TryAdd(v.Name, v);
        foreach (var n in g.Nodes)
        {
            foreach (var i in n.Inputs) if (i is not null) map.TryAdd(i.Name, i);
            foreach (var o in n.Outputs) map.TryAdd(o.Name, o);
        }
        return map;
    }
}
