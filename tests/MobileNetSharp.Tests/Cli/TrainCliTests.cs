using System.Runtime.CompilerServices;
using System.Text.Json;
using MobileNetSharp.Models;
using MobileNetSharp.Onnx;

namespace MobileNetSharp.Tests.Cli;

/// <summary>
/// `mnet train`, `eval` and `classify` as a user runs them, on real Fashion-MNIST images (Debian's
/// dataset-fashion-mnist) and the example PNGs in docs/examples: the JSON each promises, the model's metadata,
/// fine-tuning an exported model on an image folder, and clear errors for bad input.
/// </summary>
[Collection("Console")]
public sealed class TrainCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mnet-train-cli-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Examples([CallerFilePath] string source = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(source)!, "..", "..", "..", "docs", "examples", "fashion-mnist"));

    /// <summary>A small model trained for a few steps, once for the class.</summary>
    private string TrainSmall(string name = "small.onnx", params string[] extra)
    {
        string path = Path.Combine(_dir, name);
        var (code, stdout, err) = CliRunner.Run([
            "train", "--arch", "mobilenet_v2", "--width", "0.35", "--small-input", "--data", "fashion-mnist", "--limit", "320",
            "--epochs", "1", "--batch", "32", "--threads", "2", "--json", "--out", path, .. extra]);
        Assert.True(code == 0, err);
        return stdout;
    }

    [Fact]
    public void TrainPrintsTheJsonItPromisesAndWritesAModelWithItsLabels()
    {
        using var doc = JsonDocument.Parse(TrainSmall());
        var root = doc.RootElement;
        foreach (var key in new[] { "imagesPerSecond", "epochs", "steps", "trainLoss", "valAccuracy", "seconds" })
            Assert.True(root.TryGetProperty(key, out _), $"no '{key}' in {root}");
        Assert.Equal(1, root.GetProperty("epochs").GetInt32());
        Assert.Equal(9, root.GetProperty("steps").GetInt32()); // 288 training images (10% held out) / 32
        Assert.True(root.GetProperty("imagesPerSecond").GetDouble() > 0);
        var model = OnnxImporter.Load(Path.Combine(_dir, "small.onnx"));
        var info = ClassifierInfo.ReadFrom(model)!;
        Assert.Equal("T-shirt/top", info.Labels[0]);
        Assert.Equal((1, 28, true), (info.Channels, info.Resolution, info.NormalizationInGraph));
        Assert.Equal("N", model.Inputs[0].DimParams![0]); // any batch
        Assert.True(File.Exists(Path.Combine(_dir, "small.onnx.ckpt")));
    }

    [Fact]
    public void EvalAndClassifyUseTheTrainedModel()
    {
        TrainSmall();
        string model = Path.Combine(_dir, "small.onnx"), png = Path.Combine(_dir, "confusion.png");
        var (code, stdout, err) = CliRunner.Run("eval", "--model", model, "--limit", "200", "--json", "--plot", png);
        Assert.True(code == 0, err);
        using (var doc = JsonDocument.Parse(stdout))
        {
            var r = doc.RootElement;
            double acc = r.GetProperty("accuracy").GetDouble();
            Assert.InRange(acc, 0, 1);
            Assert.Equal(200, r.GetProperty("count").GetInt32());
            Assert.Equal(10, r.GetProperty("perClass").GetArrayLength());
            var confusion = r.GetProperty("confusion");
            Assert.Equal(10, confusion.GetArrayLength());
            Assert.Equal(200, confusion.EnumerateArray().SelectMany(row => row.EnumerateArray()).Sum(c => c.GetInt32()));
            int diagonal = Enumerable.Range(0, 10).Sum(i => confusion[i][i].GetInt32());
            Assert.Equal(acc, diagonal / 200.0, 9);
        }
        Assert.True(new FileInfo(png).Length > 1000);
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(png).Take(4));

        (code, stdout, err) = CliRunner.Run("classify", Examples(), "--model", model, "--top", "2", "--json");
        Assert.True(code == 0, err);
        using (var doc = JsonDocument.Parse(stdout))
        {
            var images = doc.RootElement.GetProperty("images");
            Assert.Equal(10, images.GetArrayLength());
            foreach (var img in images.EnumerateArray())
            {
                var top = img.GetProperty("top");
                Assert.Equal(2, top.GetArrayLength());
                Assert.Contains(top[0].GetProperty("label").GetString(), MobileNetSharp.Training.Data.FashionMnist.ClassNames);
                Assert.True(top[0].GetProperty("probability").GetDouble() >= top[1].GetProperty("probability").GetDouble());
            }
        }
    }

    [Fact]
    public void ClassifySkipsBadFilesOnlyWhenAsked()
    {
        TrainSmall();
        string folder = Path.Combine(_dir, "mixed");
        Directory.CreateDirectory(folder);
        foreach (var f in Directory.GetFiles(Examples(), "*.png").Take(2)) File.Copy(f, Path.Combine(folder, Path.GetFileName(f)));
        File.WriteAllBytes(Path.Combine(folder, "broken.png"), [0x89, (byte)'P', (byte)'N', (byte)'G', 1, 2, 3]);
        string model = Path.Combine(_dir, "small.onnx");
        var (code, _, err) = CliRunner.Run("classify", folder, "--model", model);
        Assert.Equal(1, code);
        Assert.Contains("broken.png", err);
        (code, var stdout, err) = CliRunner.Run("classify", folder, "--model", model, "--skip-bad", "--json");
        Assert.True(code == 0, err);
        Assert.Contains("broken.png", err);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal(2, doc.RootElement.GetProperty("images").GetArrayLength());
        Assert.Equal(1, doc.RootElement.GetProperty("skipped").GetArrayLength());
    }

    [Fact]
    public void FineTunesAnExportedModelOnAnImageFolder()
    {
        TrainSmall();
        // Two classes from the example PNGs (5 each: the same images under two names is enough to run).
        string data = Path.Combine(_dir, "folder");
        var pngs = Directory.GetFiles(Examples(), "*.png").Order().ToArray();
        for (int c = 0; c < 2; c++)
        {
            var dir = Directory.CreateDirectory(Path.Combine(data, c == 0 ? "tops" : "shoes")).FullName;
            for (int i = 0; i < 5; i++) File.Copy(pngs[c * 5 + i], Path.Combine(dir, $"{i}.png"));
        }
        string output = Path.Combine(_dir, "tuned.onnx");
        var (code, stdout, err) = CliRunner.Run("train", "--from", Path.Combine(_dir, "small.onnx"), "--data", data, "--epochs", "2",
            "--batch", "4", "--validation", "0", "--threads", "1", "--out", output, "--json");
        Assert.True(code == 0, err);
        var model = OnnxImporter.Load(output);
        Assert.Equal(2, model.Outputs[^1].Shape[^1]);
        Assert.Equal(["shoes", "tops"], ClassifierInfo.ReadFrom(model)!.Labels);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal(2, doc.RootElement.GetProperty("epochs").GetInt32());
    }

    [Fact]
    public void BadInputIsAClearError()
    {
        string one = Path.Combine(_dir, "one");
        Directory.CreateDirectory(Path.Combine(one, "only"));
        File.Copy(Directory.GetFiles(Examples(), "*.png")[0], Path.Combine(one, "only", "a.png"));
        string empty = Path.Combine(_dir, "empty");
        Directory.CreateDirectory(Path.Combine(empty, "a"));
        Directory.CreateDirectory(Path.Combine(empty, "b"));
        string outPath = Path.Combine(_dir, "x.onnx");
        foreach (var (args, expect) in new (string[], string)[]
        {
            (["train", "--arch", "mobilenet_v2", "--data", one, "--out", outPath], "at least 2 class"),
            (["train", "--arch", "mobilenet_v2", "--data", empty, "--out", outPath], "holds no images"),
            (["train", "--arch", "mobilenet_v2", "--data", "/no/such/folder", "--out", outPath], "neither"),
            (["train", "--arch", "mobilenet_v2", "--data", "fashion-mnist", "--out", Path.Combine(_dir, "x.txt")], ".onnx"),
            (["train", "--data", "fashion-mnist", "--out", outPath], "exactly one of --arch"),
            (["train", "--arch", "mobilenet_v2", "--data", "fashion-mnist", "--out", outPath, "--resume"], "no checkpoint"),
            (["eval", "--model", "/no/such.onnx"], "No such model"),
            (["classify", "/no/such.png", "--model", "builtin"], "No such image"),
        })
        {
            var (code, _, err) = CliRunner.Run(args);
            Assert.True(code == 1, $"{string.Join(' ', args)}: exit {code}, {err}");
            Assert.Contains(expect, err);
            Assert.DoesNotContain("   at ", err);
        }
    }
}
