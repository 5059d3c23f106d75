using System.Globalization;
using System.Text.Json;
using MobileNetSharp.Graph;

namespace MobileNetSharp.Models;

/// <summary>
/// What a user of a classifier needs besides the graph: its labels and how to feed it. Stored in the model's
/// metadata (ONNX <c>metadata_props</c>) under <c>mnet.*</c> keys, so a model we export carries them to any runtime.
/// </summary>
/// <param name="Labels">Class names, index = output position.</param>
/// <param name="Channels">Input channels: 1 (grey) or 3 (RGB order).</param>
/// <param name="Resolution">Square input size in pixels.</param>
/// <param name="Mean">Per-channel mean subtracted from pixels scaled to [0, 1].</param>
/// <param name="Std">Per-channel standard deviation divided by.</param>
/// <param name="NormalizationInGraph">True when the graph itself normalizes (feed pixels in [0, 1]); false when the caller must.</param>
public sealed record ClassifierInfo(IReadOnlyList<string> Labels, int Channels, int Resolution, float[] Mean, float[] Std, bool NormalizationInGraph)
{
    private const string Prefix = "mnet.";

    /// <summary>Writes the metadata keys: mnet.labels (JSON array), mnet.input (layout, channels, size, range, mean, std, where normalized).</summary>
    public void WriteTo(ModelGraph g)
    {
        var inv = CultureInfo.InvariantCulture;
        g.Metadata[Prefix + "labels"] = JsonSerializer.Serialize(Labels);
        g.Metadata[Prefix + "input.layout"] = "NCHW";
        g.Metadata[Prefix + "input.channels"] = Channels == 1 ? "gray" : "RGB";
        g.Metadata[Prefix + "input.size"] = Resolution.ToString(inv);
        g.Metadata[Prefix + "input.range"] = "0,1";
        g.Metadata[Prefix + "input.mean"] = string.Join(",", Mean.Select(v => v.ToString("R", inv)));
        g.Metadata[Prefix + "input.std"] = string.Join(",", Std.Select(v => v.ToString("R", inv)));
        g.Metadata[Prefix + "input.normalization"] = NormalizationInGraph ? "in-graph" : "caller";
    }

    /// <summary>The info stored in <paramref name="g"/>, or null when it has none (a model from elsewhere).</summary>
    /// <exception cref="FormatException">The keys are present but malformed.</exception>
    public static ClassifierInfo? ReadFrom(ModelGraph g)
    {
        if (!g.Metadata.TryGetValue(Prefix + "labels", out var labels)) return null;
        var inv = CultureInfo.InvariantCulture;
        string Get(string key) => g.Metadata.TryGetValue(Prefix + key, out var v) ? v : throw new FormatException($"The model's metadata has mnet.labels but no mnet.{key}.");
        float[] Floats(string key) => Get(key).Split(',').Select(s => float.Parse(s, NumberStyles.Float, inv)).ToArray();
        try
        {
            var names = JsonSerializer.Deserialize<string[]>(labels) ?? throw new FormatException("mnet.labels is null.");
            return new ClassifierInfo(names, Get("input.channels") == "gray" ? 1 : 3, int.Parse(Get("input.size"), inv), Floats("input.mean"), Floats("input.std"),
                Get("input.normalization") == "in-graph");
        }
        catch (JsonException e) { throw new FormatException($"The model's mnet.labels is not a JSON array of strings: {e.Message}", e); }
    }
}

/// <summary>Normalization as the first layers of a graph, so the model takes raw pixels in [0, 1].</summary>
public static class InputNormalization
{
    /// <summary>
    /// Inserts y = (x - mean) / std per channel (ONNX Sub then Div by [1, C, 1, 1] constants) between input 0 and
    /// its readers. Not trained (constants the trainer does not count as parameters).
    /// </summary>
    public static void Prepend(ModelGraph g, float[] mean, float[] std)
    {
        var x = g.Inputs[0];
        int c = x.Shape[1];
        if (mean.Length != c || std.Length != c) throw new ArgumentException($"mean and std need {c} values (one per channel), got {mean.Length} and {std.Length}.");
        if (std.Any(s => !(s > 0))) throw new ArgumentException("std must be positive.");
        var meanV = Value.FromConstant("normalize.mean", new Tensors.Tensor((float[])mean.Clone(), 1, c, 1, 1));
        var stdV = Value.FromConstant("normalize.std", new Tensors.Tensor((float[])std.Clone(), 1, c, 1, 1));
        var centered = new Value("normalize.centered", x.DataType, x.Shape);
        var normalized = new Value("normalize.output", x.DataType, x.Shape);
        var readers = g.Nodes.ToList();
        foreach (var n in readers)
            for (int i = 0; i < n.Inputs.Length; i++)
                if (n.Inputs[i] == x) n.Inputs[i] = normalized;
        for (int i = 0; i < g.Outputs.Count; i++) if (g.Outputs[i] == x) g.Outputs[i] = normalized;
        g.Nodes.Insert(0, new Node("normalize.div", new BinaryOp(BinaryKind.Div), [centered, stdV], [normalized]));
        g.Nodes.Insert(0, new Node("normalize.sub", new BinaryOp(BinaryKind.Sub), [x, meanV], [centered]));
        g.InferShapes();
    }
}
