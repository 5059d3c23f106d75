using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using System.Runtime.CompilerServices;
using MobileNetSharp.Graph;
using MobileNetSharp.Models;
using MobileNetSharp.Onnx;
using MobileNetSharp.Quantization;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Training;
using MobileNetSharp.Training.Data;
using MobileNetSharp.Tests.Onnx;
using Xunit.Abstractions;

namespace MobileNetSharp.Tests.Quantization;

/// <summary>
/// Post-training quantization end to end: the built-in Fashion-MNIST model keeps its accuracy within half a point
/// on all 10,000 test images, in our engine (1x1 convolutions in integers, the rest simulated) and in ONNX Runtime
/// running the written QDQ file with its integer kernels.
/// </summary>
public class PostTrainingQuantizerTests(ITestOutputHelper output)
{
    private static string BuiltinPath([CallerFilePath] string source = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(source)!, "..", "..", "..", "models", "builtin.onnx"));

    private static Func<IEnumerable<Tensor>> Calibration(int samples, int batch = 32)
    {
        var train = FashionMnist.Load(train: true);
        var set = train.Subset(Shuffle.Permutation(train.Count, seed: 0).AsSpan(0, samples));
        var source = new BatchSource(set, new BatchOptions(batch, Shuffle: false));
        return () => source.Epoch(0).Select(b => b.Images);
    }

    /// <param name="reduceRange">7-bit weights: ONNX Runtime's AVX2 kernels (vpmaddubsw) then cannot saturate, so it must
    /// agree with our float simulation of the same file almost everywhere; with full-range weights it departs on ~1%.</param>
    [Theory]
    [InlineData(false, 200)]
    [InlineData(true, 30)]
    public void BuiltinModelKeepsItsAccuracyInOurEngineAndInOnnxRuntime(bool reduceRange, int maxDisagreements)
    {
        var graph = OnnxImporter.Load(BuiltinPath(), new OnnxImportOptions { DefaultBatch = 500 });
        var result = PostTrainingQuantizer.Quantize(graph, Calibration(256), new QuantizationOptions { ReduceRange = reduceRange });
        Assert.Equal(256, result.CalibrationImages);
        Assert.Equal(53, result.QuantizedLayers.Count); // every conv and the classifier
        var qBytes = OnnxExporter.ToBytes(result.Model);
        Assert.Contains(result.Model.Nodes, n => n.Op is QuantizeLinear);

        var test = FashionMnist.Load(train: false);
        using var fp = new InferenceSession(graph, new SessionOptions { Threads = 2 });
        var q = OnnxImporter.Load(qBytes, new OnnxImportOptions { DefaultBatch = 500 });
        using var qs = new InferenceSession(q, new SessionOptions { Threads = 2 });
        // The stem, every 1x1 and depthwise convolution in integers, every residual Add on the codes, the classifier (QGemm to float logits).
        Assert.Equal(1 + 34 + 17 + 10 + 1, qs.Optimizations!.QuantizedOpsFused);
        Assert.Contains(qs.Steps, s => s.Kernel == "qfc");
        double floatAccuracy = Evaluation.Run(fp, test, 500).Accuracy;
        double ourAccuracy = Evaluation.Run(qs, test, 500).Accuracy;

        int ortRight = 0, disagree = 0;
        foreach (var batch in new BatchSource(test, new BatchOptions(500, Shuffle: false)).Epoch(0))
        {
            var ours = qs.Run(batch.Images)[0].Floats;
            var theirs = OrtRunner.Run(qBytes, [new(graph.Inputs[0].Name, batch.Images)])[graph.Outputs[0].Name].Floats;
            for (int i = 0; i < batch.Labels.Length; i++)
            {
                int o = TensorPrimitives.IndexOfMax<float>(ours.AsSpan(i * 10, 10)), t = TensorPrimitives.IndexOfMax<float>(theirs.AsSpan(i * 10, 10));
                if (o != t) disagree++;
                if (t == batch.Labels[i]) ortRight++;
            }
        }
        double ortAccuracy = ortRight / 10_000.0;
        output.WriteLine($"reduce range {reduceRange}: float {100 * floatAccuracy:F2}%, int8 in our engine {100 * ourAccuracy:F2}%, in ONNX Runtime {100 * ortAccuracy:F2}%; "
            + $"our and ORT's predictions differ on {disagree} of 10,000 images");
        Assert.True(Math.Abs(ourAccuracy - floatAccuracy) <= 0.005, $"ours: {100 * floatAccuracy:F2}% -> {100 * ourAccuracy:F2}%");
        Assert.True(Math.Abs(ortAccuracy - floatAccuracy) <= 0.005, $"ORT: {100 * floatAccuracy:F2}% -> {100 * ortAccuracy:F2}%");
        Assert.True(disagree <= maxDisagreements, $"{disagree} of 10,000 predictions differ between our simulation and ORT's integer kernels");
    }

    [Fact]
    public void PerChannelWeightsBeatPerTensorOnDepthwiseLayers()
    {
        var graph = OnnxImporter.Load(BuiltinPath());
        var cal = Calibration(64);
        var perChannel = PostTrainingQuantizer.Quantize(graph, cal);
        var perTensor = PostTrainingQuantizer.Quantize(graph, cal, new QuantizationOptions { PerTensor = true });
        var test = new BatchSource(FashionMnist.Load(train: false).Take(300), new BatchOptions(100, Shuffle: false)).Epoch(0).Select(b => (b.Images, b.Labels)).ToList();
        var a = QuantizationReport.Run(perChannel, test, labelled: true, threads: 2);
        var b = QuantizationReport.Run(perTensor, test, labelled: true, threads: 2);
        output.WriteLine($"output SQNR per-channel {a.OutputSqnrDb:F1} dB, per-tensor {b.OutputSqnrDb:F1} dB; agreement {a.Agreement:P1} vs {b.Agreement:P1}");
        Assert.True(a.OutputSqnrDb > b.OutputSqnrDb, $"per-channel {a.OutputSqnrDb:F1} dB vs per-tensor {b.OutputSqnrDb:F1} dB");
        Assert.Equal(a.Tensors.Count, perChannel.Activations.Count);
        Assert.All(a.Tensors, t => Assert.True(t.OwnSqnrDb > 20, $"{t.Name}: own SQNR {t.OwnSqnrDb:F1} dB"));
        Assert.True(a.FloatAccuracy > 0.9);
    }

    [Fact]
    public void ReluSixOutputsGetTheirExactRangeAndZeroIsRepresentable()
    {
        var graph = OnnxImporter.Load(BuiltinPath());
        var result = PostTrainingQuantizer.Quantize(graph, Calibration(32));
        foreach (var a in result.Activations)
        {
            Assert.True(a.Lo <= 0 && a.Hi >= 0, $"{a.Name}: [{a.Lo}, {a.Hi}]");
            var p = a.Params;
            // real 0 survives quantization exactly: the padding a convolution adds stays 0.
            var code = new byte[1];
            var back = new float[1];
            MobileNetSharp.Kernels.Int8.QuantizeLinearKernel.Quantize([0f], code, p, (1, 1, 1));
            MobileNetSharp.Kernels.Int8.QuantizeLinearKernel.Dequantize(code, back, p, (1, 1, 1));
            Assert.Equal(0f, back[0]);
            Assert.Equal(p.ZeroPoints[0], code[0]);
        }
        // Batch norm is folded and ReLU6 fused before calibration: the conv outputs are [0, 6] exactly, zero point 0.
        var relu6 = result.Activations.Where(a => a.Producer.EndsWith(".dw")).ToList();
        Assert.NotEmpty(relu6);
        Assert.All(relu6, a => Assert.Equal((0, 6f / 255), (a.Params.ZeroPoints[0], a.Params.Scales[0])));
        Assert.DoesNotContain(result.Prepared.Nodes, n => n.Op is BatchNorm);
    }

    [Theory]
    [InlineData(CalibrationMethod.Percentile)]
    [InlineData(CalibrationMethod.Entropy)]
    public void ClippingMethodsNarrowRangesWithinWhatWasSeen(CalibrationMethod method)
    {
        var graph = OnnxImporter.Load(BuiltinPath());
        var cal = Calibration(64);
        var minmax = PostTrainingQuantizer.Quantize(graph, cal).Activations.ToDictionary(a => a.Name);
        var clipped = PostTrainingQuantizer.Quantize(graph, cal, new QuantizationOptions { Method = method, Percentile = 99.9 });
        int narrower = 0;
        foreach (var a in clipped.Activations)
        {
            var m = minmax[a.Name];
            Assert.Equal((m.SeenMin, m.SeenMax), (a.SeenMin, a.SeenMax)); // same data, same passes
            Assert.True(a.Lo >= Math.Min(m.Lo, 0) - 1e-6 && a.Hi <= m.Hi + 1e-6, $"{a.Name}: [{a.Lo}, {a.Hi}] outside [{m.Lo}, {m.Hi}]");
            if (a.Hi - a.Lo < 0.99 * (m.Hi - m.Lo)) narrower++;
        }
        output.WriteLine($"{method}: {narrower} of {clipped.Activations.Count} ranges narrower than min-max");
        Assert.True(narrower > clipped.Activations.Count / 4, $"{method} clipped only {narrower} ranges");
    }

    [Fact]
    public void EntropyThresholdClipsTheTailOfALaplacian()
    {
        // |x| of a Laplacian (what ReLU networks' pre-activations look like): counts fall by e every 40 bins, so the
        // last 1,500 bins hold a handful of values. Min-max would spend most of the 8-bit codes on that empty tail.
        var hist = new long[RangeObserver.Bins];
        for (int i = 0; i < hist.Length; i++) hist[i] = (long)Math.Round(1e6 * Math.Exp(-i / 40.0));
        hist[^1] = 3; // the outliers that set the maximum
        float t = RangeObserver.EntropyThreshold(hist, absMax: RangeObserver.Bins, levels: 128);
        Assert.InRange(t, 128, 1024);
        // Uniform data has no tail to clip: the whole range is kept.
        Array.Fill(hist, 1000);
        Assert.InRange(RangeObserver.EntropyThreshold(hist, RangeObserver.Bins, 128), 0.98f * RangeObserver.Bins, RangeObserver.Bins);
    }

    [Fact]
    public void BadOptionsAndSkipNamesAreRefused()
    {
        var graph = OnnxImporter.Load(BuiltinPath());
        var cal = Calibration(8);
        Assert.Contains("--skip names no node: nope", Assert.Throws<ArgumentException>(() =>
            PostTrainingQuantizer.Quantize(graph, cal, new QuantizationOptions { Skip = new HashSet<string> { "nope" } })).Message);
        Assert.Contains("percentile must be in 50..100", Assert.Throws<ArgumentException>(() =>
            PostTrainingQuantizer.Quantize(graph, cal, new QuantizationOptions { Method = CalibrationMethod.Percentile, Percentile = 101 })).Message);
        Assert.Contains("no images", Assert.Throws<ArgumentException>(() => PostTrainingQuantizer.Quantize(graph, () => [])).Message);

        var skipped = PostTrainingQuantizer.Quantize(graph, cal, new QuantizationOptions { Skip = new HashSet<string> { "block1.dw" } });
        Assert.Equal(["block1.dw"], skipped.FloatLayers);
        Assert.DoesNotContain("block1.dw", skipped.QuantizedLayers);
        var dw = skipped.Model.Nodes.Single(n => n.Name == "block1.dw");
        Assert.True(dw.Input(1).IsConstant && dw.Input(1).DataType == DataType.Float32, "a skipped layer keeps float weights");
    }
}
