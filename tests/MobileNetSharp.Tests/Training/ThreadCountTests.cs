using MobileNetSharp.Models;
using MobileNetSharp.Tensors;
using MobileNetSharp.Training;

namespace MobileNetSharp.Tests.Training;

/// <summary>
/// A training step's results do not depend on the thread count: the bench's network (MobileNetV2 x0.5, 28x28) at a batch
/// large enough that the residual Adds, the gradient fan-in sums and copies, the global pooling's gradient and the big
/// convolutions all split their work between two workers, against one thread, three steps with SGD between them.
/// </summary>
public class ThreadCountTests
{
    [Fact]
    public void TwoThreadsGiveTheBitsOfOne()
    {
        const int batch = 16;
        var g = ModelZoo.Create("mobilenet_v2", new ModelOptions(0.5f, 28, 10, batch, InChannels: 1, SmallInput: true));
        var x = Tensor.Random(4, [batch, 1, 28, 28]);
        var labels = Enumerable.Range(0, batch).Select(i => i * 7 % 10).ToArray();
        using var one = new TrainingSession(g, new TrainingOptions { Threads = 1 });
        using var two = new TrainingSession(g, new TrainingOptions { Threads = 2 });
        var sgdOne = new Sgd(one.Parameters, 0.9f);
        var sgdTwo = new Sgd(two.Parameters, 0.9f);
        for (int step = 0; step < 3; step++)
        {
            var a = one.Step(x, labels, (ulong)step);
            var b = two.Step(x, labels, (ulong)step);
            Assert.Equal(a.Loss, b.Loss);
            for (int p = 0; p < one.Parameters.Count; p++)
                Assert.True(one.Parameters[p].Grad.AsSpan().SequenceEqual(two.Parameters[p].Grad), $"step {step}: {one.Parameters[p].Name}'s gradient differs");
            sgdOne.Step(0.05f);
            sgdTwo.Step(0.05f);
        }
    }
}
