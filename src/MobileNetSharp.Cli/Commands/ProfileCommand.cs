using System.CommandLine;
using System.Globalization;
using MobileNetSharp.Graph;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using Spectre.Console;

namespace MobileNetSharp.Cli.Commands;

/// <summary>`mnet profile`: where the time goes, per step and per kernel, next to where the MACs go.</summary>
internal static class ProfileCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Architecture name, .onnx or .tflite file" };
        var (width, res, classes, threads, json) = (Cli.Width(), Cli.Resolution(), Cli.Classes(), Cli.Threads(), Cli.Json());
        var runs = new Option<int>("--runs") { Description = "Profiled runs", DefaultValueFactory = _ => 10 };
        var top = new Option<int>("--top") { Description = "Slowest steps to list", DefaultValueFactory = _ => 15 };
        var cmd = new Command("profile", "Time per step and per kernel") { model, width, res, classes, threads, runs, top, json };
        var shapes = new ShapeOptions();
        shapes.AddTo(cmd);
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var g = ModelSource.Load(r.GetValue(model)!, r.GetValue(width), r.GetValue(res), r.GetValue(classes), shapes.ImportOptions(r));
            int nRuns = r.GetValue(runs);
            if (nRuns < 1 || nRuns > 10000) throw new ArgumentException("--runs must be in 1..10000.");
            using var session = new InferenceSession(g, new SessionOptions { Threads = r.GetValue(threads) });
            var inputs = session.Inputs.Select((i, k) => Tensor.Random(k + 1, i.Shape)).ToArray();
            var steps = session.Profile(inputs, nRuns);
            double total = steps.Sum(s => s.Milliseconds);
            var byKernel = steps.GroupBy(s => s.Kernel).Select(k => (Kernel: k.Key, Count: k.Count(), Ms: k.Sum(s => s.Milliseconds)))
                .OrderByDescending(k => k.Ms).ToArray();
            if (r.GetValue(json))
            {
                Cli.PrintJson(new
                {
                    model = g.Name, threads = r.GetValue(threads), totalMs = total, arenaBytes = session.ArenaBytes,
                    steps = steps.Select(s => new { name = s.Name, kernel = s.Kernel, ms = s.Milliseconds }),
                    kernels = byKernel.Select(k => new { kernel = k.Kernel, steps = k.Count, ms = k.Ms }),
                });
                return 0;
            }
            var inv = CultureInfo.InvariantCulture;
            var t = new Table().Title($"{Markup.Escape(g.Name)}: {steps.Count} steps, {Cli.Ms(total)} per run, arena {session.ArenaBytes / 1024} KiB")
                .AddColumns("kernel", "steps", "time", "share");
            foreach (var k in byKernel) t.AddRow(Markup.Escape(k.Kernel), k.Count.ToString(inv), Cli.Ms(k.Ms), Cli.Percent(k.Ms / total));
            Cli.Out.Write(t);
            var s2 = new Table().Title("slowest steps").AddColumns("step", "kernel", "time", "share");
            foreach (var s in steps.OrderByDescending(s => s.Milliseconds).Take(r.GetValue(top)))
                s2.AddRow(Markup.Escape(s.Name), Markup.Escape(s.Kernel), Cli.Ms(s.Milliseconds), Cli.Percent(s.Milliseconds / total));
            Cli.Out.Write(s2);
            return 0;
        }));
        return cmd;
    }
}
