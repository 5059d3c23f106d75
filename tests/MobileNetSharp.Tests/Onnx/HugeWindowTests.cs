using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Onnx;

/// <summary>
/// A pooling window far larger than its input (a hostile or mutated file: kernel 60001 x 60001 with SAME padding on
/// a 5x7 image) costs what the image costs: the kernels walk only the taps that land inside the input, so such a
/// file runs at once instead of walking 3.6e9 empty taps per output cell. The results are the whole-image max and mean.
/// </summary>
public class HugeWindowTests
{
    [Theory]
    [InlineData("MaxPool")]
    [InlineData("AveragePool")]
    public void AWindowFarLargerThanTheImageCostsWhatTheImageCosts(string op)
    {
        var m = new OnnxModelBuilder(13).Input("x", 1, 3, 5, 7)
            .Node(op, ["x"], ["y"], "pool", ("kernel_shape", new[] { 60001, 60001 }), ("auto_pad", "SAME_UPPER"))
            .Output("y");
        using var session = new InferenceSession(OnnxImporter.Load(m.ToBytes()), new SessionOptions { Threads = 2 });
        var x = Tensor.Random(4, [1, 3, 5, 7]);
        var y = session.Run(x)[0];
        Assert.Equal([1, 3, 5, 7], y.Shape);
        for (int c = 0; c < 3; c++)
        {
            var plane = x.Floats.AsSpan(c * 35, 35);
            // SAME_UPPER centres each window near its pixel: with a window this large every window covers the whole image.
            float expected = op == "MaxPool" ? System.Numerics.Tensors.TensorPrimitives.Max(plane) : System.Numerics.Tensors.TensorPrimitives.Sum(plane) / 35f;
            for (int i = 0; i < 35; i++) Assert.Equal(expected, y.Floats[c * 35 + i], 5);
        }
    }
}
