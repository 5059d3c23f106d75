using MobileNetSharp.Graph;
using MobileNetSharp.TfLite.Import;
using MobileNetSharp.TfLite.Schema;

namespace MobileNetSharp.TfLite;

/// <summary>
/// Reads float TFLite models (schema version 3, the first subgraph) into a <see cref="ModelGraph"/>. TFLite is
/// NHWC; the graph is logical NCHW, so layouts are converted once here: a rank-4 model input stays NHWC and is
/// followed by one Transpose to NCHW (free when the plan runs it channels-last), weights are rearranged at load
/// (CONV_2D OHWI to OIHW, DEPTHWISE_CONV_2D [1,H,W,C·M] to [C·M,1,H,W] with groups C), axis attributes are
/// remapped, and rank-4 outputs are transposed back to NHWC, so inputs and outputs keep the file's shapes.
/// fp16 weights behind DEQUANTIZE become float32 constants at load. Quantized (int8/uint8) models are refused.
/// Every problem with the file is reported as a <see cref="ModelFormatException"/>.
/// </summary>
public static class TfLiteImporter
{
    /// <summary>The builtin operators the importer converts (schema names), plus the custom ones it knows.</summary>
    public static IReadOnlyCollection<string> SupportedOperators => GraphConverter.Supported;

    /// <summary>Loads a .tflite file (what <c>new InferenceSession("model.tflite")</c> calls).</summary>
    public static ModelGraph Load(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"No such model file: {path}", path);
        if (info.Length > int.MaxValue) throw new ModelFormatException($"'{path}' is larger than 2 GiB; such TFLite files are not supported.");
        return Load(File.ReadAllBytes(path), Path.GetFileNameWithoutExtension(path));
    }

    /// <summary>Loads a TFLite model from memory.</summary>
    public static ModelGraph Load(byte[] bytes, string name = "tflite_model")
    {
        ArgumentNullException.ThrowIfNull(bytes);
        Runtime.KernelWarmup.Start(); // compile the kernels on a spare core while the file is converted
        var model = TfLiteModel.Read(bytes);
        return new GraphConverter(model, name).Convert();
    }
}
