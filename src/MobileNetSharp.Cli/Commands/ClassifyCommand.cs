using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using MobileNetSharp.Imaging;
using MobileNetSharp.Models;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using Spectre.Console;

namespace MobileNetSharp.Cli.Commands;

/// <summary>
/// `mnet classify IMAGE|FOLDER [--model M] [--top K]`: the top classes of each image with their probabilities.
/// Models we export carry their labels and preprocessing in their metadata; for others give --labels, --mean, --std.
/// </summary>
internal static class ClassifyCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "An image file, or a folder of images (PNG, JPEG, BMP, GIF, WebP)" };
        var model = new Option<string>("--model", "-m") { Description = "A classifier (.onnx, .tflite) or `builtin` (the Fashion-MNIST model that ships with mnet)", DefaultValueFactory = _ => BuiltinModel.Name };
        var top = new Option<int>("--top", "-k") { Description = "Classes to show per image", DefaultValueFactory = _ => 3 };
        var labels = new Option<string?>("--labels") { Description = "A text file with one class name per line (models without labels in their metadata)" };
        var mean = new Option<string?>("--mean") { Description = "Per-channel mean subtracted from pixels in [0, 1], e.g. 0.485,0.456,0.406 (models without preprocessing metadata)" };
        var std = new Option<string?>("--std") { Description = "Per-channel standard deviation, e.g. 0.229,0.224,0.225" };
        var skipBad = new Option<bool>("--skip-bad") { Description = "Report files that are not readable images and go on" };
        var (threads, json) = (Cli.Threads(), Cli.Json());
        var cmd = new Command("classify", "Label images with a classifier: top classes and probabilities") { input, model, top, labels, mean, std, skipBad, threads, json };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            int k = r.GetValue(top);
            if (k < 1) throw new ArgumentException("--top must be >= 1.");
            string path = r.GetValue(input)!;
            var files = Directory.Exists(path)
                ? Directory.GetFiles(path).Where(f => ImageFolder.Extensions.Contains(Path.GetExtension(f).ToLowerInvariant())).Order(StringComparer.Ordinal).ToArray()
                : File.Exists(path) ? [path] : throw new FileNotFoundException($"No such image or folder: {path}");
            if (files.Length == 0) throw new ArgumentException($"'{path}' holds no images ({string.Join(", ", ImageFolder.Extensions)}).");

            var graph = BuiltinModel.Load(r.GetValue(model)!);
            var info = ClassifierInfo.ReadFrom(graph);
            var shape = graph.Inputs[0].Shape;
            if (shape.Length != 4 || shape[2] != shape[3] || shape[1] is not (1 or 3))
                throw new ArgumentException($"The model's input {Shape.Format(shape)} is not a square 1- or 3-channel image batch [N, C, R, R].");
            int channels = shape[1], res = shape[2], classes = graph.Outputs[^1].Shape[^1];
            var names = r.GetValue(labels) is { } lf ? File.ReadAllLines(lf).Where(l => l.Length > 0).ToArray() : info?.Labels.ToArray();
            if (names is not null && names.Length != classes) throw new ArgumentException($"{names.Length} labels for a model with {classes} outputs.");
            float[] mu = Floats(r.GetValue(mean), channels, "--mean") ?? (info is { NormalizationInGraph: false } ? info.Mean : new float[channels]);
            float[] sigma = Floats(r.GetValue(std), channels, "--std") ?? (info is { NormalizationInGraph: false } ? info.Std : Enumerable.Repeat(1f, channels).ToArray());
            if (sigma.Any(s => !(s > 0))) throw new ArgumentException("--std values must be positive.");

            using var session = new InferenceSession(EvalCommand.WithBatch(graph, 1), new SessionOptions { Threads = r.GetValue(threads) });
            var results = new List<(string File, (string Label, float P)[] Top)>();
            var bad = new List<(string File, string Reason)>();
            var clock = Stopwatch.StartNew();
            foreach (var f in files)
            {
                byte[] pixels;
                try { pixels = ImageFolder.LoadImage(f, channels, res); }
                catch (InvalidDataException e) when (r.GetValue(skipBad))
                {
                    bad.Add((f, e.Message));
                    Console.Error.WriteLine($"mnet: skipped {f}: {e.Message}");
                    continue;
                }
                var x = new float[pixels.Length];
                int plane = res * res;
                for (int i = 0; i < x.Length; i++) x[i] = (pixels[i] / 255f - mu[i / plane]) / sigma[i / plane];
                var scores = session.Run(new Tensor(x, 1, channels, res, res))[^1].Floats;
                var p = Probabilities(scores);
                var best = Enumerable.Range(0, classes).OrderByDescending(i => p[i]).ThenBy(i => i).Take(k)
                    .Select(i => (names?[i] ?? i.ToString(CultureInfo.InvariantCulture), p[i])).ToArray();
                results.Add((f, best));
            }
            double rate = results.Count / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
            if (r.GetValue(json))
            {
                Cli.PrintJson(new
                {
                    model = r.GetValue(model),
                    images = results.Select(x => new { file = x.File, top = x.Top.Select(t => new { label = t.Label, probability = t.P }) }),
                    skipped = bad.Select(b => new { file = b.File, reason = b.Reason }),
                    imagesPerSecond = rate,
                });
                return 0;
            }
            var table = new Table().AddColumns("image", "top classes (probability)");
            foreach (var (f, best) in results)
                table.AddRow(Markup.Escape(Path.GetFileName(f)), Markup.Escape(string.Join(", ", best.Select(t => string.Create(CultureInfo.InvariantCulture, $"{t.Label} ({100 * t.P:F1}%)")))));
            Cli.Out.Write(table);
            Cli.Out.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"{results.Count} image(s), {rate:F0} images/s") + (bad.Count > 0 ? $", {bad.Count} skipped" : "")));
            return 0;
        }));
        return cmd;
    }

    internal static float[]? Floats(string? text, int channels, string option)
    {
        if (text is null) return null;
        var v = text.Split(',').Select(s => float.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture)).ToArray();
        return v.Length == channels ? v : v.Length == 1 ? Enumerable.Repeat(v[0], channels).ToArray()
            : throw new ArgumentException($"{option} needs {channels} values (one per input channel), got {v.Length}.");
    }

    /// <summary>Softmax of the scores, unless they already are probabilities (a model that ends in Softmax).</summary>
    private static float[] Probabilities(float[] s)
    {
        bool already = s.All(v => v >= 0 && v <= 1) && Math.Abs(s.Sum() - 1) < 1e-3;
        if (already) return s;
        var p = new float[s.Length];
        System.Numerics.Tensors.TensorPrimitives.SoftMax(s, p);
        return p;
    }
}
