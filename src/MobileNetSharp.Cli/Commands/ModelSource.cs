using MobileNetSharp.Graph;
using MobileNetSharp.Onnx;
using MobileNetSharp.TfLite;

namespace MobileNetSharp.Cli.Commands;

/// <summary>Turns a command-line model argument into a graph: an architecture name or a model file.</summary>
internal static class ModelSource
{
    public static bool IsOnnx(string model) => model.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase);
    public static bool IsTfLite(string model) => model.EndsWith(".tflite", StringComparison.OrdinalIgnoreCase);

    /// <summary>A .tflite model: its shapes are fixed in the file, so the builder and --dim/--shape options do not apply.</summary>
    public static ModelGraph LoadTfLite(string model, bool builderOptions, bool shapeOptions)
    {
        if (builderOptions) throw new ArgumentException("--width, --resolution, --classes, --channels and --small-input apply to architectures; a .tflite model has its own.");
        if (shapeOptions) throw new ArgumentException("--dim and --shape apply to .onnx models; a .tflite model's shapes are fixed in the file.");
        if (!File.Exists(model)) throw new FileNotFoundException($"No such model file: {model}");
        return TfLiteImporter.Load(model);
    }

    /// <param name="onnx">The import options from --dim/--shape (see <see cref="ShapeOptions"/>); null when neither was given.</param>
    public static ModelGraph Load(string model, float width, int? resolution, int classes, OnnxImportOptions? onnx = null, int batch = 1,
        int channels = 3, bool smallInput = false)
    {
        if (model == BuiltinModel.Name)
        {
            if (width != 1f || resolution is not null || classes != 1000 || channels != 3 || smallInput)
                throw new ArgumentException("--width, --resolution, --classes, --channels and --small-input apply to architectures; the built-in model has its own.");
            return BuiltinModel.Load(model);
        }
        if (IsTfLite(model))
            return LoadTfLite(model, width != 1f || resolution is not null || classes != 1000 || channels != 3 || smallInput,
                onnx is { } t && (t.Dimensions.Count > 0 || t.InputShapes.Count > 0));
        if (IsOnnx(model))
        {
            if (width != 1f || resolution is not null || classes != 1000 || channels != 3 || smallInput)
                throw new ArgumentException("--width, --resolution, --classes, --channels and --small-input apply to architectures; an .onnx model has its own (give its symbolic sizes with --dim or --shape).");
            if (!File.Exists(model)) throw new FileNotFoundException($"No such model file: {model}");
            var options = onnx ?? new OnnxImportOptions();
            return OnnxImporter.Load(model, new OnnxImportOptions { Dimensions = options.Dimensions, InputShapes = options.InputShapes, DefaultBatch = batch });
        }
        if (onnx is { } o && (o.Dimensions.Count > 0 || o.InputShapes.Count > 0))
            throw new ArgumentException("--dim and --shape apply to .onnx models; for an architecture use --resolution (and --width, --classes).");
        return Cli.Build(model, width, resolution, classes, batch, channels, smallInput);
    }
}
