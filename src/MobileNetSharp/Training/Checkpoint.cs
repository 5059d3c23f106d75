using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using MobileNetSharp.Graph;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Training;

/// <summary>
/// A training checkpoint: named float tensors (weights, running statistics, optimizer state) and a JSON document
/// (where training stands and how it was set up), in one zip file: <c>checkpoint.json</c> plus one <c>.npy</c> per
/// tensor, indexed by name in the JSON. Written to a temporary file that replaces the old one only when complete,
/// so a crash or a kill never leaves a half-written checkpoint. Reading bounds every size against the file.
/// </summary>
public sealed class Checkpoint
{
    public const string Format = "mnet-checkpoint/1";
    /// <summary>Upper bound of one checkpoint's tensors together (refuses hostile files before allocating).</summary>
    public const long MaxBytes = 4L << 30;
    private const int MaxEntries = 100_000;

    public JsonObject Meta { get; init; } = [];
    public Dictionary<string, Tensor> Tensors { get; init; } = [];

    /// <summary>Writes atomically: a temporary file beside <paramref name="path"/>, flushed to disk, then renamed over it.</summary>
    public void Save(string path)
    {
        AtomicFile.Write(path, fs =>
        {
            using var zip = new ZipArchive(fs, ZipArchiveMode.Create, leaveOpen: true);
            var index = new JsonObject();
            int i = 0;
            foreach (var (name, t) in Tensors)
            {
                string entry = $"tensors/{i++:D6}.npy";
                index[entry] = name;
                using var s = zip.CreateEntry(entry, CompressionLevel.Fastest).Open();
                Npy.Write(s, t);
            }
            var doc = new JsonObject { ["format"] = Format, ["meta"] = Meta.DeepClone(), ["tensors"] = index };
            using var js = zip.CreateEntry("checkpoint.json").Open();
            using var w = new Utf8JsonWriter(js, new JsonWriterOptions { Indented = true });
            doc.WriteTo(w);
        });
    }

    /// <summary>Reads a checkpoint. Throws <see cref="InvalidDataException"/> naming the file for anything malformed.</summary>
    public static Checkpoint Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Checkpoint '{path}' does not exist.", path);
        try
        {
            using var zip = ZipFile.OpenRead(path);
            if (zip.Entries.Count > MaxEntries) throw new InvalidDataException($"{zip.Entries.Count} entries, more than a checkpoint has.");
            var docEntry = zip.GetEntry("checkpoint.json") ?? throw new InvalidDataException("no checkpoint.json inside.");
            if (docEntry.Length > 64 << 20) throw new InvalidDataException("checkpoint.json is larger than 64 MiB.");
            JsonObject doc;
            using (var s = docEntry.Open()) doc = JsonNode.Parse(s) as JsonObject ?? throw new InvalidDataException("checkpoint.json is not an object.");
            if ((string?)doc["format"] != Format) throw new InvalidDataException($"format is '{doc["format"]}', expected '{Format}'.");
            var tensors = new Dictionary<string, Tensor>();
            long total = 0;
            foreach (var (entry, nameNode) in doc["tensors"] as JsonObject ?? throw new InvalidDataException("no tensor index."))
            {
                var e = zip.GetEntry(entry) ?? throw new InvalidDataException($"tensor entry '{entry}' is missing.");
                total += e.Length;
                if (e.Length < 0 || total > MaxBytes) throw new InvalidDataException($"tensors exceed {MaxBytes >> 30} GiB.");
                string name = (string?)nameNode ?? throw new InvalidDataException($"entry '{entry}' has no name.");
                using var s = e.Open();
                using var buffer = new MemoryStream((int)e.Length);
                s.CopyTo(buffer);
                buffer.Position = 0;
                tensors[name] = Npy.Read(buffer);
            }
            return new Checkpoint { Meta = doc["meta"] as JsonObject ?? [], Tensors = tensors };
        }
        catch (Exception e) when (e is InvalidDataException or JsonException or IOException or ArgumentException or FormatException or InvalidOperationException or ModelFormatException)
        {
            if (e is FileNotFoundException) throw;
            throw new InvalidDataException($"Checkpoint '{path}' is unreadable: {e.Message}", e);
        }
    }
}
