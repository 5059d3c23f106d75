using System.Runtime.CompilerServices;
using MobileNetSharp.Models;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Runtime;

/// <summary>One session, many input shapes: a plan per shape set, compiled on first use, packed weights shared.</summary>
public class AnyInputShapeTests
{
    private static string Fixture([CallerFilePath] string source = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(source)!, "..", "Onnx", "Fixtures", "dynamic_hw"));

    /// <summary>
    /// torchvision MobileNetV2 exported with dynamic N, H and W (tools/fixtures/gen_dynamic_hw.py), imported once at
    /// 64x64 and run at 64x64 and at 96x80 in the same session: both match PyTorch within 1e-4 of the output's scale.
    /// </summary>
    [Fact]
    public void ADynamicHwExportRunsAtTwoResolutionsInOneSessionAndMatchesPyTorch()
    {
        var graph = OnnxImporter.Load(Path.Combine(Fixture(), "model.onnx"),
            new OnnxImportOptions { Dimensions = { ["N"] = 2, ["H"] = 64, ["W"] = 64 } });
        using var session = new InferenceSession(graph, new SessionOptions { Threads = 2 });
        int operators = session.CachedOperators;
        foreach (var size in new[] { "64x64", "96x80", "64x64" })
        {
            var x = Npy.Read(Path.Combine(Fixture(), $"input_{size}.npy"));
            var expected = Npy.Read(Path.Combine(Fixture(), $"output_{size}.npy"));
            var y = session.Run(x)[0];
            Assert.Equal(expected.Shape, y.Shape);
            float scale = Math.Max(1f, expected.Floats.Max(MathF.Abs));
            for (int i = 0; i < y.Length; i++)
                Assert.True(MathF.Abs(y.Floats[i] - expected.Floats[i]) <= 1e-4f * scale, $"{size} [{i}]: {y.Floats[i]} vs {expected.Floats[i]}");
        }
        Assert.Equal(operators, session.CachedOperators); // the 96x80 plan reused every packed weight
    }

    [Fact]
    public void OutputShapesFollowTheInputAndImpossibleSizesNameTheNode()
    {
        var g = ModelZoo.Create("mobilenet_v2", new ModelOptions(0.35f, 64));
        using var s = new InferenceSession(g, new SessionOptions { Threads = 1 });
        Assert.Equal([3, 1000], s.OutputShapes([3, 3, 160, 96])[0]);
        Assert.Equal([3, 1000], s.Run(Tensor.Random(1, [3, 3, 40, 72]))[0].Shape);

        // A Reshape baked for 4x4 cannot follow another size: the error names the inputs and the node.
        var b = new Graph.GraphBuilder("baked", 1);
        var x = b.Conv(b.Input("x", 1, 3, 4, 4), 2, 3);
        b.Output(b.Add(new Graph.Reshape([1, 32]), "view", x));
        using var baked = new InferenceSession(b.Graph, new SessionOptions { Threads = 1 });
        var e = Assert.Throws<ArgumentException>(() => baked.Run(Tensor.Random(1, [1, 3, 8, 8])));
        Assert.Contains("cannot run with inputs x [1,3,8,8]", e.Message);
        Assert.Contains("Node 'view' (Reshape)", e.Message);
    }

    [Fact]
    public void ThePlanCacheIsBoundedAndKeepsTheMostRecentShapes()
    {
        var g = ModelZoo.Create("mobilenet_v1", new ModelOptions(0.25f, 64, Classes: 10));
        using var s = new InferenceSession(g, new SessionOptions { Threads = 1 });
        for (int i = 0; i < InferenceSession.MaxPlans + 3; i++) s.Run(Tensor.Random(i, [1, 3, 32 + 8 * i, 32]));
        Assert.Equal(InferenceSession.MaxPlans, s.CachedPlans);
    }
}
