using System.Globalization;
using System.Text.Json;
using Ort = Microsoft.ML.OnnxRuntime;

namespace MobileNetSharp.Bench;

/// <summary>
/// `ortprofile --model FILE [--threads 1] [--runs 60] [--top 12]`: ONNX Runtime's own per-node profile of a model
/// (its SessionOptions.EnableProfiling JSON), summed per operator type and per node and divided by the runs, next to
/// the median of its whole runs, to set beside `mnet profile FILE`. Profiling slows every node (the README scales its
/// figures to the unprofiled time of `quantized`). The input is random in [0, 1], with symbolic dimensions set to 1.
/// </summary>
public static class OrtProfileBench
{
    public static int Run(string[] args)
    {
        string? model = null;
        int threads = 1, runs = 60, top = 12;
        var reader = new BenchArgs(args);
        foreach (var option in reader.Options())
            switch (option)
            {
                case "--model": model = reader.Value(); break;
                case "--threads": threads = reader.Int(1); break;
                case "--runs": runs = reader.Int(1); break;
                case "--top": top = reader.Int(1); break;
                default: throw reader.Unknown();
            }
        if (model is null) throw new ArgumentException("ortprofile needs --model FILE (an .onnx file)");
        if (!File.Exists(model)) throw new ArgumentException($"--model {model}: no such file");

        string prefix = Path.Combine(Path.GetTempPath(), $"ortprofile-{Environment.ProcessId}");
        using var options = new Ort.SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1, ExecutionMode = Ort.ExecutionMode.ORT_SEQUENTIAL };
        options.EnableProfiling = true;
        options.ProfileOutputPathPrefix = prefix;
        Ort.InferenceSession session;
        try { session = new Ort.InferenceSession(model, options); }
        catch (Ort.OnnxRuntimeException e) { throw new ArgumentException($"--model {model}: ONNX Runtime cannot load it: {e.Message}"); }
        using var owned = session;
        var inputs = session.InputMetadata.Select(kv =>
        {
            int[] dims = kv.Value.Dimensions.Select(d => d < 1 ? 1 : d).ToArray();
            var t = new Ort.Tensors.DenseTensor<float>(dims);
            var rng = new Random(1);
            for (int i = 0; i < t.Length; i++) t.Buffer.Span[i] = rng.NextSingle();
            return Ort.NamedOnnxValue.CreateFromTensor(kv.Key, t);
        }).ToList();
        for (int i = 0; i < runs; i++) using (session.Run(inputs)) { }
        string file = session.EndProfiling();
        try { Report(file, top); }
        finally { File.Delete(file); }
        return 0;
    }

    private static void Report(string file, int top)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(file));
        var runTimes = new List<double>();
        var byOp = new Dictionary<string, (double Us, int Count)>();
        var byNode = new Dictionary<string, (string Op, double Us)>();
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            string name = e.GetProperty("name").GetString() ?? "";
            double dur = e.TryGetProperty("dur", out var d) ? d.GetDouble() : 0;
            if (name == "model_run") runTimes.Add(dur);
            if (!(e.TryGetProperty("cat", out var cat) && cat.GetString() == "Node" && name.EndsWith("_kernel_time", StringComparison.Ordinal))) continue;
            string op = e.GetProperty("args").TryGetProperty("op_name", out var o) ? o.GetString() ?? "?" : "?";
            var (us, count) = byOp.GetValueOrDefault(op);
            byOp[op] = (us + dur, count + 1);
            string node = name[..^"_kernel_time".Length];
            byNode[node] = (op, byNode.GetValueOrDefault(node).Us + dur);
        }
        int runs = Math.Max(1, runTimes.Count);
        runTimes.Sort();
        string Ms(double us) => (us / runs / 1000).ToString("F3", CultureInfo.InvariantCulture);
        Console.WriteLine($"ONNX Runtime, {runTimes.Count} profiled runs, median run {(runTimes.Count == 0 ? 0 : runTimes[runTimes.Count / 2] / 1000).ToString("F2", CultureInfo.InvariantCulture)} ms");
        Console.WriteLine("| op | nodes | ms per run |");
        Console.WriteLine("|---|---|---|");
        foreach (var (op, (us, count)) in byOp.OrderByDescending(kv => kv.Value.Us))
            Console.WriteLine($"| {op} | {count / runs} | {Ms(us)} |");
        Console.WriteLine();
        Console.WriteLine("| node | op | ms per run |");
        Console.WriteLine("|---|---|---|");
        foreach (var (node, (op, us)) in byNode.OrderByDescending(kv => kv.Value.Us).Take(top))
            Console.WriteLine($"| {node} | {op} | {Ms(us)} |");
    }
}
