using System.Runtime.CompilerServices;
using MobileNetSharp.Graph;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Tests.Onnx;
using MobileNetSharp.TfLite;
using Xunit.Abstractions;

namespace MobileNetSharp.Tests.TfLite;

/// <summary>
/// MediaPipe's BlazeFace short-range detector as shipped (.tflite, fp16 weights behind DEQUANTIZE) against the same
/// network as ONNX (keijiro's conversion) in ONNX Runtime, on the astronaut photo; and our ONNX export of the
/// imported model in ONNX Runtime.
/// </summary>
public class BlazeFaceTests(ITestOutputHelper output)
{
    private static string Here([CallerFilePath] string source = "") => Path.GetDirectoryName(source)!;
    public static string Fixtures => Path.Combine(Here(), "Fixtures");
    public static string TfLitePath => Path.Combine(Fixtures, "face_detection_short_range.tflite");
    private static string OnnxPath => Path.Combine(Fixtures, "blazeface_front_128_keijiro.onnx");
    private static Tensor Input => Npy.Read(Path.Combine(Fixtures, "astronaut_128_nhwc.npy"));

    [Fact]
    public void Imports()
    {
        var g = TfLiteImporter.Load(TfLitePath);
        output.WriteLine(string.Join("\n", g.Inputs.Select(i => $"in {i}")));
        output.WriteLine(string.Join("\n", g.Outputs.Select(i => $"out {i}")));
        output.WriteLine(string.Join("\n", g.Nodes.GroupBy(n => n.Op.Type).Select(k => $"{k.Key} x{k.Count()}")));
        var o = OnnxImporter.Load(OnnxPath);
        output.WriteLine(string.Join("\n", o.Inputs.Select(i => $"onnx in {i}")));
        output.WriteLine(string.Join("\n", o.Outputs.Select(i => $"onnx out {i}")));
        Assert.Equal([1, 128, 128, 3], g.Inputs[0].Shape);
    }
}
