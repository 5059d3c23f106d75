using System.Runtime.CompilerServices;
using MobileNetSharp.Kernels;
using MobileNetSharp.Onnx;
using MobileNetSharp.Tensors;
using MobileNetSharp.Training;

namespace MobileNetSharp.Tests.Training;

/// <summary>
/// Whole-model reverse-mode gradients against PyTorch: one training step (batch norms in training mode, cross-entropy
/// with and without label smoothing) of torchvision MobileNetV2 and MobileNetV3-Small imported from ONNX gives
/// PyTorch's loss, every parameter's gradient and every running statistic
/// (fixtures: tools/fixtures/gen_training_step.py). Swept over 1 and 2 threads and the ISA levels.
/// </summary>
public class PyTorchGradientTests
{
    private static string Here([CallerFilePath] string source = "") => Path.GetDirectoryName(source)!;
    private static string Dir(string model) => Path.Combine(Here(), "Fixtures", model);

    public static TheoryData<string, int, IsaLevel?> Cases()
    {
        var d = new TheoryData<string, int, IsaLevel?>();
        foreach (var m in new[] { "mobilenet_v2", "mobilenet_v3_small" })
        {
            d.Add(m, 1, null);
            d.Add(m, 2, null);
        }
        foreach (var isa in Isa.Supported.Where(i => i != Isa.Best))
            d.Add("mobilenet_v2", 1, isa);
        return d;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void OneStepMatchesPyTorch(string model, int threads, IsaLevel? isa)
    {
        var dir = Dir(model);
        var graph = OnnxImporter.Load(Path.Combine(dir, "model.onnx"));
        float smoothing = float.Parse(File.ReadAllText(Path.Combine(dir, "meta.txt")).Trim().Split('=')[1], System.Globalization.CultureInfo.InvariantCulture);
        var x = Npy.Read(Path.Combine(dir, "input.npy"));
        var labels = ((long[])Npy.Read(Path.Combine(dir, "labels.npy")).Data).Select(l => (int)l).ToArray();
        float expectedLoss = Npy.Read(Path.Combine(dir, "loss.npy")).Floats[0];

        using var session = new TrainingSession(graph, new TrainingOptions { Threads = threads, Isa = isa, LabelSmoothing = smoothing });
        var result = session.Step(x, labels);
        Assert.Equal(expectedLoss, result.Loss, 1e-4f);

        // Gradients: PyTorch's parameter names are the ONNX initializer names.
        var expected = Npy.Read(Path.Combine(dir, "grads.npy")).Floats;
        float global = 0;
        foreach (var v in expected) global = Math.Max(global, Math.Abs(v));
        var byName = session.Parameters.ToDictionary(p => p.Name);
        int offset = 0, compared = 0;
        foreach (var line in File.ReadAllLines(Path.Combine(dir, "grads.txt")).Where(l => l.Length > 0))
        {
            var parts = line.Split(' ');
            int count = int.Parse(parts[1]);
            var want = expected.AsSpan(offset, count);
            offset += count;
            Assert.True(byName.TryGetValue(parts[0], out var p), $"parameter {parts[0]} is not trained; trained: {string.Join(", ", byName.Keys.Take(8))}...");
            AssertClose(want, p!.Grad, parts[0], 1e-4f * global);
            compared++;
        }
        Assert.Equal(byName.Count, compared);

        var running = Npy.Read(Path.Combine(dir, "running.npy")).Floats;
        offset = 0;
        foreach (var line in File.ReadAllLines(Path.Combine(dir, "running.txt")).Where(l => l.Length > 0))
        {
            var parts = line.Split(' ');
            int count = int.Parse(parts[1]);
            AssertClose(running.AsSpan(offset, count), session.States[parts[0]].Floats, parts[0], 1e-6f);
            offset += count;
        }
    }

    /// <summary>
    /// Within 1e-3 of the tensor's largest magnitude (float32 sums in different orders) plus a floor: some gradients
    /// are zero in exact arithmetic (the shift of a batch norm followed by a linear layer and another batch norm
    /// cancels) and both frameworks then return rounding noise, so the floor is 1e-4 of the model's largest gradient.
    /// </summary>
    private static void AssertClose(ReadOnlySpan<float> want, ReadOnlySpan<float> got, string name, float floor)
    {
        Assert.Equal(want.Length, got.Length);
        float scale = 0;
        foreach (var v in want) scale = Math.Max(scale, Math.Abs(v));
        float tol = 1e-3f * scale + floor;
        for (int i = 0; i < want.Length; i++)
            if (!(Math.Abs(want[i] - got[i]) <= tol))
                Assert.Fail($"{name}[{i}]: PyTorch {want[i]:G6}, ours {got[i]:G6} (tolerance {tol:G3}, scale {scale:G3}).");
    }
}
