using System.IO.Compression;
using MobileNetSharp.Kernels;
using MobileNetSharp.Training.Data;

namespace MobileNetSharp.Tests.Training;

/// <summary>The IDX reader, the in-memory dataset, batches, augmentation and prefetching.</summary>
public sealed class DataTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mnet-data-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>n images of h x w whose pixel (i, y, x) is (i * 7 + y * w + x) mod 256, labels i mod classes.</summary>
    private (string Images, string Labels) WriteSynthetic(int n, int h, int w, bool gzip, int classes = 10, int? labelCount = null)
    {
        var pixels = new byte[n * h * w];
        for (int i = 0; i < n; i++)
            for (int p = 0; p < h * w; p++) pixels[i * h * w + p] = (byte)((i * 7 + p) % 256);
        int nl = labelCount ?? n;
        var labels = Enumerable.Range(0, nl).Select(i => (byte)(i % classes)).ToArray();
        string ext = gzip ? ".gz" : "";
        string images = Path.Combine(_dir, $"img{n}{ext}"), labelPath = Path.Combine(_dir, $"lbl{nl}{ext}");
        using (var f = File.Create(images)) Idx.Write(f, new IdxArray([n, h, w], pixels), gzip);
        using (var f = File.Create(labelPath)) Idx.Write(f, new IdxArray([nl], labels), gzip);
        return (images, labelPath);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ReadsWhatWasWritten(bool gzip)
    {
        var (images, labels) = WriteSynthetic(5, 4, 3, gzip);
        var d = ImageDataset.FromIdx(images, labels);
        Assert.Equal((5, 1, 4, 3), (d.Count, d.Channels, d.Height, d.Width));
        Assert.Equal([0, 1, 2, 3, 4], d.Labels.ToArray().Select(b => (int)b));
        Assert.Equal((byte)((2 * 7 + 5) % 256), d.Image(2)[5]);
        Assert.Equal(Enumerable.Range(0, 12).Select(p => (byte)((4 * 7 + p) % 256)), d.Image(4).ToArray());
    }

    private static void AssertBad(string path, string expectedFragment)
    {
        var e = Assert.Throws<InvalidDataException>(() => Idx.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(expectedFragment, e.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TruncatedAndCorruptFilesGiveClearErrors(bool gzip)
    {
        var raw = new MemoryStream();
        Idx.Write(raw, new IdxArray([6, 4, 4], new byte[96]));
        byte[] good = raw.ToArray();

        string Save(string name, byte[] bytes)
        {
            string p = Path.Combine(_dir, name + (gzip ? ".gz" : ""));
            if (!gzip) { File.WriteAllBytes(p, bytes); return p; }
            using var f = File.Create(p);
            using var z = new GZipStream(f, CompressionLevel.Fastest);
            z.Write(bytes);
            return p;
        }

        AssertBad(Save("short-data", good[..^5]), "truncated IDX data");
        AssertBad(Save("short-header", good[..9]), "truncated IDX header");
        AssertBad(Save("tiny", good[..2]), "shorter than its 4-byte magic");
        AssertBad(Save("trailing", [.. good, 1, 2]), "trailing bytes");
        AssertBad(Save("magic", [1, 2, .. good[2..]]), "not an IDX file");
        AssertBad(Save("float", [0, 0, 0x0D, .. good[3..]]), "element type 0x0d");
        AssertBad(Save("rank", [0, 0, 8, 9, .. good[4..]]), "rank 9");
        // A header that claims ~4 GB in 3 dimensions.
        AssertBad(Save("huge", [0, 0, 8, 3, 0, 0x10, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x10, 0]), "exceeds");
        AssertBad(Save("zero", [0, 0, 8, 1, 0, 0, 0, 0]), "outside 1..");
        AssertBad(Save("empty", []), "shorter than its 4-byte magic");
    }

    [Fact]
    public void CorruptGzipIsAClearError()
    {
        var (images, _) = WriteSynthetic(50, 8, 8, gzip: true);
        var bytes = File.ReadAllBytes(images);
        for (int i = 12; i < bytes.Length - 8; i++) bytes[i] ^= 0x5A; // the deflate stream, not the gzip header
        File.WriteAllBytes(images, bytes);
        var e = Assert.ThrowsAny<InvalidDataException>(() => Idx.Read(images));
        Assert.Contains(images, e.Message);
    }

    /// <summary>A seeded mutator over small IDX files, plain and gzipped: every mutant loads or gives InvalidDataException.</summary>
    [Fact]
    public void MutatedFilesLoadOrFailCleanly()
    {
        var rng = new Random(11);
        foreach (bool gzip in new[] { false, true })
        {
            var ms = new MemoryStream();
            var pixels = new byte[3 * 5 * 4];
            rng.NextBytes(pixels);
            Idx.Write(ms, new IdxArray([3, 5, 4], pixels), gzip);
            byte[] good = ms.ToArray();
            int loaded = 0, refused = 0;
            for (int m = 0; m < 3000; m++)
            {
                var bytes = (byte[])good.Clone();
                switch (rng.Next(3))
                {
                    case 0: for (int k = rng.Next(1, 4); k > 0; k--) bytes[rng.Next(bytes.Length)] ^= (byte)(1 << rng.Next(8)); break;
                    case 1: bytes = bytes[..rng.Next(bytes.Length)]; break;
                    default: bytes[rng.Next(Math.Min(16, bytes.Length))] = (byte)rng.Next(256); break;
                }
                try { Idx.Read(new MemoryStream(bytes), "mutant"); loaded++; }
                catch (InvalidDataException e) { Assert.Contains("mutant", e.Message); refused++; }
            }
            Assert.True(refused > 1000, $"gzip={gzip}: only {refused} of 3000 mutants refused");
            Assert.True(loaded > 0, $"gzip={gzip}: no mutant loaded (payload bit flips should)");
        }
    }

    [Fact]
    public void MismatchedCountsAndLabelsAreRefused()
    {
        var (images, labels) = WriteSynthetic(5, 4, 4, gzip: false, labelCount: 4);
        var e = Assert.Throws<InvalidDataException>(() => ImageDataset.FromIdx(images, labels));
        Assert.Contains("5 images", e.Message);
        Assert.Contains("4 labels", e.Message);
        var (im2, lb2) = WriteSynthetic(12, 2, 2, gzip: false, classes: 12);
        e = Assert.Throws<InvalidDataException>(() => ImageDataset.FromIdx(im2, lb2, classes: 10));
        Assert.Contains("label 10", e.Message);
        // Images given as labels: wrong rank.
        Assert.Throws<InvalidDataException>(() => ImageDataset.FromIdx(images, images));
    }

    [Fact]
    public void RealFashionMnistHeaders()
    {
        Assert.True(FashionMnist.IsInstalled(), $"Fashion-MNIST not found under {FashionMnist.DefaultDirectory}; install dataset-fashion-mnist (.ci/run does).");
        var test = FashionMnist.Load(train: false);
        Assert.Equal((10_000, 1, 28, 28, 10), (test.Count, test.Channels, test.Height, test.Width, test.Classes));
        var counts = new int[10];
        foreach (byte l in test.Labels) counts[l]++;
        Assert.All(counts, c => Assert.Equal(1000, c)); // the test set is balanced
        var train = FashionMnist.Load(train: true);
        Assert.Equal((60_000, 28, 28), (train.Count, train.Height, train.Width));
        Assert.Equal("Ankle boot", train.ClassNames[9]);
    }

    private static ImageDataset Synthetic(int n, int h = 6, int w = 6)
    {
        var pixels = new byte[n * h * w];
        new Random(5).NextBytes(pixels);
        return new ImageDataset(pixels, Enumerable.Range(0, n).Select(i => (byte)(i % 10)).ToArray(), 1, h, w, 10);
    }

    [Fact]
    public void ShufflingIsDeterministicBySeedAndEpoch()
    {
        var a = Shuffle.Permutation(1000, seed: 3, epoch: 1);
        Assert.Equal(a, Shuffle.Permutation(1000, seed: 3, epoch: 1));
        Assert.NotEqual(a, Shuffle.Permutation(1000, seed: 3, epoch: 2));
        Assert.NotEqual(a, Shuffle.Permutation(1000, seed: 4, epoch: 1));
        Assert.Equal(Enumerable.Range(0, 1000), a.Order());
        // Pinned values: the permutation must not change between platforms or .NET versions. These came from a
        // separate Python transcription of SplitMix64 and the Fisher-Yates loop, not from this code.
        Assert.Equal([4, 9, 1, 0, 8, 5, 2, 3, 6, 7], Shuffle.Permutation(10, seed: 0));
    }

    [Fact]
    public void SplitIsDisjointCompleteAndSeeded()
    {
        var d = Synthetic(100);
        var (train, val) = d.Split(0.2, seed: 1);
        Assert.Equal((80, 20), (train.Count, val.Count));
        var all = new HashSet<string>();
        foreach (var part in new[] { train, val })
            for (int i = 0; i < part.Count; i++) Assert.True(all.Add(Convert.ToHexString(part.Image(i))));
        Assert.Equal(100, all.Count);
        var (_, val2) = d.Split(0.2, seed: 1);
        Assert.Equal(val.Labels.ToArray(), val2.Labels.ToArray());
    }

    [Fact]
    public void BatchesScaleToUnitRangeInNchwAndCoverTheEpoch()
    {
        var d = Synthetic(10, 3, 3);
        var src = new BatchSource(d, new BatchOptions(4, Shuffle: false));
        var batches = src.Epoch(0).ToList();
        Assert.Equal([4, 4, 2], batches.Select(b => b.Labels.Length));
        Assert.Equal([2, 1, 3, 3], batches[2].Images.Shape);
        Assert.Equal(d.Image(9)[4] / 255f, batches[2].Images.Floats[9 + 4]);
        Assert.Equal(d.Label(5), batches[1].Labels[1]);
        var shuffled = new BatchSource(d, new BatchOptions(4, Seed: 2, DropLast: true));
        Assert.Equal(2, shuffled.BatchesPerEpoch);
        var order = shuffled.Order(0);
        Assert.Equal(d.Label(order[6]), shuffled.Make(0, 1).Labels[2]);
    }

    [Fact]
    public void ChannelReplicationAndResize()
    {
        var d = Synthetic(3, 4, 4);
        var rgb = new BatchSource(d, new BatchOptions(3, Channels: 3, Shuffle: false)).Make(0, 0).Images;
        Assert.Equal([3, 3, 4, 4], rgb.Shape);
        for (int c = 0; c < 3; c++)
            Assert.Equal(rgb.Floats.AsSpan(2 * 48, 16).ToArray(), rgb.Floats.AsSpan(2 * 48 + c * 16, 16).ToArray());

        // Nearest upsampling by 2 repeats each pixel in a 2x2 block; linear keeps the mean of a constant image.
        var up = new BatchSource(d, new BatchOptions(3, Resolution: 8, Resize: ResizeMode.Nearest, Shuffle: false)).Make(0, 0).Images;
        Assert.Equal([3, 1, 8, 8], up.Shape);
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 8; x++)
                Assert.Equal(d.Image(1)[(y / 2) * 4 + x / 2] / 255f, up.Floats[64 + y * 8 + x]);
        var flat = new ImageDataset(Enumerable.Repeat((byte)51, 16).ToArray(), [0], 1, 4, 4, 10);
        var lin = new BatchSource(flat, new BatchOptions(1, Resolution: 7, Channels: 3)).Make(0, 0).Images;
        Assert.All(lin.Floats, v => Assert.Equal(0.2f, v, 1e-6f));
        Assert.Throws<ArgumentException>(() => new BatchSource(new ImageDataset(new byte[2 * 16], [0], 2, 4, 4, 10), new BatchOptions(1, Channels: 3)));
    }

    [Fact]
    public void AugmentationIsSeededAndDoesWhatItSays()
    {
        var d = Synthetic(64, 8, 8);
        var opts = new BatchOptions(16, Seed: 9, Augment: Augmentation.Standard);
        var a = new BatchSource(d, opts).Make(1, 2).Images.Floats;
        var b = new BatchSource(d, opts).Make(1, 2).Images.Floats;
        Assert.Equal(a, b);
        Assert.NotEqual(a, new BatchSource(d, opts with { Seed = 10 }).Make(1, 2).Images.Floats);

        // Each transform alone, against its definition.
        var img = Enumerable.Range(0, 2 * 3 * 4).Select(i => (float)i + 1).ToArray(); // [2, 3, 4]
        var scratch = new float[img.Length];
        var flipped = (float[])img.Clone();
        var rng = new SplitMix64(1);
        new Augmentation(FlipProbability: 1).Apply(flipped, 2, 3, 4, ref rng, scratch);
        Assert.Equal([4f, 3, 2, 1], flipped[..4]);
        Assert.Equal([24f, 23, 22, 21], flipped[20..]);

        var shifted = new List<float[]>();
        for (ulong s = 0; s < 40; s++)
        {
            var x = (float[])img.Clone();
            rng = new SplitMix64(s);
            new Augmentation(CropPadding: 1).Apply(x, 2, 3, 4, ref rng, scratch);
            shifted.Add(x);
            // Every output pixel is either 0 (padding) or the input pixel shifted by the same (dy, dx) in both channels.
            var (dy, dx) = FindShift(img, x, 3, 4);
            Assert.InRange(dy, -1, 1);
            Assert.InRange(dx, -1, 1);
        }
        Assert.True(shifted.Select(s => string.Join(",", s)).Distinct().Count() > 4);

        int erasedImages = 0;
        for (ulong s = 0; s < 50; s++)
        {
            var x = Enumerable.Repeat(1f, 1 * 10 * 10).ToArray();
            rng = new SplitMix64(s);
            new Augmentation(EraseProbability: 1).Apply(x, 1, 10, 10, ref rng, new float[100]);
            int zeros = x.Count(v => v == 0);
            if (zeros == 0) continue;
            erasedImages++;
            Assert.InRange(zeros, 1, 49); // at most a third of the area, rounded per side
            // The zeros form one rectangle.
            var rows = Enumerable.Range(0, 10).Where(y => Enumerable.Range(0, 10).Any(c => x[y * 10 + c] == 0)).ToArray();
            var cols = Enumerable.Range(0, 10).Where(c => rows.Any(y => x[y * 10 + c] == 0)).ToArray();
            Assert.Equal(rows.Length * cols.Length, zeros);
        }
        Assert.True(erasedImages > 40);
    }

    private static (int Dy, int Dx) FindShift(float[] input, float[] output, int h, int w)
    {
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++)
            {
                bool ok = true;
                for (int c = 0; c < 2 && ok; c++)
                    for (int y = 0; y < h && ok; y++)
                        for (int x = 0; x < w && ok; x++)
                        {
                            int sy = y + dy, sx = x + dx;
                            float want = sy >= 0 && sy < h && sx >= 0 && sx < w ? input[c * h * w + sy * w + sx] : 0f;
                            ok = output[c * h * w + y * w + x] == want;
                        }
                if (ok) return (dy, dx);
            }
        return (99, 99);
    }

    [Fact]
    public void PrefetchYieldsTheSameBatchesInOrder()
    {
        var d = Synthetic(50, 5, 5);
        var src = new BatchSource(d, new BatchOptions(8, Resolution: 7, Channels: 3, Seed: 4, Augment: Augmentation.Standard));
        var direct = src.Epoch(3).ToList();
        using var prefetch = src.Prefetch(3, depth: 2);
        var fetched = prefetch.ToList();
        Assert.Equal(direct.Count, fetched.Count);
        for (int i = 0; i < direct.Count; i++)
        {
            Assert.Equal(i, fetched[i].Index);
            Assert.Equal(direct[i].Labels, fetched[i].Labels);
            Assert.Equal(direct[i].Images.Floats, fetched[i].Images.Floats);
        }
    }

    [Fact]
    public void PrefetchStaysBoundedAndSurfacesErrors()
    {
        int produced = 0;
        using (var p = new Prefetcher<int>(100, i => { Interlocked.Increment(ref produced); return i; }, depth: 3))
        {
            using var e = p.GetEnumerator();
            Assert.True(e.MoveNext());
            Thread.Sleep(100);
            // One handed out, at most 3 queued, at most one more being added.
            Assert.InRange(Volatile.Read(ref produced), 1, 5);
        }
        var failing = new Prefetcher<int>(10, i => i == 4 ? throw new InvalidDataException("bad item 4") : i);
        var seen = new List<int>();
        var ex = Assert.Throws<InvalidDataException>(() => { foreach (int i in failing) seen.Add(i); });
        Assert.Equal("bad item 4", ex.Message);
        Assert.Equal([0, 1, 2, 3], seen);
        failing.Dispose();

        using var cts = new CancellationTokenSource();
        using var slow = new Prefetcher<int>(1000, i => i, depth: 1, cts.Token);
        var got = new List<int>();
        Assert.ThrowsAny<OperationCanceledException>(() =>
        {
            foreach (int i in slow) { got.Add(i); if (i == 5) cts.Cancel(); }
        });
        Assert.Equal(Enumerable.Range(0, 6), got);
    }
}
