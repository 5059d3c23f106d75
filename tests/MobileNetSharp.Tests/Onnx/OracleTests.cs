using MobileNetSharp.Graph;
using MobileNetSharp.Models;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Onnx;

/// <summary>
/// ONNX Runtime as the oracle: every architecture is exported, run in ORT and in our session on the same
/// seeded input, and compared. Tolerance: max |ours - ORT| &lt;= 1e-4 x max |ORT output|. Both compute in
/// fp32 but sum in different orders (SIMD tiles, BN folded into weights, fused epilogues), and the rounding
/// drift of ~50 layers of such sums is proportional to the output's scale, around 1e-5 of it in practice.
/// </summary>
public class OracleTests
{
    private const double Tolerance = 1e-4;

    public static TheoryData<string, float, int> SmallModels()
    {
        var d = new TheoryData<string, float, int>();
        foreach (var a in ModelZoo.All)
        {
            d.Add(a.Name, 0.35f, 64);
            d.Add(a.Name, 0.5f, 96);
        }
        d.Add("mobilenet_v2", 1.0f, 224);
        d.Add("mobilenet_v3_large", 1.0f, 224);
        return d;
    }

    [Theory]
    [MemberData(nameof(SmallModels))]
    public void ExportRunsInOrtLikeOurSession(string arch, float width, int resolution)
    {
        var graph = ModelZoo.Create(arch, new ModelOptions(width, resolution, Classes: 100));
        var input = Tensor.Random(42, graph.Inputs[0].Shape);
        var bytes = OnnxExporter.ToBytes(graph);

        var expected = OrtRunner.Run(bytes, [new(graph.Inputs[0].Name, input)])[graph.Outputs[0].Name];
        using var session = new InferenceSession(graph, new SessionOptions { Threads = 2 });
        Compare.Close(expected, session.Run(input)[0], Tolerance, $"{arch} {width}/{resolution} vs ORT");
    }

    public static TheoryData<string, int, int> Batches()
    {
        var d = new TheoryData<string, int, int>();
        foreach (var a in ModelZoo.All)
            foreach (int batch in new[] { 3, 8 })
                foreach (int threads in new[] { 1, 2 })
                    d.Add(a.Name, batch, threads);
        return d;
    }

    /// <summary>
    /// Batches of 3 and 8 (banded blocks then span several images; small squeeze-excite layers leave Gemv for the
    /// GEMM) at 1 and 2 threads, every image against ORT with the same tolerance.
    /// </summary>
    [Theory]
    [MemberData(nameof(Batches))]
    public void BatchesRunInOrtLikeOurSession(string arch, int batch, int threads)
    {
        var graph = ModelZoo.Create(arch, new ModelOptions(0.5f, 96, Classes: 100, Batch: batch));
        var input = Tensor.Random(batch, graph.Inputs[0].Shape);
        var expected = OrtRunner.Run(OnnxExporter.ToBytes(graph), [new(graph.Inputs[0].Name, input)])[graph.Outputs[0].Name];
        using var session = new InferenceSession(graph, new SessionOptions { Threads = threads });
        Compare.Close(expected, session.Run(input)[0], Tolerance, $"{arch} batch {batch}, {threads} thread(s) vs ORT");
    }

    /// <summary>Export -> import gives the same costs and, run by our session, the same outputs.</summary>
    [Theory]
    [MemberData(nameof(SmallModels))]
    public void RoundTripKeepsCostsAndOutputs(string arch, float width, int resolution)
    {
        var graph = ModelZoo.Create(arch, new ModelOptions(width, resolution, Classes: 100));
        var back = OnnxImporter.Load(OnnxExporter.ToBytes(graph));

        var before = CostModel.Analyze(graph);
        var after = CostModel.Analyze(back);
        Assert.Equal(before.Params, after.Params);
        Assert.Equal(before.Macs, after.Macs);
        Assert.Equal(graph.Inputs.Select(v => (v.Name, Shape.Format(v.Shape))), back.Inputs.Select(v => (v.Name, Shape.Format(v.Shape))));
        Assert.Equal(graph.Outputs.Select(v => (v.Name, Shape.Format(v.Shape))), back.Outputs.Select(v => (v.Name, Shape.Format(v.Shape))));
        Assert.Equal(graph.Metadata, back.Metadata);

        var input = Tensor.Random(7, graph.Inputs[0].Shape);
        using var original = new InferenceSession(graph, new SessionOptions { Threads = 2 });
        using var imported = new InferenceSession(back, new SessionOptions { Threads = 2 });
        Compare.Close(original.Run(input)[0], imported.Run(input)[0], 1e-6, $"{arch} round trip");
    }
}
