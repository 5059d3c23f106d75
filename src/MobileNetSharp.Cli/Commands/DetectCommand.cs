using System.CommandLine;
using System.Globalization;
using MobileNetSharp.Imaging;
using MobileNetSharp.Imaging.Detection;
using MobileNetSharp.Runtime;

namespace MobileNetSharp.Cli.Commands;

/// <summary>
/// `mnet detect IMAGE --model object_detection_ssd_mobilenetv2_oidv4_fp16.tflite [--threshold 0.5] [--draw out.png] [--json]`:
/// MediaPipe's SSD MobileNetV2 (24 Open Images classes) on a photo; prints labels, scores, boxes (original pixels) and the latency.
/// </summary>
public static class DetectCommand
{
    public const string ModelFile = "object_detection_ssd_mobilenetv2_oidv4_fp16.tflite";
    public const string HowToGet = "Get it with tools/fetch-models.sh (npm pack @mediapipe/objectron@0.4.1675468480; the model is the byte range "
        + "of object_detection_ssd_mobilenetv2_oidv4_fp16.tflite inside package/objectron_solution_packed_assets.data, listed in "
        + "objectron_solution_packed_assets_loader.js) and pass it with --model.";

    public static Command Create()
    {
        var image = new Argument<string>("image") { Description = "A PNG, JPEG, WebP, GIF or BMP photo" };
        var model = new Option<string>("--model", "-m")
        {
            Description = $"The SSD MobileNetV2 .tflite from npm @mediapipe/objectron (default: models/{ModelFile} beside mnet, if fetched there)",
            DefaultValueFactory = _ => Path.Combine(Cli.ModelsDir, ModelFile),
        };
        var threshold = new Option<float>("--threshold") { Description = "Minimum score (0-1)", DefaultValueFactory = _ => 0.5f };
        var draw = new Option<string?>("--draw") { Description = "Write the photo with the boxes drawn to this .png" };
        var json = Cli.Json();
        var threads = Cli.Threads();
        var cmd = new Command("detect", "Find objects of 24 Open Images classes (cat, dog, person, car, ...) in a photo with MediaPipe's SSD MobileNetV2.")
            { image, model, threshold, draw, json, threads };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            string modelPath = r.GetValue(model)!;
            if (!File.Exists(modelPath)) throw new FileNotFoundException($"No such model file: {modelPath}. {HowToGet}");
            float t = r.GetValue(threshold);
            if (!(t is >= 0f and <= 1f)) throw new ArgumentException($"--threshold {t} must lie between 0 and 1.");
            var photo = RgbImage.Load(r.GetValue(image)!);
            using var detector = new SsdDetector(modelPath, new SessionOptions { Threads = r.GetValue(threads) }) { ScoreThreshold = t };
            IReadOnlyList<Detection> found = [];
            double ms = Cli.MedianMs(() => found = detector.Detect(photo));
            if (r.GetValue(draw) is { } png) photo.SavePngWithBoxes(png, found.Select(f => (f.X1, f.Y1, f.X2, f.Y2)));
            if (r.GetValue(json))
            {
                Cli.PrintDetections(modelPath, photo, ms, found, keypoints: false);
                return 0;
            }
            Console.Out.WriteLine($"{found.Count} object(s) in {photo.Width}x{photo.Height}, {ms:F2} ms per detection "
                + "(median of 5: resize to 300x300, SSD MobileNetV2, decoding, NMS)");
            if (found.Count == 0) return 0;
            int width = Math.Max(5, found.Max(f => f.Label.Length));
            Console.Out.WriteLine($"  {"label".PadRight(width)}  score  box [x1, y1, x2, y2] (pixels)");
            foreach (var f in found)
                Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {f.Label.PadRight(width)}  {f.Score:F3}  [{f.X1:F0}, {f.Y1:F0}, {f.X2:F0}, {f.Y2:F0}]"));
            return 0;
        }));
        return cmd;
    }
}
