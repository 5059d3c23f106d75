using MobileNetSharp.Graph;
using MobileNetSharp.Models;
using MobileNetSharp.Onnx;
using MobileNetSharp.Quantization;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using Xunit.Abstractions;

namespace MobileNetSharp.Tests.Quantization;

/// <summary>
/// Whole quantized networks, one layer at a time: every QDQ segment the integer path fuses (QLinearConv on the GEMM or
/// the depthwise kernel, QLinearAdd, and the classifier's QGemm) is cut out of the model as its own graph, fed the codes
/// the simulation computed for its input, and run with and without integer kernels; the two must agree within one
/// code, or, for the classifier's float logits, within float rounding.
/// <para>
/// Per layer, because comparing the end-to-end outputs cannot tell a kernel bug from rounding: a tie the float
/// simulation and the exact integer sum break differently moves one code (a few per million), and a deep network with
/// random weights amplifies such a code into tens of codes a few blocks later. The simulation against itself at two
/// ISA levels (float sums in another order) diverges as much: EfficientNet-Lite0 (224, random weights, 64
/// Fashion-MNIST calibration images) gives a logit gap of 0.14 between the Scalar and AVX2 simulations and 0.16
/// between the integer path and the simulation, while every layer, on the same input codes, stays within one code.
/// </para>
/// </summary>
public class LayerwiseIntegerTests(ITestOutputHelper output)
{
    private const int Batch = 2;

    /// <summary>The architecture quantized as `mnet quantize` does (per-channel int8 weights, uint8 activations,
    /// min/max ranges), written and read back as a QDQ file so the importer's int8 weight origins are the ones a user's
    /// file gives the fusion pass.</summary>
    private static ModelGraph QuantizedModel(string architecture, int resolution)
    {
        var model = ModelZoo.Create(architecture, new ModelOptions(Resolution: resolution, Classes: 10, Batch: Batch));
        var calibration = Enumerable.Range(0, 4).Select(i => Tensor.Random(100 + i, [Batch, 3, resolution, resolution], -2f, 2f)).ToList();
        var result = PostTrainingQuantizer.Quantize(model, () => calibration);
        return OnnxImporter.Load(OnnxExporter.ToBytes(result.Model), new OnnxImportOptions { DefaultBatch = Batch });
    }

    /// <summary>
    /// The nodes <paramref name="endName"/> (a QuantizeLinear, or a layer with a float output) depends on back to the
    /// first DequantizeLinear of computed codes on each path, as a graph whose inputs are those codes and whose output
    /// is that node's.
    /// </summary>
    private static (ModelGraph Graph, List<string> CodesRead) Segment(ModelGraph model, string endName)
    {
        var g = model.Clone();
        var quantizer = g.Nodes.Single(n => n.Name == endName);
        var kept = new HashSet<Node>();
        var codesRead = new List<Value>();
        var pending = new Stack<Node>([quantizer]);
        while (pending.Count > 0)
        {
            var n = pending.Pop();
            if (!kept.Add(n)) continue;
            if (n.Op is DequantizeLinear && !n.Input(0).IsConstant)
            {
                if (!codesRead.Contains(n.Input(0))) codesRead.Add(n.Input(0));
                continue;
            }
            foreach (var i in n.Inputs)
                if (i is { IsConstant: false, Producer: { } p }) pending.Push(p);
                else if (i is { IsConstant: false } && !codesRead.Contains(i)) codesRead.Add(i);
        }
        g.Nodes.RemoveAll(n => !kept.Contains(n));
        g.Inputs.Clear();
        foreach (var codes in codesRead)
        {
            var input = new Value(codes.Name + "_fed", codes.DataType, codes.Shape.ToArray());
            foreach (var n in g.Nodes)
                for (int i = 0; i < n.Inputs.Length; i++)
                    if (n.Inputs[i] == codes) n.Inputs[i] = input;
            g.Inputs.Add(input);
        }
        g.Outputs.Clear();
        g.Outputs.Add(quantizer.Output);
        g.Validate();
        return (g, codesRead.Select(v => v.Name).ToList());
    }

    [Theory]
    [InlineData("efficientnet_lite0", 64, "qdw5x5s2")]
    [InlineData("mobilenet_v2", 64, "qdw3x3s2")]
    [InlineData("mobilenet_v3_large", 64, "qdw5x5s2")]
    [InlineData("mobilenet_v3_small", 64, "qdw3x3s2")] // its 5x5 depthwise layers end in hard-swish, which stays float
    public void EveryFusedLayerMatchesTheSimulationOnTheSameCodes(string architecture, int resolution, string expectedKernel)
    {
        var model = QuantizedModel(architecture, resolution);
        var quantizers = model.Nodes.Where(n => n.Op is QuantizeLinear).ToList();

        // The simulation's codes for every uint8 tensor, from one run of the whole model.
        var probed = model.Clone();
        var byName = ValuesByName(probed);
        var probes = quantizers.Select(q => byName[q.Output.Name]).ToList();
        foreach (var v in probes) probed.Outputs.Add(v);
        using var simulation = new InferenceSession(probed, new SessionOptions { IntegerKernels = false });
        var x = Tensor.Random(7, [Batch, 3, resolution, resolution], -2f, 2f);
        var run = simulation.Run(x);
        var codes = probes.Select((v, i) => (v.Name, Tensor: run[model.Outputs.Count + i])).ToDictionary(p => p.Name, p => p.Tensor);

        using var whole = new InferenceSession(model);
        Assert.Contains(whole.Steps, s => s.Kernel == expectedKernel);
        int fusedSegments = 0;
        foreach (var q in quantizers)
        {
            var (segment, codesRead) = Segment(model, q.Name);
            if (codesRead.Any(n => !codes.ContainsKey(n))) continue; // reads the float image, not codes
            var feed = codesRead.Select(n => codes[n]).ToArray();
            using var simulated = new InferenceSession(segment, new SessionOptions { IntegerKernels = false });
            var expected = (byte[])simulated.Run(feed)[0].Data;
            foreach (int threads in new[] { 1, 2 })
            {
                using var integer = new InferenceSession(segment, new SessionOptions { Threads = threads });
                if (integer.Optimizations!.QuantizedOpsFused == 0) break; // a float layer: nothing integer to compare
                if (threads == 1) fusedSegments++;
                var ours = (byte[])integer.Run(feed)[0].Data;
                string kernels = string.Join(",", integer.Steps.Select(s => s.Kernel).Where(k => k.StartsWith('q')));
                int differing = 0;
                for (int i = 0; i < ours.Length; i++)
                {
                    // The simulation sums float products, the integer path exact integers: a tie can round either way.
                    Assert.True(Math.Abs(ours[i] - expected[i]) <= 1,
                        $"{architecture} {q.Name} ({kernels}, t{threads}) [{i}]: integer {ours[i]}, simulated {expected[i]}");
                    if (ours[i] != expected[i]) differing++;
                }
                Assert.True(differing <= ours.Length / 1000, $"{architecture} {q.Name} ({kernels}, t{threads}): {differing} of {ours.Length} codes off by one");
            }
        }
        // Layers whose output stays float (the classifier): the logits within float rounding of the simulation's.
        foreach (var fc in model.Nodes.Where(n => n.Op is Gemm or MatMul && n.Input(0).Producer?.Op is DequantizeLinear && model.Outputs.Contains(n.Output)).ToList())
        {
            var (segment, codesRead) = Segment(model, fc.Name);
            if (codesRead.Any(n => !codes.ContainsKey(n))) continue;
            var feed = codesRead.Select(n => codes[n]).ToArray();
            using var simulated = new InferenceSession(segment, new SessionOptions { IntegerKernels = false });
            float[] expected = simulated.Run(feed)[0].Floats;
            float scale = expected.Max(MathF.Abs);
            foreach (int threads in new[] { 1, 2 })
            {
                using var integer = new InferenceSession(segment, new SessionOptions { Threads = threads });
                Assert.Contains(integer.Steps, s => s.Kernel == "qfc");
                if (threads == 1) fusedSegments++;
                float[] ours = integer.Run(feed)[0].Floats;
                for (int i = 0; i < ours.Length; i++)
                    Assert.True(Math.Abs(ours[i] - expected[i]) <= 1e-5f * scale, $"{architecture} {fc.Name} t{threads} [{i}]: integer {ours[i]}, simulated {expected[i]}");
            }
        }
        output.WriteLine($"{architecture}: {fusedSegments} integer layers checked, {whole.Optimizations!.QuantizedOpsFused} fused in the whole model");
        // Every op the whole model fuses was cut out and checked on its own.
        Assert.Equal(whole.Optimizations!.QuantizedOpsFused, fusedSegments);
    }

    private static Dictionary<string, Value> ValuesByName(ModelGraph g)
    {
        var map = new Dictionary<string, Value>(StringComparer.Ordinal);
        foreach (var n in g.Nodes)
            foreach (var o in n.Outputs) map.TryAdd(o.Name, o);
        return map;
    }
}
