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
        var (channels, small, noFuse) = (Cli.Channels(), Cli.SmallInput(), Cli.NoFuse());
        var cmd = new Command("profile", "Time per step and per kernel") { model, width, res, classes, channels, small, threads, runs, top, noFuse, json };
        var shapes = new ShapeOptions();
        shapes.AddTo(cmd);
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var g = ModelSource.Load(r.GetValue(model)!, r.GetValue(width), r.GetValue(res), r.GetValue(classes), shapes.ImportOptions(r),
                channels: r.GetValue(channels), smallInput: r.GetValue(small));
            int nRuns = r.GetValue(runs);
            if (nRuns < 1 || nRuns > 10000) throw new ArgumentException("--runs must be in 1..10000.");
            using var session = new InferenceSession(g, new SessionOptions { Threads = r.GetValue(threads), FuseBlocks = !r.GetValue(noFuse) });
            var inputs = session.Inputs.Select((i, k) => Tensor.Random(k + 1, i.Shape)).ToArray();
            var steps = session.Profile(inputs, nRuns);
            var costs = StepCosts(session, steps);
            double total = steps.Sum(s => s.Milliseconds);
            long totalMacs = costs.Sum(c => c.Macs);
            var byKernel = steps.Select((s, i) => (Step: s, Cost: costs[i])).GroupBy(x => x.Step.Kernel)
                .Select(k => (Kernel: k.Key, Count: k.Count(), Ms: k.Sum(x => x.Step.Milliseconds), Macs: k.Sum(x => x.Cost.Macs)))
                .OrderByDescending(k => k.Ms).ToArray();
            var byKind = Enum.GetValues<LayerKind>().Select(kind => (Kind: kind, Items: steps.Select((s, i) => (Step: s, Cost: costs[i])).Where(x => x.Cost.Kind == kind).ToArray()))
                .Where(k => k.Items.Length > 0)
                .Select(k => (k.Kind, Count: k.Items.Length, Ms: k.Items.Sum(x => x.Step.Milliseconds), Macs: k.Items.Sum(x => x.Cost.Macs))).ToArray();
            if (r.GetValue(json))
            {
                Cli.PrintJson(new
                {
                    model = g.Name, threads = r.GetValue(threads), totalMs = total, arenaBytes = session.ArenaBytes, macs = totalMacs, gflops = Gflops(totalMacs, total),
                    steps = steps.Select((s, i) => new { name = s.Name, nodes = s.Nodes ?? [s.Name], kernel = s.Kernel, ms = s.Milliseconds, layerKind = SummaryCommand.KindName(costs[i].Kind), macs = costs[i].Macs, gflops = Gflops(costs[i].Macs, s.Milliseconds) }),
                    kernels = byKernel.Select(k => new { kernel = k.Kernel, steps = k.Count, ms = k.Ms, macs = k.Macs, gflops = Gflops(k.Macs, k.Ms) }),
                    layerKinds = byKind.Select(k => new { layerKind = SummaryCommand.KindName(k.Kind), steps = k.Count, ms = k.Ms, share = total > 0 ? k.Ms / total : 0, macs = k.Macs, macShare = totalMacs > 0 ? (double)k.Macs / totalMacs : 0, gflops = Gflops(k.Macs, k.Ms) }),
                });
                return 0;
            }
            var inv = CultureInfo.InvariantCulture;
            string F(double x) => x.ToString("0.0", inv);
            var t0 = new Table().Title($"{Markup.Escape(g.Name)}: {steps.Count} steps, {Cli.Ms(total)} per run, {Cli.Millions(totalMacs)} MACs, {F(Gflops(totalMacs, total))} GFLOP/s, arena {session.ArenaBytes / 1024} KiB")
                .AddColumns("layer kind", "steps", "MACs", "MAC share", "time", "time share", "GFLOP/s");
            foreach (var k in byKind)
                t0.AddRow(SummaryCommand.KindTitle(k.Kind), k.Count.ToString(inv), Cli.Millions(k.Macs), totalMacs > 0 ? Cli.Percent((double)k.Macs / totalMacs) : "",
                    Cli.Ms(k.Ms), Cli.Percent(k.Ms / total), k.Macs > 0 ? F(Gflops(k.Macs, k.Ms)) : "");
            Cli.Out.Write(t0);
            var t = new Table().Title("by kernel").AddColumns("kernel", "steps", "time", "share", "GFLOP/s");
            foreach (var k in byKernel) t.AddRow(Markup.Escape(k.Kernel), k.Count.ToString(inv), Cli.Ms(k.Ms), Cli.Percent(k.Ms / total), k.Macs > 0 ? F(Gflops(k.Macs, k.Ms)) : "");
            Cli.Out.Write(t);
            var s2 = new Table().Title("slowest steps").AddColumns("step", "kernel", "layer kind", "time", "share", "MACs", "GFLOP/s");
            foreach (var (s, c) in steps.Select((s, i) => (s, costs[i])).OrderByDescending(x => x.s.Milliseconds).Take(r.GetValue(top)))
                s2.AddRow(Markup.Escape(s.Name), Markup.Escape(s.Kernel), SummaryCommand.KindTitle(c.Kind), Cli.Ms(s.Milliseconds), Cli.Percent(s.Milliseconds / total),
                    c.Macs > 0 ? Cli.Millions(c.Macs) : "", c.Macs > 0 ? F(Gflops(c.Macs, s.Milliseconds)) : "");
            Cli.Out.Write(s2);
            return 0;
        }));
        return cmd;
    }

    private static double Gflops(long macs, double ms) => ms > 0 ? 2.0 * macs / (ms * 1e6) : 0;

    /// <summary>
    /// MACs and layer kind of each step: a step named after a node of the optimized graph (the plan's compute
    /// steps are) carries that node's cost at the profiled shapes; a fused block carries the sum over its nodes
    /// and the kind of its largest part (the 1x1 convolutions of an inverted residual; `--no-fuse` splits it);
    /// the extra steps a lowering or a layout change adds (".nhwc", ".copy", ...) are data movement, counted as
    /// other with no MACs.
    /// </summary>
    internal static (long Macs, LayerKind Kind)[] StepCosts(InferenceSession session, IReadOnlyList<StepProfile> steps)
    {
        var nodes = new Dictionary<string, Node>(StringComparer.Ordinal);
        foreach (var n in session.OptimizedGraph.Nodes) nodes.TryAdd(n.Name, n);
        var claimed = new HashSet<string>(StringComparer.Ordinal);
        return steps.Select(s =>
        {
            long macs = 0, largest = -1;
            var kind = LayerKind.Other;
            foreach (var name in s.Nodes ?? [s.Name])
            {
                if (!nodes.TryGetValue(name, out var n) || !claimed.Add(name)) continue;
                var cost = n.Op.Cost(n);
                macs += cost.Macs;
                if (cost.Macs > largest) (largest, kind) = (cost.Macs, cost.Kind);
            }
            return (macs, kind);
        }).ToArray();
    }
}
