using System.Runtime.CompilerServices;
using System.Text.Json;
using MobileNetSharp.Onnx;
using MobileNetSharp.Tensors;
using MobileNetSharp.Tests.Onnx;

namespace MobileNetSharp.Tests.Cli;

/// <summary>
/// The user cases in tests/MobileNetSharp.Tests/Cases (copied from the shared case collection, see its README):
/// `mnet run` reproduces each case's expected outputs, and the other commands work on the models with
/// symbolic sizes when given --dim/--shape, and say which options to use when not.
/// </summary>
[Collection("Console")]
public sealed class CaseTests : IDisposable
{
    private static string Here([CallerFilePath] string source = "") => Path.GetDirectoryName(source)!;

    private static string Root => Path.GetFullPath(Path.Combine(Here(), "..", "Cases"));

    private readonly string _dir = Directory.CreateTempSubdirectory("mnet-cases-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    public static TheoryData<string> Cases() =>
        new(Directory.GetDirectories(Root).Where(d => File.Exists(Path.Combine(d, "case.txt"))).Select(Path.GetFileName).Order()!);

    private sealed record Case(string Dir, List<(string Name, string File)> Inputs, List<(string Name, string File)> Outputs)
    {
        public string Model => Path.Combine(Dir, "model.onnx");
        public string InputFile(int i) => Path.Combine(Dir, Inputs[i].File);
    }

    private static Case Read(string name)
    {
        string dir = Path.Combine(Root, name);
        var (inputs, outputs) = (new List<(string, string)>(), new List<(string, string)>());
        foreach (var line in File.ReadAllLines(Path.Combine(dir, "case.txt")))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            switch (parts)
            {
                case ["expect", var what]: Assert.Equal("match", what); break;
                case ["input", var n, var f]: inputs.Add((n, f)); break;
                case ["output", var n, var f]: outputs.Add((n, f)); break;
                case []: break;
                default: Assert.Fail($"{name}/case.txt: cannot read '{line}'"); break;
            }
        }
        return new Case(dir, inputs, outputs);
    }

    /// <summary>The cases' own criterion: max |actual - expected| within 1e-4 * max(1, max |expected|).</summary>
    private static void AssertMatches(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.Shape, actual.Shape);
        double scale = Math.Max(1, expected.Floats.Max(v => Math.Abs((double)v)));
        double worst = expected.Floats.Zip(actual.Floats, (e, a) => float.IsNaN(a) ? double.PositiveInfinity : Math.Abs((double)e - a)).Max();
        Assert.True(worst <= 1e-4 * scale, $"{what}: max error {worst:g4} exceeds 1e-4 x {scale:g4}");
    }

    private static void AssertOneLineError(int code, string stderr, params string[] fragments)
    {
        Assert.Equal(1, code);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.DoesNotContain("   at ", stderr);
        foreach (var f in fragments) Assert.Contains(f, stderr);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void RunGivesTheExpectedOutputs(string name)
    {
        var c = Read(name);
        var args = new List<string> { "run", c.Model, "--output", _dir, "--threads", "2" };
        foreach (var (input, file) in c.Inputs) args.AddRange(["--input", $"{input}={Path.Combine(c.Dir, file)}"]);
        var (code, stdout, stderr) = CliRunner.Run([.. args]);
        Assert.True(code == 0, stderr);
        foreach (var (output, file) in c.Outputs)
        {
            Assert.Contains($"{output}: ", stdout);
            AssertMatches(Npy.Read(Path.Combine(c.Dir, file)), Npy.Read(Path.Combine(_dir, output + ".npy")), $"{name}/{output}");
        }
    }

    [Fact]
    public void RunTakesDimAndShapeOverTheInputFiles()
    {
        var c = Read("dynamic_hw_shape_chain");
        string x = $"x={c.InputFile(0)}";
        // The same sizes as the file: nothing changes.
        var (code, _, stderr) = CliRunner.Run("run", c.Model, "--input", x, "--shape", "x=2x3x13x9", "--dim", "H=13", "--output", _dir);
        Assert.True(code == 0, stderr);
        AssertMatches(Npy.Read(Path.Combine(c.Dir, "expected_1.npy")), Npy.Read(Path.Combine(_dir, "logits.npy")), "logits");
        // --dim wins over the file: the model is imported for batch 1, and its folded shape chain cannot take batch 2.
        (code, _, stderr) = CliRunner.Run("run", c.Model, "--input", x, "--dim", "N=1", "--output", _dir);
        AssertOneLineError(code, stderr, "cannot run with inputs x [2,3,13,9]");
        (code, _, stderr) = CliRunner.Run("run", c.Model, "--input", x, "--shape", "x=2x3x15x9", "--output", _dir);
        Assert.Equal(1, code);
        Assert.Contains("[2,3,15,9]", stderr);
    }

    [Fact]
    public void SummaryProfileAndConvertTakeDimAndShape()
    {
        var c = Read("dynamic_hw_shape_chain");
        var (code, stdout, stderr) = CliRunner.Run("summary", c.Model, "--dim", "H=13", "--dim", "W=9", "--json");
        Assert.True(code == 0, stderr);
        var j = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal([1, 3, 13, 9], j.GetProperty("input")[0].GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()));
        long macsAtBatch1 = j.GetProperty("macs").GetInt64();
        Assert.True(macsAtBatch1 > 0 && j.GetProperty("params").GetInt64() > 0);

        (code, stdout, stderr) = CliRunner.Run("summary", c.Model, "--shape", "x=2x3x13x9", "--json");
        Assert.True(code == 0, stderr);
        j = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal([2, 3, 13, 9], j.GetProperty("input")[0].GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(2 * macsAtBatch1, j.GetProperty("macs").GetInt64());

        (code, stdout, stderr) = CliRunner.Run("summary", c.Model, "--dim", "H=160", "--dim", "W=160");
        Assert.True(code == 0, stderr);
        Assert.Contains("1x3x160x160", stdout);

        (code, stdout, stderr) = CliRunner.Run("profile", c.Model, "--dim", "H=13", "--dim", "W=9", "--runs", "2", "--threads", "1", "--json");
        Assert.True(code == 0, stderr);
        Assert.True(JsonDocument.Parse(stdout).RootElement.GetProperty("steps").GetArrayLength() > 3);

        // Converted at the case's own size, the file runs in ONNX Runtime and gives the expected outputs.
        string converted = Path.Combine(_dir, "converted.onnx");
        (code, stdout, stderr) = CliRunner.Run("convert", c.Model, "--shape", "x=2x3x13x9", "--to", converted);
        Assert.True(code == 0, stderr);
        Assert.Contains("x [2,3,13,9]", stdout);
        Assert.Equal("x [2,3,13,9]", Assert.Single(OnnxImporter.ReadInputs(converted)).ToString());
        var ort = OrtRunner.Run(File.ReadAllBytes(converted), [new("x", Npy.Read(c.InputFile(0)))]);
        AssertMatches(Npy.Read(Path.Combine(c.Dir, "expected_0.npy")), ort["att_map"], "att_map");
        AssertMatches(Npy.Read(Path.Combine(c.Dir, "expected_1.npy")), ort["logits"], "logits");

        // Its batch is folded into the attention's Reshape at import: written fixed, with a note that says why.
        (code, stdout, stderr) = CliRunner.Run("convert", c.Model, "--dim", "H=13", "--dim", "W=9", "--to", converted);
        Assert.True(code == 0, stderr);
        Assert.Contains("note: input 'x' keeps 'N' fixed at 1", stderr);
        Assert.Contains("--dim N=VALUE", stderr);
        Assert.Equal("x [1,3,13,9]", Assert.Single(OnnxImporter.ReadInputs(converted)).ToString());
    }

    [Theory]
    [InlineData("summary")]
    [InlineData("profile")]
    [InlineData("convert")]
    public void WithoutSizesTheErrorNamesTheOptions(string command)
    {
        var c = Read("dynamic_hw_shape_chain");
        string[] args = command == "convert" ? [command, c.Model, "--to", Path.Combine(_dir, "out.onnx")] : [command, c.Model];
        var (code, _, stderr) = CliRunner.Run(args);
        AssertOneLineError(code, stderr, "input 'x' [N,3,H,W]", "'H' (axis 2) and 'W' (axis 3)", "--dim H=VALUE --dim W=VALUE", "--shape x=1x3x224x224");
        // Half of it is not enough; the message then asks for the rest only, with what is known in the example.
        (code, _, stderr) = CliRunner.Run([.. args, "--dim", "H=13"]);
        AssertOneLineError(code, stderr, "'W' (axis 3)", "--dim W=VALUE", "--shape x=1x3x13x224");
        Assert.DoesNotContain("--dim H=", stderr);
    }

    [Theory]
    [InlineData("--dim H=0: '0' is not a size", "--dim", "H=0", "--dim", "W=9")]
    [InlineData("--shape x=1x3x-1x9: '-1' is not a size", "--shape", "x=1x3x-1x9")]
    [InlineData("--dim 'H' must be NAME=VALUE", "--dim", "H")]
    [InlineData("--dim H is given twice", "--dim", "H=3", "--dim", "H=4")]
    [InlineData("no symbolic dimension 'Q'. Inputs: x [N,3,H,W]", "--dim", "Q=5", "--dim", "H=13", "--dim", "W=9")]
    [InlineData("no input named 'y'. Inputs: x [N,3,H,W]", "--shape", "y=1x3x13x9")]
    [InlineData("cannot take shape [1,3,13]: its rank is 3, the input's 4", "--shape", "x=1x3x13")]
    [InlineData("cannot take shape [1,4,13,9]: axis 1 is fixed at 3", "--shape", "x=1x4x13x9")]
    [InlineData("its axis 2 is 'H', given as 12", "--shape", "x=1x3x13x9", "--dim", "H=12")]
    public void BadSizesGiveOneLineAndExitCodeOne(string message, params string[] options)
    {
        var c = Read("dynamic_hw_shape_chain");
        var (code, _, stderr) = CliRunner.Run(["summary", c.Model, .. options]);
        AssertOneLineError(code, stderr, message);
    }
}
