using MobileNetSharp.Graph;
using MobileNetSharp.Onnx.Proto;

namespace MobileNetSharp.Onnx.Import;

/// <summary>
/// Reads tensors stored outside the .onnx file. Locations are confined to the model's folder: absolute
/// paths, ".." segments and symbolic links that lead outside it are refused, so a hostile model cannot
/// read arbitrary files.
/// </summary>
internal sealed class ExternalDataSource
{
    private const int MaxLinkHops = 40;
    private readonly string _directory;
    private string? _root;

    public ExternalDataSource(string directory) => _directory = directory;

    /// <summary>The folder with its links resolved, computed when the first external tensor is read.</summary>
    private string Root
    {
        get
        {
            try { return _root ??= RealPath(_directory, 0); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
            {
                throw new ModelFormatException($"External-data folder '{_directory}' cannot be resolved: {e.Message}", e);
            }
        }
    }

    /// <summary>Exactly <paramref name="byteCount"/> bytes for the tensor, checked against the file before allocating.</summary>
    public byte[] Read(TensorProto t, long byteCount, string what)
    {
        string? location = null;
        long offset = 0, length = -1;
        foreach (var e in t.ExternalData)
        {
            switch (e.Key)
            {
                case "location": location = e.Value; break;
                case "offset": offset = ParseNumber(e.Value, "offset", what); break;
                case "length": length = ParseNumber(e.Value, "length", what); break;
            }
        }
        if (string.IsNullOrEmpty(location)) throw new ModelFormatException($"{what} is stored externally but has no location.");
        if (length >= 0 && length != byteCount)
            throw new ModelFormatException($"{what}: external data length {length} differs from the {byteCount} bytes its shape needs.");
        if (byteCount > Array.MaxLength) throw new ModelFormatException($"{what} needs {byteCount} bytes, more than one array can hold.");

        string path = Confine(location, what);
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            if (offset > stream.Length || byteCount > stream.Length - offset)
                throw new ModelFormatException($"{what}: external file '{location}' has {stream.Length} bytes, but the tensor needs {byteCount} bytes at offset {offset}.");
            var data = new byte[byteCount];
            stream.Position = offset;
            stream.ReadExactly(data);
            return data;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException($"{what}: cannot read external file '{location}': {e.Message}", e);
        }
    }

    private string Confine(string location, string what)
    {
        if (location.Contains('\0') || Path.IsPathRooted(location) || location.Split('/', '\\').Contains(".."))
            throw new ModelFormatException($"{what}: external data location '{location}' must be a relative path inside the model's folder.");
        string root = Root, resolved;
        try { resolved = RealPath(Path.Combine(root, location), 0); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new ModelFormatException($"{what}: external data location '{location}' cannot be resolved: {e.Message}", e);
        }
        if (!resolved.StartsWith(root.EndsWith(Path.DirectorySeparatorChar) ? root : root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new ModelFormatException($"{what}: external data location '{location}' leads outside the model's folder.");
        return resolved;
    }

    private static long ParseNumber(string text, string key, string what) =>
        long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long v)
            ? v : throw new ModelFormatException($"{what}: external data {key} '{text}' is not a non-negative integer.");

    /// <summary>The path with every symbolic link resolved, component by component (what realpath(3) does).</summary>
    private static string RealPath(string path, int hops)
    {
        string full = Path.GetFullPath(path);
        string root = Path.GetPathRoot(full) ?? "/";
        string current = root;
        foreach (var part in full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            string next = Path.Combine(current, part);
            var info = new FileInfo(next);
            if (info.LinkTarget is null) { current = next; continue; }
            if (++hops > MaxLinkHops) throw new IOException($"Too many symbolic links resolving '{path}'.");
            var target = info.ResolveLinkTarget(returnFinalTarget: false)!;
            current = RealPath(target.FullName, hops);
        }
        return current;
    }
}
