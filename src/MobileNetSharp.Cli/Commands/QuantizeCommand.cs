using System.CommandLine;
using System.Globalization;
using MobileNetSharp.Graph;
using MobileNetSharp.Models;
using MobileNetSharp.Onnx;
using MobileNetSharp.Quantization;
using MobileNetSharp.Tensors;
using MobileNetSharp.Training.Data;
using Spectre.Console;

namespace MobileNetSharp.Cli.Commands;

/// <summary>
/// `mnet quantize MODEL|builtin|ARCH --calibration fashion-mnist|FOLDER --out q.onnx [--samples N] [--method minmax|percentile|entropy]
/// [--per-tensor] [--activation-type uint8|int8] [--skip NODE...] [--report]`: post-training quantization to an ONNX QDQ model.
/// </summary>
internal static class QuantizeCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "A model (.onnx, .tflite), `builtin`, or an architecture (random weights)", DefaultValueFactory = _ => BuiltinModel.Name };
        var calibration = new Option<string>("--calibration", "-c") { Description = "fashion-mnist (its training images; Debian's dataset-fashion-mnist) or any folder of images (flat, nested or one sub-folder per class), resized and channel-replicated to the model's input", DefaultValueFactory = _ => DataSource.FashionMnistName };
        var samples = new Option<int>("--samples", "-n") { Description = "Calibration images (a seeded random choice)", DefaultValueFactory = _ => 256 };
        var method = new Option<string>("--method") { Description = "Activation ranges: minmax (no clipping), percentile (clip the outer --percentile), entropy (KL-optimal clipping)", DefaultValueFactory = _ => "minmax" };
        var percentile = new Option<double>("--percentile") { Description = "For --method percentile: the percentile kept at each end", DefaultValueFactory = _ => 99.999 };
        var perTensor = new Option<bool>("--per-tensor") { Description = "One weight scale per layer instead of one per output channel (loses accuracy on depthwise layers)" };
        var reduceRange = new Option<bool>("--reduce-range") { Description = "7-bit weights, for x86 CPUs without VNNI: ONNX Runtime's uint8 x int8 kernels saturate on full-range weights, and mnet runs 7-bit ones with a faster exact kernel (vpmaddubsw)" };
        var activationType = new Option<string>("--activation-type") { Description = "uint8 or int8 activations (asymmetric either way)", DefaultValueFactory = _ => "uint8" };
        var skip = new Option<string[]>("--skip") { Description = "Node names to keep in float (see the --report table)", AllowMultipleArgumentsPerToken = true };
        var report = new Option<bool>("--report") { Description = "Per-tensor SQNR of the quantized model against the float one, and accuracy before and after" };
        var eval = new Option<string?>("--eval") { Description = "Images for --report: fashion-mnist or a folder (class sub-folders give accuracy, any folder agreement; default: Fashion-MNIST's test images when calibrating on Fashion-MNIST, else the calibration folder)" };
        var skipBad = new Option<bool>("--skip-bad") { Description = "Report images that do not decode and take the next ones instead of stopping" };
        var evalLimit = new Option<int>("--eval-limit") { Description = "Images the --report evaluates", DefaultValueFactory = _ => 1000 };
        var mean = new Option<string?>("--mean") { Description = "Per-channel mean subtracted from pixels in [0, 1] before the model, e.g. 0.485,0.456,0.406 (default: the model's metadata, else none)" };
        var std = new Option<string?>("--std") { Description = "Per-channel standard deviation, e.g. 0.229,0.224,0.225" };
        var output = new Option<string>("--out", "-o") { Description = "The quantized .onnx file to write", Required = true };
        var (width, res, threads, json) = (Cli.Width(), Cli.Resolution(), Cli.Threads(), Cli.Json());
        var cmd = new Command("quantize", "Post-training int8 quantization to an ONNX QDQ model, calibrated on images, with a sensitivity report")
            { model, calibration, samples, method, percentile, perTensor, reduceRange, activationType, skip, report, eval, evalLimit, skipBad, mean, std, output, width, res, threads, json };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            string target = r.GetValue(output)!;
            if (!target.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase)) throw new ArgumentException($"--out '{target}' must name a .onnx file.");
            int nSamples = r.GetValue(samples), nEval = r.GetValue(evalLimit);
            if (nSamples < 1 || nSamples > 100_000) throw new ArgumentException($"--samples must be 1..100000, got {nSamples}.");
            if (nEval < 1) throw new ArgumentException($"--eval-limit must be >= 1, got {nEval}.");
            var options = new QuantizationOptions
            {
                Method = r.GetValue(method) switch
                {
                    "minmax" => CalibrationMethod.MinMax, "percentile" => CalibrationMethod.Percentile, "entropy" => CalibrationMethod.Entropy,
                    var m => throw new ArgumentException($"--method '{m}' is not minmax, percentile or entropy."),
                },
                Percentile = r.GetValue(percentile),
                PerTensor = r.GetValue(perTensor),
                ReduceRange = r.GetValue(reduceRange),
                ActivationType = r.GetValue(activationType) switch
                {
                    "uint8" => DataType.UInt8, "int8" => DataType.Int8,
                    var t => throw new ArgumentException($"--activation-type '{t}' is not uint8 or int8."),
                },
                Skip = (r.GetValue(skip) ?? []).ToHashSet(StringComparer.Ordinal),
                Threads = r.GetValue(threads),
            };
            options.Validate();
            if (options.Method != CalibrationMethod.Percentile && r.GetResult(percentile) is { Implicit: false })
                throw new ArgumentException("--percentile applies to --method percentile only.");

            string name = r.GetValue(model)!;
            var graph = ModelSource.IsOnnx(name) || ModelSource.IsTfLite(name) || name == BuiltinModel.Name
                ? BuiltinModel.Load(name)
                : ModelSource.Load(name, r.GetValue(width), r.GetValue(res), 1000);
            var shape = graph.Inputs[0].Shape;
            if (shape.Length != 4 || shape[2] != shape[3])
                throw new ArgumentException($"The model's input {Shape.Format(shape)} is not a square image batch [N, C, R, R]; calibration feeds images.");
            int channels = shape[1], resolution = shape[2];
            var info = ClassifierInfo.ReadFrom(graph);
            var (mu, sigma) = Normalization(r.GetValue(mean), r.GetValue(std), channels, info);

            string calData = r.GetValue(calibration)!;
            bool skipping = r.GetValue(skipBad);
            var calSet = DataSource.Sample(calData, train: true, channels, resolution, nSamples, skipBad: skipping);
            int batch = PostTrainingQuantizer.BatchFor(graph);
            var calSource = new BatchSource(calSet, new BatchOptions(batch, resolution, channels, Shuffle: false));
            IEnumerable<Tensor> Calibration() => calSource.Epoch(0).Select(b => Normalize(b.Images, mu, sigma));

            bool evalOnCalibration = false;
            // The report's images are loaded before calibrating, so a bad --eval fails in seconds, not after calibration.
            ImageDataset? evalSet = null;
            bool labelled = false;
            if (r.GetValue(report))
            {
                string evalData = r.GetValue(eval) ?? calData;
                // Fashion-MNIST's report uses its test images; a folder's, the calibration images themselves unless --eval says otherwise.
                evalOnCalibration = evalData != DataSource.FashionMnistName && calData != DataSource.FashionMnistName && Overlaps(evalData, calData);
                evalSet = evalData == DataSource.FashionMnistName
                    ? DataSource.Load(evalData, train: false, channels, resolution, nEval)
                    : DataSource.Sample(evalData, train: false, channels, resolution, nEval, seed: evalOnCalibration ? 0 : 1, skipBad: skipping);
                int classes = graph.Outputs[^1].Shape[^1];
                labelled = evalSet.Classes > 1 && (classes == evalSet.Classes || (info is not null && evalSet.ClassNames.All(info.Labels.Contains)));
                if (labelled && info is not null) evalSet = EvalCommand.MatchLabels(evalSet, info);
            }

            bool quiet = r.GetValue(json);
            QuantizationResult result = null!;
            QuantizationReport? sensitivity = null;
            int passes = options.Method == CalibrationMethod.MinMax ? 1 : 2;
            WithProgress(quiet, calSet.Count * passes, "calibrating", advance =>
                result = PostTrainingQuantizer.Quantize(graph, Calibration, options, (pass, done) => advance((pass - 1) * calSet.Count + done)));
            if (evalSet is not null)
            {
                var evalSource = new BatchSource(evalSet, new BatchOptions(batch, resolution, channels, Shuffle: false));
                WithProgress(quiet, evalSet.Count, "comparing float and int8", advance =>
                    sensitivity = QuantizationReport.Run(result, evalSource.Epoch(0).Select(b => (Normalize(b.Images, mu, sigma), b.Labels)), labelled,
                        options.Threads, advance));
            }
            // Written last: a command that fails leaves no file behind.
            OnnxExporter.Save(result.Model, target);

            // The size the user started from: the model file, or the built model as an ONNX file.
            string? file = name == BuiltinModel.Name ? BuiltinModel.Path : File.Exists(name) ? name : null;
            long floatBytes = file is not null ? new FileInfo(file).Length : OnnxExporter.ToBytes(graph).LongLength, quantBytes = new FileInfo(target).Length;
            if (quiet) PrintJson(name, target, result, sensitivity, evalOnCalibration, floatBytes, quantBytes);
            else Print(name, target, result, sensitivity, evalOnCalibration, floatBytes, quantBytes);
            return 0;
        }));
        return cmd;
    }

    /// <summary>True when one folder is the other or inside it (./photos/ and photos are one folder; photos/a is part of photos).</summary>
    private static bool Overlaps(string a, string b)
    {
        string Full(string p) => Path.TrimEndingDirectorySeparator(Path.GetFullPath(p)) + Path.DirectorySeparatorChar;
        string fa = Full(a), fb = Full(b);
        return fa.StartsWith(fb, StringComparison.Ordinal) || fb.StartsWith(fa, StringComparison.Ordinal);
    }

    /// <summary>Mean and std to apply before the model: the options, else the model's metadata when it normalizes outside its graph, else none.</summary>
    private static (float[]? Mean, float[]? Std) Normalization(string? mean, string? std, int channels, ClassifierInfo? info)
    {
        var mu = ClassifyCommand.Floats(mean, channels, "--mean") ?? (info is { NormalizationInGraph: false } ? info.Mean : null);
        var sigma = ClassifyCommand.Floats(std, channels, "--std") ?? (info is { NormalizationInGraph: false } ? info.Std : null);
        if (sigma is not null && sigma.Any(s => !(s > 0))) throw new ArgumentException("--std values must be positive.");
        return (mu, sigma);
    }

    /// <summary>(x - mean[c]) / std[c] per channel of an NCHW batch, in place.</summary>
    private static Tensor Normalize(Tensor images, float[]? mean, float[]? std)
    {
        if (mean is null && std is null) return images;
        var x = images.Floats;
        int c = images.Shape[1], plane = images.Shape[2] * images.Shape[3];
        for (int i = 0; i < x.Length / plane; i++)
        {
            int k = i % c;
            var p = x.AsSpan(i * plane, plane);
            if (mean is not null) System.Numerics.Tensors.TensorPrimitives.Subtract(p, mean[k], p);
            if (std is not null) System.Numerics.Tensors.TensorPrimitives.Divide(p, std[k], p);
        }
        return images;
    }

    /// <summary>A progress bar on stderr when a person watches; silent for --json and redirected stderr.</summary>
    private static void WithProgress(bool quiet, int total, string what, Action<Action<int>> work)
    {
        if (quiet || Console.IsErrorRedirected)
        {
            work(_ => { });
            return;
        }
        var err = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        err.Progress().AutoClear(true)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(what, maxValue: Math.Max(1, total));
                work(done => task.Value = done);
            });
    }

    private static string F(double v, string format = "G4") =>
        double.IsPositiveInfinity(v) ? "inf" : double.IsNegativeInfinity(v) ? "-inf" : v.ToString(format, CultureInfo.InvariantCulture);

    private static void Print(string model, string target, QuantizationResult q, QuantizationReport? report, bool evalOnCalibration, long floatBytes, long quantBytes)
    {
        var o = Cli.Out;
        var opt = q.Options;
        o.MarkupLine(Markup.Escape($"{model} -> {target}: {q.QuantizedLayers.Count} layers with {(opt.ReduceRange ? "7-bit" : "int8")} weights ({(opt.PerTensor ? "per-tensor" : "per-channel")}), "
            + $"{q.Activations.Count} {opt.ActivationType.ToString().ToLowerInvariant()} activations, ranges by {opt.Method.ToString().ToLowerInvariant()} "
            + $"from {q.CalibrationImages} images; {floatBytes / 1024.0:F0} KB float -> {quantBytes / 1024.0:F0} KB"));
        if (q.FloatLayers.Count > 0) o.MarkupLine(Markup.Escape($"kept in float: {string.Join(", ", q.FloatLayers)}"));
        if (report is null)
        {
            o.MarkupLine("[grey]--report compares the quantized model with the float one, tensor by tensor.[/]");
            return;
        }
        var inv = CultureInfo.InvariantCulture;
        o.MarkupLine(Markup.Escape(string.Create(inv, $"on {report.Images} images: top-1 agreement with float {100 * report.Agreement:F2}%")
            + (report.FloatAccuracy is { } fa ? string.Create(inv, $", accuracy float {100 * fa:F2}% -> int8 {100 * report.QuantizedAccuracy!.Value:F2}%") : "")
            + $", output SQNR {F(report.OutputSqnrDb, "F1")} dB"));
        if (evalOnCalibration)
            o.MarkupLine("[yellow]These images include the calibration images, whose ranges the model was fitted to: give --eval FOLDER for held-out images.[/]");
        var worst = report.Tensors.Where(t => double.IsFinite(t.OwnSqnrDb)).OrderBy(t => t.OwnSqnrDb).Take(3).Select(t => t.Name).ToHashSet();
        var table = new Table().AddColumns("tensor", "written by", "seen", "range", "scale", "zero point", "own SQNR dB", "model SQNR dB");
        var ranges = q.Activations.ToDictionary(a => a.Name);
        foreach (var t in report.Tensors)
        {
            var a = ranges[t.Name];
            string Mark(string s) => worst.Contains(t.Name) ? $"[yellow]{Markup.Escape(s)}[/]" : Markup.Escape(s);
            table.AddRow(Mark(t.Name), Markup.Escape(t.Producer), Markup.Escape($"[{F(a.SeenMin)}, {F(a.SeenMax)}]"), Markup.Escape($"[{F(a.Lo)}, {F(a.Hi)}]"),
                F(a.Params.Scales[0]), a.Params.ZeroPoints[0].ToString(inv), Mark(F(t.OwnSqnrDb, "F1")), F(t.ModelSqnrDb, "F1"));
        }
        o.Write(table);
        o.MarkupLine(Markup.Escape("own SQNR: the error this tensor's range adds by itself; model SQNR: the error accumulated up to it. "
            + "The lowest own SQNRs (yellow) are the first candidates for --skip (give the 'written by' node)."));
    }

    private static void PrintJson(string model, string target, QuantizationResult q, QuantizationReport? report, bool evalOnCalibration, long floatBytes, long quantBytes)
    {
        static double? Finite(double v) => double.IsFinite(v) ? v : null; // JSON has no infinity: null means no noise (or no signal)
        Cli.PrintJson(new
        {
            model, output = target,
            method = q.Options.Method.ToString().ToLowerInvariant(), perTensor = q.Options.PerTensor, reduceRange = q.Options.ReduceRange,
            activationType = q.Options.ActivationType.ToString().ToLowerInvariant(),
            calibrationImages = q.CalibrationImages, floatBytes, quantizedBytes = quantBytes,
            quantizedLayers = q.QuantizedLayers, floatLayers = q.FloatLayers,
            activations = q.Activations.Select(a => new { name = a.Name, producer = a.Producer, seenMin = a.SeenMin, seenMax = a.SeenMax, lo = a.Lo, hi = a.Hi, scale = a.Params.Scales[0], zeroPoint = a.Params.ZeroPoints[0] }),
            report = report is null ? null : new
            {
                images = report.Images, evaluatedOnCalibrationImages = evalOnCalibration, agreement = report.Agreement, floatAccuracy = report.FloatAccuracy, quantizedAccuracy = report.QuantizedAccuracy,
                outputSqnrDb = Finite(report.OutputSqnrDb),
                tensors = report.Tensors.Select(t => new { name = t.Name, producer = t.Producer, ownSqnrDb = Finite(t.OwnSqnrDb), modelSqnrDb = Finite(t.ModelSqnrDb) }),
            },
        });
    }
}
