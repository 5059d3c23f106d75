using MobileNetSharp.Imaging;
using MobileNetSharp.Training.Data;
using SkiaSharp;

namespace MobileNetSharp.Tests.Training;

/// <summary>ImageFolder over generated files (PNG and JPEG from SkiaSharp, BMP written by hand), and ImageDataset.Split.</summary>
public sealed class ImageFolderTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("mnet-imgfolder-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Dir(string name)
    {
        string d = Path.Combine(_root, name);
        Directory.CreateDirectory(d);
        return d;
    }

    /// <summary>Writes a w x h image; <paramref name="color"/>(x, y) gives each pixel.</summary>
    private static string Write(string path, int w, int h, Func<int, int, SKColor> color, SKEncodedImageFormat format = SKEncodedImageFormat.Png)
    {
        using var bitmap = new SKBitmap(w, h, SKColorType.Rgba8888, SKAlphaType.Premul);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) bitmap.SetPixel(x, y, color(x, y));
        using var data = bitmap.Encode(format, 100);
        File.WriteAllBytes(path, data.ToArray());
        return path;
    }

    private static string Solid(string path, int w, int h, SKColor c, SKEncodedImageFormat format = SKEncodedImageFormat.Png) => Write(path, w, h, (_, _) => c, format);

    /// <summary>A 24-bit BMP (no compression), rows bottom-up padded to 4 bytes; the header may claim another size.</summary>
    private static string Bmp(string path, int w, int h, SKColor c, int? claimW = null, int? claimH = null)
    {
        int row = (w * 3 + 3) & ~3;
        var bytes = new byte[54 + row * h];
        void I32(int at, int v) => BitConverter.TryWriteBytes(bytes.AsSpan(at, 4), v);
        bytes[0] = (byte)'B'; bytes[1] = (byte)'M';
        I32(2, bytes.Length); I32(10, 54); I32(14, 40); I32(18, claimW ?? w); I32(22, claimH ?? h);
        bytes[26] = 1; bytes[28] = 24; I32(34, row * h);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int at = 54 + y * row + x * 3;
                (bytes[at], bytes[at + 1], bytes[at + 2]) = (c.Blue, c.Green, c.Red);
            }
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static readonly SKColor Orange = new(200, 100, 50), Teal = new(10, 160, 140), Violet = new(120, 30, 220);

    [Fact]
    public void LoadsClassesInOrdinalOrderWithTheirImages()
    {
        var cat = Dir("a_cat");
        var dog = Dir("b_dog");
        var upper = Dir("Z_upper"); // ordinal: upper case sorts before lower case
        Dir(".cache"); // hidden: not a class
        Solid(Path.Combine(cat, "2.png"), 12, 9, Orange);
        Solid(Path.Combine(cat, "1.PNG"), 5, 7, Teal);
        File.WriteAllText(Path.Combine(cat, "notes.txt"), "not an image");
        File.WriteAllText(Path.Combine(cat, "._2.png"), "macOS resource fork: hidden, ignored");
        Bmp(Path.Combine(dog, "x.bmp"), 3, 2, Violet);
        Solid(Path.Combine(dog, "y.jpg"), 16, 16, Teal, SKEncodedImageFormat.Jpeg);
        Solid(Path.Combine(upper, "only.png"), 30, 40, Violet);

        var reports = new List<int>();
        var d = ImageFolder.Load(_root, channels: 3, resolution: 8, new SyncProgress(reports));
        Assert.Equal(["Z_upper", "a_cat", "b_dog"], d.ClassNames);
        Assert.Equal((5, 3, 8, 8, 3), (d.Count, d.Channels, d.Height, d.Width, d.Classes));
        Assert.Equal([0, 1, 1, 2, 2], d.Labels.ToArray().Select(b => (int)b));
        Assert.Equal([1, 2, 3, 4, 5], reports);

        void AssertSolid(int index, SKColor c, int tolerance = 0)
        {
            var img = d.Image(index);
            for (int p = 0; p < 64; p++)
            {
                Assert.InRange(img[p], c.Red - tolerance, c.Red + tolerance);
                Assert.InRange(img[64 + p], c.Green - tolerance, c.Green + tolerance);
                Assert.InRange(img[128 + p], c.Blue - tolerance, c.Blue + tolerance);
            }
        }
        AssertSolid(0, Violet);       // 30x40 PNG, scaled down
        AssertSolid(1, Teal);         // 1.PNG before 2.png, scaled up
        AssertSolid(2, Orange);
        AssertSolid(3, Violet);       // hand-written BMP
        AssertSolid(4, Teal, 4);      // JPEG: lossy

        var grey = ImageFolder.Load(_root, channels: 1, resolution: 4);
        Assert.Equal((1, 4, 4), (grey.Channels, grey.Height, grey.Width));
        Assert.All(grey.Image(2).ToArray(), v => Assert.Equal(124, v)); // 0.299·200 + 0.587·100 + 0.114·50 = 124.2
        Assert.All(grey.Image(0).ToArray(), v => Assert.Equal(ImageFolder.Luma(120, 30, 220), v));
    }

    [Fact]
    public void SampleTakesAnyLayoutSeededAndDecodesOnlyWhatItTakes()
    {
        // Flat and nested images, hidden ones skipped: one unlabelled class.
        var nested = Dir(Path.Combine("trip", "day2"));
        Dir(".thumbs");
        Solid(Path.Combine(_root, "a.png"), 6, 6, Orange);
        Solid(Path.Combine(_root, "b.png"), 6, 6, Teal);
        Solid(Path.Combine(nested, "c.png"), 6, 6, Violet);
        Solid(Path.Combine(_root, ".thumbs", "hidden.png"), 6, 6, Violet);
        File.WriteAllText(Path.Combine(_root, "broken.txt"), "not an image: not listed");
        var all = ImageFolder.Sample(_root, 3, 4, count: 10);
        Assert.Equal((3, 1, "images"), (all.Count, all.Classes, all.ClassNames![0]));
        var reds = Enumerable.Range(0, 3).Select(i => (int)all.Image(i)[0]).Order().ToArray();
        Assert.Equal(new[] { Orange.Red, Teal.Red, Violet.Red }.Select(b => (int)b).Order(), reds);

        // count < files: a seeded choice, the same every time, different for another seed (over a few seeds).
        var two = ImageFolder.Sample(_root, 3, 4, count: 2, seed: 7);
        Assert.Equal(2, two.Count);
        Assert.Equal(two.Image(0).ToArray(), ImageFolder.Sample(_root, 3, 4, count: 2, seed: 7).Image(0).ToArray());
        Assert.Contains(Enumerable.Range(0, 8), seed => !ImageFolder.Sample(_root, 3, 4, count: 1, seed: seed).Image(0).SequenceEqual(two.Image(0)));

        // A file that does not decode is an error naming it, unless skipped; then the next image in the order is taken.
        File.WriteAllBytes(Path.Combine(_root, "z.png"), [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]);
        Assert.Contains("z.png", Assert.Throws<InvalidDataException>(() => ImageFolder.Sample(_root, 3, 4, count: 10)).Message);
        var bad = new List<string>();
        Assert.Equal(3, ImageFolder.Sample(_root, 3, 4, count: 10, skipBad: true, onBad: (path, _) => bad.Add(path)).Count);
        Assert.Single(bad);

        // Class folders keep their labels.
        var classes = Directory.CreateTempSubdirectory("mnet-sample-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(classes, "cat"));
            Directory.CreateDirectory(Path.Combine(classes, "dog"));
            Solid(Path.Combine(classes, "cat", "1.png"), 5, 5, Orange);
            Solid(Path.Combine(classes, "dog", "1.png"), 5, 5, Teal);
            Assert.True(ImageFolder.IsClassLayout(classes));
            var labelled = ImageFolder.Sample(classes, 3, 4, count: 5);
            Assert.Equal(["cat", "dog"], labelled.ClassNames);
            for (int i = 0; i < 2; i++) Assert.Equal(labelled.Labels[i] == 0 ? Orange.Red : Teal.Red, labelled.Image(i)[0]);
        }
        finally { Directory.Delete(classes, recursive: true); }

        // Nothing to take.
        var empty = Directory.CreateTempSubdirectory("mnet-empty-").FullName;
        try { Assert.Contains("holds no images", Assert.Throws<InvalidDataException>(() => ImageFolder.Sample(empty, 3, 4, 1)).Message); }
        finally { Directory.Delete(empty); }
    }

    [Fact]
    public void LumaIsBt601()
    {
        Assert.Equal(0, ImageFolder.Luma(0, 0, 0));
        Assert.Equal(255, ImageFolder.Luma(255, 255, 255));
        Assert.Equal(76, ImageFolder.Luma(255, 0, 0));   // 76.245
        Assert.Equal(150, ImageFolder.Luma(0, 255, 0));  // 149.685
        Assert.Equal(29, ImageFolder.Luma(0, 0, 255));   // 29.07
        Assert.Equal(124, ImageFolder.Luma(200, 100, 50));
    }

    /// <summary>A 20x10 image of red | green | blue bands (4, 12, 4 columns): the centred square is all green; squashing would show red and blue.</summary>
    [Theory]
    [InlineData(10)]
    [InlineData(5)]
    public void WideImagesAreCentreCroppedNotSquashed(int resolution)
    {
        SKColor Band(int x, int y) => x < 4 ? SKColors.Red : x < 16 ? SKColors.Lime : SKColors.Blue;
        Write(Path.Combine(Dir("wide"), "w.png"), 20, 10, Band);
        Write(Path.Combine(Dir("tall"), "t.png"), 10, 20, (x, y) => Band(y, x));
        var d = ImageFolder.Load(_root, 3, resolution);
        int plane = resolution * resolution;
        for (int i = 0; i < 2; i++)
        {
            var img = d.Image(i);
            Assert.All(img[..plane].ToArray(), v => Assert.Equal(0, v));              // no red
            Assert.All(img[plane..(2 * plane)].ToArray(), v => Assert.Equal(255, v)); // all green
            Assert.All(img[(2 * plane)..].ToArray(), v => Assert.Equal(0, v));        // no blue
        }
    }

    [Fact]
    public void CorruptImagesAreNamedOrSkipped()
    {
        var a = Dir("a");
        var b = Dir("b");
        Solid(Path.Combine(a, "good.png"), 6, 6, Orange);
        Solid(Path.Combine(b, "good.png"), 6, 6, Teal);
        string garbage = Path.Combine(a, "garbage.png");
        File.WriteAllBytes(garbage, Enumerable.Range(0, 300).Select(i => (byte)(i * 37)).ToArray());
        var e = Assert.Throws<InvalidDataException>(() => ImageFolder.Load(_root, 3, 4));
        Assert.Contains(garbage, e.Message);

        var bad = new List<(string Path, string Reason)>();
        var reports = new List<int>();
        var d = ImageFolder.Load(_root, 3, 4, new SyncProgress(reports), skipBad: true, onBad: (p, r) => bad.Add((p, r)));
        Assert.Equal(2, d.Count);
        Assert.Equal([0, 1], d.Labels.ToArray().Select(x => (int)x));
        Assert.Equal(Orange.Red, d.Image(0)[0]);
        Assert.Equal(Teal.Red, d.Image(1)[0]);
        Assert.Equal(garbage, Assert.Single(bad).Path);
        Assert.Contains("decode", bad[0].Reason);
        Assert.Equal([1, 2, 3], reports);

        // A truncated PNG: the header reads but the pixels do not.
        File.Delete(garbage);
        string truncated = Path.Combine(b, "truncated.png");
        Write(truncated, 64, 64, (x, y) => new SKColor((byte)(x * 4), (byte)(y * 4), (byte)(x ^ y)));
        var png = File.ReadAllBytes(truncated);
        File.WriteAllBytes(truncated, png[..(png.Length / 2)]);
        e = Assert.Throws<InvalidDataException>(() => ImageFolder.Load(_root, 3, 4));
        Assert.Contains(truncated, e.Message);

        // skipBad leaving a class with no images is still an error, naming the class folder.
        File.Delete(Path.Combine(b, "good.png"));
        e = Assert.Throws<InvalidDataException>(() => ImageFolder.Load(_root, 3, 4, skipBad: true));
        Assert.Contains(b, e.Message);
    }

    [Fact]
    public void OversizedHeadersAreRefusedBeforeDecoding()
    {
        // The header claims 9000 x 9000 (81 megapixels) over 2x2 pixels of data.
        string huge = Bmp(Path.Combine(Dir("a"), "huge.bmp"), 2, 2, Orange, claimW: 9000, claimH: 9000);
        Solid(Path.Combine(Dir("b"), "ok.png"), 4, 4, Teal);
        var e = Assert.Throws<InvalidDataException>(() => ImageFolder.Load(_root, 1, 4));
        Assert.Contains(huge, e.Message);
        Assert.Contains("9000x9000", e.Message);
        Assert.Contains("exceeds", e.Message);
        // RgbImage.Load shares the decoder and keeps its ArgumentException.
        Assert.Contains("exceeds", Assert.Throws<ArgumentException>(() => RgbImage.Load(huge)).Message);
        string small = Path.Combine(_root, "b", "ok.png"); // 16 pixels
        Assert.Contains("exceeds", Assert.Throws<InvalidDataException>(() => RgbImage.DecodeBitmap(small, false, maxPixels: 15)).Message);
        RgbImage.DecodeBitmap(small, false, maxPixels: 16).Dispose();
    }

    [Fact]
    public void FolderShapeErrorsNameTheFolder()
    {
        string missing = Path.Combine(_root, "nope");
        Assert.Contains(missing, Assert.Throws<DirectoryNotFoundException>(() => ImageFolder.Load(missing, 3, 8)).Message);

        var only = Dir("only");
        Solid(Path.Combine(only, "1.png"), 4, 4, Orange);
        var e = Assert.Throws<InvalidDataException>(() => ImageFolder.Load(_root, 3, 8));
        Assert.Contains(_root, e.Message);
        Assert.Contains("at least 2", e.Message);

        var empty = Dir("zempty");
        File.WriteAllText(Path.Combine(empty, "readme.md"), "no images here");
        e = Assert.Throws<InvalidDataException>(() => ImageFolder.Load(_root, 3, 8));
        Assert.Contains(empty, e.Message);
        Assert.Contains("no images", e.Message);

        Assert.Throws<ArgumentOutOfRangeException>(() => ImageFolder.Load(_root, 2, 8));
        Assert.Throws<ArgumentOutOfRangeException>(() => ImageFolder.Load(_root, 3, 0));
    }

    [Fact]
    public void SplitIsSeededSizedAndRefusesEmptyParts()
    {
        var pixels = Enumerable.Range(0, 50 * 4).Select(i => (byte)i).ToArray(); // image i starts with byte 4i: identifiable
        var d = new ImageDataset(pixels, Enumerable.Range(0, 50).Select(i => (byte)(i % 5)).ToArray(), 1, 2, 2, 5);
        var (train, val) = d.Split(0.3, seed: 8);
        Assert.Equal((35, 15), (train.Count, val.Count));
        Assert.Equal(d.ClassNames, val.ClassNames);
        var ids = new[] { train, val }.SelectMany(p => Enumerable.Range(0, p.Count).Select(i => p.Image(i)[0] / 4)).ToList();
        Assert.Equal(Enumerable.Range(0, 50), ids.Order());
        for (int i = 0; i < val.Count; i++) Assert.Equal((val.Image(i)[0] / 4) % 5, val.Label(i)); // labels travel with images
        // Same seed, same split; another seed, another split; each part keeps the dataset's order.
        var (_, again) = d.Split(0.3, seed: 8);
        Assert.Equal(val.Image(0).ToArray().Concat(val.Image(14).ToArray()), again.Image(0).ToArray().Concat(again.Image(14).ToArray()));
        var (_, other) = d.Split(0.3, seed: 9);
        Assert.NotEqual(Enumerable.Range(0, 15).Select(i => val.Image(i)[0]), Enumerable.Range(0, 15).Select(i => other.Image(i)[0]));
        Assert.Equal(Enumerable.Range(0, 15).Select(i => val.Image(i)[0]).Order(), Enumerable.Range(0, 15).Select(i => val.Image(i)[0]));

        foreach (double f in new[] { 0, 1, -0.1, 1.5, double.NaN })
            Assert.Equal("validationFraction", Assert.ThrowsAny<ArgumentException>(() => d.Split(f, 1)).ParamName);
        var three = d.Take(3);
        Assert.Contains("validation set empty", Assert.Throws<ArgumentException>(() => three.Split(0.1, 1)).Message);
        Assert.Contains("training set empty", Assert.Throws<ArgumentException>(() => three.Split(0.9, 1)).Message);
        Assert.Equal((2, 1), (three.Split(0.34, 1).Train.Count, three.Split(0.34, 1).Validation.Count));
    }

    /// <summary>IProgress that records on the calling thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress(List<int> values) : IProgress<int>
    {
        public void Report(int value) => values.Add(value);
    }
}
