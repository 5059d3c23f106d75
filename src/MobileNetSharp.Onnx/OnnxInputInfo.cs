using System.Globalization;

namespace MobileNetSharp.Onnx;

/// <summary>One dimension of a graph input as the file declares it: a size, a name (dim_param), or neither (unknown).</summary>
public readonly record struct OnnxDimension(long? Value, string? Param)
{
    public bool IsFixed => Value is not null;

    public override string ToString() => Value is { } v ? v.ToString(CultureInfo.InvariantCulture) : string.IsNullOrEmpty(Param) ? "?" : Param;
}

/// <summary>
/// A graph input that the caller feeds (one with no initializer), as the file declares it, before any
/// dimension is bound. <see cref="Dims"/> is null when the file gives no shape.
/// </summary>
public sealed record OnnxInputInfo(string Name, IReadOnlyList<OnnxDimension>? Dims)
{
    /// <summary>The dimensions for messages, e.g. <c>[N,3,H,W]</c> (a rank beyond what the engine supports as a number only).</summary>
    public string DimsText => Dims switch
    {
        null => "(no shape)",
        { Count: > Tensors.Shape.MaxRank } => $"(rank {Dims.Count})",
        _ => $"[{string.Join(",", Dims)}]",
    };

    /// <summary>E.g. <c>x [N,3,H,W]</c>.</summary>
    public override string ToString() => $"{Name} {DimsText}";
}
