using System.Text.Json;
using MobileNetSharp.Imaging;
using MobileNetSharp.Imaging.Segmentation;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tests.Cli;
using MobileNetSharp.Tests.Onnx;
using MobileNetSharp.TfLite;
using Xunit.Abstractions;

namespace MobileNetSharp.Tests.TfLite;

/// <summary>MediaPipe's selfie segmentation (shipped in Fixtures, 249 KB) on the astronaut photo, and `mnet segment`.</summary>
[Collection("Console")]
public class SegmentationTests(ITestOutputHelper output)
{
    public static string ModelPath => Path.Combine(BlazeFaceTests.Fixtures, "selfie_segmentation.tflite");
    private static string Astronaut => Path.Combine(BlazeFaceTests.Fixtures, "astronaut.png");

    /// <summary>Our session and ONNX Runtime (on our export of the imported graph) give the same mask at the model's 256x256.</summary>
    [Fact]
    public void AgreesWithOnnxRuntime()
    {
        var photo = RgbImage.Load(Astronaut);
        using var segmenter = new SelfieSegmenter(ModelPath, new SessionOptions { Threads = 1 });
        var (w, h, mask) = segmenter.RunModel(photo);
        Assert.Equal((256, 256), (w, h));
        var graph = TfLiteImporter.Load(ModelPath);
        var ort = OrtRunner.Run(OnnxExporter.ToBytes(graph), [new(graph.Inputs[0].Name, photo.Resize(256, 256).ToNhwc(0f, 1f))]);
        var reference = ort[graph.Outputs[0].Name].Floats;
        float worst = mask.Zip(reference, (a, b) => MathF.Abs(a - b)).Max();
        output.WriteLine($"max |ours - ORT| = {worst:E2}");
        Assert.True(worst < 1e-4f, $"max difference {worst}");
    }

    /// <summary>
    /// The astronaut (Eileen Collins) fills the lower middle of the 512x512 photo: the mask covers her face (the BlazeFace box's
    /// centre, about (225, 128)) and her chest, not the top corners; the share is sane for a half-length portrait.
    /// </summary>
    [Fact]
    public void SegmentsTheAstronaut()
    {
        using var segmenter = new SelfieSegmenter(ModelPath, new SessionOptions { Threads = 1 });
        var mask = segmenter.Segment(RgbImage.Load(Astronaut));
        Assert.Equal((512, 512), (mask.Width, mask.Height));
        double fraction = mask.ForegroundFraction();
        var c = mask.Centroid()!.Value;
        output.WriteLine($"foreground {fraction:P1}, centroid ({c.X:F0}, {c.Y:F0})");
        Assert.InRange(fraction, 0.35, 0.75);
        float At(int x, int y) => mask.Probabilities[y * 512 + x];
        Assert.True(At(225, 128) > 0.9f, $"face {At(225, 128)}");
        Assert.True(At(225, 300) > 0.9f, $"chest {At(225, 300)}");
        Assert.True(At(20, 20) < 0.1f && At(490, 20) < 0.1f, $"corners {At(20, 20)}, {At(490, 20)}");
        Assert.InRange(c.X, 160, 320);
        Assert.InRange(c.Y, 220, 420);
    }

    [Fact]
    public void ResizeBilinearKeepsConstantsAndInterpolatesHalfPixel()
    {
        float[] src = [0f, 1f];
        var up = SelfieSegmenter.ResizeBilinear(src, 2, 1, 4, 1);
        Assert.Equal([0f, 0.25f, 0.75f, 1f], up);
        Assert.All(SelfieSegmenter.ResizeBilinear([0.5f, 0.5f, 0.5f, 0.5f], 2, 2, 7, 5), v => Assert.Equal(0.5f, v));
    }

    [Fact]
    public void CommandWritesTheMaskAndPrintsJson()
    {
        string png = Path.Combine(Path.GetTempPath(), $"mnet-mask-{Guid.NewGuid():N}.png");
        try
        {
            var (code, stdout, stderr) = CliRunner.Run("segment", Astronaut, "--model", ModelPath, "--out", png, "--json", "--threads", "1");
            Assert.True(code == 0, stderr);
            using var doc = JsonDocument.Parse(stdout);
            Assert.InRange(doc.RootElement.GetProperty("foregroundFraction").GetDouble(), 0.35, 0.75);
            Assert.True(doc.RootElement.GetProperty("latencyMs").GetDouble() > 0);
            var written = RgbImage.Load(png);
            Assert.Equal((512, 512), (written.Width, written.Height));
            Assert.True(written.Pixels[(128 * 512 + 225) * 3] > 230, "the face is not white in the mask");
            Assert.True(written.Pixels[(20 * 512 + 20) * 3] < 25, "the corner is not black in the mask");

            (code, stdout, stderr) = CliRunner.Run("segment", Astronaut, "--model", ModelPath, "--threads", "1");
            Assert.True(code == 0, stderr);
            Assert.Contains("foreground", stdout);
            Assert.Contains("ms per mask", stdout);
        }
        finally { File.Delete(png); }
    }

    [Fact]
    public void WrongModelAndMissingModelAreExplained()
    {
        var (code, _, stderr) = CliRunner.Run("segment", Astronaut, "--model", BlazeFaceTests.TfLitePath);
        Assert.Equal(1, code);
        Assert.Contains("is not a segmentation model", stderr);
        (code, _, stderr) = CliRunner.Run("segment", Astronaut, "--model", "nowhere/selfie_segmentation.tflite");
        Assert.Equal(1, code);
        Assert.Contains("npm pack @mediapipe/selfie_segmentation@", stderr);
    }
}
