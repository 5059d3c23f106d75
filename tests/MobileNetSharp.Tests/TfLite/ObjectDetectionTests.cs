using System.Text.Json;
using MobileNetSharp.Imaging;
using MobileNetSharp.Imaging.Detection;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Tests.Cli;
using MobileNetSharp.Tests.Onnx;
using MobileNetSharp.TfLite;
using Xunit.Abstractions;

namespace MobileNetSharp.Tests.TfLite;

/// <summary>
/// A fact that needs a model fetched by tools/fetch-models.sh into Fixtures/npm (too large for git). Skipped, with a message
/// saying so, when the file is absent locally; CI sets MNET_REQUIRE_MODELS=1 after fetching, and then it always runs (and a
/// missing file fails it).
/// </summary>
public sealed class FactNeedingModelAttribute : FactAttribute
{
    public FactNeedingModelAttribute(string file)
    {
        if (!File.Exists(ObjectDetectionTests.Npm(file)) && Environment.GetEnvironmentVariable("MNET_REQUIRE_MODELS") != "1")
            Skip = $"{file} is not in {Path.Combine(BlazeFaceTests.Fixtures, "npm")}: run tools/fetch-models.sh (CI does).";
    }
}

/// <summary>
/// MediaPipe's SSD MobileNetV2 (Objectron's detector, 24 Open Images classes): anchors, decoding and NMS on their own, then the
/// real model on the cat photo (chelsea) against an independent reference, and `mnet detect`.
/// </summary>
[Collection("Console")]
public class ObjectDetectionTests(ITestOutputHelper output)
{
    public const string SsdFile = "object_detection_ssd_mobilenetv2_oidv4_fp16.tflite";
    public static string Npm(string file) => Path.Combine(BlazeFaceTests.Fixtures, "npm", file);
    private static string SsdPath => Npm(SsdFile);
    private static string Chelsea => Path.Combine(BlazeFaceTests.Fixtures, "chelsea.png");

    /// <summary>
    /// The anchors written out in closed form from the graph's options (object_detection_oid_v4_cpu.pbtxt), layer by layer:
    /// grids 19, 10, 5, 3, 2, 1 (⌈300/stride⌉), scales s_k = 0.2 + 0.15·k; layer 0 has (0.1, ratio 1), (s_0, 2), (s_0, 0.5); the
    /// others ratios 1, 2, 0.5, 3, 0.3333 at s_k and ratio 1 at √(s_k·s_k+1), s_6 = 1. Width = s·√r, height = s/√r.
    /// </summary>
    private static Anchor[] ReferenceAnchors()
    {
        int[] grids = [19, 10, 5, 3, 2, 1];
        var result = new List<Anchor>();
        for (int k = 0; k < 6; k++)
        {
            double s = 0.2 + 0.15 * k, next = k == 5 ? 1 : 0.2 + 0.15 * (k + 1);
            var boxes = k == 0 ? new (double S, double R)[] { (0.1, 1), (s, 2), (s, 0.5) }
                : [(s, 1), (s, 2), (s, 0.5), (s, 3), (s, 0.3333), (Math.Sqrt(s * next), 1)];
            for (int y = 0; y < grids[k]; y++)
                for (int x = 0; x < grids[k]; x++)
                    foreach (var (bs, r) in boxes)
                        result.Add(new Anchor((float)((x + 0.5) / grids[k]), (float)((y + 0.5) / grids[k]), (float)(bs * Math.Sqrt(r)), (float)(bs / Math.Sqrt(r))));
        }
        return result.ToArray();
    }

    [Fact]
    public void AnchorsFollowObjectronsSsdOptions()
    {
        var a = SsdAnchorOptions.ObjectronSsd.Generate();
        var r = ReferenceAnchors();
        Assert.Equal(1917, a.Length);
        Assert.Equal(r.Length, a.Length);
        for (int i = 0; i < a.Length; i++)
        {
            Assert.Equal(r[i].X, a[i].X, 5);
            Assert.Equal(r[i].Y, a[i].Y, 5);
            Assert.Equal(r[i].W, a[i].W, 5);
            Assert.Equal(r[i].H, a[i].H, 5);
        }
        Assert.Equal(new Anchor(0.5f / 19, 0.5f / 19, 0.1f, 0.1f), a[0]);
        Assert.Equal(0.5f, a[1916].X);
        Assert.Equal(MathF.Sqrt(0.95f), a[1916].W, 5);
    }

    [Fact]
    public void DecodingUsesTheBoxCoderAndSkipsTheBackground()
    {
        Anchor[] anchors = [new(0.5f, 0.5f, 0.2f, 0.4f), new(0.25f, 0.25f, 0.1f, 0.1f)];
        string[] labels = ["???", "a", "b"];
        // Anchor 0 (encodings y, x, h, w): centre moved by 1/10 of its height and 2/10 of its width, height e^(5/5) = e times; class b.
        // Anchor 1: only the background (class 0) is likely, so nothing.
        float[] boxes = [1f, 2f, 5f, 0f, 0f, 0f, 0f, 0f];
        float[] logits = [9f, -1f, 2f, 9f, -5f, -6f];
        var d = Assert.Single(SsdDetector.Decode(boxes, logits, anchors, labels, 0.5f));
        Assert.Equal("b", d.Label);
        Assert.Equal(1 / (1 + MathF.Exp(-2f)), d.Score, 5);
        float yc = 0.5f + 1f / 10 * 0.4f, xc = 0.5f + 2f / 10 * 0.2f, h = MathF.E * 0.4f, w = 0.2f;
        Assert.Equal(xc - w / 2, d.X1, 5);
        Assert.Equal(yc - h / 2, d.Y1, 5);
        Assert.Equal(xc + w / 2, d.X2, 5);
        Assert.Equal(yc + h / 2, d.Y2, 5);
    }

    [Fact]
    public void NmsIsGreedyAndClassAgnostic()
    {
        var d = new List<Detection>
        {
            new("Cat", 0.7f, 0, 0, 10, 10, []),
            new("Dog", 0.9f, 1, 0, 11, 10, []),   // IoU with the cat 9/11 > 0.5: the cat goes
            new("Cat", 0.6f, 20, 20, 30, 30, []),
            new("Cat", 0.5f, 24, 20, 34, 30, []), // IoU 6/14 < 0.5: kept
        };
        var kept = SsdDetector.Nms(d, 0.5f, 100);
        Assert.Equal(["Dog", "Cat", "Cat"], kept.Select(k => k.Label));
        Assert.Equal([0.9f, 0.6f, 0.5f], kept.Select(k => k.Score));
        Assert.Single(SsdDetector.Nms(d, 0.5f, 1));
    }

    /// <summary>
    /// The best detection on chelsea from a different engine and importer: Arm NN 22 (Debian python3-pyarmnn, TfLite parser,
    /// CpuRef backend) on a float32 copy of the model, the photo resized by scikit-image, decoded by the script's own anchors.
    /// Written by tools/fixtures/armnn_ssd_reference.py: {"label": "Cat", "score": 0.8502, "box": [3.0, 0.7, 422.9, 299.6]}.
    /// </summary>
    private static readonly Detection ArmNnReference = new("Cat", 0.8502f, 3.0f, 0.7f, 422.9f, 299.6f, []);

    [FactNeedingModel(SsdFile)]
    public void AgreesWithArmNnOnChelsea()
    {
        using var detector = new SsdDetector(SsdPath, new SessionOptions { Threads = 1 });
        var best = detector.Detect(RgbImage.Load(Chelsea))[0];
        float iou = BlazeFaceDetector.Iou(best, ArmNnReference);
        output.WriteLine($"ours {best.Label} {best.Score:F4} [{best.X1:F1}, {best.Y1:F1}, {best.X2:F1}, {best.Y2:F1}], IoU with Arm NN {iou:F4}");
        Assert.Equal(ArmNnReference.Label, best.Label);
        Assert.True(iou >= 0.9f, $"IoU {iou}");
        Assert.Equal(ArmNnReference.Score, best.Score, 0.02f); // the two resizers differ a little
    }

    [FactNeedingModel(SsdFile)]
    public void LabelsAreThePackagesLabelMap()
    {
        var lines = File.ReadAllLines(Npm("object_detection_oidv4_labelmap.txt")).Where(l => l.Length > 0).ToArray();
        Assert.Equal(lines, SsdDetector.OpenImagesLabels);
    }

    /// <summary>
    /// The reference runs apart from our engine and our post-processing: the imported graph exported to ONNX and run in ONNX
    /// Runtime (its kernels, not ours) on the same 300x300 input, decoded with this test's closed-form anchors and its own
    /// box-coder arithmetic, top-scoring non-background anchor. The detector's best detection must carry the same label with
    /// IoU ≥ 0.9. (The importer itself is checked operator by operator against NHWC references in TfLiteOperatorTests.)
    /// </summary>
    [FactNeedingModel(SsdFile)]
    public void FindsTheCatInChelsea()
    {
        var photo = RgbImage.Load(Chelsea);
        using var detector = new SsdDetector(SsdPath, new SessionOptions { Threads = 1 });
        var found = detector.Detect(photo);
        foreach (var f in found) output.WriteLine($"{f.Label} {f.Score:F3} [{f.X1:F1}, {f.Y1:F1}, {f.X2:F1}, {f.Y2:F1}]");
        var best = found[0];
        Assert.Equal("Cat", best.Label);
        Assert.True(best.Score > 0.7f, $"score {best.Score}");

        var graph = TfLiteImporter.Load(SsdPath);
        var input = photo.Resize(300, 300).ToNhwc(-1f, 1f);
        var ort = OrtRunner.Run(OnnxExporter.ToBytes(graph), [new(graph.Inputs[0].Name, input)]);
        var outs = graph.Outputs.Select(o => ort[o.Name]).ToArray();
        var boxes = outs.Single(t => t.Shape[^1] == 4).Floats;
        var logits = outs.Single(t => t.Shape[^1] == 24).Floats;
        var anchors = ReferenceAnchors();
        int bestAnchor = -1, bestClass = -1;
        float bestLogit = float.NegativeInfinity;
        for (int i = 0; i < anchors.Length; i++)
            for (int c = 1; c < 24; c++)
                if (logits[i * 24 + c] > bestLogit) (bestLogit, bestAnchor, bestClass) = (logits[i * 24 + c], i, c);
        var a = anchors[bestAnchor];
        double cy = boxes[bestAnchor * 4] / 10.0 * a.H + a.Y, cx = boxes[bestAnchor * 4 + 1] / 10.0 * a.W + a.X;
        double h = Math.Exp(boxes[bestAnchor * 4 + 2] / 5.0) * a.H, w = Math.Exp(boxes[bestAnchor * 4 + 3] / 5.0) * a.W;
        var reference = new Detection(SsdDetector.OpenImagesLabels[bestClass], (float)(1 / (1 + Math.Exp(-bestLogit))),
            (float)(Math.Clamp(cx - w / 2, 0, 1) * photo.Width), (float)(Math.Clamp(cy - h / 2, 0, 1) * photo.Height),
            (float)(Math.Clamp(cx + w / 2, 0, 1) * photo.Width), (float)(Math.Clamp(cy + h / 2, 0, 1) * photo.Height), []);
        output.WriteLine($"reference (ORT + test decoder): {reference.Label} {reference.Score:F3} [{reference.X1:F1}, {reference.Y1:F1}, {reference.X2:F1}, {reference.Y2:F1}]");
        Assert.Equal("Cat", reference.Label);
        Assert.Equal(reference.Score, best.Score, 3);
        float iou = BlazeFaceDetector.Iou(best, reference);
        Assert.True(iou >= 0.9f, $"IoU {iou}");
        // The cat fills most of the 451x300 photo: the box spans at least its middle.
        Assert.True(best.X1 < 100 && best.X2 > 350 && best.Y1 < 60 && best.Y2 > 240, "the box does not cover the cat");
    }

    [FactNeedingModel(SsdFile)]
    public void CommandPrintsJsonHighestScoreFirstAndDraws()
    {
        string png = Path.Combine(Path.GetTempPath(), $"mnet-detect-{Guid.NewGuid():N}.png");
        try
        {
            var (code, stdout, stderr) = CliRunner.Run("detect", Chelsea, "--model", SsdPath, "--json", "--draw", png, "--threads", "1", "--threshold", "0.2");
            Assert.True(code == 0, stderr);
            using var doc = JsonDocument.Parse(stdout);
            var detections = doc.RootElement.GetProperty("detections").EnumerateArray().ToArray();
            Assert.NotEmpty(detections);
            Assert.Equal("Cat", detections[0].GetProperty("label").GetString());
            var scores = detections.Select(d => d.GetProperty("score").GetSingle()).ToArray();
            Assert.Equal(scores.OrderDescending(), scores);
            var box = detections[0].GetProperty("box").EnumerateArray().Select(v => v.GetSingle()).ToArray();
            Assert.Equal(4, box.Length);
            Assert.All(box, v => Assert.InRange(v, 0f, 451f));
            Assert.True(doc.RootElement.GetProperty("latencyMs").GetDouble() > 0);
            var drawn = RgbImage.Load(png);
            Assert.Equal((451, 300), (drawn.Width, drawn.Height));

            (code, stdout, stderr) = CliRunner.Run("detect", Chelsea, "--model", SsdPath, "--threads", "1");
            Assert.True(code == 0, stderr);
            Assert.Contains("Cat", stdout);
            Assert.Contains("ms per detection", stdout);
        }
        finally { File.Delete(png); }
    }

    [Fact]
    public void MissingModelSaysHowToGetIt()
    {
        var (code, _, stderr) = CliRunner.Run("detect", Chelsea, "--model", "nowhere/" + SsdFile);
        Assert.Equal(1, code);
        Assert.Contains("No such model file", stderr);
        Assert.Contains("tools/fetch-models.sh", stderr);
        Assert.Contains("npm pack @mediapipe/objectron@", stderr);
    }

    [Fact]
    public void AnotherModelIsRefusedForWhatItIs()
    {
        var (code, _, stderr) = CliRunner.Run("detect", Chelsea, "--model", BlazeFaceTests.TfLitePath);
        Assert.Equal(1, code);
        Assert.Contains("is not an SSD detector with 1917 anchors", stderr);
        Assert.Contains("[1,128,128,3]", stderr);
    }

    [Fact]
    public void CorruptInputsGiveOneLineErrors()
    {
        string bad = Path.Combine(Path.GetTempPath(), $"mnet-not-an-image-{Guid.NewGuid():N}.png");
        string badModel = Path.ChangeExtension(bad, ".tflite");
        try
        {
            File.WriteAllText(bad, "this is not a PNG");
            File.WriteAllBytes(badModel, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
            var (code, _, stderr) = CliRunner.Run("detect", bad, "--model", BlazeFaceTests.TfLitePath);
            Assert.Equal(1, code);
            Assert.Contains("not an image", stderr);
            (code, _, stderr) = CliRunner.Run("detect", Chelsea, "--model", badModel);
            Assert.Equal(1, code);
            Assert.StartsWith("mnet: error:", stderr);
            Assert.Single(stderr.Trim().Split('\n'));
        }
        finally { File.Delete(bad); File.Delete(badModel); }
    }
}
