using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using Ort = Microsoft.ML.OnnxRuntime;

namespace MobileNetSharp.Bench;

/// <summary>
/// Cold start: each engine loads one model and runs it once in a process of its own, as a user's program does, so
/// neither the JIT state nor the kernels an earlier model compiled in the same process flatter or burden it (the
/// in-process columns of <see cref="ModelBench"/> measure every model after the ones before it). <c>models
/// --cold-start R</c> runs R rounds per row, ours and ORT alternating, each in a fresh child process (this program in
/// the hidden mode <c>coldstart-one</c>), and reports the medians. Load is from the ONNX bytes already in memory to a
/// session ready to run (for ORT this includes loading its native library); the first run is one run on a bound
/// input. The time to start the .NET process itself is not counted for either.
/// </summary>
internal static class ColdStart
{
    public sealed record Result(double LoadMs, double FirstRunMs);

    /// <summary>Medians over <paramref name="rounds"/> fresh processes per engine.</summary>
    public static (Result Ours, Result Ort) Measure(byte[] onnx, int threads, int rounds)
    {
        string file = Path.Combine(Path.GetTempPath(), $"mnet-coldstart-{Environment.ProcessId}.onnx");
        File.WriteAllBytes(file, onnx);
        try
        {
            var ours = new List<Result>();
            var ort = new List<Result>();
            for (int r = 0; r < rounds; r++)
            {
                ours.Add(Child("ours", file, threads));
                ort.Add(Child("ort", file, threads));
            }
            return (Median(ours), Median(ort));
        }
        finally { File.Delete(file); }
    }

    private static Result Median(List<Result> results) =>
        new(LatencyStats.From(results.Select(r => r.LoadMs).ToList()).Median, LatencyStats.From(results.Select(r => r.FirstRunMs).ToList()).Median);

    private static Result Child(string engine, string file, int threads)
    {
        // Under `dotnet run` or the apphost, ProcessPath is this program; under `dotnet Bench.dll` it is dotnet itself.
        string self = Environment.ProcessPath ?? throw new InvalidOperationException("cannot find this program's path to start a child");
        var start = new ProcessStartInfo(self) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") start.ArgumentList.Add(typeof(ColdStart).Assembly.Location);
        foreach (var a in (string[])["coldstart-one", "--engine", engine, "--model", file, "--threads", threads.ToString(CultureInfo.InvariantCulture)])
            start.ArgumentList.Add(a);
        using var child = Process.Start(start) ?? throw new InvalidOperationException("could not start a child process");
        var stderr = child.StandardError.ReadToEndAsync();
        string stdout = child.StandardOutput.ReadToEnd();
        child.WaitForExit();
        if (child.ExitCode != 0) throw new InvalidOperationException($"cold-start child ({engine}) failed: {stderr.Result.Trim()}");
        using var json = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        return new Result(json.RootElement.GetProperty("loadMs").GetDouble(), json.RootElement.GetProperty("firstRunMs").GetDouble());
    }

    /// <summary>The child: <c>coldstart-one --engine ours|ort --model FILE [--threads T]</c>; prints one JSON line.</summary>
    public static int RunOne(string[] args)
    {
        string? engine = null, model = null;
        int threads = 1;
        var reader = new BenchArgs(args);
        foreach (var option in reader.Options())
            switch (option)
            {
                case "--engine": engine = reader.Value(); break;
                case "--model": model = reader.Value(); break;
                case "--threads": threads = reader.Int(min: 1); break;
                default: throw reader.Unknown();
            }
        if (engine is not ("ours" or "ort")) throw new ArgumentException("coldstart-one needs --engine ours|ort");
        if (model is null || !File.Exists(model)) throw new ArgumentException("coldstart-one needs --model FILE (an existing .onnx file)");
        byte[] bytes = File.ReadAllBytes(model);
        var (load, first) = engine == "ours" ? Ours(bytes, threads) : OnnxRuntime(bytes, threads);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{{\"loadMs\": {load:F2}, \"firstRunMs\": {first:F2}}}"));
        return 0;
    }

    private static (double Load, double First) Ours(byte[] bytes, int threads)
    {
        var sw = Stopwatch.StartNew();
        using var session = new InferenceSession(OnnxImporter.Load(bytes), new SessionOptions { Threads = threads });
        double load = sw.Elapsed.TotalMilliseconds;
        Tensor[] input = [Tensor.Random(1, session.Inputs[0].Shape)];
        Tensor[] output = [Tensor.Zeros(session.Outputs[0].Shape)];
        sw.Restart();
        session.Run(input, output);
        return (load, sw.Elapsed.TotalMilliseconds);
    }

    private static (double Load, double First) OnnxRuntime(byte[] bytes, int threads)
    {
        var sw = Stopwatch.StartNew();
        using var options = ModelBench.OrtOptions(threads); // as the in-process rows
        using var session = new Ort.InferenceSession(bytes, options);
        double load = sw.Elapsed.TotalMilliseconds;
        long[] inShape = session.InputMetadata.Values.First().Dimensions.Select(d => (long)Math.Max(d, 1)).ToArray();
        long[] outShape = session.OutputMetadata.Values.First().Dimensions.Select(d => (long)Math.Max(d, 1)).ToArray();
        var input = Tensor.Random(1, inShape.Select(d => (int)d).ToArray());
        var outData = new float[outShape.Aggregate(1L, (a, d) => a * d)];
        using var ortIn = Ort.OrtValue.CreateTensorValueFromMemory(input.Floats, inShape);
        using var ortOut = Ort.OrtValue.CreateTensorValueFromMemory(outData, outShape);
        using var runOptions = new Ort.RunOptions();
        sw.Restart();
        session.Run(runOptions, [session.InputNames[0]], [ortIn], [session.OutputNames[0]], [ortOut]);
        return (load, sw.Elapsed.TotalMilliseconds);
    }
}
