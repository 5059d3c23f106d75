using System.Reflection;
using MobileNetSharp.Graph;

namespace MobileNetSharp.Runtime;

/// <summary>
/// Model file formats the session can open by path (<see cref="InferenceSession(string, SessionOptions?)"/>).
/// The core knows no file format; each format's assembly provides a loader. Loaders register themselves
/// (<see cref="Register"/>), and the known format assemblies that are deployed beside the application
/// (MobileNetSharp.Onnx for ".onnx", MobileNetSharp.TfLite for ".tflite") are found by name on first use,
/// so referencing the package is enough.
/// </summary>
public static class ModelLoaders
{
    private static readonly Dictionary<string, Func<string, ModelGraph>> Loaders = new(StringComparer.OrdinalIgnoreCase);
    private static readonly (string Extension, string Assembly, string Type, string Method)[] Known =
    [
        (".onnx", "MobileNetSharp.Onnx", "MobileNetSharp.Onnx.OnnxImporter", "Load"),
        (".tflite", "MobileNetSharp.TfLite", "MobileNetSharp.TfLite.TfLiteImporter", "Load"),
    ];

    /// <summary>Registers (or replaces) the loader for files ending in <paramref name="extension"/> (e.g. ".onnx").</summary>
    public static void Register(string extension, Func<string, ModelGraph> load)
    {
        lock (Loaders) Loaders[extension] = load;
    }

    /// <summary>Loads a model file with the loader for its extension.</summary>
    /// <exception cref="ModelFormatException">No loader knows the extension, or the file is unreadable.</exception>
    public static ModelGraph Load(string path)
    {
        KernelWarmup.Start(); // compile the kernels on a spare core while the file loads
        string ext = Path.GetExtension(path);
        Func<string, ModelGraph>? load;
        lock (Loaders)
            if (!Loaders.TryGetValue(ext, out load) && Find(ext) is { } found) Loaders[ext] = load = found;
        if (load is null)
            throw new ModelFormatException($"No loader for '{ext}' files ({path}). Known: {string.Join(", ", Known.Select(k => k.Extension))}; " +
                "reference the package that reads the format (e.g. MobileNetSharp.Onnx) or call ModelLoaders.Register.");
        return load(path);
    }

    private static Func<string, ModelGraph>? Find(string ext)
    {
        foreach (var (extension, assembly, type, method) in Known)
        {
            if (!extension.Equals(ext, StringComparison.OrdinalIgnoreCase)) continue;
            Assembly a;
            try { a = Assembly.Load(assembly); }
            catch (IOException) { return null; } // not deployed
            var m = a.GetType(type)?.GetMethod(method, BindingFlags.Public | BindingFlags.Static, [typeof(string)]);
            if (m is null || m.ReturnType != typeof(ModelGraph)) return null;
            return m.CreateDelegate<Func<string, ModelGraph>>();
        }
        return null;
    }
}
