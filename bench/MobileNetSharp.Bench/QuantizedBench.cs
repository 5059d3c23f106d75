using System.Diagnostics;
using System.Globalization;
using MobileNetSharp.Graph;
using MobileNetSharp.Models;
using MobileNetSharp.Onnx;
using MobileNetSharp.Quantization;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Training.Data;
using Ort = Microsoft.ML.OnnxRuntime;

namespace MobileNetSharp.Bench;

/// <summary>
/// `quantized [--arch A,B] [--threads 1,2] [--runs N] [--samples N]`: an architecture (random weights, 224x224, batch 1)
/// exported as float ONNX and as the QDQ file `mnet quantize` writes (per-channel 7-bit weights so ONNX Runtime's AVX2
/// kernels compute it exactly; calibrated on Fashion-MNIST upsampled, or on random images when it is not installed),
/// and four sessions timed in one process, block by block in turn: ours and ORT on the float file, ours and ORT on
/// the QDQ file. The int8 issue's targets are ours on the QDQ file &lt;= 0.5 x ours on the float file and &lt;= 0.8 x
/// ORT on the QDQ file. Our engine computes every convolution, residual Add and fully connected layer of the QDQ file
/// in integers (7-bit weights take the AVX2 byte-quad GEMM) and the rest as written (QuantizeLinear/DequantizeLinear
/// around float kernels: pooling, squeeze-excite gates).
/// </summary>
public static class QuantizedBench
{
    private const int Block = 10;

    public static int Run(string[] args)
    {
        string[] archs = ["mobilenet_v2"];
        List<int> threads = [1, 2];
        int runs = 60, samples = 32;
        var reader = new BenchArgs(args);
        foreach (var option in reader.Options())
            switch (option)
            {
                case "--arch": archs = reader.Value().Split(','); break;
                case "--threads": threads = reader.Ints(1); break;
                case "--runs": runs = reader.Int(Block); break;
                case "--samples": samples = reader.Int(1); break;
                default: throw reader.Unknown();
            }
        BenchArgs.CheckUpFront(archs, threads);
        Console.WriteLine($"| model | threads | ours float | ORT float | ours QDQ | ORT QDQ | ORT int8/float | ours QDQ/ours float | ours QDQ/ORT QDQ |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var arch in archs)
        {
            var graph = ModelZoo.Create(arch, new ModelOptions());
            byte[] floatBytes = OnnxExporter.ToBytes(graph);
            var shape = graph.Inputs[0].Shape;
            var quantized = PostTrainingQuantizer.Quantize(graph, () => Calibration(shape, samples), new QuantizationOptions { ReduceRange = true });
            byte[] qdqBytes = OnnxExporter.ToBytes(quantized.Model);
            var input = Tensor.Random(7, shape, 0, 1);
            foreach (int t in threads)
            {
                using var oursFloat = new Runner("ours float", new InferenceSession(OnnxImporter.Load(floatBytes), new SessionOptions { Threads = t }), input);
                using var oursQdq = new Runner("ours QDQ", new InferenceSession(OnnxImporter.Load(qdqBytes), new SessionOptions { Threads = t }), input);
                using var ortFloat = new Runner("ORT float", floatBytes, t, input);
                using var ortQdq = new Runner("ORT QDQ", qdqBytes, t, input);
                Runner[] all = [oursFloat, ortFloat, oursQdq, ortQdq];
                foreach (var r in all) for (int i = 0; i < 5; i++) r.Time();
                while (all.Any(r => r.Samples.Count < runs))
                    foreach (var r in all)
                    {
                        Thread.Sleep(100); // ORT's workers spin ~50 ms after a run: let the next block start on idle cores
                        for (int i = 0; i < Block; i++) r.Samples.Add(r.Time());
                    }
                var m = all.Select(r => LatencyStats.From(r.Samples).Median).ToArray();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {arch} 1.0/{shape[2]} | {t} | {m[0]:F2} ms | {m[1]:F2} ms | {m[2]:F2} ms | {m[3]:F2} ms | {m[3] / m[1]:F2} | {m[2] / m[0]:F2} | {m[2] / m[3]:F2} |"));
            }
        }
        return 0;
    }

    private static IEnumerable<Tensor> Calibration(int[] shape, int samples)
    {
        if (!FashionMnist.IsInstalled())
        {
            for (int i = 0; i < samples; i++) yield return Tensor.Random(100 + i, shape, 0, 1);
            yield break;
        }
        var train = FashionMnist.Load(train: true);
        var set = train.Subset(Shuffle.Permutation(train.Count, seed: 0).AsSpan(0, samples));
        foreach (var b in new BatchSource(set, new BatchOptions(8, shape[2], shape[1], Shuffle: false)).Epoch(0)) yield return b.Images;
    }

    /// <summary>One engine on one file, timed run by run.</summary>
    private sealed class Runner : IDisposable
    {
        private readonly Action _run;
        private readonly IDisposable[] _owned;
        public List<double> Samples { get; } = [];

        public Runner(string name, InferenceSession session, Tensor input)
        {
            Tensor[] inputs = [input];
            Tensor[] outputs = [Tensor.Zeros(session.Outputs[0].Shape)];
            _run = () => session.Run(inputs, outputs);
            _owned = [session];
            Name = name;
        }

        public Runner(string name, byte[] model, int threads, Tensor input)
        {
            var options = new Ort.SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1, GraphOptimizationLevel = Ort.GraphOptimizationLevel.ORT_ENABLE_ALL };
            var session = new Ort.InferenceSession(model, options);
            var meta = session.OutputMetadata[session.OutputNames[0]];
            var outData = new float[meta.Dimensions.Aggregate(1, (a, d) => a * Math.Max(1, d))];
            var inValue = Ort.OrtValue.CreateTensorValueFromMemory(input.Floats, input.Shape.Select(d => (long)d).ToArray());
            var outValue = Ort.OrtValue.CreateTensorValueFromMemory(outData, meta.Dimensions.Select(d => (long)Math.Max(1, d)).ToArray());
            var runOptions = new Ort.RunOptions();
            string[] inNames = [session.InputNames[0]], outNames = [session.OutputNames[0]];
            Ort.OrtValue[] ins = [inValue], outs = [outValue];
            _run = () => session.Run(runOptions, inNames, ins, outNames, outs);
            _owned = [runOptions, inValue, outValue, session, options];
            Name = name;
        }

        public string Name { get; }

        public double Time()
        {
            long t0 = Stopwatch.GetTimestamp();
            _run();
            return Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        }

        public void Dispose()
        {
            foreach (var o in _owned) o.Dispose();
        }
    }
}
