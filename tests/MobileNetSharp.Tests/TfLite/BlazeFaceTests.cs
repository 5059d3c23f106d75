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

    /// <summary>ONNX Runtime on keijiro's ONNX: its four heads, concatenated as the .tflite concatenates them (16x16x2 anchors, then 8x8x6).</summary>
    private static (Tensor Regressors, Tensor Scores) OrtReference(Tensor input)
    {
        var r = OrtRunner.Run(File.ReadAllBytes(OnnxPath), [new("input:0", input)]);
        return (Cat(r["Identity_2:0"], r["Identity_3:0"]), Cat(r["Identity:0"], r["Identity_1:0"]));
    }

    private static Tensor Cat(Tensor a, Tensor b)
    {
        int k = a.Shape[2];
        return new Tensor(a.Floats.Concat(b.Floats).ToArray(), 1, a.Shape[1] + b.Shape[1], k);
    }

    private static float MaxAbsDiff(Tensor a, Tensor b) => a.Floats.Zip(b.Floats).Max(p => MathF.Abs(p.First - p.Second));
    private static float Scale(Tensor a) => a.Floats.Max(MathF.Abs);

    [Fact]
    public void MatchesTheOnnxVersionInOnnxRuntime()
    {
        var x = Input;
        var (refBoxes, refScores) = OrtReference(x);
        using var session = new InferenceSession(TfLitePath);
        var y = session.Run(x);
        Assert.Equal([1, 896, 16], y[0].Shape);
        Assert.Equal([1, 896, 1], y[1].Shape);
        float dBoxes = MaxAbsDiff(y[0], refBoxes), dScores = MaxAbsDiff(y[1], refScores);
        output.WriteLine($"regressors: max |diff| {dBoxes:G3} of scale {Scale(refBoxes):G4}; classificators: {dScores:G3} of scale {Scale(refScores):G4}");
        output.WriteLine($"best logit ours {y[1].Floats.Max():F4}, ORT {refScores.Floats.Max():F4}");
        Assert.True(dBoxes <= 1e-4f * Scale(refBoxes), $"regressors differ by {dBoxes}");
        Assert.True(dScores <= 1e-4f * Scale(refScores), $"classificators differ by {dScores}");
        Assert.True(y[1].Floats.Max() > 0, "the astronaut's face should score above 0.5 after the sigmoid");
    }

    [Fact]
    public void ExportedOnnxRunsInOnnxRuntimeWithTheSameOutputs()
    {
        var x = Input;
        var graph = TfLiteImporter.Load(TfLitePath);
        using var session = new InferenceSession(graph);
        var ours = session.Run(x);
        var bytes = OnnxExporter.ToBytes(graph);
        var ort = OrtRunner.Run(bytes, [new(graph.Inputs[0].Name, x)]);
        for (int i = 0; i < graph.Outputs.Count; i++)
        {
            var r = ort[graph.Outputs[i].Name];
            Assert.Equal(ours[i].Shape, r.Shape);
            float d = MaxAbsDiff(ours[i], r);
            output.WriteLine($"{graph.Outputs[i].Name}: max |diff| {d:G3} of scale {Scale(r):G4}");
            Assert.True(d <= 1e-4f * Scale(r), $"{graph.Outputs[i].Name} differs by {d}");
        }
    }
}
