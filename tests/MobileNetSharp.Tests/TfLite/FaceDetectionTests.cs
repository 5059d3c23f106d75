using System.Text.Json;
using MobileNetSharp.Imaging;
using MobileNetSharp.Imaging.Detection;
using MobileNetSharp.Tests.Cli;
using Xunit.Abstractions;

namespace MobileNetSharp.Tests.TfLite;

/// <summary>BlazeFace post-processing (anchors, decoding, weighted NMS) and `mnet detect-faces` on the astronaut photo, which has one face.</summary>
[Collection("Console")]
public class FaceDetectionTests(ITestOutputHelper output)
{
    private static string Photo => Path.Combine(BlazeFaceTests.Fixtures, "astronaut.png");

    /// <summary>
    /// The face in the 512x512 photo, pinned from a run whose drawn box was checked by eye (it spans brow to chin and
    /// ear to ear); not an independent detector's answer.
    /// </summary>
    private static readonly Detection Face = new("face", 1f, 178f, 81f, 272f, 175f, []);

    [Fact]
    public void AnchorsFollowMediaPipesShortRangeOptions()
    {
        var a = BlazeFaceDetector.Anchors();
        Assert.Equal(896, a.Length);
        Assert.Equal((0.5f / 16, 0.5f / 16), a[0]);
        Assert.Equal(a[0], a[1]);                         // two anchors per 16x16 cell
        Assert.Equal((1.5f / 16, 0.5f / 16), a[2]);
        Assert.Equal((0.5f / 8, 0.5f / 8), a[512]);       // then six per 8x8 cell
        Assert.Equal(a[512], a[517]);
        Assert.Equal((7.5f / 8, 7.5f / 8), a[895]);
    }

    [Fact]
    public void WeightedNmsAveragesOverlappingBoxesByScore()
    {
        var d = new List<Detection>
        {
            new("face", 0.9f, 0, 0, 10, 10, [(1f, 1f)]),
            new("face", 0.6f, 1, 1, 11, 11, [(3f, 3f)]),
            new("face", 0.8f, 50, 50, 60, 60, [(55f, 55f)]),
        };
        var r = BlazeFaceDetector.WeightedNms(d, 0.3f);
        Assert.Equal(2, r.Count);
        Assert.Equal(0.9f, r[0].Score);
        Assert.Equal(0.6f / 1.5f, r[0].X1, 4);
        Assert.Equal((0.9f * 1 + 0.6f * 3) / 1.5f, r[0].Keypoints[0].X, 4);
        Assert.Equal(50f, r[1].X1);
    }

    [Fact]
    public void FindsTheAstronautsFace()
    {
        using var detector = new BlazeFaceDetector(BlazeFaceTests.TfLitePath);
        var faces = detector.Detect(RgbImage.Load(Photo));
        foreach (var f in faces) output.WriteLine($"{f.Score:F3} [{f.X1:F1}, {f.Y1:F1}, {f.X2:F1}, {f.Y2:F1}]");
        var face = Assert.Single(faces);
        Assert.True(face.Score > 0.9f, $"score {face.Score}");
        Assert.True(BlazeFaceDetector.Iou(face, Face) >= 0.9f, $"IoU {BlazeFaceDetector.Iou(face, Face)}");
        // The eyes (keypoints 0 and 1) lie in the box's upper half, the mouth (3) below them.
        Assert.All(face.Keypoints[..2], k => Assert.True(k.X > face.X1 && k.X < face.X2 && k.Y > face.Y1 && k.Y < (face.Y1 + face.Y2) / 2));
        Assert.True(face.Keypoints[3].Y > face.Keypoints[0].Y);
    }

    [Fact]
    public void CommandPrintsJsonAndDrawsTheBox()
    {
        string png = Path.Combine(Path.GetTempPath(), $"mnet-faces-{Guid.NewGuid():N}.png");
        try
        {
            var (code, stdout, stderr) = CliRunner.Run("detect-faces", Photo, "--model", BlazeFaceTests.TfLitePath, "--json", "--draw", png, "--threads", "1");
            Assert.True(code == 0, stderr);
            using var doc = JsonDocument.Parse(stdout);
            var detections = doc.RootElement.GetProperty("detections");
            Assert.Equal(1, detections.GetArrayLength());
            var box = detections[0].GetProperty("box").EnumerateArray().Select(v => v.GetSingle()).ToArray();
            Assert.True(BlazeFaceDetector.Iou(new("face", 1, box[0], box[1], box[2], box[3], []), Face) >= 0.9f);
            Assert.Equal(6, detections[0].GetProperty("keypoints").GetArrayLength());
            var drawn = RgbImage.Load(png);
            Assert.Equal((512, 512), (drawn.Width, drawn.Height));
        }
        finally { File.Delete(png); }
    }

    [Fact]
    public void MissingModelSaysHowToGetIt()
    {
        var (code, _, stderr) = CliRunner.Run("detect-faces", Photo, "--model", "nowhere/face_detection_short_range.tflite");
        Assert.Equal(1, code);
        Assert.Contains("npm pack @mediapipe/face_detection", stderr);
    }
}
