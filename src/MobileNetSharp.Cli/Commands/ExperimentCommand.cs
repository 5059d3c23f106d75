using System.CommandLine;
using MobileNetSharp.Cli.Experiments;
using MobileNetSharp.Training.Data;
using Spectre.Console;

namespace MobileNetSharp.Cli.Commands;

/// <summary>
/// `mnet experiment seed-claims [--quick] [--epochs E] [--out DIR]`: trains and measures the networks that check the
/// brief's MobileNet claims on Fashion-MNIST, with a progress bar over the whole plan, and writes DIR/report.md,
/// DIR/results.json and PNG charts.
/// </summary>
internal static class ExperimentCommand
{
    public static Command Create()
    {
        var name = new Argument<string>("name") { Description = "The experiment: seed-claims" };
        name.AcceptOnlyFromAmong("seed-claims");
        var quick = new Option<bool>("--quick") { Description = "A few minutes on tiny subsets: checks the pipeline, not the claims" };
        var epochs = new Option<int?>("--epochs", "-e") { Description = "Epochs per network (default 2; 1 with --quick)" };
        var images = new Option<int?>("--train-images") { Description = "Training images per network (default 5,000; 320 with --quick)" };
        var seeds = new Option<int?>("--seeds") { Description = "Seeds per compared configuration (default 3; 2 with --quick)" };
        var output = new Option<string>("--out", "-o") { Description = "Folder for report.md, results.json and the charts", DefaultValueFactory = _ => "seed-claims" };
        var threads = Cli.Threads();
        var cmd = new Command("experiment", "Reproduce the MobileNet claims on real data and write a report with charts") { name, quick, epochs, images, seeds, output, threads };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            if (r.GetValue(epochs) is < 1) throw new ArgumentException("--epochs must be >= 1.");
            if (r.GetValue(images) is < 64) throw new ArgumentException("--train-images must be >= 64 (one batch).");
            if (r.GetValue(seeds) is < 1 or > 20) throw new ArgumentException("--seeds must be in 1..20.");
            if (r.GetValue(threads) < 1) throw new ArgumentException($"--threads must be >= 1, got {r.GetValue(threads)}.");
            if (!FashionMnist.IsInstalled()) throw new FileNotFoundException($"Fashion-MNIST is not installed in {FashionMnist.DefaultDirectory}: apt-get install dataset-fashion-mnist.");
            var settings = SeedClaimsSettings.Create(r.GetValue(quick), r.GetValue(epochs), r.GetValue(images), r.GetValue(seeds), r.GetValue(threads));
            string outDir = r.GetValue(output)!;
            string command = "mnet experiment seed-claims" + (settings.Quick ? " --quick" : "")
                + (r.GetValue(epochs) is { } e ? $" --epochs {e}" : "") + (r.GetValue(images) is { } n ? $" --train-images {n}" : "")
                + (r.GetValue(seeds) is { } s ? $" --seeds {s}" : "");
            var experiment = new SeedClaims(settings, command);
            using var cts = new CancellationTokenSource();
            ConsoleCancelEventHandler onCancel = (_, ev) => { ev.Cancel = true; cts.Cancel(); };
            Console.CancelKeyPress += onCancel;
            IReadOnlyList<ClaimResult> claims;
            // DIR/log.txt keeps, with times, every finished run's numbers: the report is traceable to it, and a resumed
            // experiment appends to it.
            try { Directory.CreateDirectory(outDir); }
            catch (Exception failure) when (failure is IOException or UnauthorizedAccessException)
            {
                throw new ArgumentException($"--out {outDir}: cannot create the folder ({failure.Message})", failure);
            }
            using var logFile = new StreamWriter(Path.Combine(outDir, "log.txt"), append: true) { AutoFlush = true };
            void Log(string line)
            {
                string stamped = $"{DateTime.UtcNow:yyyy-MM-dd HH:mm:ss}Z {line}";
                logFile.WriteLine(stamped);
                if (Console.IsErrorRedirected) Console.Error.WriteLine("mnet: " + stamped);
            }
            Log($"{command}: {System.Text.Json.JsonSerializer.Serialize(settings)}, {SeedClaims.Machine()}");
            try
            {
                if (Console.IsErrorRedirected)
                {
                    int last = -1;
                    claims = experiment.Run(outDir, (i, n, text) => { if (i >= 0 && i != last) { last = i; Console.Error.WriteLine($"mnet: [{i}/{n}] {text}"); } }, cts.Token, Log);
                }
                else
                {
                    var err = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
                    claims = null!;
                    err.Progress().AutoClear(false)
                        .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                        .Start(ctx =>
                        {
                            var task = ctx.AddTask("planning", maxValue: 1);
                            claims = experiment.Run(outDir, (i, n, text) =>
                            {
                                task.MaxValue = Math.Max(1, n);
                                if (i >= 0) task.Value = i;
                                task.Description = Markup.Escape(text.Length > 90 ? text[..90] : text);
                            }, cts.Token, Log);
                        });
                }
            }
            catch (OperationCanceledException)
            {
                Log("cancelled");
                Console.Error.WriteLine($"mnet: experiment cancelled; the finished runs are kept in {Path.Combine(outDir, "runs")} and the same command resumes after them.");
                return 130;
            }
            finally { Console.CancelKeyPress -= onCancel; }
            Log("report written");
            foreach (var c in claims) Console.Out.WriteLine($"- {c.Claim}: {c.Verdict}");
            Console.Out.WriteLine($"report: {Path.Combine(outDir, "report.md")}, data: {Path.Combine(outDir, "results.json")}");
            return 0;
        }));
        return cmd;
    }
}
