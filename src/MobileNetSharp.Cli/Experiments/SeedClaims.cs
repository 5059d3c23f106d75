using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MobileNetSharp.Graph;
using MobileNetSharp.Imaging.Charts;

namespace MobileNetSharp.Cli.Experiments;

/// <summary>A claim of the brief, what the papers published, what this run measured, and the verdict.</summary>
internal sealed record ClaimResult(string Claim, string Published, string Measured, string Verdict);

/// <summary>
/// `mnet experiment seed-claims`: checks the MobileNet claims of the project brief on Fashion-MNIST, plans the runs,
/// trains them (<see cref="SeedClaimsRunner"/>), and writes report.md, results.json and PNG charts.
/// </summary>
internal sealed class SeedClaims(SeedClaimsSettings settings, string command)
{
    private const double RealTimeBudgetMs = 1000.0 / 30;
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private HashSet<string> _reusedIds = [];

    /// <summary>The specs of each claim. The matched pairs of claim 2 are chosen from untrained networks' measured latency and counted MACs.</summary>
    public sealed record Plan(RunSpec[] Separable, RunSpec[] Twin, RunSpec[] V1AtLatency, RunSpec[] V2AtLatency, RunSpec[] V1AtMacs, RunSpec[] V2AtMacs,
        RunSpec[] Linear, RunSpec[] Relu6, RunSpec[] WidthSweep, RunSpec[] ResolutionSweep, string PairNote)
    {
        public IEnumerable<RunSpec> All => Separable.Concat(Twin).Concat(V1AtLatency).Concat(V2AtLatency).Concat(V1AtMacs).Concat(V2AtMacs)
            .Concat(Linear).Concat(Relu6).Concat(WidthSweep).Concat(ResolutionSweep).DistinctBy(s => s.Id);
    }

    /// <summary>Claim 2's V1/V2 width pairs, matched by measured latency and by MACs, and how close they are.</summary>
    public sealed record Pairing(float V1AtLatency, float V2AtLatency, float V1AtMacs, float V2AtMacs, string Note);

    /// <param name="runner">With a cache folder, the pairing measured by an earlier run of the same settings is reused: latency
    /// is noisy, and pairs measured afresh could differ and send a resumed experiment after other networks.</param>
    public Plan MakePlan(SeedClaimsRunner? runner = null)
    {
        const float w = SeedClaimsSettings.BaseWidth;
        const int r = SeedClaimsSettings.BaseResolution;
        var seeds = Enumerable.Range(0, settings.Seeds).ToArray();
        RunSpec[] Seeded(string arch, float width, bool nonLinear = false) => seeds.Select(s => new RunSpec(arch, width, r, s, nonLinear)).ToArray();

        var pairs = runner?.LoadCached<Pairing>("pairing", p => settings.Widths.Contains(p.V1AtLatency) && settings.V2Widths.Contains(p.V2AtLatency)
            && settings.Widths.Contains(p.V1AtMacs) && settings.V2Widths.Contains(p.V2AtMacs)) ?? MeasurePairs();
        runner?.SaveCached("pairing", pairs);
        return new Plan(
            Seeded("mobilenet_v1", w), Seeded("conv_mobilenet_v1", w),
            Seeded("mobilenet_v1", pairs.V1AtLatency), Seeded("mobilenet_v2", pairs.V2AtLatency),
            Seeded("mobilenet_v1", pairs.V1AtMacs), Seeded("mobilenet_v2", pairs.V2AtMacs),
            Seeded("mobilenet_v2", w), Seeded("mobilenet_v2", w, nonLinear: true),
            settings.Widths.Select(x => new RunSpec("mobilenet_v1", x, r, 0)).ToArray(),
            settings.Resolutions.Select(x => new RunSpec("mobilenet_v1", w, x, 0)).ToArray(),
            pairs.Note);
    }

    /// <summary>Claim 2's pairs: every V1 and V2 width, untrained, measured once; the pair closest in latency (and in MACs).</summary>
    private Pairing MeasurePairs()
    {
        const int r = SeedClaimsSettings.BaseResolution;
        var v1 = settings.Widths.Select(x => Measure(new RunSpec("mobilenet_v1", x, r, 0))).ToArray();
        var v2 = settings.V2Widths.Select(x => Measure(new RunSpec("mobilenet_v2", x, r, 0))).ToArray();
        var byLatency = v1.SelectMany(a => v2.Select(b => (a, b))).OrderBy(p => Math.Abs(Math.Log(p.a.Latency / p.b.Latency))).First();
        var byMacs = v1.SelectMany(a => v2.Select(b => (a, b))).OrderBy(p => Math.Abs(Math.Log((double)p.a.Macs / p.b.Macs))).First();
        double latencyGap = Math.Abs(byLatency.a.Latency / byLatency.b.Latency - 1);
        string note = string.Create(Inv, $"latency-matched: V1 x{byLatency.a.Spec.Width:0.##} ({byLatency.a.Latency:F2} ms) and V2 x{byLatency.b.Spec.Width:0.##} ({byLatency.b.Latency:F2} ms), {100 * latencyGap:F0}% apart")
            + (latencyGap > 0.10 ? " (no pair within 10%: the closest)" : "")
            + string.Create(Inv, $"; MAC-matched: V1 x{byMacs.a.Spec.Width:0.##} ({byMacs.a.Macs / 1e6:F1}M) and V2 x{byMacs.b.Spec.Width:0.##} ({byMacs.b.Macs / 1e6:F1}M)");
        return new Pairing(byLatency.a.Spec.Width, byLatency.b.Spec.Width, byMacs.a.Spec.Width, byMacs.b.Spec.Width, note);
    }

    private (RunSpec Spec, double Latency, long Macs) Measure(RunSpec s)
    {
        var g = SeedClaimsRunner.Build(s);
        return (s, SeedClaimsRunner.Latency(g, settings.LatencyRuns), CostModel.Analyze(g).Macs);
    }

    /// <summary>Runs the plan, then writes the report; returns the claims.</summary>
    /// <param name="log">Receives one line per finished run with everything measured (the run's log).</param>
    public IReadOnlyList<ClaimResult> Run(string outDir, Action<int, int, string> progress, CancellationToken ct, Action<string>? log = null)
    {
        var clock = Stopwatch.StartNew();
        progress(0, 1, "measuring untrained V1 and V2 widths to pair them by latency and MACs");
        int total = 1;
        var runner = new SeedClaimsRunner(settings, text => progress(-1, total, text), outDir);
        var plan = MakePlan(runner);
        log?.Invoke($"pairs for claim 2: {plan.PairNote}");
        var specs = plan.All.ToArray();
        total = specs.Length;
        for (int i = 0; i < specs.Length; i++)
        {
            progress(i, specs.Length, $"{specs[i].Label} seed {specs[i].Seed}");
            var r = runner.Run(specs[i], ct);
            // The log line of each finished run: the report's numbers can be traced to it.
            log?.Invoke(string.Create(Inv, $"{r.Spec.Id}: test accuracy {100 * r.TestAccuracy:F2}%, {r.Params:N0} params, {r.Macs / 1e6:F2}M MACs, latency {r.LatencyMs:F3} ms, training {r.TrainImagesPerSecond:F1} images/s for {r.TrainSeconds:F1} s, final loss {r.FinalLoss:F4}{(runner.WasReused(r.Spec) ? " (reused from an earlier run of this command)" : "")}"));
        }
        progress(specs.Length, specs.Length, "writing the report");
        _reusedIds = specs.Where(runner.WasReused).Select(x => x.Id).ToHashSet();
        var results = runner.Results.ToDictionary(x => x.Spec.Id);
        RunResult[] Get(RunSpec[] s) => s.Select(x => results[x.Id]).ToArray();
        var claims = Claims(plan, Get);
        Directory.CreateDirectory(outDir);
        Charts(outDir, plan, Get);
        WriteJson(Path.Combine(outDir, "results.json"), results.Values, claims, plan, clock.Elapsed.TotalSeconds);
        WriteReport(Path.Combine(outDir, "report.md"), results.Values, claims, plan, Get, clock.Elapsed.TotalSeconds);
        return claims;
    }

    private static (double Mean, double Sd) Stats(IEnumerable<RunResult> runs)
    {
        var a = runs.Select(r => 100 * r.TestAccuracy).ToArray();
        double mean = a.Average();
        double sd = a.Length > 1 ? Math.Sqrt(a.Sum(v => (v - mean) * (v - mean)) / (a.Length - 1)) : 0;
        return (mean, sd);
    }

    private static string Pm((double Mean, double Sd) s, int n) => string.Create(Inv, $"{s.Mean:F2}% ± {s.Sd:F2} (n={n})");

    private List<ClaimResult> Claims(Plan p, Func<RunSpec[], RunResult[]> get)
    {
        // A quick run trains a few steps: its verdicts are printed (the pipeline is what it checks) but flagged as meaningless.
        string caveat = settings.Quick ? " [Quick run: far too little training to judge; this row only shows the pipeline works.]" : "";
        var claims = new List<ClaimResult>();

        // 1. Separable vs standard.
        var sep = get(p.Separable);
        var twin = get(p.Twin);
        var (s1, t1) = (Stats(sep), Stats(twin));
        double macRatio = (double)twin[0].Macs / sep[0].Macs, latRatio = twin.Average(r => r.LatencyMs) / sep.Average(r => r.LatencyMs);
        double trainRatio = sep.Average(r => r.TrainImagesPerSecond) / twin.Average(r => r.TrainImagesPerSecond);
        double drop = t1.Mean - s1.Mean, noise = Math.Max(s1.Sd, t1.Sd);
        string v1 = macRatio is > 6 and < 11 ? "Agrees on cost" : "Disagrees on cost";
        v1 += drop <= 2 + noise
            ? drop < -noise ? "; accuracy: the separable network is better here (Fashion-MNIST is small; the twin's 8x capacity over-fits)." : "; agrees on accuracy (a drop of at most ~2 points)."
            : "; disagrees on accuracy: the drop is larger than 2 points.";
        claims.Add(new("Depthwise separable convolution costs 1-2 points of accuracy for ~8x fewer operations",
            "MobileNetV1 paper, Table 4 (ImageNet): 71.7% -> 70.6% top-1 (-1.1 points), 4866M -> 569M MACs (8.6x), 29.3M -> 4.2M params",
            string.Create(Inv, $"Fashion-MNIST, V1 x{SeedClaimsSettings.BaseWidth} @28: standard {Pm(t1, twin.Length)} vs separable {Pm(s1, sep.Length)} ({-drop:+0.00;-0.00} points); ")
            + string.Create(Inv, $"MACs {twin[0].Macs / 1e6:F1}M vs {sep[0].Macs / 1e6:F1}M ({macRatio:F1}x fewer), params {twin[0].Params:N0} vs {sep[0].Params:N0}; ")
            + string.Create(Inv, $"latency {latRatio:F1}x lower, training {trainRatio:F1}x faster"),
            v1 + caveat));

        // 2. V1 vs V2. The pairs were chosen from untrained networks' latency, which is noisy; the trained networks'
        // mean latencies decide which of the two pairs is the latency-matched one.
        var pairs = new[] { (V1: get(p.V1AtLatency), V2: get(p.V2AtLatency)), (V1: get(p.V1AtMacs), V2: get(p.V2AtMacs)) };
        static double Latency(RunResult[] r) => r.Average(x => x.LatencyMs);
        var (a1, a2) = pairs.OrderBy(x => Math.Abs(Math.Log(Latency(x.V1) / Latency(x.V2)))).First();
        var (m1, m2) = pairs[1];
        var (sa1, sa2, sm1, sm2) = (Stats(a1), Stats(a2), Stats(m1), Stats(m2));
        double gain = sa2.Mean - sa1.Mean, relativeGain = 100 * gain / Math.Max(1e-9, sa1.Mean), latencyGap = Math.Abs(Latency(a1) / Latency(a2) - 1);
        double macGain = sm2.Mean - sm1.Mean;
        string Pair(RunResult[] v1, RunResult[] v2) => string.Create(Inv, $"V1 x{v1[0].Spec.Width:0.##} ({Latency(v1):F2} ms) vs V2 x{v2[0].Spec.Width:0.##} ({Latency(v2):F2} ms)");
        claims.Add(new("MobileNetV2 is \"35% more accurate than V1 at similar latency\"",
            "The papers do not say this: V2 paper Table 4 (ImageNet) gives V2 72.0% vs V1 70.6% top-1 (+1.4 points) with V2 ~35% FASTER on a Pixel 1 (75 vs 113 ms) at 300M vs 575M MACs: the brief misquotes a speed gain as an accuracy gain",
            string.Create(Inv, $"Pairs chosen before training ({p.PairNote}); the trained networks' mean latencies make {Pair(a1, a2)} the latency-matched pair, {100 * latencyGap:F0}% apart. ")
            + string.Create(Inv, $"At matched latency: V1 {Pm(sa1, a1.Length)} vs V2 {Pm(sa2, a2.Length)} ({gain:+0.00;-0.00} points, {relativeGain:+0.0;-0.0}% relative). ")
            + string.Create(Inv, $"At matched MACs ({m1[0].Macs / 1e6:F1}M vs {m2[0].Macs / 1e6:F1}M): V1 {Pm(sm1, m1.Length)} at {Latency(m1):F2} ms vs V2 {Pm(sm2, m2.Length)} at {Latency(m2):F2} ms ({macGain:+0.00;-0.00} points)"),
            (Math.Abs(relativeGain) < 20 ? "Disagrees with \"35% more accurate\" (no network gains 35% relative accuracy here or in the paper); " : "Agrees in size; ")
            + (latencyGap > 0.10 ? "no pair is within 10% in latency, so the comparison is approximate; " : "")
            + (gain > Math.Max(sa1.Sd, sa2.Sd) ? "V2 is more accurate at matched latency, as the paper's +1.4 points" :
               gain < -Math.Max(sa1.Sd, sa2.Sd) ? "V1 is more accurate at matched latency here" : "V2 is not clearly more accurate at matched latency (within the seed spread)")
            + (macGain > Math.Max(sm1.Sd, sm2.Sd) ? "; at matched MACs V2 is more accurate." : macGain < -Math.Max(sm1.Sd, sm2.Sd) ? "; at matched MACs V1 is more accurate." : "; at matched MACs they are within the seed spread.")
            + caveat));

        // 3. Linear bottleneck, seed by seed (the same seed gives both networks the same data order).
        var (lin, relu) = (get(p.Linear), get(p.Relu6));
        var (sl, sr) = (Stats(lin), Stats(relu));
        double d3 = sl.Mean - sr.Mean, n3 = Math.Max(sl.Sd, sr.Sd);
        var perSeed = lin.Zip(relu, (a, b) => 100 * (a.TestAccuracy - b.TestAccuracy)).ToArray();
        claims.Add(new("The linear bottleneck (no ReLU after the projection) preserves information a ReLU would destroy",
            "MobileNetV2 paper, section 6.4 and Figure 6a (ImageNet): removing the non-linearity from the bottleneck improves top-1 by about 1 point",
            string.Create(Inv, $"V2 x{SeedClaimsSettings.BaseWidth} @28: linear {Pm(sl, lin.Length)} vs ReLU6 {Pm(sr, relu.Length)} ({d3:+0.00;-0.00} points; per seed ")
            + string.Join(", ", perSeed.Select(d => d.ToString("+0.00;-0.00", Inv))) + ")",
            (d3 > n3 ? "Agrees: the linear bottleneck is better." :
             d3 >= -n3 ? (perSeed.All(d => d > 0) ? "Leans towards agreeing: the linear bottleneck wins on every seed, but the mean difference is within the seed-to-seed spread." : "Inconclusive: the difference is within the seed-to-seed spread.")
             : "Disagrees: ReLU6 after the projection is better here.") + caveat));

        // 4. Width and resolution multipliers. The base network (V1 x0.5 @28) has several seeds: its point is their
        // mean, and a step down counts as noise when it is within the base network's seed-to-seed spread.
        var baseline = Stats(sep);
        var Accuracy = SweepAccuracy(p, get);
        var widths = get(p.WidthSweep).OrderBy(r => r.Macs).ToArray();
        var resolutions = get(p.ResolutionSweep).OrderBy(r => r.Macs).ToArray();
        double tolerance = Math.Max(baseline.Sd, 0.1);
        bool Rises(RunResult[] r) => r.Zip(r.Skip(1)).All(x => Accuracy(x.Second) > Accuracy(x.First));
        bool Smooth(RunResult[] r) => r.Zip(r.Skip(1)).All(x => Accuracy(x.Second) >= Accuracy(x.First) - tolerance);
        string Sweep(RunResult[] r, Func<RunSpec, string> key) => string.Join(", ", r.Select(x => string.Create(Inv, $"{key(x.Spec)}: {Accuracy(x):F2}% / {x.Macs / 1e6:F1}M MACs / {x.LatencyMs:F2} ms")));
        string Verdict(RunResult[] r, string name) => Rises(r) ? $"the {name} sweep rises at every step" : Smooth(r) ? $"the {name} sweep rises apart from dips within the seed spread" : $"the {name} sweep falls by more than the seed spread somewhere";
        claims.Add(new("The width multiplier (0.25-1.0) and the resolution multiplier trade accuracy for speed smoothly",
            "MobileNetV1 paper, Tables 6-7 (ImageNet): width 1.0/0.75/0.5/0.25 gives 70.6/68.4/63.7/50.6% at 569/325/149/41M MACs; resolution 224/192/160/128 gives 70.6/69.1/67.2/64.4% at 569/418/290/186M MACs",
            "width (x28): " + Sweep(widths, s => string.Create(Inv, $"x{s.Width:0.##}")) + "; resolution (x0.5, 28x28 images resized down): " + Sweep(resolutions, s => s.Resolution.ToString(Inv))
            + string.Create(Inv, $" (the x0.5 @28 point is the mean of its {sep.Length} seeds; seed spread {baseline.Sd:F2} points)"),
            (Smooth(widths) && Smooth(resolutions) ? "Agrees: " : Smooth(widths) || Smooth(resolutions) ? "Partly: " : "Disagrees: ")
            + Verdict(widths, "width") + "; " + Verdict(resolutions, "resolution") + "."
            + " Fashion-MNIST saturates early, so the accuracy range is far narrower than ImageNet's." + caveat));

        // 5. Real time: every network trained here.
        var all = get(p.All.ToArray());
        var separable = all.Where(r => r.Spec.Arch != "conv_mobilenet_v1").ToArray();
        var slowest = all.MaxBy(r => r.LatencyMs)!;
        claims.Add(new("MobileNets run in real time on mobile CPUs",
            "MobileNetV2/V3 papers: 75 ms (V2 1.0/224) down to ~15-50 ms (V3) on one big core of a Pixel phone; 30 fps needs 33.3 ms per frame",
            string.Create(Inv, $"ours, 1 thread, batch 1, this CPU: every separable network trained here {separable.Min(r => r.LatencyMs):F2}-{separable.Max(r => r.LatencyMs):F2} ms; slowest network {slowest.Spec.Label} {slowest.LatencyMs:F2} ms"),
            (separable.All(r => r.LatencyMs < RealTimeBudgetMs) ? "Agrees for these 28x28 networks on this CPU, far inside the 33.3 ms budget." : "Disagrees: some separable network misses 33.3 ms here.")
            + PhoneEstimate(separable) + caveat));
        return claims;
    }

    /// <summary>
    /// An estimate, not a measurement: the MobileNetV2 paper's 75 ms for V2 1.0/224 (300M MACs) on one Pixel 1 core is
    /// ~4 GMAC/s; the networks' MACs at that rate, against the 30 fps budget.
    /// </summary>
    private static string PhoneEstimate(RunResult[] separable)
    {
        const double phoneMacsPerSecond = 300e6 / 0.075;
        double fastest = separable.Min(r => r.Macs) / phoneMacsPerSecond * 1000, slowest = separable.Max(r => r.Macs) / phoneMacsPerSecond * 1000;
        int within = separable.Count(r => r.Macs / phoneMacsPerSecond * 1000 < RealTimeBudgetMs);
        return string.Create(Inv, $" Estimated, not measured: a Pixel 1 core runs ~4 GMAC/s (the V2 paper's 75 ms for 300M MACs), which puts these networks at {fastest:F0}-{slowest:F0} ms, {within} of {separable.Length} within 33.3 ms.");
    }

    /// <summary>A sweep point's accuracy in %: the seed mean for the base network (V1 x0.5 @28, trained with every seed), else the one run's.</summary>
    private static Func<RunResult, double> SweepAccuracy(Plan p, Func<RunSpec[], RunResult[]> get)
    {
        double baseMean = Stats(get(p.Separable)).Mean;
        var baseId = p.Separable[0] with { Seed = 0 };
        return r => r.Spec with { Seed = 0 } == baseId ? baseMean : 100 * r.TestAccuracy;
    }

    private void Charts(string dir, Plan p, Func<RunSpec[], RunResult[]> get)
    {
        var widths = get(p.WidthSweep).OrderBy(r => r.Macs).ToArray();
        var res = get(p.ResolutionSweep).OrderBy(r => r.Macs).ToArray();
        var accuracy = SweepAccuracy(p, get);
        ChartSeries S(string name, RunResult[] r, Func<RunResult, double> x, Func<RunSpec, string> label) =>
            new(name, r.Select(x).ToArray(), r.Select(accuracy).ToArray(), r.Select(v => label(v.Spec)).ToArray());
        ExperimentCharts.Scatter(Path.Combine(dir, "pareto-macs.png"), "Accuracy vs MACs: width and resolution multipliers (MobileNetV1, Fashion-MNIST)",
            "multiply-accumulates per image (millions)", "test accuracy (%)",
            [S("width x0.25-1.0 @28", widths, r => r.Macs / 1e6, s => string.Create(Inv, $"x{s.Width:0.##}")),
             S("resolution 16-28 @x0.5", res, r => r.Macs / 1e6, s => s.Resolution.ToString(Inv))], logX: true, paretoFront: true);
        ExperimentCharts.Scatter(Path.Combine(dir, "pareto-latency.png"), "Accuracy vs latency (ours, 1 thread, batch 1, this CPU)",
            "latency per image (ms)", "test accuracy (%)",
            [S("width x0.25-1.0 @28", widths, r => r.LatencyMs, s => string.Create(Inv, $"x{s.Width:0.##}")),
             S("resolution 16-28 @x0.5", res, r => r.LatencyMs, s => s.Resolution.ToString(Inv))], paretoFront: true);
        var groups = new (string Name, RunSpec[] Specs)[]
        {
            ("V1 separable", p.Separable), ("V1 standard twin", p.Twin), ("V1 (latency-matched)", p.V1AtLatency), ("V2 (latency-matched)", p.V2AtLatency),
            ("V1 (MAC-matched)", p.V1AtMacs), ("V2 (MAC-matched)", p.V2AtMacs), ("V2 linear bottleneck", p.Linear), ("V2 ReLU6 bottleneck", p.Relu6),
        }
        // A network can belong to several groups (the latency-matched V2 is often the linear-bottleneck V2): one series
        // each, named after all its groups, so no series hides under another.
        .GroupBy(g => string.Join(",", g.Specs.Select(x => x.Id)))
        .Select(same => (Name: string.Join(" = ", same.Select(g => g.Name)), same.First().Specs))
        .ToArray();
        ExperimentCharts.Scatter(Path.Combine(dir, "claims-latency.png"), "The compared networks: accuracy vs latency, each seed a point (sweeps: see the other charts)",
            "latency per image (ms)", "test accuracy (%)",
            groups.Select(g => { var r = get(g.Specs); return new ChartSeries(g.Name, r.Select(x => x.LatencyMs).ToArray(), r.Select(x => 100 * x.TestAccuracy).ToArray(),
                r.Select(x => "s" + x.Spec.Seed.ToString(Inv)).ToArray(), Connect: false); }).ToArray(),
            logX: true, verticalLines: [(RealTimeBudgetMs, "30 fps")]);
    }

    private void WriteJson(string path, IEnumerable<RunResult> runs, IReadOnlyList<ClaimResult> claims, Plan plan, double seconds)
    {
        var doc = new JsonObject
        {
            ["date"] = DateTime.UtcNow.ToString("yyyy-MM-dd", Inv), ["machine"] = Machine(), ["command"] = command, ["wallSeconds"] = Math.Round(seconds, 1),
            ["trainSecondsAllRuns"] = Math.Round(runs.Sum(r => r.TrainSeconds), 1), ["reusedRuns"] = runs.Count(r => _reusedIds.Contains(r.Spec.Id)),
            ["settings"] = JsonSerializer.SerializeToNode(settings), ["pairs"] = plan.PairNote,
            ["runs"] = new JsonArray(runs.OrderBy(r => r.Spec.Id, StringComparer.Ordinal).Select(r => (JsonNode)new JsonObject
            {
                ["architecture"] = r.Spec.Arch, ["bottleneck"] = r.Spec.Arch == "mobilenet_v2" ? (r.Spec.NonLinear ? "relu6" : "linear") : null,
                ["width"] = r.Spec.Width, ["resolution"] = r.Spec.Resolution, ["seed"] = r.Spec.Seed, ["params"] = r.Params, ["macs"] = r.Macs,
                ["testAccuracy"] = r.TestAccuracy, ["latencyMs"] = Math.Round(r.LatencyMs, 3), ["trainImagesPerSecond"] = Math.Round(r.TrainImagesPerSecond, 1),
                ["trainSeconds"] = Math.Round(r.TrainSeconds, 1), ["finalTrainLoss"] = r.FinalLoss,
            }).ToArray()),
            ["claims"] = new JsonArray(claims.Select(c => (JsonNode)new JsonObject { ["claim"] = c.Claim, ["published"] = c.Published, ["measured"] = c.Measured, ["verdict"] = c.Verdict }).ToArray()),
        };
        AtomicWrite(path, doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private void WriteReport(string path, IEnumerable<RunResult> runs, IReadOnlyList<ClaimResult> claims, Plan plan, Func<RunSpec[], RunResult[]> get, double seconds)
    {
        var md = new StringBuilder();
        md.AppendLine("# The MobileNet claims, checked on Fashion-MNIST").AppendLine();
        var all = runs.ToArray();
        int reused = all.Count(r => _reusedIds.Contains(r.Spec.Id));
        md.AppendLine(string.Create(Inv, $"Date {DateTime.UtcNow:yyyy-MM-dd}, machine: {Machine()}. Wall time of this invocation {seconds / 60:F1} min")
            + (reused > 0 ? string.Create(Inv, $", which reused {reused} of the {all.Length} runs from earlier invocations of the same command (`runs/`; `log.txt` has when each was made)") : "")
            + string.Create(Inv, $"; training alone took {all.Sum(r => r.TrainSeconds) / 60:F1} min summed over all runs")
            + (LoggedWallTime(Path.Combine(Path.GetDirectoryName(path)!, "log.txt")) is { } logged
                ? string.Create(Inv, $"; `log.txt` records {logged.Invocations} invocation(s) of the command in this folder, {logged.Minutes:F1} min of wall time in all.")
                : "."));
        md.AppendLine(string.Create(Inv, $"Training ran on {settings.Threads} thread(s) in this invocation (a reused run keeps the training speed it was measured at)."));
        md.AppendLine($"Reproduce everything here with `{command}`{(settings.Quick ? " (a --quick run: tiny subsets, one short epoch; its numbers say nothing about the claims)" : "")}.").AppendLine();
        md.AppendLine(string.Create(Inv, $"Every network is trained from scratch by MobileNetSharp in small-input mode on the first {settings.TrainImages:N0} Fashion-MNIST training images for {settings.Epochs} epoch(s) (SGD, Nesterov momentum 0.9, peak learning rate {SeedClaimsRunner.LearningRate} with warm-up over the first half and cosine decay, weight decay 5e-4, label smoothing 0.1, no augmentation: a recipe for a short budget), and scored on the first {settings.TestImages:N0} test images. Latency is ours, 1 thread, batch 1, median of {settings.LatencyRuns} runs. {settings.Seeds} seed(s) per compared configuration; sweeps use seed 0."));
        md.AppendLine().AppendLine("| claim | published | measured here | verdict |").AppendLine("|---|---|---|---|");
        foreach (var c in claims) md.AppendLine($"| {Cell(c.Claim)} | {Cell(c.Published)} | {Cell(c.Measured)} | {Cell(c.Verdict)} |");
        md.AppendLine().AppendLine("Why results differ from the papers: Fashion-MNIST is 28x28 grey images in 10 classes, far easier than ImageNet (1000 classes at 224x224), so accuracies cluster near the top and capacity matters less; the training budget here is " + string.Create(Inv, $"{settings.Epochs} epoch(s) over {settings.TrainImages:N0} images ({settings.Epochs * (settings.TrainImages / 64)} steps), not hundreds of epochs over ImageNet's 1.28M, so the networks are far from converged (the built-in model reaches 93.5% after 15 epochs over 54,000 images) and a difference reflects how fast a network learns as much as its capacity; and latency") + " is measured on this server CPU, not on a phone.").AppendLine();
        md.AppendLine("## Charts").AppendLine();
        md.AppendLine("![accuracy vs MACs](pareto-macs.png)").AppendLine().AppendLine("![accuracy vs latency](pareto-latency.png)").AppendLine().AppendLine("![every network](claims-latency.png)").AppendLine();
        md.AppendLine($"All three come from the same command: `{command}`.").AppendLine();
        md.AppendLine("## Every run").AppendLine();
        md.AppendLine("| network | width | resolution | seed | params | MACs | test accuracy | latency ms | train images/s |").AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var r in runs.OrderBy(r => r.Spec.Id, StringComparer.Ordinal))
            md.AppendLine(string.Create(Inv, $"| {r.Spec.Arch}{(r.Spec.NonLinear ? " (ReLU6 bottleneck)" : "")} | {r.Spec.Width:0.##} | {r.Spec.Resolution} | {r.Spec.Seed} | {r.Params:N0} | {r.Macs / 1e6:F1}M | {100 * r.TestAccuracy:F2}% | {r.LatencyMs:F2} | {r.TrainImagesPerSecond:F0} |"));
        md.AppendLine().AppendLine($"Pairing for claim 2: {plan.PairNote}.").AppendLine();
        md.AppendLine("Each row is cached in `runs/` (with the pairing above) and `log.txt` has the line it was made from. To check a row, delete its `runs/ID.json` and run the command again: only that network trains, and its accuracy comes out the same, because training is deterministic (the seed fixes the weights, the shuffle and the dropout masks, and every reduction is split the same way on 1 or 2 threads). Latency is measured afresh and varies with the machine's load.").AppendLine();
        md.AppendLine("The resolution sweep resizes the 28x28 images down (bilinear) to 16, 20, 24 and 28 pixels: like the paper's 128-224 sweep, a lower resolution costs fewer MACs and keeps less information. Upsampling instead would add compute without adding information.");
        AtomicWrite(path, md.ToString());
    }

    /// <summary>
    /// The wall time the log records: for each invocation (a line naming the command and its settings starts one),
    /// from its first to its last line, summed; null without a log.
    /// </summary>
    internal static (double Minutes, int Invocations)? LoggedWallTime(string logPath)
    {
        if (!File.Exists(logPath)) return null;
        double minutes = 0;
        int invocations = 0;
        DateTime? start = null, last = null;
        foreach (var line in File.ReadLines(logPath))
        {
            if (line.Length < 20 || !DateTime.TryParseExact(line[..20], "yyyy-MM-dd HH:mm:ss'Z'", Inv, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var t))
                continue;
            if (line.Contains(" mnet experiment seed-claims", StringComparison.Ordinal) && line.Contains(": {", StringComparison.Ordinal))
            {
                if (start is { } s0 && last is { } l0) minutes += (l0 - s0).TotalMinutes;
                (start, invocations) = (t, invocations + 1);
            }
            last = t;
        }
        if (start is { } s1 && last is { } l1) minutes += (l1 - s1).TotalMinutes;
        return invocations == 0 ? null : (minutes, invocations);
    }

    private static string Cell(string s) => s.Replace("|", "\\|");

    internal static string Machine()
    {
        string cpu = "unknown CPU";
        try { cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':', 2)[1].Trim() ?? cpu; }
        catch (IOException) { }
        return $"{cpu}, {Environment.ProcessorCount} logical cores, {Kernels.Isa.Best}";
    }

    private static void AtomicWrite(string path, string text) => AtomicFile.Write(path, s => s.Write(Encoding.UTF8.GetBytes(text)));
}
