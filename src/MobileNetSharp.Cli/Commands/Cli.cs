using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using MobileNetSharp.Graph;
using MobileNetSharp.Models;
using Spectre.Console;

namespace MobileNetSharp.Cli.Commands;

/// <summary>What every command shares: the architecture options, error reporting and JSON output.</summary>
internal static class Cli
{
    public static Option<float> Width() => new("--width", "-w") { Description = "Width multiplier alpha (scales channels), e.g. 0.25, 0.5, 0.75, 1.0, 1.4", DefaultValueFactory = _ => 1f };
    public static Option<int?> Resolution() => new("--resolution", "-r") { Description = "Square input size in pixels (default: the architecture's own, 224 for most)" };
    public static Option<int> Channels() => new("--channels") { Description = "Input channels of an architecture (1 for grey-scale images such as Fashion-MNIST)", DefaultValueFactory = _ => 3 };
    public static Option<bool> SmallInput() => new("--small-input") { Description = "Small-image mode: the stem and the first stride-2 stage run at stride 1 (the network downsamples by 8, not 32; 28x28 keeps a 4x4 map)" };
    public static Option<int> Classes() => new("--classes") { Description = "Number of output classes", DefaultValueFactory = _ => 1000 };
    public static Option<int> Threads() => new("--threads", "-t") { Description = "Worker threads", DefaultValueFactory = _ => Math.Min(Environment.ProcessorCount, MobileNetSharp.Runtime.SessionOptions.MaxThreads) };
    public static Option<bool> Json() => new("--json") { Description = "Print one JSON object instead of tables" };

    /// <summary>SessionOptions.FuseBlocks off: one step per layer.</summary>
    public static Option<bool> NoFuse() => new("--no-fuse") { Description = "Run every layer as its own step instead of banding inverted-residual blocks (same results; per-layer times)" };

    public static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    /// <summary>As <see cref="JsonOptions"/>, leaving out null properties (optional fields such as a detection's keypoints).</summary>
    private static readonly JsonSerializerOptions JsonOmitNulls = new(JsonOptions) { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull };

    public static void PrintJson(object o, JsonSerializerOptions? options = null) => Console.Out.WriteLine(JsonSerializer.Serialize(o, options ?? JsonOptions));

    /// <summary>
    /// The JSON `detect` and `detect-faces` print: model, image size, latency and `detections` ({label, score,
    /// box: [x1, y1, x2, y2]} in the photo's pixels, highest score first; with `keypoints` when asked).
    /// </summary>
    public static void PrintDetections(string modelPath, Imaging.RgbImage photo, double ms, IEnumerable<Imaging.Detection.Detection> found, bool keypoints) =>
        PrintJson(new
        {
            model = Path.GetFileName(modelPath),
            image = new { width = photo.Width, height = photo.Height },
            latencyMs = Math.Round(ms, 3),
            detections = found.Select(f => new
            {
                label = f.Label, score = MathF.Round(f.Score, 4),
                box = new[] { f.X1, f.Y1, f.X2, f.Y2 }.Select(v => MathF.Round(v, 1)),
                keypoints = keypoints ? f.Keypoints.Select(k => new[] { MathF.Round(k.X, 1), MathF.Round(k.Y, 1) }) : null,
            }),
        }, JsonOmitNulls);

    /// <summary>Median wall time in ms of <paramref name="runs"/> calls of <paramref name="work"/>, after <paramref name="warmups"/> untimed ones (the first runs compile the plan and JIT).</summary>
    public static double MedianMs(Action work, int warmups = 2, int runs = 5)
    {
        for (int i = 0; i < warmups; i++) work();
        var times = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            work();
            times[i] = clock.Elapsed.TotalMilliseconds;
        }
        return times.Order().ElementAt(runs / 2);
    }

    /// <summary>The models folder beside mnet (the shipped BlazeFace and selfie segmentation; tools/fetch-models.sh can add the SSD detector).</summary>
    public static string ModelsDir => Path.Combine(AppContext.BaseDirectory, "models");

    /// <summary>
    /// Runs a command body; the errors a user can cause (bad arguments, bad files, impossible graphs)
    /// become one line on stderr and exit code 1, never a stack trace.
    /// </summary>
    public static int Guard(Func<int> body)
    {
        try { return body(); }
        catch (Exception e) when (e is ArgumentException or GraphException or ModelFormatException or IOException
            or UnauthorizedAccessException or FormatException or NotSupportedException or InvalidDataException)
        {
            Console.Error.WriteLine($"mnet: error: {UserMessage(e)}");
            return 1;
        }
        catch (Exception e)
        {
            // A bug of ours, not the user's: still one line and a distinct exit code, with what to report.
            Console.Error.WriteLine($"mnet: internal error ({e.GetType().Name}): {e.Message}. Please report it with the command line.");
            return 70;
        }
    }

    /// <summary>
    /// The message without what .NET appends for programmers: an argument exception's " (Parameter 'name')" (a C#
    /// parameter name means nothing to a command-line user) and an out-of-range one's "Actual value was ..." line
    /// (library messages already state the value).
    /// </summary>
    internal static string UserMessage(Exception e)
    {
        string m = e.Message;
        if (e is ArgumentOutOfRangeException { ActualValue: not null } r && m.LastIndexOf(Environment.NewLine + "Actual value was ", StringComparison.Ordinal) is var k and >= 0)
            m = m[..k];
        if (e is ArgumentException { ParamName: { } p })
            m = m.Replace($" (Parameter '{p}')", "", StringComparison.Ordinal);
        return m;
    }

    /// <summary>
    /// Runs long work under a spinner on stderr when a person is watching (stderr is a terminal and
    /// the output is not JSON); otherwise silently, so pipes and CI logs stay clean.
    /// </summary>
    public static void WithStatus(bool quiet, Action<Action<string>> work)
    {
        if (quiet || Console.IsErrorRedirected)
        {
            work(_ => { });
            return;
        }
        var err = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        err.Status().Start("working...", ctx => work(text => ctx.Status(Markup.Escape(text))));
    }

    /// <summary>Builds a registered architecture.</summary>
    public static ModelGraph Build(string arch, float width, int? resolution, int classes, int batch = 1, int channels = 3, bool smallInput = false) =>
        ModelZoo.Create(arch, new ModelOptions(width, resolution, classes, batch, InChannels: channels, SmallInput: smallInput));

    public static string Millions(long n) => (n / 1e6).ToString("0.00", CultureInfo.InvariantCulture) + "M";
    public static string Count(long n) => n.ToString("N0", CultureInfo.InvariantCulture);
    public static string Percent(double f) => (100 * f).ToString("0.00", CultureInfo.InvariantCulture) + "%";
    public static string Ms(double ms) => ms.ToString("0.00", CultureInfo.InvariantCulture) + " ms";

    /// <summary>Tables go to stdout; when it is redirected (pipes, CI logs) they get 140 columns instead of 80.</summary>
    public static IAnsiConsole Out => CreateOut();

    private static IAnsiConsole CreateOut()
    {
        var c = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
        if (Console.IsOutputRedirected) c.Profile.Width = 140;
        return c;
    }
}
