using System.Numerics.Tensors;

namespace MobileNetSharp.Kernels;

/// <summary>
/// Softmax followed by cross-entropy against integer class labels, the classifier loss of training, with PyTorch's
/// torch.nn.CrossEntropyLoss(label_smoothing = s, reduction = 'mean') semantics: the target distribution is
/// (1 - s)·onehot(label) + s/K, the per-sample loss is -Σ_k target_k·log softmax(logits)_k, and the loss is the mean
/// over the batch. logits and probabilities are [N, K] row-major; labels [N] in [0, K).
/// </summary>
public static class SoftmaxCrossEntropy
{
    /// <summary>
    /// Writes probabilities [N, K] = softmax(logits) per row (the maximum is subtracted first, so large logits do
    /// not overflow) and returns the mean loss over the batch, summed in double from the log-sum-exp
    /// (log softmax_k = logit_k - max - log Σ exp(logit - max)). probabilities may alias logits.
    /// </summary>
    /// <exception cref="ArgumentException">batch or classes below 1, a buffer shorter than [N, K] / [N], labelSmoothing
    /// outside [0, 1), or a label outside [0, K) (the message names the sample and the label).</exception>
    public static float Forward(ReadOnlySpan<float> logits, ReadOnlySpan<long> labels, Span<float> probabilities, int batch, int classes, float labelSmoothing = 0)
    {
        Check(logits.Length, labels, probabilities.Length, batch, classes, labelSmoothing, "logits", "probabilities");
        double total = 0, s = labelSmoothing;
        for (int i = 0; i < batch; i++)
        {
            var row = logits.Slice(i * classes, classes);
            var p = probabilities.Slice(i * classes, classes);
            float max = TensorPrimitives.Max(row);
            double logitSum = 0;
            foreach (float v in row) logitSum += v;
            double label = row[(int)labels[i]]; // read before p (which may alias the logits) is written
            TensorPrimitives.Subtract(row, max, p);
            TensorPrimitives.Exp(p, p);
            double sum = 0;
            foreach (float v in p) sum += v;
            TensorPrimitives.Multiply(p, (float)(1 / sum), p);
            double logSumExp = max + Math.Log(sum);
            // -log p_label and -Σ_k log p_k / K.
            double nll = logSumExp - label, uniform = logSumExp - logitSum / classes;
            total += (1 - s) * nll + s * uniform;
        }
        return (float)(total / batch);
    }

    /// <summary>
    /// dlogits [N, K] = (probabilities - target) · lossScale / N, the gradient of the mean loss times its upstream
    /// gradient <paramref name="lossScale"/> (1 when the loss is the final output). dlogits may alias probabilities.
    /// </summary>
    /// <exception cref="ArgumentException">As for <see cref="Forward"/>.</exception>
    public static void Backward(ReadOnlySpan<float> probabilities, ReadOnlySpan<long> labels, Span<float> dlogits, int batch, int classes,
        float labelSmoothing = 0, float lossScale = 1)
    {
        Check(probabilities.Length, labels, dlogits.Length, batch, classes, labelSmoothing, "probabilities", "dlogits");
        float scale = lossScale / batch, uniform = labelSmoothing / classes;
        float hit = (1 - labelSmoothing) * scale;
        for (int i = 0; i < batch; i++)
        {
            var d = dlogits.Slice(i * classes, classes);
            TensorPrimitives.Subtract(probabilities.Slice(i * classes, classes), uniform, d);
            TensorPrimitives.Multiply(d, scale, d); // (p - s/K)·scale
            d[(int)labels[i]] -= hit;
        }
    }

    private static void Check(int inLength, ReadOnlySpan<long> labels, int outLength, int batch, int classes, float labelSmoothing, string inName, string outName)
    {
        if (batch < 1 || classes < 1) throw new ArgumentException($"Softmax cross-entropy: batch and classes must be positive, got [{batch}, {classes}].");
        long n = (long)batch * classes;
        if (inLength < n || outLength < n || labels.Length < batch)
            throw new ArgumentException($"Softmax cross-entropy: {inName} ({inLength}), {outName} ({outLength}) and labels ({labels.Length}) need [{batch}, {classes}], [{batch}, {classes}] and {batch} values.");
        if (!(labelSmoothing >= 0 && labelSmoothing < 1))
            throw new ArgumentException($"Softmax cross-entropy: label smoothing must be in [0, 1), got {labelSmoothing}.", nameof(labelSmoothing));
        for (int i = 0; i < batch; i++)
            if ((ulong)labels[i] >= (ulong)classes)
                throw new ArgumentException($"Softmax cross-entropy: label {labels[i]} of sample {i} is outside [0, {classes}).", nameof(labels));
    }
}
