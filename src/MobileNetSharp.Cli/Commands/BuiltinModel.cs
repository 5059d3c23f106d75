using MobileNetSharp.Graph;
using MobileNetSharp.Onnx;
using MobileNetSharp.TfLite;

namespace MobileNetSharp.Cli.Commands;

/// <summary>
/// `builtin`: the Fashion-MNIST classifier trained by this code (models/builtin.onnx beside mnet; how it was made:
/// tools/training/train_builtin.sh). Accepted wherever a model file is.
/// </summary>
internal static class BuiltinModel
{
    public const string Name = "builtin";

    public static string Path => System.IO.Path.Combine(AppContext.BaseDirectory, "models", "builtin.onnx");

    /// <summary>`builtin`, a .onnx or a .tflite file.</summary>
    public static ModelGraph Load(string model)
    {
        if (model == Name)
        {
            if (!File.Exists(Path)) throw new FileNotFoundException($"The built-in model is missing from {Path}; reinstall mnet.");
            return OnnxImporter.Load(Path);
        }
        if (!File.Exists(model)) throw new FileNotFoundException($"No such model file: {model}");
        if (ModelSource.IsTfLite(model)) return TfLiteImporter.Load(model);
        if (ModelSource.IsOnnx(model)) return OnnxImporter.Load(model);
        throw new ArgumentException($"'{model}' is not a model: give a .onnx or .tflite file, or `{Name}`.");
    }
}
