using MobileNetSharp.Graph;
using MobileNetSharp.Models;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Runtime;

public class ModelLoadersTests
{
    [Fact]
    public void ASessionOpensAnOnnxFileByPathAndMatchesTheGraphItCameFrom()
    {
        var g = ModelZoo.Create("mobilenet_v3_small", new ModelOptions(0.5f, 64, Classes: 7));
        string path = Path.Combine(Path.GetTempPath(), $"mnet-loader-{Guid.NewGuid():N}.onnx");
        OnnxExporter.Save(g, path);
        try
        {
            using var fromFile = new InferenceSession(path, new SessionOptions { Threads = 1 });
            using var fromGraph = new InferenceSession(g, new SessionOptions { Threads = 1 });
            var x = Tensor.Random(5, [1, 3, 64, 64]);
            Assert.Equal(DataType.Float32, fromFile.Inputs[0].DataType);
            Assert.Equal(fromGraph.Run(x)[0].Floats, fromFile.Run(x)[0].Floats);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void AnUnknownFormatAndAMissingFileGiveClearErrors()
    {
        var e = Assert.Throws<ModelFormatException>(() => new InferenceSession("model.caffemodel"));
        Assert.Contains("No loader for '.caffemodel' files", e.Message);
        Assert.Throws<FileNotFoundException>(() => new InferenceSession(Path.Combine(Path.GetTempPath(), "no-such-model.onnx")));
    }
}
