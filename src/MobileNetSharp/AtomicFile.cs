namespace MobileNetSharp;

/// <summary>
/// Writes a file so that readers (and a crash) see either the old file or the complete new one, never a half-written
/// one: the content goes to a temporary file beside the target, is flushed to disk, and is renamed over the target
/// (an atomic replace on POSIX file systems). The temporary file is removed when writing fails.
/// </summary>
public static class AtomicFile
{
    /// <summary>Writes through a stream that is flushed to disk before the rename.</summary>
    public static void Write(string path, Action<Stream> write) => Replace(path, tmp =>
    {
        using var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None);
        write(fs);
        fs.Flush(flushToDisk: true);
    });

    /// <summary>For writers that take a path (image libraries): <paramref name="writeTo"/> writes the temporary path given.</summary>
    public static void Replace(string path, Action<string> writeTo)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        // Same folder (a rename never crosses file systems), same extension (writers that pick a format by it).
        var tmp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileNameWithoutExtension(full)}.tmp-{Environment.ProcessId}{Path.GetExtension(full)}");
        try
        {
            writeTo(tmp);
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }
}
