using MobileNetSharp.Graph;

namespace MobileNetSharp.Cli.Commands;

/// <summary>Turns a command-line model argument into a graph: an architecture name or a model file.</summary>
internal static class ModelSource
{
    public static ModelGraph Load(string model, float width, int? resolution, int classes, int batch = 1)
    {
        if (model.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase))
        {
            if (width != 1f || resolution is not null || classes != 1000)
                throw new ArgumentException("--width, --resolution and --classes apply to architectures; an .onnx model has its own.");
            if (!File.Exists(model)) throw new FileNotFoundException($"No such model file: {model}");
            return Onnx.OnnxImporter.Load(model, new Onnx.OnnxImportOptions { DefaultBatch = batch });
        }
        return Cli.Build(model, width, resolution, classes, batch);
    }

}
