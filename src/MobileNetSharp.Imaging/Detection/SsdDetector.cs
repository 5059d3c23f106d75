using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Imaging.Detection;

/// <summary>An SSD prior box: centre (X, Y) and size (W, H), all as fractions (0-1) of the model's input.</summary>
public readonly record struct Anchor(float X, float Y, float W, float H);

/// <summary>
/// The options of MediaPipe's SsdAnchorsCalculator that its SSD graphs set (mediapipe/calculators/tflite/ssd_anchors_calculator.proto),
/// after the SSD paper's default boxes (Liu et al. 2016, "SSD: Single Shot MultiBox Detector", section 2.2): layer k of
/// <c>Strides.Length</c> has scale s_k = MinScale + (MaxScale − MinScale)·k / (layers − 1) (of the input side), one box per aspect
/// ratio a with width s_k·√a and height s_k/√a, plus (when <see cref="InterpolatedScaleAspectRatio"/> &gt; 0) one of scale
/// √(s_k·s_k+1) (s_k+1 = 1 after the last layer) at that ratio. With <see cref="ReduceBoxesInLowestLayer"/> the first layer has
/// only three boxes: scale 0.1 at ratio 1, and s_0 at ratios 2 and 0.5. A layer with stride t has a ⌈input/t⌉ grid, centres at
/// (x + offset)/grid; boxes run row by row, then column, then box, which is the order of the model's outputs.
/// </summary>
public sealed record SsdAnchorOptions(int InputWidth, int InputHeight, float MinScale, float MaxScale, int[] Strides, float[] AspectRatios,
    bool ReduceBoxesInLowestLayer = false, float InterpolatedScaleAspectRatio = 1f, float OffsetX = 0.5f, float OffsetY = 0.5f)
{
    /// <summary>
    /// The options of the SSD MobileNetV2 (Open Images V4) detector in MediaPipe's Objectron module
    /// (mediapipe/modules/objectron/object_detection_oid_v4_cpu.pbtxt): 300x300 input, six layers of strides 16 to 512, scales
    /// 0.2 to 0.95, aspect ratios 1, 2, 0.5, 3, 0.3333, a reduced lowest layer: 19·19·3 + (10·10 + 5·5 + 3·3 + 2·2 + 1)·6 = 1917 anchors.
    /// </summary>
    public static SsdAnchorOptions ObjectronSsd { get; } = new(300, 300, 0.2f, 0.95f, [16, 32, 64, 128, 256, 512], [1f, 2f, 0.5f, 3f, 0.3333f],
        ReduceBoxesInLowestLayer: true);

    /// <summary>The anchors in the model's output order.</summary>
    public Anchor[] Generate()
    {
        if (Strides.Length == 0 || InputWidth < 1 || InputHeight < 1) throw new ArgumentException("SSD anchors need strides and a positive input size.");
        int layers = Strides.Length;
        float Scale(int k) => layers == 1 ? (MinScale + MaxScale) / 2 : MinScale + (MaxScale - MinScale) * k / (layers - 1);
        var anchors = new List<Anchor>();
        for (int layer = 0; layer < layers;)
        {
            // Consecutive layers with the same stride share one grid; their boxes are interleaved per cell.
            var sizes = new List<(float W, float H)>();
            int last = layer;
            for (; last < layers && Strides[last] == Strides[layer]; last++)
            {
                float s = Scale(last);
                var boxes = new List<(float Scale, float Ratio)>();
                if (last == 0 && ReduceBoxesInLowestLayer) boxes.AddRange([(0.1f, 1f), (s, 2f), (s, 0.5f)]);
                else
                {
                    foreach (float a in AspectRatios) boxes.Add((s, a));
                    if (InterpolatedScaleAspectRatio > 0)
                        boxes.Add((MathF.Sqrt(s * (last == layers - 1 ? 1f : Scale(last + 1))), InterpolatedScaleAspectRatio));
                }
                sizes.AddRange(boxes.Select(b => (b.Scale * MathF.Sqrt(b.Ratio), b.Scale / MathF.Sqrt(b.Ratio))));
            }
            int gridH = (int)Math.Ceiling((double)InputHeight / Strides[layer]), gridW = (int)Math.Ceiling((double)InputWidth / Strides[layer]);
            for (int y = 0; y < gridH; y++)
                for (int x = 0; x < gridW; x++)
                    foreach (var (w, h) in sizes) anchors.Add(new Anchor((x + OffsetX) / gridW, (y + OffsetY) / gridH, w, h));
            layer = last;
        }
        return anchors.ToArray();
    }
}

/// <summary>
/// The SSD MobileNetV2 object detector of MediaPipe's Objectron (object_detection_ssd_mobilenetv2_oidv4_fp16.tflite, packed in
/// npm @mediapipe/objectron, Apache-2.0): 24 Open Images V4 classes, input float32 NHWC [1, 300, 300, 3] in [-1, 1] (the photo
/// stretched to 300x300, as the graph's ImageToTensorCalculator does with keep_aspect_ratio: false), outputs box encodings
/// [1, 1917, 4] and class logits [1, 1917, 24]. Post-processing follows the graph's TensorsToDetectionsCalculator options: the
/// best class per anchor other than 0 (the background, "???"), sigmoid score over <see cref="ScoreThreshold"/> (0.5), boxes
/// decoded against <see cref="SsdAnchorOptions.ObjectronSsd"/> with the SSD/Faster R-CNN box coder (encodings y, x, h, w; scales
/// 10, 10, 5, 5: centre = raw/10 · anchor size + anchor centre, size = exp(raw/5) · anchor size), then its
/// NonMaxSuppressionCalculator: greedy, class-agnostic, IoU &gt; 0.5 suppresses, at most 100 detections.
/// </summary>
public sealed class SsdDetector : IDisposable
{
    /// <summary>The model's label map (object_detection_oidv4_labelmap.txt in the same package): class index → name; 0 is the background.</summary>
    public static IReadOnlyList<string> OpenImagesLabels { get; } =
    [
        "???", "Bicycle", "Boot", "Laptop", "Person", "Chair", "Cattle", "Desk", "Cat", "Computer mouse", "Computer monitor", "Box",
        "Mug", "Coffee cup", "Stationary bicycle", "Table", "Bottle", "High heels", "Vehicle", "Footwear", "Dog", "Book", "Camera", "Car",
    ];

    private const float XScale = 10f, YScale = 10f, WScale = 5f, HScale = 5f;
    private readonly InferenceSession _session;
    private readonly Anchor[] _anchors;
    private readonly int _boxesOutput, _scoresOutput, _inputW, _inputH;

    /// <summary>Minimum sigmoid score (0-1) of a detection before suppression.</summary>
    public float ScoreThreshold { get; init; } = 0.5f;
    /// <summary>Boxes overlapping a better one by more than this IoU are dropped.</summary>
    public float IouThreshold { get; init; } = 0.5f;
    /// <summary>At most this many detections are kept after suppression (MediaPipe's max_num_detections).</summary>
    public int MaxDetections { get; init; } = 100;
    /// <summary>Class index → name for the model's class logits (index 0, the background, is never reported).</summary>
    public IReadOnlyList<string> Labels { get; }

    /// <summary>
    /// Loads the detector from a .tflite (or .onnx) file. <paramref name="anchors"/> defaults to <see cref="SsdAnchorOptions.ObjectronSsd"/>
    /// and <paramref name="labels"/> to <see cref="OpenImagesLabels"/>; a model whose inputs or outputs are not the SSD's gives an <see cref="ArgumentException"/>.
    /// </summary>
    public SsdDetector(string modelPath, SessionOptions? options = null, SsdAnchorOptions? anchors = null, IReadOnlyList<string>? labels = null)
    {
        var o = anchors ?? SsdAnchorOptions.ObjectronSsd;
        _anchors = o.Generate();
        Labels = labels ?? OpenImagesLabels;
        _session = new InferenceSession(modelPath, options);
        try
        {
            string what = $"'{modelPath}' is not an SSD detector with {_anchors.Length} anchors for a {o.InputWidth}x{o.InputHeight} RGB input"
                + $" (such as object_detection_ssd_mobilenetv2_oidv4_fp16.tflite from @mediapipe/objectron)";
            if (_session.Inputs.Count != 1 || !_session.Inputs[0].Shape.SequenceEqual([1, o.InputHeight, o.InputWidth, 3]))
                throw new ArgumentException($"{what}: it takes {string.Join(", ", _session.Inputs.Select(i => Shape.Format(i.Shape)))}.");
            var outs = _session.Outputs;
            _boxesOutput = Find(s => s.Length == 3 && s[0] == 1 && s[1] == _anchors.Length && s[2] == 4);
            _scoresOutput = Find(s => s.Length == 3 && s[0] == 1 && s[1] == _anchors.Length && s[2] == Labels.Count);
            if (_boxesOutput < 0 || _scoresOutput < 0 || outs.Count != 2)
                throw new ArgumentException($"{what} and {Labels.Count} classes: its outputs are {string.Join(", ", outs.Select(t => Shape.Format(t.Shape)))}.");
            int Find(Func<int[], bool> match) => outs.Select((t, i) => (t, i)).Where(p => match(p.t.Shape)).Select(p => p.i).DefaultIfEmpty(-1).First();
        }
        catch { _session.Dispose(); throw; }
        (_inputW, _inputH) = (o.InputWidth, o.InputHeight);
    }

    /// <summary>The anchors the outputs are decoded against.</summary>
    public IReadOnlyList<Anchor> Anchors => _anchors;

    /// <summary>Detections in the image's pixels (boxes clipped to it), highest score first.</summary>
    public IReadOnlyList<Detection> Detect(RgbImage image)
    {
        var outputs = _session.Run(image.Resize(_inputW, _inputH).ToNhwc(-1f, 1f));
        var raw = Decode(outputs[_boxesOutput].Floats, outputs[_scoresOutput].Floats, _anchors, Labels, ScoreThreshold);
        return Nms(raw, IouThreshold, MaxDetections).Select(d => d with
        {
            X1 = Math.Clamp(d.X1, 0, 1) * image.Width, Y1 = Math.Clamp(d.Y1, 0, 1) * image.Height,
            X2 = Math.Clamp(d.X2, 0, 1) * image.Width, Y2 = Math.Clamp(d.Y2, 0, 1) * image.Height,
        }).ToList();
    }

    /// <summary>
    /// Box encodings [N·4] (y, x, h, w per anchor) and class logits [N·C] to detections in input fractions (0-1) whose best
    /// non-background class scores at least <paramref name="threshold"/> after a sigmoid.
    /// </summary>
    public static List<Detection> Decode(float[] boxes, float[] logits, Anchor[] anchors, IReadOnlyList<string> labels, float threshold)
    {
        int n = anchors.Length, classes = labels.Count;
        if (boxes.Length != n * 4 || logits.Length != n * classes)
            throw new ArgumentException($"Expected {n}x4 box values and {n}x{classes} class logits, got {boxes.Length} and {logits.Length}.");
        var result = new List<Detection>();
        for (int i = 0; i < n; i++)
        {
            int best = -1;
            float top = float.NegativeInfinity;
            for (int c = 1; c < classes; c++)
                if (logits[i * classes + c] > top) { top = logits[i * classes + c]; best = c; }
            if (best < 0) continue;
            float score = 1f / (1f + MathF.Exp(-top));
            if (!(score >= threshold)) continue;
            var a = anchors[i];
            float yc = boxes[i * 4] / YScale * a.H + a.Y, xc = boxes[i * 4 + 1] / XScale * a.W + a.X;
            float h = MathF.Exp(boxes[i * 4 + 2] / HScale) * a.H, w = MathF.Exp(boxes[i * 4 + 3] / WScale) * a.W;
            result.Add(new Detection(labels[best], score, xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2, []));
        }
        return result;
    }

    /// <summary>Greedy non-maximum suppression over all classes together (MediaPipe's default): keep a box unless it overlaps a kept, better one by more than the IoU threshold.</summary>
    public static List<Detection> Nms(List<Detection> detections, float iouThreshold, int max)
    {
        var kept = new List<Detection>();
        foreach (var d in detections.OrderByDescending(d => d.Score))
        {
            if (kept.Count >= max) break;
            if (kept.All(k => BlazeFaceDetector.Iou(k, d) <= iouThreshold)) kept.Add(d);
        }
        return kept;
    }

    /// <summary>Releases the inference session.</summary>
    public void Dispose() => _session.Dispose();
}
