using System.CommandLine;
using MobileNetSharp.Imaging;
using MobileNetSharp.Imaging.Segmentation;
using MobileNetSharp.Runtime;

namespace MobileNetSharp.Cli.Commands;

/// <summary>
/// `mnet segment IMAGE [--model selfie_segmentation.tflite] [--out mask.png] [--threshold 0.5] [--json]`: MediaPipe's selfie
/// segmentation on a photo; writes the person mask at the photo's size and prints its foreground fraction and the latency.
/// </summary>
public static class SegmentCommand
{
    public static Command Create()
    {
        var image = new Argument<string>("image") { Description = "A PNG, JPEG, WebP, GIF or BMP photo" };
        var model = new Option<string>("--model", "-m")
        {
            Description = "The selfie segmentation .tflite (default: the copy shipped with mnet, from npm @mediapipe/selfie_segmentation, Apache-2.0)",
            DefaultValueFactory = _ => Path.Combine(Cli.ModelsDir, "selfie_segmentation.tflite"),
        };
        var outPath = new Option<string?>("--out", "-o") { Description = "Write the mask (grey PNG, white = person, at the photo's size) here" };
        var threshold = new Option<float>("--threshold") { Description = "Probability above which a pixel counts as foreground (0-1)", DefaultValueFactory = _ => 0.5f };
        var json = Cli.Json();
        var threads = Cli.Threads();
        var cmd = new Command("segment", "Separate the person from the background with MediaPipe's selfie segmentation: a mask PNG and its foreground share.")
            { image, model, outPath, threshold, json, threads };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            string modelPath = r.GetValue(model)!;
            if (!File.Exists(modelPath))
                throw new FileNotFoundException($"No such model file: {modelPath}. Get it with `npm pack @mediapipe/selfie_segmentation@0.1.1675465747` "
                    + "(file package/selfie_segmentation.tflite in the tarball) and pass it with --model.");
            float t = r.GetValue(threshold);
            if (!(t is >= 0f and <= 1f)) throw new ArgumentException($"--threshold {t} must lie between 0 and 1.");
            var photo = RgbImage.Load(r.GetValue(image)!);
            using var segmenter = new SelfieSegmenter(modelPath, new SessionOptions { Threads = r.GetValue(threads) });
            SegmentationMask mask = null!;
            double ms = Cli.MedianMs(() => mask = segmenter.Segment(photo));
            if (r.GetValue(outPath) is { } png) mask.SavePng(png);
            double fraction = mask.ForegroundFraction(t);
            var centroid = mask.Centroid(t);
            if (r.GetValue(json))
            {
                Cli.PrintJson(new
                {
                    model = Path.GetFileName(modelPath),
                    image = new { width = photo.Width, height = photo.Height },
                    latencyMs = Math.Round(ms, 3),
                    foregroundFraction = Math.Round(fraction, 4),
                    foregroundCentroid = centroid is { } c ? new[] { Math.Round(c.X, 1), Math.Round(c.Y, 1) } : null,
                    mask = r.GetValue(outPath),
                });
                return 0;
            }
            Console.Out.WriteLine($"foreground {100 * fraction:F1}% of {photo.Width}x{photo.Height}"
                + (centroid is { } p ? $", centred at ({p.X:F0}, {p.Y:F0})" : "")
                + $"; {ms:F2} ms per mask (median of 5: resize, selfie segmentation, mask resize)");
            if (r.GetValue(outPath) is { } written) Console.Out.WriteLine($"mask written to {written}");
            return 0;
        }));
        return cmd;
    }
}
