using System.CommandLine;
using System.Globalization;
using MobileNetSharp.Graph;
using MobileNetSharp.Models;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using Spectre.Console;

namespace MobileNetSharp.Cli.Commands;

/// <summary>
/// `mnet compare`: the headline claim measured on this machine. Builds the separable network and its
/// standard-convolution twin, counts both, times both (median after warm-up) and prints the ratios.
/// </summary>
internal static class CompareCommand
{
    public static Command Create()
    {
        var arch = new Option<string>("--arch", "-a") { Description = "Separable architecture to compare with its standard-conv twin", DefaultValueFactory = _ => "mobilenet_v1" };
        var (width, res, threads, json) = (Cli.Width(), Cli.Resolution(), Cli.Threads(), Cli.Json());
        var runs = new Option<int>("--runs") { Description = "Timed runs per network (after warm-up)", DefaultValueFactory = _ => 15 };
        var (classes, channels, small) = (Cli.Classes(), Cli.Channels(), Cli.SmallInput());
        var cmd = new Command("compare", "Separable network vs its standard-convolution twin: params, MACs and measured latency") { arch, width, res, classes, channels, small, threads, runs, json };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            int nRuns = r.GetValue(runs), nThreads = r.GetValue(threads);
            if (nRuns < 1 || nRuns > 10000) throw new ArgumentException("--runs must be in 1..10000.");
            var sep = ModelZoo.Create(r.GetValue(arch)!, new ModelOptions(r.GetValue(width), r.GetValue(res), r.GetValue(classes),
                InChannels: r.GetValue(channels), SmallInput: r.GetValue(small)));
            var std = StandardTwin.Of(sep);
            var input = Tensor.Random(42, sep.Inputs[0].Shape);
            var results = new List<Result>();
            Cli.WithStatus(r.GetValue(json), status =>
            {
                foreach (var g in new[] { sep, std })
                {
                    status($"timing {g.Name} ({nThreads} thread(s), up to {nRuns} runs)...");
                    results.Add(Measure(g, input, nThreads, nRuns));
                }
            });
            var (a, b) = (results[0], results[1]);
            double paramsRatio = (double)b.Params / a.Params, macsRatio = (double)b.Macs / a.Macs, latencyRatio = b.Latency.Median / a.Latency.Median;
            if (r.GetValue(json))
            {
                Cli.PrintJson(new
                {
                    arch = sep.Name, width = r.GetValue(width), resolution = sep.Inputs[0].Shape[2], channels = sep.Inputs[0].Shape[1],
                    smallInput = r.GetValue(small), threads = nThreads,
                    separable = a.ToJson(), standard = b.ToJson(),
                    paramsRatio, macsRatio, latencyRatio,
                });
                return 0;
            }
            var inv = CultureInfo.InvariantCulture;
            var t = new Table().Title($"{sep.Name} vs its standard-convolution twin ({sep.Inputs[0].Shape[2]}x{sep.Inputs[0].Shape[3]}, width {r.GetValue(width).ToString(inv)}, {nThreads} thread(s))")
                .AddColumns("network", "params", "MACs", "median", "p90", "min", "GMAC/s");
            foreach (var x in results)
                t.AddRow(x.Name, Cli.Count(x.Params), Cli.Millions(x.Macs), Cli.Ms(x.Latency.Median), Cli.Ms(x.Latency.P90), Cli.Ms(x.Latency.Min),
                    (x.Macs / x.Latency.Median / 1e6).ToString("0.0", inv));
            t.AddRow("[bold]standard / separable[/]", $"{paramsRatio.ToString("0.00", inv)}x", $"{macsRatio.ToString("0.00", inv)}x", $"{latencyRatio.ToString("0.00", inv)}x", "", "", "");
            Cli.Out.Write(t);
            Cli.Out.WriteLine($"The separable network needs {macsRatio.ToString("0.0", inv)}x fewer multiply-accumulates and {paramsRatio.ToString("0.0", inv)}x fewer parameters, and ran {latencyRatio.ToString("0.0", inv)}x faster here.");
            return 0;
        }));
        return cmd;
    }

    private sealed record Result(string Name, long Params, long Macs, LatencyStats Latency)
    {
        public object ToJson() => new { name = Name, @params = Params, macs = Macs, medianMs = Latency.Median, p90Ms = Latency.P90, minMs = Latency.Min, runs = Latency.Runs };
    }

    private static Result Measure(ModelGraph g, Tensor input, int threads, int runs)
    {
        var cost = CostModel.Analyze(g);
        using var session = new InferenceSession(g, new SessionOptions { Threads = threads });
        var stats = Latency.Measure(session, [input], warmup: 2, minRuns: Math.Min(runs, 5), maxRuns: runs, TimeSpan.FromSeconds(8));
        return new Result(g.Name, cost.Params, cost.Macs, stats);
    }
}
