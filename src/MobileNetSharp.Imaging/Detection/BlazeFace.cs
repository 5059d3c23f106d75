using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Imaging.Detection;

/// <summary>A detection in the original image's pixels: box (x1, y1, x2, y2), score, and keypoints (x, y).</summary>
public sealed record Detection(string Label, float Score, float X1, float Y1, float X2, float Y2, (float X, float Y)[] Keypoints);

/// <summary>
/// MediaPipe's short-range BlazeFace post-processing: the SSD anchors of its graph options (128x128 input, strides
/// 8, 16, 16, 16, one fixed-size anchor pair per layer and cell, so 16·16·2 + 8·8·6 = 896), box and six-keypoint
/// decoding with scale 128, sigmoid scores (logits clipped to ±100) over a threshold, and weighted non-maximum
/// suppression (IoU 0.3), which averages each cluster's boxes by score.
/// </summary>
public sealed class BlazeFaceDetector : IDisposable
{
    public const int InputSize = 128;
    private const float Scale = 128f;
    private readonly InferenceSession _session;
    private readonly (float X, float Y)[] _anchors = Anchors();

    public float ScoreThreshold { get; init; } = 0.5f;
    public float IouThreshold { get; init; } = 0.3f;

    public BlazeFaceDetector(string modelPath, SessionOptions? options = null)
    {
        _session = new InferenceSession(modelPath, options);
        var input = _session.Inputs[0].Shape;
        if (!input.SequenceEqual([1, InputSize, InputSize, 3]))
            throw new ArgumentException($"'{modelPath}' takes {Shape.Format(input)}; the short-range BlazeFace takes [1,128,128,3].");
    }

    /// <summary>The 896 anchor centres (x, y in 0-1), in the model's output order; all have width and height 1.</summary>
    public static (float X, float Y)[] Anchors()
    {
        int[] strides = [8, 16, 16, 16];
        var anchors = new List<(float, float)>();
        for (int layer = 0; layer < strides.Length;)
        {
            // Consecutive layers with the same stride share one grid, two anchors per layer per cell.
            int last = layer, perCell = 0;
            while (last < strides.Length && strides[last] == strides[layer]) { perCell += 2; last++; }
            int grid = (int)Math.Ceiling((double)InputSize / strides[layer]);
            for (int y = 0; y < grid; y++)
                for (int x = 0; x < grid; x++)
                    for (int a = 0; a < perCell; a++) anchors.Add(((x + 0.5f) / grid, (y + 0.5f) / grid));
            layer = last;
        }
        return anchors.ToArray();
    }

    public IReadOnlyList<Detection> Detect(RgbImage image)
    {
        var (square, left, top, w, h) = image.Letterbox(InputSize);
        var outputs = _session.Run(square.ToNhwc(-1f, 1f));
        var raw = Decode(outputs[0].Floats, outputs[1].Floats, _anchors, ScoreThreshold);
        // From the letterboxed square (0-1) back to the image's pixels.
        (float, float) Map(float x, float y) => ((x - left) / w * image.Width, (y - top) / h * image.Height);
        return WeightedNms(raw, IouThreshold).Select(d =>
        {
            var (x1, y1) = Map(d.X1, d.Y1);
            var (x2, y2) = Map(d.X2, d.Y2);
            return d with { X1 = x1, Y1 = y1, X2 = x2, Y2 = y2, Keypoints = d.Keypoints.Select(k => Map(k.X, k.Y)).ToArray() };
        }).ToList();
    }

    /// <summary>Boxes (0-1 of the square input) for anchors whose score passes the threshold.</summary>
    public static List<Detection> Decode(float[] boxes, float[] logits, (float X, float Y)[] anchors, float threshold)
    {
        if (boxes.Length != anchors.Length * 16 || logits.Length != anchors.Length)
            throw new ArgumentException($"Expected {anchors.Length}x16 box values and {anchors.Length} scores.");
        var result = new List<Detection>();
        for (int i = 0; i < anchors.Length; i++)
        {
            float score = 1f / (1f + MathF.Exp(-Math.Clamp(logits[i], -100f, 100f)));
            if (score < threshold) continue;
            var r = boxes.AsSpan(i * 16, 16);
            float cx = r[0] / Scale + anchors[i].X, cy = r[1] / Scale + anchors[i].Y, bw = r[2] / Scale, bh = r[3] / Scale;
            var keypoints = new (float, float)[6];
            for (int k = 0; k < 6; k++) keypoints[k] = (r[4 + 2 * k] / Scale + anchors[i].X, r[5 + 2 * k] / Scale + anchors[i].Y);
            result.Add(new Detection("face", score, cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, keypoints));
        }
        return result;
    }

    public static float Iou(Detection a, Detection b)
    {
        float ix = Math.Max(0, Math.Min(a.X2, b.X2) - Math.Max(a.X1, b.X1)), iy = Math.Max(0, Math.Min(a.Y2, b.Y2) - Math.Max(a.Y1, b.Y1));
        float inter = ix * iy, union = (a.X2 - a.X1) * (a.Y2 - a.Y1) + (b.X2 - b.X1) * (b.Y2 - b.Y1) - inter;
        return union > 0 ? inter / union : 0;
    }

    /// <summary>MediaPipe's weighted NMS: take the best remaining detection and all that overlap it by more than the threshold, average them weighted by score; highest score first.</summary>
    public static List<Detection> WeightedNms(List<Detection> detections, float iouThreshold)
    {
        var remaining = detections.OrderByDescending(d => d.Score).ToList();
        var result = new List<Detection>();
        while (remaining.Count > 0)
        {
            var best = remaining[0];
            var cluster = remaining.Where(d => Iou(best, d) > iouThreshold).ToList();
            remaining = remaining.Where(d => Iou(best, d) <= iouThreshold && d != best).ToList();
            float total = cluster.Sum(d => d.Score);
            float Avg(Func<Detection, float> f) => cluster.Sum(d => f(d) * d.Score) / total;
            var keypoints = Enumerable.Range(0, best.Keypoints.Length).Select(k => (Avg(d => d.Keypoints[k].X), Avg(d => d.Keypoints[k].Y))).ToArray();
            result.Add(best with { X1 = Avg(d => d.X1), Y1 = Avg(d => d.Y1), X2 = Avg(d => d.X2), Y2 = Avg(d => d.Y2), Keypoints = keypoints });
        }
        return result;
    }

    public void Dispose() => _session.Dispose();
}
