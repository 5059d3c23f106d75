using System.CommandLine;
using MobileNetSharp.Imaging;
using MobileNetSharp.Imaging.Detection;
using MobileNetSharp.Runtime;

namespace MobileNetSharp.Cli.Commands;

/// <summary>
/// `mnet detect-faces IMAGE [--model face_detection_short_range.tflite] [--threshold 0.5] [--draw out.png] [--json]`:
/// MediaPipe's short-range BlazeFace on a photo; prints boxes (original pixels), scores and the latency.
/// </summary>
public static class DetectFacesCommand
{
    public static Command Create()
    {
        var image = new Argument<string>("image") { Description = "A PNG, JPEG, WebP, GIF or BMP photo" };
        var model = new Option<string>("--model", "-m")
        {
            Description = "The short-range BlazeFace .tflite (default: the copy shipped with mnet, from npm @mediapipe/face_detection, Apache-2.0)",
            DefaultValueFactory = _ => Path.Combine(AppContext.BaseDirectory, "models", "face_detection_short_range.tflite"),
        };
        var threshold = new Option<float>("--threshold") { Description = "Minimum face score (0-1)", DefaultValueFactory = _ => 0.5f };
        var draw = new Option<string?>("--draw") { Description = "Write the photo with the boxes drawn to this .png" };
        var json = Cli.Json();
        var threads = Cli.Threads();
        var cmd = new Command("detect-faces", "Find faces in a photo with MediaPipe's BlazeFace (short range): boxes, scores, six keypoints.")
            { image, model, threshold, draw, json, threads };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            string modelPath = r.GetValue(model)!;
            if (!File.Exists(modelPath))
                throw new FileNotFoundException($"No such model file: {modelPath}. Get it with `npm pack @mediapipe/face_detection@0.4.1657300184` "
                    + "(file package/face_detection_short_range.tflite in the tarball) and pass it with --model.");
            float t = r.GetValue(threshold);
            if (!(t is >= 0f and <= 1f)) throw new ArgumentException($"--threshold {t} must lie between 0 and 1.");
            var photo = RgbImage.Load(r.GetValue(image)!);
            using var detector = new BlazeFaceDetector(modelPath, new SessionOptions { Threads = r.GetValue(threads) }) { ScoreThreshold = t };
            IReadOnlyList<Detection> faces = [];
            double ms = Cli.MedianMs(() => faces = detector.Detect(photo)); // after warm-up runs: the first compile and JIT
            if (r.GetValue(draw) is { } png) photo.SavePngWithBoxes(png, faces.Select(f => (f.X1, f.Y1, f.X2, f.Y2)));
            if (r.GetValue(json))
            {
                Cli.PrintDetections(modelPath, photo, ms, faces, keypoints: true);
                return 0;
            }
            Console.Out.WriteLine($"{faces.Count} face(s) in {photo.Width}x{photo.Height}, {ms:F2} ms per detection (median of 5: letterbox, BlazeFace, decoding, NMS)");
            foreach (var f in faces)
                Console.Out.WriteLine($"  face {f.Score:F3}  box [{f.X1:F0}, {f.Y1:F0}, {f.X2:F0}, {f.Y2:F0}]");
            return 0;
        }));
        return cmd;
    }
}
