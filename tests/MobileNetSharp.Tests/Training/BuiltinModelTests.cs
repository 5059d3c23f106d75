using System.Runtime.CompilerServices;
using MobileNetSharp.Models;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Training;
using MobileNetSharp.Training.Data;

namespace MobileNetSharp.Tests.Training;

/// <summary>
/// The built-in model (models/builtin.onnx, trained by this code: tools/training/train_builtin.sh) on all 10,000
/// Fashion-MNIST test images: at least 93.5% top-1 in our engine, and ONNX Runtime running the same file predicts the
/// same class for every image. The file is fixed, so its accuracy is a property of the file, not of a timed run.
/// </summary>
public class BuiltinModelTests
{
    private static string Path([CallerFilePath] string source = "") =>
        System.IO.Path.GetFullPath(System.IO.Path.Combine(System.IO.Path.GetDirectoryName(source)!, "..", "..", "..", "models", "builtin.onnx"));

    [Fact]
    public void ReachesItsAccuracyAndOnnxRuntimeAgreesOnEveryImage()
    {
        var bytes = File.ReadAllBytes(Path());
        var graph = OnnxImporter.Load(bytes, new OnnxImportOptions { DefaultBatch = 500 });
        var info = ClassifierInfo.ReadFrom(graph)!;
        Assert.Equal(FashionMnist.ClassNames, info.Labels);
        Assert.Equal((1, 28, true), (info.Channels, info.Resolution, info.NormalizationInGraph));
        Assert.InRange(new FileInfo(Path()).Length, 1, 5 << 20); // well under the 5 MB limit for committed files

        var test = FashionMnist.Load(train: false);
        Assert.Equal(10_000, test.Count);
        using var session = new InferenceSession(graph, new SessionOptions { Threads = 2 });
        var result = Evaluation.Run(session, test, 500);
        Assert.True(result.Accuracy >= 0.935, $"built-in model: {100 * result.Accuracy:F2}% top-1 on the test set");

        // ONNX Runtime on the same bytes, batch by batch: the same predicted class for every image.
        var source = new BatchSource(test, new BatchOptions(500, Shuffle: false));
        int disagreements = 0;
        foreach (var batch in source.Epoch(0))
        {
            var ours = session.Run(batch.Images)[0].Floats;
            var theirs = Onnx.OrtRunner.Run(bytes, [new(graph.Inputs[0].Name, batch.Images)])[graph.Outputs[0].Name].Floats;
            for (int i = 0; i < batch.Labels.Length; i++)
                if (System.Numerics.Tensors.TensorPrimitives.IndexOfMax<float>(ours.AsSpan(i * 10, 10))
                    != System.Numerics.Tensors.TensorPrimitives.IndexOfMax<float>(theirs.AsSpan(i * 10, 10))) disagreements++;
        }
        Assert.Equal(0, disagreements);
    }
}
