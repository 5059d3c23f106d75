using System.CommandLine;
using System.Globalization;
using MobileNetSharp.Graph;
using MobileNetSharp.Models;
using MobileNetSharp.Runtime;
using MobileNetSharp.Training;
using MobileNetSharp.Training.Data;
using Spectre.Console;

namespace MobileNetSharp.Cli.Commands;

/// <summary>
/// `mnet eval [--model M] --data fashion-mnist|FOLDER [--json] [--plot FILE]`: top-1 (and top-5) accuracy, per-class
/// accuracy and the confusion matrix of a classifier on labelled images; the built-in model when none is given.
/// </summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "A classifier (.onnx, .tflite) or `builtin` (the Fashion-MNIST model that ships with mnet)", DefaultValueFactory = _ => BuiltinModel.Name };
        var data = new Option<string>("--data", "-d") { Description = DataSource.Help + " (Fashion-MNIST: its 10,000 test images)", DefaultValueFactory = _ => DataSource.FashionMnistName };
        var limit = new Option<int?>("--limit") { Description = "Evaluate the first N images only" };
        var batch = new Option<int>("--batch", "-b") { Description = "Images per run", DefaultValueFactory = _ => 100 };
        var plot = new Option<string?>("--plot") { Description = "Write the confusion matrix as a PNG heat map" };
        var (threads, json) = (Cli.Threads(), Cli.Json());
        var cmd = new Command("eval", "Accuracy, per-class accuracy and confusion matrix of a classifier on labelled images") { model, data, limit, batch, threads, plot, json };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            int nBatch = r.GetValue(batch);
            if (nBatch < 1 || nBatch > 4096) throw new ArgumentException("--batch must be in 1..4096.");
            var graph = BuiltinModel.Load(r.GetValue(model)!);
            var info = ClassifierInfo.ReadFrom(graph);
            var shape = graph.Inputs[0].Shape;
            if (shape.Length != 4) throw new ArgumentException($"The model's input {Tensors.Shape.Format(shape)} is not an image batch [N, C, H, W].");
            var set = DataSource.Load(r.GetValue(data)!, train: false, shape[1], shape[2], r.GetValue(limit));
            if (info is not null) set = MatchLabels(set, info);
            bool quiet = r.GetValue(json);
            EvaluationResult result = null!;
            using (var session = new InferenceSession(WithBatch(graph, nBatch), new SessionOptions { Threads = r.GetValue(threads) }))
                Cli.WithStatus(quiet, status => result = Evaluation.Run(session, set, nBatch,
                    (done, total) => status($"evaluating: {done}/{total} images")));
            var names = info?.Labels ?? result.ClassNames;
            if (r.GetValue(plot) is { } png)
                Imaging.Charts.ConfusionChart.Save(png, result.Confusion, names, $"{Path.GetFileName(r.GetValue(model))} on {r.GetValue(data)}: {100 * result.Accuracy:F2}% top-1");
            if (quiet)
            {
                Cli.PrintJson(new
                {
                    model = r.GetValue(model), data = r.GetValue(data), count = result.Count, accuracy = result.Accuracy, top5 = result.Top5,
                    perClass = names.Select((n, k) => new { label = n, accuracy = double.IsNaN(result.PerClass[k]) ? (double?)null : result.PerClass[k] }),
                    confusion = Enumerable.Range(0, names.Count).Select(t => Enumerable.Range(0, names.Count).Select(p => result.Confusion[t, p]).ToArray()),
                    imagesPerSecond = result.ImagesPerSecond, plot = r.GetValue(plot),
                });
                return 0;
            }
            Print(result, names, r.GetValue(model)!, r.GetValue(data)!);
            return 0;
        }));
        return cmd;
    }

    /// <summary>Folder labels follow the folders' names; when the model carries labels, map them by name so the order need not agree.</summary>
    internal static ImageDataset MatchLabels(ImageDataset set, ClassifierInfo info)
    {
        if (set.ClassNames.SequenceEqual(info.Labels.Take(set.ClassNames.Count))) return set;
        var index = info.Labels.Select((l, i) => (l, i)).ToDictionary(x => x.l, x => x.i, StringComparer.Ordinal);
        var missing = set.ClassNames.Where(c => !index.ContainsKey(c)).ToList();
        if (missing.Count > 0)
            throw new ArgumentException($"The data has classes the model does not know: {string.Join(", ", missing.Take(5))} (the model's labels: {string.Join(", ", info.Labels.Take(10))}).");
        return set.Relabel(set.ClassNames.Select(c => index[c]).ToArray(), info.Labels);
    }

    /// <summary>The graph with dimension 0 of its input set to <paramref name="batch"/> (a fixed-batch file keeps its own).</summary>
    internal static ModelGraph WithBatch(ModelGraph g, int batch)
    {
        if (g.Inputs[0].Shape[0] == batch) return g;
        var c = g.Clone();
        c.Inputs[0].Shape = [batch, .. c.Inputs[0].Shape[1..]];
        try { c.InferShapes(); return c; }
        catch (GraphException) { return g; } // shapes folded for its own batch: evaluate at that batch
    }

    private static void Print(EvaluationResult r, IReadOnlyList<string> names, string model, string data)
    {
        var inv = CultureInfo.InvariantCulture;
        var o = Cli.Out;
        o.MarkupLine(Markup.Escape(string.Create(inv, $"{model} on {data}: {r.Count:N0} images, top-1 accuracy {100 * r.Accuracy:F2}%")
            + (r.Top5 is { } t5 ? string.Create(inv, $", top-5 {100 * t5:F2}%") : "") + string.Create(inv, $" ({r.ImagesPerSecond:F0} images/s)")));
        int k = names.Count;
        var per = new Table().AddColumns("class", "accuracy", "images");
        for (int c = 0; c < k; c++)
        {
            int total = 0;
            for (int p = 0; p < k; p++) total += r.Confusion[c, p];
            per.AddRow(Markup.Escape(names[c]), double.IsNaN(r.PerClass[c]) ? "-" : Cli.Percent(r.PerClass[c]), total.ToString(inv));
        }
        o.Write(per);
        if (k > 20) return; // a confusion table wider than a terminal helps nobody: --plot or --json
        var cm = new Table().Title("confusion matrix (rows: true class, columns: predicted)").AddColumn("");
        for (int p = 0; p < k; p++) cm.AddColumn(new TableColumn(p.ToString(inv)).RightAligned());
        for (int t = 0; t < k; t++)
            cm.AddRow([$"{t} {Markup.Escape(names[t])}", .. Enumerable.Range(0, k).Select(p => t == p ? $"[bold]{r.Confusion[t, p]}[/]" : r.Confusion[t, p].ToString(inv))]);
        o.Write(cm);
    }
}
