using System.Runtime.CompilerServices;
using System.Text.Json;
using MobileNetSharp.Graph;
using MobileNetSharp.Onnx;

namespace MobileNetSharp.Tests.Cli;

/// <summary>`mnet quantize` as a user runs it: the file it writes, the JSON and report it promises, and clear errors.</summary>
[Collection("Console")]
public sealed class QuantizeCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mnet-quantize-cli-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Examples([CallerFilePath] string source = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(source)!, "..", "..", "..", "docs", "examples", "fashion-mnist"));

    [Fact]
    public void QuantizesTheBuiltinModelWithAReportAndTheFileRuns()
    {
        string q = Path.Combine(_dir, "q.onnx");
        var (code, stdout, err) = CliRunner.Run("quantize", "builtin", "--samples", "64", "--method", "percentile", "--report", "--eval-limit", "300", "--json", "--out", q);
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(stdout);
        var root = doc.RootElement;
        Assert.Equal(64, root.GetProperty("calibrationImages").GetInt32());
        Assert.Equal("percentile", root.GetProperty("method").GetString());
        Assert.Equal(53, root.GetProperty("quantizedLayers").GetArrayLength());
        Assert.True(root.GetProperty("quantizedBytes").GetInt64() * 2.5 < root.GetProperty("floatBytes").GetInt64(), stdout[..200]);
        var report = root.GetProperty("report");
        Assert.Equal(300, report.GetProperty("images").GetInt32());
        double before = report.GetProperty("floatAccuracy").GetDouble(), after = report.GetProperty("quantizedAccuracy").GetDouble();
        Assert.True(after > before - 0.02 && report.GetProperty("agreement").GetDouble() > 0.97, $"{before} -> {after}");
        Assert.Equal(root.GetProperty("activations").GetArrayLength(), report.GetProperty("tensors").GetArrayLength());

        // The written file: QDQ nodes, the labels kept, and `mnet eval` and `classify` take it.
        var g = OnnxImporter.Load(q);
        Assert.Contains(g.Nodes, n => n.Op is QuantizeLinear);
        Assert.Contains("mnet.quantization", g.Metadata.Keys);
        Assert.Equal(MobileNetSharp.Training.Data.FashionMnist.ClassNames, MobileNetSharp.Models.ClassifierInfo.ReadFrom(g)!.Labels);
        (code, stdout, err) = CliRunner.Run("classify", Examples(), "--model", q, "--json");
        Assert.True(code == 0, err);
        Assert.Contains("ankle", stdout, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void TablesAndSkip()
    {
        string q = Path.Combine(_dir, "t.onnx");
        var (code, stdout, err) = CliRunner.Run("quantize", "--samples", "16", "--skip", "block1.dw", "head.fc", "--report", "--eval-limit", "100", "--out", q);
        Assert.True(code == 0, err);
        Assert.Contains("51 layers with int8 weights", stdout);
        Assert.Contains("kept in float: block1.dw, head.fc", stdout);
        Assert.Contains("own SQNR", stdout);
        Assert.Contains("top-1 agreement with float", stdout);
    }

    [Fact]
    public void CalibratesOnAFolderOfImagesAndRefusesToQuantizeTwice()
    {
        // The ten example images as one flat folder: no class sub-folders are needed to calibrate.
        string flat = Directory.CreateDirectory(Path.Combine(_dir, "photos")).FullName;
        foreach (var f in Directory.EnumerateFiles(Examples(), "*.png", SearchOption.AllDirectories)) File.Copy(f, Path.Combine(flat, Path.GetFileName(f)), overwrite: true);
        string q = Path.Combine(_dir, "folder.onnx");
        var (code, stdout, err) = CliRunner.Run("quantize", "builtin", "--calibration", flat, "--report", "--json", "--out", q);
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(stdout);
        var report = doc.RootElement.GetProperty("report");
        Assert.Equal(Directory.GetFiles(flat).Length, doc.RootElement.GetProperty("calibrationImages").GetInt32());
        Assert.True(report.GetProperty("evaluatedOnCalibrationImages").GetBoolean());
        Assert.Equal(JsonValueKind.Null, report.GetProperty("floatAccuracy").ValueKind); // one unlabelled class: agreement only
        Assert.InRange(report.GetProperty("agreement").GetDouble(), 0.0, 1.0);
        long builtinBytes = new FileInfo(Path.Combine(AppContext.BaseDirectory, "models", "builtin.onnx")).Length;
        Assert.Equal(builtinBytes, doc.RootElement.GetProperty("floatBytes").GetInt64()); // the file the user gave, not the prepared graph

        // A file that does not decode: an error naming it, and no output written; --skip-bad reports it and goes on.
        File.WriteAllBytes(Path.Combine(flat, "broken.png"), [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]);
        string broken = Path.Combine(_dir, "broken.onnx");
        (code, _, err) = CliRunner.Run("quantize", "builtin", "--calibration", flat, "--out", broken);
        Assert.Equal(1, code);
        Assert.Contains("broken.png", err);
        Assert.False(File.Exists(broken));
        (code, _, err) = CliRunner.Run("quantize", "builtin", "--calibration", flat, "--skip-bad", "--report", "--eval", flat + "/", "--out", broken);
        Assert.True(code == 0, err);
        Assert.Contains("skipped", err);
        Assert.True(File.Exists(broken));

        (code, _, err) = CliRunner.Run("quantize", q, "--samples", "4", "--out", Path.Combine(_dir, "twice.onnx"));
        Assert.Equal(1, code);
        Assert.Contains("already quantized", err);
        Assert.False(File.Exists(Path.Combine(_dir, "twice.onnx")));
    }

    [Theory]
    [InlineData(new[] { "quantize", "--out", "x.txt" }, "must name a .onnx file")]
    [InlineData(new[] { "quantize", "--out", "OUT", "--method", "magic" }, "--method 'magic' is not minmax, percentile or entropy")]
    [InlineData(new[] { "quantize", "--out", "OUT", "--samples", "0" }, "--samples must be 1..100000")]
    [InlineData(new[] { "quantize", "--out", "OUT", "--activation-type", "int4" }, "--activation-type 'int4'")]
    [InlineData(new[] { "quantize", "--out", "OUT", "--percentile", "20", "--method", "percentile" }, "percentile must be in 50..100")]
    [InlineData(new[] { "quantize", "--out", "OUT", "--skip", "no-such-node" }, "--skip names no node: no-such-node")]
    [InlineData(new[] { "quantize", "/no/such.onnx", "--out", "OUT" }, "No such model file")]
    [InlineData(new[] { "quantize", "--out", "OUT", "--calibration", "/no/such/folder" }, "is neither 'fashion-mnist' nor an existing folder")]
    [InlineData(new[] { "quantize", "--out", "OUT", "--std", "0" }, "--std")]
    [InlineData(new[] { "quantize", "--out", "OUT", "--percentile", "99" }, "--percentile applies to --method percentile only")]
    [InlineData(new[] { "quantize", "--out", "OUT", "--report", "--eval", "/no/such/folder" }, "is neither 'fashion-mnist' nor an existing folder")]
    public void BadArgumentsGiveOneLine(string[] args, string message)
    {
        args = args.Select(a => a == "OUT" ? Path.Combine(_dir, "o.onnx") : a).ToArray();
        var (code, _, err) = CliRunner.Run(args);
        Assert.Equal(1, code);
        Assert.Contains(message, err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.DoesNotContain("(Parameter '", err);
        Assert.False(File.Exists(Path.Combine(_dir, "o.onnx")), "nothing is written on an error");
    }
}
