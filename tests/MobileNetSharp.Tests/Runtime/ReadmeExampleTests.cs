using MobileNetSharp.Models;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Runtime;

/// <summary>The README's example, verbatim apart from the final line, so the documentation cannot rot.</summary>
public class ReadmeExampleTests
{
    [Fact]
    public void TheReadmeExampleRuns()
    {
        var model = ModelZoo.mobilenet_v2(widthMult: 0.75f, resolution: 160);      // or ModelZoo.Create("efficientnet_lite0")
        var cost = MobileNetSharp.Graph.CostModel.Analyze(model);                   // params and MACs, per layer and in total
        using var session = new InferenceSession(model, new SessionOptions { Threads = 2 });
        var image = Tensor.Random(seed: 1, shape: [1, 3, 160, 160]);                // NCHW float32, as in PyTorch and ONNX
        Tensor logits = session.Run(image)[0];                                      // [1, 1000]
        int top = logits.ArgMax()[0];
        Assert.Equal(logits.Floats.AsSpan().IndexOf(logits.Floats.Max()), top);
        Assert.Equal([1, 1000], logits.Shape);
        Assert.InRange(top, 0, 999);
        Assert.Equal(2_636_424, cost.Params); // torchvision: sum(p.numel() for p in mobilenet_v2(width_mult=0.75).parameters())
        Assert.Equal([4, 1000], session.Run(Tensor.Random(2, [4, 3, 224, 192]))[0].Shape); // the "any input size" line
    }
}
