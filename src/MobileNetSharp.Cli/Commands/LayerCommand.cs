using System.CommandLine;
using System.Globalization;
using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using Spectre.Console;

namespace MobileNetSharp.Cli.Commands;

/// <summary>
/// `mnet layer`: the seed's per-layer arithmetic. A KxK standard conv from N to M channels against a KxK
/// depthwise plus a 1x1 pointwise conv: parameters, MACs, the ratio and the paper's 1/M + 1/K^2 rule,
/// and both layers timed on this machine.
/// </summary>
internal static class LayerCommand
{
    public static Command Create()
    {
        var inC = new Option<int>("--in") { Description = "Input channels N", DefaultValueFactory = _ => 64 };
        var outC = new Option<int>("--out") { Description = "Output channels M", DefaultValueFactory = _ => 128 };
        var kernel = new Option<int>("--kernel", "-k") { Description = "Kernel size K", DefaultValueFactory = _ => 3 };
        var size = new Option<int>("--size") { Description = "Spatial size of the (square) output feature map", DefaultValueFactory = _ => 56 };
        var threads = Cli.Threads();
        var noTime = new Option<bool>("--no-time") { Description = "Skip timing the two layers" };
        var json = Cli.Json();
        var cmd = new Command("layer", "Standard vs depthwise-separable cost of one layer") { inC, outC, kernel, size, threads, noTime, json };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            int n = r.GetValue(inC), m = r.GetValue(outC), k = r.GetValue(kernel), s = r.GetValue(size);
            if (n < 1 || m < 1 || k < 1 || s < 1 || n > 65536 || m > 65536 || k > 31 || s > 4096)
                throw new ArgumentException("--in and --out must be in 1..65536, --kernel in 1..31, --size in 1..4096.");
            long stdParams = (long)k * k * n * m, dwParams = (long)k * k * n, pwParams = (long)n * m;
            long hw = (long)s * s;
            long stdMacs = stdParams * hw, dwMacs = dwParams * hw, pwMacs = pwParams * hw;
            double ratio = (double)(dwParams + pwParams) / stdParams;
            double rule = 1.0 / m + 1.0 / (k * k);
            LatencyStats? tStd = null, tSep = null;
            if (!r.GetValue(noTime))
            {
                int t = r.GetValue(threads);
                tStd = Time(n, m, k, s, separable: false, t);
                tSep = Time(n, m, k, s, separable: true, t);
            }
            if (r.GetValue(json))
            {
                Cli.PrintJson(new
                {
                    input = n, output = m, kernel = k, size = s,
                    standard = new { @params = stdParams, macs = stdMacs, medianMs = tStd?.Median },
                    depthwise = new { @params = dwParams, macs = dwMacs },
                    pointwise = new { @params = pwParams, macs = pwMacs },
                    separable = new { @params = dwParams + pwParams, macs = dwMacs + pwMacs, medianMs = tSep?.Median },
                    costRatio = ratio, ruleOfThumb = rule, reduction = 1 / ratio,
                    latencyRatio = tStd is null ? (double?)null : tStd.Median / tSep!.Median,
                });
                return 0;
            }
            var table = new Table().Title($"{k}x{k} conv, {n} -> {m} channels, {s}x{s} output").AddColumns("layer", "parameters", "formula", "MACs", "median time");
            table.AddRow("standard", Cli.Count(stdParams), $"{k}*{k}*{n}*{m}", Cli.Count(stdMacs), tStd is null ? "" : Cli.Ms(tStd.Median));
            table.AddRow("depthwise", Cli.Count(dwParams), $"{n}*{k * k}", Cli.Count(dwMacs), "");
            table.AddRow("pointwise 1x1", Cli.Count(pwParams), $"{n}*{m}", Cli.Count(pwMacs), "");
            table.AddRow("[bold]separable total[/]", Cli.Count(dwParams + pwParams), "", Cli.Count(dwMacs + pwMacs), tSep is null ? "" : Cli.Ms(tSep.Median));
            Cli.Out.Write(table);
            var inv = CultureInfo.InvariantCulture;
            Cli.Out.WriteLine($"separable / standard = {ratio.ToString("0.0000", inv)}  ({(1 / ratio).ToString("0.0", inv)}x fewer parameters and MACs)");
            Cli.Out.WriteLine($"rule of thumb 1/M + 1/K^2 = 1/{m} + 1/{k * k} = {rule.ToString("0.0000", inv)}");
            if (tStd is not null) Cli.Out.WriteLine($"measured: standard takes {(tStd.Median / tSep!.Median).ToString("0.0", inv)}x as long as separable ({r.GetValue(threads)} thread(s), median of {tStd.Runs} runs)");
            return 0;
        }));
        return cmd;
    }

    /// <summary>Times one layer (with stride 1 and same padding so the output is size x size).</summary>
    private static LatencyStats Time(int n, int m, int k, int s, bool separable, int threads)
    {
        var b = new GraphBuilder("layer");
        var x = b.Input("x", 1, n, s, s);
        x = separable ? b.Conv(b.Conv(x, n, k, groups: n), m, 1) : b.Conv(x, m, k);
        b.Output(x);
        if (k % 2 == 0) throw new ArgumentException("Timing needs an odd kernel so the output keeps its size; pass --no-time for even kernels.");
        using var session = new InferenceSession(b.Graph, new SessionOptions { Threads = threads });
        return Latency.Measure(session, [Tensor.Random(1, [1, n, s, s])], warmup: 2, minRuns: 5, maxRuns: 30, TimeSpan.FromSeconds(2));
    }
}
