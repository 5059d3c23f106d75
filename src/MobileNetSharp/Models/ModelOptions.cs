namespace MobileNetSharp.Models;

/// <summary>
/// The knobs every architecture takes. Width scales channel counts (alpha), Resolution is the square
/// input size (null: the architecture's own default), Seed fixes the untrained weights.
/// </summary>
public sealed record ModelOptions(float Width = 1f, int? Resolution = null, int Classes = 1000, int Batch = 1, int Seed = 0)
{
    /// <summary>Every MobileNet downsamples by 32; smaller inputs cannot pass through the network.</summary>
    public const int MinResolution = 32;
    public const int MaxResolution = 4096;

    internal int Validate(string arch, int defaultResolution)
    {
        if (!(Width > 0f) || float.IsInfinity(Width) || Width > 8f)
            throw new ArgumentException($"{arch}: width multiplier must be in (0, 8], got {Width}.");
        int r = Resolution ?? defaultResolution;
        if (r < MinResolution || r > MaxResolution)
            throw new ArgumentException($"{arch}: resolution must be between {MinResolution} and {MaxResolution} (the network downsamples by 32), got {r}.");
        if (Classes < 1 || Classes > 1_000_000) throw new ArgumentException($"{arch}: classes must be between 1 and 1000000, got {Classes}.");
        if (Batch < 1 || Batch > 65536) throw new ArgumentException($"{arch}: batch must be between 1 and 65536, got {Batch}.");
        return r;
    }

    /// <summary>Records the architecture and these options in the graph's metadata (kept by ONNX export).</summary>
    internal Graph.ModelGraph Describe(Graph.ModelGraph g, int resolution)
    {
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        g.Metadata["architecture"] = g.Name;
        g.Metadata["width"] = Width.ToString(inv);
        g.Metadata["resolution"] = resolution.ToString(inv);
        g.Metadata["classes"] = Classes.ToString(inv);
        g.Metadata["seed"] = Seed.ToString(inv);
        return g;
    }
}
