using System.Runtime.InteropServices;
using MobileNetSharp.Graph;
using MobileNetSharp.Onnx.Proto;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Onnx.Import;

/// <summary>
/// Reads tensors stored outside the .onnx file. Locations are confined to the model's folder: absolute
/// paths, ".." segments and symbolic links that lead outside it are refused, so a hostile model cannot
/// read arbitrary files. Reads are bounded as a whole, not per tensor: tensors naming the same bytes
/// (file, offset, length, type) share one array; the distinct ranges read from a file may not add up to
/// more than the file holds; and all external bytes together stay within
/// <see cref="OnnxImportOptions.MaxExternalBytes"/>. Only regular files are read.
/// </summary>
internal sealed class ExternalDataSource
{
    /// <summary>Symbolic links followed for one path, in total (as the kernel's ELOOP limit).</summary>
    internal const int MaxLinkHops = 40;

    private readonly string _directory;
    private readonly long _maxBytes;
    private string? _root;
    private long _totalBytes;
    private readonly Dictionary<string, string> _confined = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _realLinks = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Path, long Offset, long Length, DataType Type), Array> _cache = [];
    private readonly Dictionary<string, long> _bytesPerFile = new(StringComparer.Ordinal);

    public ExternalDataSource(string directory, long maxBytes = 4L << 30)
    {
        _directory = directory;
        _maxBytes = maxBytes;
    }

    /// <summary>The folder with its links resolved, computed when the first external tensor is read.</summary>
    private string Root
    {
        get
        {
            try { return _root ??= RealPath(_directory); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
            {
                throw new ModelFormatException($"External-data folder '{_directory}' cannot be resolved: {e.Message}", e);
            }
        }
    }

    /// <summary>
    /// The <paramref name="count"/> elements of the tensor, checked against the file and the budgets before
    /// allocating. The array may be shared with other tensors that name the same bytes; callers must not write to it.
    /// </summary>
    public Array Read(TensorProto t, DataType type, int count, string what)
    {
        long byteCount = (long)count * type.SizeOf();
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
        var key = (path, offset, byteCount, type);
        if (_cache.TryGetValue(key, out var shared)) return shared;

        // Stat before opening: a FIFO would block the open, and devices report no length. Only a regular
        // file holding the bytes is opened.
        var info = new FileInfo(path);
        if (!info.Exists)
            throw new ModelFormatException($"{what}: cannot read external file '{location}': " + (Directory.Exists(path) ? "it is a directory." : "it does not exist."));
        long fileLength = info.Length;
        if (offset > fileLength || byteCount > fileLength - offset)
            throw new ModelFormatException($"{what}: external file '{location}' has {fileLength} bytes, but the tensor needs {byteCount} bytes at offset {offset}.");
        long fromFile = _bytesPerFile.GetValueOrDefault(path);
        if (byteCount > fileLength - fromFile)
            throw new ModelFormatException($"{what}: the external tensors read from '{location}' would add up to {fromFile + byteCount} bytes, "
                + $"more than the file's {fileLength}; tensors must not overlap.");
        if (byteCount > _maxBytes - _totalBytes)
            throw new ModelFormatException($"{what}: external data would add up to {_totalBytes + byteCount} bytes, "
                + $"more than the limit of {_maxBytes} (OnnxImportOptions.MaxExternalBytes).");

        Array data;
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            if (!stream.CanSeek || stream.Length != fileLength)
                throw new ModelFormatException($"{what}: external data location '{location}' is not a regular file (or changed while being read).");
            stream.Position = offset;
            data = ReadElements(stream, type, count);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException($"{what}: cannot read external file '{location}': {e.Message}", e);
        }
        _bytesPerFile[path] = fromFile + byteCount;
        _totalBytes += byteCount;
        return _cache[key] = data;
    }

    /// <summary>Reads straight into the typed array (no intermediate byte copy), little-endian as ONNX stores it.</summary>
    private static Array ReadElements(FileStream stream, DataType type, int count)
    {
        switch (type)
        {
            case DataType.Float32: return ReadTyped<float>(stream, count);
            case DataType.Int32: return ReadTyped<int>(stream, count);
            case DataType.Int64: return ReadTyped<long>(stream, count);
            case DataType.UInt8: return ReadTyped<byte>(stream, count);
            case DataType.Int8: return ReadTyped<sbyte>(stream, count);
            case DataType.Bool:
            {
                var bytes = ReadTyped<byte>(stream, count);
                var b = new bool[count];
                for (int i = 0; i < count; i++) b[i] = bytes[i] != 0;
                return b;
            }
            default: throw new ModelFormatException($"Element type {type} cannot be read from external data.");
        }
    }

    private static T[] ReadTyped<T>(FileStream stream, int count) where T : unmanaged
    {
        var a = new T[count];
        var bytes = MemoryMarshal.AsBytes(a.AsSpan());
        stream.ReadExactly(bytes);
        if (!BitConverter.IsLittleEndian) TensorReader.SwapEach<T>(bytes);
        return a;
    }

    private string Confine(string location, string what)
    {
        if (_confined.TryGetValue(location, out var known)) return known;
        if (location.Contains('\0') || Path.IsPathRooted(location) || location.Split('/', '\\').Contains(".."))
            throw new ModelFormatException($"{what}: external data location '{location}' must be a relative path inside the model's folder.");
        string root = Root, resolved;
        try { resolved = RealPath(Path.Combine(root, location)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new ModelFormatException($"{what}: external data location '{location}' cannot be resolved: {e.Message}", e);
        }
        if (!resolved.StartsWith(root.EndsWith(Path.DirectorySeparatorChar) ? root : root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new ModelFormatException($"{what}: external data location '{location}' leads outside the model's folder.");
        return _confined[location] = resolved;
    }

    private static long ParseNumber(string text, string key, string what) =>
        long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long v)
            ? v : throw new ModelFormatException($"{what}: external data {key} '{text}' is not a non-negative integer.");

    /// <summary>
    /// The path with every symbolic link resolved, component by component (what realpath(3) does). One
    /// hop counter serves the whole resolution, and each link's resolution is remembered for the import,
    /// so links that refer to each other several times cost one resolution each, not one per path through them.
    /// </summary>
    private string RealPath(string path)
    {
        int hops = 0;
        return RealPath(path, path, ref hops);
    }

    private string RealPath(string path, string original, ref int hops)
    {
        string full = Path.GetFullPath(path);
        string root = Path.GetPathRoot(full) ?? "/";
        string current = root;
        foreach (var part in full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            string next = Path.Combine(current, part);
            if (_realLinks.TryGetValue(next, out var known)) { current = known; continue; }
            var info = new FileInfo(next);
            if (info.LinkTarget is null) { current = next; continue; }
            if (++hops > MaxLinkHops) throw new IOException($"Too many symbolic links (more than {MaxLinkHops}) resolving '{original}'.");
            var target = info.ResolveLinkTarget(returnFinalTarget: false)!;
            current = _realLinks[next] = RealPath(target.FullName, original, ref hops);
        }
        return current;
    }
}
