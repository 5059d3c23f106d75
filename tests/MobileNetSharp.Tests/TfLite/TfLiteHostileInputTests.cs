using System.Buffers.Binary;
using System.Diagnostics;
using MobileNetSharp.Graph;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.TfLite;
using MobileNetSharp.TfLite.Schema;
using Xunit.Abstractions;
using B = MobileNetSharp.Tests.TfLite.TfLiteModelBuilder;

namespace MobileNetSharp.Tests.TfLite;

/// <summary>
/// Bad, hostile and unsupported .tflite files: each gives a <see cref="ModelFormatException"/> that says what is
/// wrong, never an IndexOutOfRange, an OutOfMemory or a hang; plus a seeded mutation fuzzer over the real models (BlazeFace, selfie segmentation, and the SSD detector when fetched).
/// </summary>
public class TfLiteHostileInputTests(ITestOutputHelper output)
{
    private static byte[] BlazeFace => File.ReadAllBytes(BlazeFaceTests.TfLitePath);

    /// <summary>x → RELU → y, with a shape that is easy to find in the bytes.</summary>
    private static B Small(int[]? shape = null)
    {
        var b = new B();
        int x = b.Tensor("x", shape ?? [1, 7, 12345, 3]), y = b.Tensor("y", shape ?? [1, 7, 12345, 3]);
        b.Op(19, [x], [y]);
        return b;
    }

    private static ModelFormatException Refused(byte[] bytes) => Assert.Throws<ModelFormatException>(() => TfLiteImporter.Load(bytes));

    [Fact]
    public void TheSmallModelItselfLoads() => Assert.Single(TfLiteImporter.Load(Small().Build([0], [1])).Nodes);

    [Fact]
    public void EightBitTensorsWithoutQuantizationAreRefusedWithAClearMessage()
    {
        var b = new B();
        int x = b.AddTensor("q_in", [1, 4, 4, 3], B.Int8, null), y = b.AddTensor("q_out", [1, 4, 4, 3], B.Int8, null);
        b.Op(19, [x], [y]);
        var e = Refused(b.Build([x], [y]));
        Assert.Contains("without quantization parameters", e.Message);
        Assert.Contains("q_in", e.Message);
    }

    [Fact]
    public void UnsupportedOperatorIsNamedWithItsIndexAndTensors()
    {
        var b = new B();
        int x = b.Tensor("x", [1, 4]), r = b.Tensor("relu_out", [1, 4]), y = b.Tensor("exp_out", [1, 4]);
        b.Op(19, [x], [r]);
        b.Op(47, [r], [y]); // EXP
        var e = Refused(b.Build([x], [y]));
        Assert.Contains("Unsupported TFLite operator EXP", e.Message);
        Assert.Contains("operator #1", e.Message);
        Assert.Contains("'relu_out'", e.Message);
        Assert.Contains("'exp_out'", e.Message);
    }

    [Fact]
    public void StructuralErrorsAreReported()
    {
        // Not a flatbuffer at all, or not TFLite.
        Assert.Contains("too short", Refused([1, 2, 3]).Message);
        var wrongId = Small().Build([0], [1]);
        wrongId[4] = (byte)'X';
        Assert.Contains("file identifier", Refused(wrongId).Message);
        Assert.Contains("schema version 2", Refused(new B { Version = 2 }.Build([], [])).Message);

        // A root offset past the end.
        var root = Small().Build([0], [1]);
        BinaryPrimitives.WriteUInt32LittleEndian(root, 0xFFFFFFF0);
        Assert.Contains("outside", Refused(root).Message);

        // Buffer index out of range.
        var bad = Small();
        bad.BufferIndex[0] = 99;
        Assert.Contains("refers to buffer 99", Refused(bad.Build([0], [1])).Message);

        // Tensor index out of range in the subgraph's inputs.
        Assert.Contains("refers to tensor 5", Refused(Small().Build([5], [1])).Message);

        // An operator reading a tensor no earlier operator wrote (a cycle, or a wrong order).
        var cycle = new B();
        int a = cycle.Tensor("a", [1, 4]), t1 = cycle.Tensor("t1", [1, 4]), t2 = cycle.Tensor("t2", [1, 4]);
        cycle.Op(19, [t2], [t1]);
        cycle.Op(19, [t1], [t2]);
        Assert.Contains("before any operator writes it", Refused(cycle.Build([a], [t2])).Message);

        // Huge dimensions: the shape product overflows or exceeds the element limit.
        Assert.Contains("x", Refused(Small([1 << 20, 1 << 20, 1 << 20, 3]).Build([0], [1])).Message);
        var huge = new B();
        int hx = huge.Tensor("x", [1, 4]), hw = huge.Tensor("w", [65536, 65536], [1f, 2f]), hy = huge.Tensor("y", [1, 4]);
        huge.Op(0, [hx, hw], [hy]);
        Refused(huge.Build([hx], [hy]));
        // A constant whose buffer has the wrong size.
        var shortBuffer = new B();
        int sx = shortBuffer.Tensor("x", [1, 4]), sw = shortBuffer.Tensor("w", [4], [1f, 2f]), sy = shortBuffer.Tensor("y", [1, 4]);
        shortBuffer.Op(0, [sx, sw], [sy]);
        Assert.Contains("needs 16 bytes, its buffer has 8", Refused(shortBuffer.Build([sx], [sy])).Message);
    }

    /// <summary>Found by the fuzzer: SAME padding keeps the output size whatever the filter, so a 2^27-row window loaded and then took minutes to pool.</summary>
    [Fact]
    public void PoolingWindowLargerThanTheInputIsRefused()
    {
        var b = new B();
        int x = b.Tensor("x", [1, 8, 8, 4]), y = b.Tensor("y", [1, 4, 4, 4]);
        b.Op(17, [x], [y], 5, B.Options(6, o => { o.AddInt(1, 2, 0); o.AddInt(2, 2, 0); o.AddInt(3, 2, 0); o.AddInt(4, 1 << 27, 0); }));
        Assert.Contains("larger than its 8x8 input", Refused(b.Build([x], [y])).Message);
    }

    [Fact]
    public void AbsurdVectorLengthIsRefusedBeforeAllocating()
    {
        var bytes = Small().Build([0], [1]);
        // The shape vector [1,7,12345,3] is preceded by its length 4: claim 2^30 elements instead.
        byte[] pattern = [4, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 0x39, 0x30, 0, 0];
        int at = bytes.AsSpan().IndexOf(pattern);
        Assert.True(at >= 0);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at), 0x40000000);
        Assert.Contains("more than the file can hold", Refused(bytes).Message);
    }

    [Fact]
    public void TruncatedBlazeFaceIsRefusedAtEveryCut()
    {
        var full = BlazeFace;
        var rng = new Random(7);
        for (int i = 0; i < 200; i++)
        {
            int cut = i < 100 ? i * 37 : rng.Next(full.Length);
            var e = Assert.Throws<ModelFormatException>(() => TfLiteImporter.Load(full.AsSpan(0, cut).ToArray()));
            Assert.False(string.IsNullOrWhiteSpace(e.Message));
        }
    }

    /// <summary>2,000 per CI run; MNET_TFLITE_FUZZ=N runs N (with the same seed) for a longer search.</summary>
    /// <summary>MNET_TFLITE_FUZZ overrides the per-model default count.</summary>
    private static int MutantsOr(int count) => int.TryParse(Environment.GetEnvironmentVariable("MNET_TFLITE_FUZZ"), out int n) && n > 0 ? n : count;

    /// <summary>
    /// Seeded mutants of the real models kept in the repository (BlazeFace, selfie segmentation): most mutations land in the flatbuffer's structure (tables, vectors, offsets)
    /// rather than in the weights, since that is where a reader can go wrong. Each mutant is loaded, compiled
    /// and run once on zeros; only ModelFormatException, GraphException and ArgumentException may come out, and
    /// each mutant gets a time budget.
    /// </summary>
    [Theory]
    [InlineData("face_detection_short_range.tflite", 2000)]
    [InlineData("selfie_segmentation.tflite", 300)] // a decoder (resize, transposed convolution, squeeze-excite); each mutant that loads runs 59M MACs
    public void MutantsOfRealModelsLoadOrFailWithModelFormatException(string file, int mutants) =>
        Fuzz(File.ReadAllBytes(Path.Combine(BlazeFaceTests.Fixtures, file)), MutantsOr(mutants));

    /// <summary>The SSD MobileNetV2 (9.5 MB, fetched by tools/fetch-models.sh): fewer mutants, each that loads runs 673M MACs.</summary>
    [FactNeedingModel(ObjectDetectionTests.SsdFile)]
    public void MutantsOfTheSsdDetectorLoadOrFailWithModelFormatException() =>
        Fuzz(File.ReadAllBytes(ObjectDetectionTests.Npm(ObjectDetectionTests.SsdFile)), MutantsOr(100));

    private void Fuzz(byte[] original, int mutants)
    {
        var model = TfLiteModel.Read(original);
        var inWeights = new bool[original.Length];
        foreach (var (start, length) in model.Buffers)
            for (long p = start; p < start + length; p++) inWeights[p] = true;
        var structure = Enumerable.Range(0, original.Length).Where(p => !inWeights[p]).ToArray();
        uint[] interesting = [0, 1, 2, 3, 4, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, (uint)original.Length, (uint)original.Length - 4];

        var rng = new Random(int.TryParse(Environment.GetEnvironmentVariable("MNET_TFLITE_FUZZ_SEED"), out int seed) ? seed : 20261130);
        var failures = new List<string>();
        var outcomes = new Dictionary<string, int>();
        var clock = Stopwatch.StartNew();
        long slowest = 0;
        string? trace = Environment.GetEnvironmentVariable("MNET_TFLITE_FUZZ_TRACE"); // a file: each mutant is logged before it runs
        for (int i = 0; i < mutants; i++)
        {
            var m = (byte[])original.Clone();
            string how;
            int pos = rng.Next(10) < 8 ? structure[rng.Next(structure.Length)] : rng.Next(m.Length);
            switch (rng.Next(5))
            {
                case 0: m[pos] ^= (byte)(1 << rng.Next(8)); how = $"bit flip at {pos}"; break;
                case 1: m[pos] = (byte)rng.Next(256); how = $"random byte at {pos}"; break;
                case 2:
                    pos = Math.Min(pos & ~3, m.Length - 4);
                    uint v = interesting[rng.Next(interesting.Length)];
                    BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(pos), v);
                    how = $"uint32 {v} at {pos}";
                    break;
                case 3: m = m[..pos]; how = $"truncated to {pos}"; break;
                default:
                    for (int k = 0; k < 8; k++) m[structure[rng.Next(structure.Length)]] = (byte)rng.Next(256);
                    how = "8 random structure bytes";
                    break;
            }
            if (trace is not null) File.AppendAllText(trace, $"{i} {how}\n");
            var one = Stopwatch.StartNew();
            string outcome;
            try { outcome = Exercise(m); }
            catch (Exception e) { failures.Add($"mutant {i} ({how}): {e.GetType().Name}: {e.Message}"); outcome = "BUG"; }
            slowest = Math.Max(slowest, one.ElapsedMilliseconds);
            outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
        }
        output.WriteLine($"{mutants} mutants: {string.Join(", ", outcomes.OrderBy(k => k.Key).Select(k => $"{k.Key} {k.Value}"))}; "
            + $"slowest {slowest} ms, total {clock.ElapsedMilliseconds} ms");
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(10)));
    }

    private static readonly SessionOptions Options = new() { Threads = 1, MaxArenaBytes = 64 << 20 };

    private static bool Allowed(Exception e) => e is ModelFormatException or GraphException || e.GetType() == typeof(ArgumentException);

    private static string Exercise(byte[] bytes)
    {
        ModelGraph graph;
        try { graph = TfLiteImporter.Load(bytes); }
        catch (ModelFormatException) { return "refused"; }
        InferenceSession session;
        try { session = new InferenceSession(graph, Options); }
        catch (Exception e) when (Allowed(e)) { return "compile refused"; }
        using (session)
        {
            if (session.Inputs.Sum(i => Shape.Size(i.Shape)) > 1 << 22) return "too large to run";
            try { session.Run(session.Inputs.Select(i => Tensor.Zeros(i.Shape)).ToArray()); }
            catch (Exception e) when (Allowed(e)) { return "run refused"; }
        }
        return "ran";
    }
}
