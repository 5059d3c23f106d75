using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Training.Data;

namespace MobileNetSharp.Training;

/// <summary>
/// Classification quality on a labelled set.
/// <paramref name="Confusion"/>[true, predicted] counts; <paramref name="PerClass"/>[k] is the recall of class k
/// (NaN for a class with no samples); <paramref name="Top5"/> is null when the model has 5 classes or fewer.
/// </summary>
public sealed record EvaluationResult(int Count, double Accuracy, double? Top5, double[] PerClass, int[,] Confusion,
    IReadOnlyList<string> ClassNames, double Seconds)
{
    public double ImagesPerSecond => Count / Math.Max(Seconds, 1e-9);
}

/// <summary>Runs a classifier over a dataset and scores it (top-1, top-5, per-class recall, confusion matrix).</summary>
public static class Evaluation
{
    /// <summary>
    /// Scores <paramref name="session"/> (input [N, C, R, R] taking pixels in [0, 1], last output the scores [N, K])
    /// on <paramref name="data"/>, whose images are resized and channel-replicated to the model's input.
    /// </summary>
    /// <exception cref="ArgumentException">The model's classes do not cover the dataset's labels, or its input is not an image.</exception>
    public static EvaluationResult Run(InferenceSession session, ImageDataset data, int batchSize = 100, Action<int, int>? progress = null,
        CancellationToken cancellation = default)
    {
        var input = session.Inputs[0].Shape;
        if (input.Length != 4) throw new ArgumentException($"The model's input {Shape.Format(input)} is not an image batch [N, C, H, W].");
        if (input[2] != input[3]) throw new ArgumentException($"The model's input {Shape.Format(input)} is not square.");
        int classes = session.Outputs[^1].Shape[^1];
        if (classes < data.Classes) throw new ArgumentException($"The model scores {classes} classes but the data has {data.Classes}.");
        var source = new BatchSource(data, new BatchOptions(batchSize, input[2], input[1], Shuffle: false));
        var confusion = new int[classes, classes];
        int count = 0, top1 = 0, top5 = 0;
        var start = System.Diagnostics.Stopwatch.StartNew();
        var order = new int[classes];
        foreach (var batch in source.Epoch(0))
        {
            cancellation.ThrowIfCancellationRequested();
            var scores = session.Run(batch.Images)[^1].Floats;
            for (int i = 0; i < batch.Labels.Length; i++)
            {
                var row = scores.AsSpan(i * classes, classes);
                int predicted = System.Numerics.Tensors.TensorPrimitives.IndexOfMax<float>(row);
                int label = batch.Labels[i];
                confusion[label, predicted]++;
                if (predicted == label) top1++;
                if (classes > 5)
                {
                    int above = 0; // classes scoring higher than the label: in the top 5 when fewer than 5
                    foreach (var v in row) if (v > row[label]) above++;
                    if (above < 5) top5++;
                }
            }
            count += batch.Labels.Length;
            progress?.Invoke(count, data.Count);
        }
        var perClass = new double[classes];
        for (int k = 0; k < classes; k++)
        {
            int total = 0;
            for (int p = 0; p < classes; p++) total += confusion[k, p];
            perClass[k] = total == 0 ? double.NaN : (double)confusion[k, k] / total;
        }
        var names = data.ClassNames.Count == classes ? data.ClassNames : Enumerable.Range(0, classes).Select(k => k < data.ClassNames.Count ? data.ClassNames[k] : k.ToString()).ToArray();
        return new EvaluationResult(count, count == 0 ? 0 : (double)top1 / count, classes > 5 ? (double)top5 / count : null, perClass, confusion,
            names, start.Elapsed.TotalSeconds);
    }
}
