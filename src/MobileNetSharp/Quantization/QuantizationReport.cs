using MobileNetSharp.Graph;
using MobileNetSharp.Kernels.Int8;
using MobileNetSharp.Passes;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Quantization;

/// <summary>
/// How much one quantized tensor departs from its float self, as signal-to-quantization-noise ratio
/// SQNR = 10 log10(sum x^2 / sum (x - x')^2) in dB (higher is better; each bit is worth about 6 dB).
/// </summary>
/// <param name="OwnSqnrDb">x' = DequantizeLinear(QuantizeLinear(x)) of the float tensor: the error this tensor's own range adds.</param>
/// <param name="ModelSqnrDb">x' = the quantized model's tensor: the error accumulated from the input up to here.</param>
public sealed record TensorSqnr(string Name, string Producer, double OwnSqnrDb, double ModelSqnrDb);

/// <summary>The sensitivity report of `mnet quantize --report`.</summary>
/// <param name="Agreement">Share of images whose top-1 class is the same in the float and the quantized model.</param>
/// <param name="FloatAccuracy">Top-1 accuracy of the float model, when the images' labels are the model's classes.</param>
/// <param name="QuantizedAccuracy">The same for the quantized model.</param>
/// <param name="OutputSqnrDb">SQNR of the model's last output (the scores).</param>
public sealed record QuantizationReport(int Images, double Agreement, double? FloatAccuracy, double? QuantizedAccuracy,
    double OutputSqnrDb, IReadOnlyList<TensorSqnr> Tensors)
{
    /// <summary>
    /// Runs the float graph and the quantized model (QDQ simulated in float: the same arithmetic ONNX's reference
    /// defines) side by side on <paramref name="batches"/>.
    /// </summary>
    /// <param name="batches">Image batches, with labels when <paramref name="labelled"/>.</param>
    /// <param name="labelled">The labels are the model's class indices, so accuracy means something.</param>
    public static QuantizationReport Run(QuantizationResult result, IEnumerable<(Tensor Images, int[] Labels)> batches, bool labelled,
        int threads, Action<int>? progress = null, CancellationToken cancellation = default)
    {
        var points = result.Activations;
        var simulated = result.Model.Clone();
        FoldConstants.Run(simulated);
        var floatProbe = Calibrator.WithOutputs(result.Prepared, points.Select(p => p.Name).ToList());
        var quantProbe = Calibrator.WithOutputs(simulated, points.Select(p => p.Dequantized).ToList());
        var options = new SessionOptions { Threads = threads, Optimize = false };
        using var fp = new InferenceSession(floatProbe, options);
        using var q = new InferenceSession(quantProbe, options);
        int first = floatProbe.Outputs.Count - points.Count, scores = first - 1;
        var signal = new double[points.Count + 1];
        var own = new double[points.Count];
        var model = new double[points.Count + 1];
        int images = 0, agree = 0, fpRight = 0, qRight = 0;
        float[] roundTrip = [];
        byte[] codes = [];
        foreach (var (batch, labels) in batches)
        {
            cancellation.ThrowIfCancellationRequested();
            var a = fp.Run(batch);
            var b = q.Run(batch);
            for (int i = 0; i < points.Count; i++)
            {
                var x = a[first + i].Floats;
                var p = points[i].Params;
                if (roundTrip.Length < x.Length) (roundTrip, codes) = (new float[x.Length], new byte[x.Length]);
                var rt = roundTrip.AsSpan(0, x.Length);
                QuantizeLinearKernel.Quantize(x, codes.AsSpan(0, x.Length), p, (1, 1, x.Length));
                QuantizeLinearKernel.Dequantize(codes.AsSpan(0, x.Length), rt, p, (1, 1, x.Length));
                Accumulate(x, rt, ref signal[i], ref own[i]);
                double unused = 0;
                Accumulate(x, b[first + i].Floats, ref unused, ref model[i]);
            }
            var fs = a[scores].Floats;
            var qs = b[scores].Floats;
            Accumulate(fs, qs, ref signal[^1], ref model[^1]);
            int n = batch.Shape[0], classes = fs.Length / Math.Max(1, n);
            for (int k = 0; k < n; k++)
            {
                int pf = System.Numerics.Tensors.TensorPrimitives.IndexOfMax<float>(fs.AsSpan(k * classes, classes));
                int pq = System.Numerics.Tensors.TensorPrimitives.IndexOfMax<float>(qs.AsSpan(k * classes, classes));
                if (pf == pq) agree++;
                if (labelled && pf == labels[k]) fpRight++;
                if (labelled && pq == labels[k]) qRight++;
            }
            images += n;
            progress?.Invoke(images);
        }
        if (images == 0) throw new ArgumentException("the report needs at least one image.");
        var tensors = points.Select((p, i) => new TensorSqnr(p.Name, p.Producer, Db(signal[i], own[i]), Db(signal[i], model[i]))).ToList();
        return new QuantizationReport(images, (double)agree / images, labelled ? (double)fpRight / images : null,
            labelled ? (double)qRight / images : null, Db(signal[^1], model[^1]), tensors);
    }

    private static void Accumulate(ReadOnlySpan<float> x, ReadOnlySpan<float> y, ref double signal, ref double noise)
    {
        double s = 0, e = 0;
        for (int i = 0; i < x.Length; i++)
        {
            double d = (double)x[i] - y[i];
            s += (double)x[i] * x[i];
            e += d * d;
        }
        signal += s;
        noise += e;
    }

    /// <summary>SQNR in dB; +infinity when there is no noise, -infinity when there is no signal but noise.</summary>
    internal static double Db(double signal, double noise) =>
        noise == 0 ? double.PositiveInfinity : signal == 0 ? double.NegativeInfinity : 10 * Math.Log10(signal / noise);
}
