using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using MobileNetSharp.Graph;
using MobileNetSharp.Models;
using MobileNetSharp.Onnx;
using MobileNetSharp.Training;
using MobileNetSharp.Training.Data;
using Spectre.Console;

namespace MobileNetSharp.Cli.Commands;

/// <summary>
/// `mnet train --arch ARCH | --from MODEL.onnx --data fashion-mnist|FOLDER --out model.onnx`: trains (or fine-tunes) a
/// classifier in-process with a live progress bar, a validation pass per epoch, atomic checkpoints every epoch and on
/// Ctrl-C, and --resume. The written model takes pixels in [0, 1] (normalization is in the graph), has a symbolic batch,
/// and carries its labels and input description in the ONNX metadata.
/// </summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var arch = new Option<string?>("--arch", "-a") { Description = "Architecture to train from scratch (see `mnet list`)" };
        var from = new Option<string?>("--from") { Description = "An ONNX classifier to fine-tune (its last Gemm is replaced when --classes differs)" };
        var (width, res, threads, json) = (Cli.Width(), Cli.Resolution(), Cli.Threads(), Cli.Json());
        var small = Cli.SmallInput();
        var channels = new Option<int?>("--channels") { Description = "Input channels of the model (default: the data's, 1 for Fashion-MNIST)" };
        var classes = new Option<int?>("--classes") { Description = "Output classes (default: the data's)" };
        var data = new Option<string>("--data", "-d") { Description = DataSource.Help, Required = true };
        var epochs = new Option<int>("--epochs", "-e") { Description = "Passes over the training data", DefaultValueFactory = _ => 10 };
        var batch = new Option<int>("--batch", "-b") { Description = "Images per step", DefaultValueFactory = _ => 64 };
        var lr = new Option<float?>("--lr") { Description = "Peak learning rate (default 0.05 for sgd, 0.002 for adamw)" };
        var optimizer = new Option<string>("--optimizer") { Description = "sgd (Nesterov momentum 0.9) or adamw", DefaultValueFactory = _ => "sgd" };
        optimizer.AcceptOnlyFromAmong("sgd", "adamw");
        var wd = new Option<float?>("--weight-decay") { Description = "Weight decay on weights (not biases or batch norm); default 4e-5 for sgd, 0.05 for adamw" };
        var schedule = new Option<string>("--schedule") { Description = "cosine or step", DefaultValueFactory = _ => "cosine" };
        schedule.AcceptOnlyFromAmong("cosine", "step");
        var warmup = new Option<double>("--warmup") { Description = "Epochs of linear learning-rate warm-up", DefaultValueFactory = _ => 1 };
        var smoothing = new Option<float>("--label-smoothing") { Description = "Label smoothing of the cross-entropy, in [0, 1)", DefaultValueFactory = _ => 0.1f };
        var clip = new Option<float?>("--clip-norm") { Description = "Clip the gradients' global L2 norm" };
        var augment = new Option<string>("--augment") { Description = "standard (crop with padding, flip, random erasing) or none", DefaultValueFactory = _ => "standard" };
        augment.AcceptOnlyFromAmong("standard", "none");
        var validation = new Option<double>("--validation") { Description = "Fraction of the training images held out for validation (0 for none)", DefaultValueFactory = _ => 0.1 };
        var seed = new Option<int>("--seed") { Description = "Seeds weights, shuffling, augmentation and dropout", DefaultValueFactory = _ => 0 };
        var limit = new Option<int?>("--limit") { Description = "Train on the first N images only" };
        var maxSteps = new Option<long?>("--max-steps") { Description = "Stop after N optimizer steps" };
        var freeze = new Option<string?>("--freeze") { Description = "Fine-tuning: keep the nodes up to and including this one (see `mnet summary`) as they are" };
        var output = new Option<string>("--out", "-o") { Description = "Where to write the trained model (.onnx)", Required = true };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "Checkpoint file (default: OUT.ckpt), written every epoch and on Ctrl-C" };
        var resume = new Option<bool>("--resume") { Description = "Continue from the checkpoint" };
        var cmd = new Command("train", "Train or fine-tune a classifier on Fashion-MNIST or a folder of labelled images")
        {
            arch, from, width, res, channels, classes, small, data, epochs, batch, lr, optimizer, wd, schedule, warmup, smoothing, clip, augment,
            validation, seed, limit, maxSteps, freeze, threads, output, checkpoint, resume, json,
        };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            string? archName = r.GetValue(arch), fromPath = r.GetValue(from);
            if ((archName is null) == (fromPath is null)) throw new ArgumentException("Give exactly one of --arch (train from scratch) or --from MODEL.onnx (fine-tune).");
            string outPath = r.GetValue(output)!;
            if (!outPath.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase)) throw new ArgumentException($"--out '{outPath}' must name a .onnx file.");
            string ckptPath = r.GetValue(checkpoint) ?? outPath + ".ckpt";
            if (r.GetValue(resume) && !File.Exists(ckptPath)) throw new FileNotFoundException($"--resume: no checkpoint at {ckptPath}.");
            double valFraction = r.GetValue(validation);
            if (!(valFraction >= 0 && valFraction < 1)) throw new ArgumentException($"--validation must be in [0, 1), got {valFraction}.");
            string dataName = r.GetValue(data)!;
            bool quiet = r.GetValue(json);
            int nThreads = r.GetValue(threads);

            // The model first (its input decides how folder images are decoded), then the data.
            ModelGraph model;
            ClassifierInfo? info;
            int? wantChannels = r.GetValue(channels), wantClasses = r.GetValue(classes);
            JsonObject source;
            if (archName is not null)
            {
                int c = wantChannels ?? (dataName == DataSource.FashionMnistName ? 1 : 3);
                int? resolution = r.GetValue(res) ?? (dataName == DataSource.FashionMnistName ? 28 : null);
                // Classes come from the data when not given: peek cheaply for Fashion-MNIST, else after loading.
                model = null!;
                info = null;
                source = new JsonObject { ["arch"] = archName, ["width"] = r.GetValue(width), ["resolution"] = resolution, ["channels"] = c, ["smallInput"] = r.GetValue(small) };
                var train0 = LoadData(dataName, true, c, resolution ?? ModelZoo.Get(archName).DefaultResolution, r.GetValue(limit));
                int k = wantClasses ?? train0.Classes;
                model = ModelZoo.Create(archName, new ModelOptions(r.GetValue(width), resolution, k, Seed: r.GetValue(seed), InChannels: c, SmallInput: r.GetValue(small)));
                var (mean, std) = Normalization(dataName, c);
                InputNormalization.Prepend(model, mean, std);
                info = new ClassifierInfo(Labels(train0, k), c, model.Inputs[0].Shape[2], mean, std, NormalizationInGraph: true);
                source["classes"] = k;
                source["data"] = dataName;
                return Train(model, info, train0, valFraction, r, source, outPath, ckptPath, quiet, nThreads, epochs, batch, lr, optimizer, wd, schedule, warmup,
                    smoothing, clip, augment, seed, maxSteps, freeze, resume);
            }
            model = OnnxImporter.Load(fromPath!);
            info = ClassifierInfo.ReadFrom(model);
            var shape = model.Inputs[0].Shape;
            if (shape.Length != 4) throw new ArgumentException($"--from: the model's input {Tensors.Shape.Format(shape)} is not an image batch [N, C, H, W].");
            var train = LoadData(dataName, true, shape[1], shape[2], r.GetValue(limit));
            int classesWanted = wantClasses ?? train.Classes;
            if (model.Outputs[^1].Shape[^1] != classesWanted)
            {
                var replaced = FineTuning.ReplaceClassifier(model, classesWanted, r.GetValue(seed));
                if (!quiet) Console.Error.WriteLine($"mnet: note: replaced the classifier '{replaced}' with a new one for {classesWanted} classes.");
            }
            info = info is null
                ? new ClassifierInfo(Labels(train, classesWanted), shape[1], shape[2], Enumerable.Repeat(0f, shape[1]).ToArray(), Enumerable.Repeat(1f, shape[1]).ToArray(), NormalizationInGraph: true)
                : info with { Labels = Labels(train, classesWanted) };
            source = new JsonObject { ["from"] = Path.GetFullPath(fromPath!), ["classes"] = classesWanted, ["data"] = dataName };
            return Train(model, info, train, valFraction, r, source, outPath, ckptPath, quiet, nThreads, epochs, batch, lr, optimizer, wd, schedule, warmup,
                smoothing, clip, augment, seed, maxSteps, freeze, resume);
        }));
        return cmd;
    }

    private static ImageDataset LoadData(string data, bool train, int channels, int resolution, int? limit) =>
        DataSource.Load(data, train, channels, resolution, limit);

    private static string[] Labels(ImageDataset d, int classes) =>
        Enumerable.Range(0, classes).Select(k => k < d.ClassNames.Count ? d.ClassNames[k] : k.ToString(CultureInfo.InvariantCulture)).ToArray();

    /// <summary>Fashion-MNIST's statistics; for folders ImageNet's (torchvision's transforms.Normalize values) or 0.5 for grey.</summary>
    private static (float[] Mean, float[] Std) Normalization(string data, int channels)
    {
        if (data == DataSource.FashionMnistName)
            return (Enumerable.Repeat(DataSource.FashionMnistStatistics.Mean, channels).ToArray(), Enumerable.Repeat(DataSource.FashionMnistStatistics.Std, channels).ToArray());
        return channels == 3 ? ([0.485f, 0.456f, 0.406f], [0.229f, 0.224f, 0.225f]) : (Enumerable.Repeat(0.5f, channels).ToArray(), Enumerable.Repeat(0.25f, channels).ToArray());
    }

    private static int Train(ModelGraph model, ClassifierInfo info, ImageDataset all, double valFraction, ParseResult r, JsonObject source,
        string outPath, string ckptPath, bool quiet, int nThreads, Option<int> epochs, Option<int> batch, Option<float?> lr, Option<string> optimizer,
        Option<float?> wd, Option<string> schedule, Option<double> warmup, Option<float> smoothing, Option<float?> clip, Option<string> augment,
        Option<int> seed, Option<long?> maxSteps, Option<string?> freeze, Option<bool> resume)
    {
        var (train, val) = valFraction > 0 ? all.Split(valFraction, r.GetValue(seed)) : (all, null);
        string opt = r.GetValue(optimizer)!;
        var options = new TrainerOptions
        {
            Epochs = r.GetValue(epochs), BatchSize = r.GetValue(batch), Optimizer = opt,
            LearningRate = r.GetValue(lr) ?? (opt == "adamw" ? 0.002f : 0.05f),
            WeightDecay = r.GetValue(wd) ?? (opt == "adamw" ? 0.05f : 4e-5f),
            Schedule = r.GetValue(schedule)!, WarmupEpochs = r.GetValue(warmup), LabelSmoothing = r.GetValue(smoothing), ClipNorm = r.GetValue(clip),
            Augment = r.GetValue(augment) == "standard" ? Augmentation.Standard : Augmentation.None,
            Seed = r.GetValue(seed), Threads = nThreads, MaxSteps = r.GetValue(maxSteps), FreezeUntil = r.GetValue(freeze),
            CheckpointPath = ckptPath, Source = source,
        };
        using var trainer = new Trainer(model, train, val, options);
        if (r.GetValue(resume))
        {
            trainer.LoadCheckpoint(ckptPath);
            if (!quiet) Console.Error.WriteLine($"mnet: resuming from {ckptPath} at epoch {trainer.History.Count + 1}.");
        }
        using var cts = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (cts.IsCancellationRequested) return; // a second Ctrl-C ends the process
            e.Cancel = true;
            cts.Cancel();
            Console.Error.WriteLine("mnet: stopping: saving a checkpoint (Ctrl-C again to quit at once)...");
        };
        Console.CancelKeyPress += onCancel;
        TrainResult result;
        try { result = RunWithProgress(trainer, quiet, cts.Token, val is not null); }
        finally { Console.CancelKeyPress -= onCancel; }

        var trained = trainer.Model();
        info.WriteTo(trained);
        trained.Metadata["mnet.training"] = new JsonObject
        {
            ["epochs"] = result.EpochsCompleted, ["steps"] = result.Steps,
            ["trainLoss"] = result.TrainLoss, ["validationAccuracy"] = result.ValidationAccuracy, ["source"] = source.DeepClone(),
        }.ToJsonString();
        MakeBatchSymbolic(trained);
        if (!result.Interrupted) OnnxExporter.Save(trained, outPath);
        if (quiet)
        {
            Cli.PrintJson(new
            {
                imagesPerSecond = result.ImagesPerSecond, epochs = result.EpochsCompleted, steps = result.Steps, trainLoss = result.TrainLoss,
                valAccuracy = result.ValidationAccuracy, seconds = result.Seconds, interrupted = result.Interrupted,
                output = result.Interrupted ? null : outPath, checkpoint = ckptPath,
                history = result.History.Select(h => new { h.Epoch, h.Steps, h.TrainLoss, h.TrainAccuracy, h.ValidationAccuracy, h.Seconds, h.ImagesPerSecond }),
            });
        }
        else if (result.Interrupted)
            Console.Error.WriteLine($"mnet: interrupted after {result.Steps} steps; checkpoint saved to {ckptPath}. Continue with the same command and --resume.");
        else
            Console.Out.WriteLine($"trained {result.EpochsCompleted} epochs ({result.Steps} steps, {result.ImagesPerSecond:F0} images/s): train loss {result.TrainLoss:F4}"
                + (result.ValidationAccuracy is { } va ? $", validation accuracy {Cli.Percent(va)}" : "") + $" -> {outPath}");
        return result.Interrupted ? 130 : 0;
    }

    /// <summary>A live bar on stderr for a person; one line per epoch when stderr is not a terminal.</summary>
    private static TrainResult RunWithProgress(Trainer trainer, bool quiet, CancellationToken ct, bool hasValidation)
    {
        var inv = CultureInfo.InvariantCulture;
        string Epoch(EpochReport e) =>
            string.Create(inv, $"epoch {e.Epoch}: loss {e.TrainLoss:F4}, train accuracy {100 * e.TrainAccuracy:F2}%")
            + (e.ValidationAccuracy is { } v ? string.Create(inv, $", validation accuracy {100 * v:F2}%") : "")
            + string.Create(inv, $", {e.ImagesPerSecond:F0} images/s, {e.Seconds:F0} s");
        if (quiet || Console.IsErrorRedirected)
        {
            if (!quiet) trainer.EpochCompleted = e => Console.Error.WriteLine("mnet: " + Epoch(e));
            return trainer.Run(ct);
        }
        var err = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        TrainResult? result = null;
        err.Progress().AutoClear(false).HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("training", maxValue: (double)trainer.Options.Epochs * trainer.BatchesPerEpoch);
                trainer.Progress = p =>
                {
                    task.Value = (double)(p.Epoch - 1) * p.BatchesPerEpoch + p.Batch;
                    task.Description = string.Create(inv, $"epoch {p.Epoch}/{p.Epochs} step {p.Batch}/{p.BatchesPerEpoch} loss {p.Loss:F3} acc {100 * p.Accuracy:F1}% {p.ImagesPerSecond:F0} img/s ETA {p.Remaining:hh\\:mm\\:ss}");
                };
                trainer.EpochCompleted = e => err.MarkupLine(Markup.Escape(Epoch(e)));
                result = trainer.Run(ct);
            });
        return result!;
    }

    /// <summary>Marks dimension 0 of the input and outputs symbolic ("N"): the exported model runs at any batch.</summary>
    internal static void MakeBatchSymbolic(ModelGraph g)
    {
        foreach (var v in g.Inputs.Take(1).Concat(g.Outputs))
        {
            var p = v.DimParams ?? new string?[v.Rank];
            if (p.Length == v.Rank && v.Rank > 0) { p[0] = "N"; v.DimParams = p; }
        }
    }
}
