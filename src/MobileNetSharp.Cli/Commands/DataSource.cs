using MobileNetSharp.Training.Data;

namespace MobileNetSharp.Cli.Commands;

/// <summary>Turns a --data argument into a labelled image set: "fashion-mnist" (Debian's dataset-fashion-mnist) or a folder of class folders.</summary>
internal static class DataSource
{
    public const string FashionMnistName = "fashion-mnist";
    public const string Help = "fashion-mnist (the Debian package dataset-fashion-mnist) or a folder with one sub-folder of images per class";

    /// <summary>Fashion-MNIST's per-channel mean and std of training pixels in [0, 1] (computed over the 60,000 training images).</summary>
    public static readonly (float Mean, float Std) FashionMnistStatistics = (0.2860f, 0.3530f);

    /// <param name="train">Fashion-MNIST: the 60,000 training images, else the 10,000 test images. A folder is the same either way.</param>
    /// <param name="channels">Folder images are converted to this many channels (1 grey, 3 RGB) when decoded.</param>
    /// <param name="resolution">Folder images are resized to this square size when decoded.</param>
    public static ImageDataset Load(string data, bool train, int channels, int resolution, int? limit = null, bool skipBad = false)
    {
        ImageDataset set;
        if (data == FashionMnistName)
        {
            if (!FashionMnist.IsInstalled())
                throw new FileNotFoundException($"Fashion-MNIST is not installed in {FashionMnist.DefaultDirectory}: apt-get install dataset-fashion-mnist.");
            set = FashionMnist.Load(train);
        }
        else if (Directory.Exists(data))
            set = Imaging.ImageFolder.Load(data, channels, resolution, skipBad: skipBad,
                onBad: (path, reason) => Console.Error.WriteLine($"mnet: skipped {path}: {reason}"));
        else throw new DirectoryNotFoundException($"--data '{data}' is neither '{FashionMnistName}' nor an existing folder.");
        if (limit is { } n)
        {
            if (n < 1) throw new ArgumentException($"--limit must be >= 1, got {n}.");
            if (n < set.Count) set = set.Take(n);
        }
        return set;
    }

    /// <summary>
    /// A seeded random sample of at most <paramref name="count"/> images (the same on every machine): from Fashion-MNIST, or from
    /// a folder of class folders (labelled) or of images at any depth (one class), decoding only the images chosen.
    /// </summary>
    /// <param name="skipBad">Images that do not decode are reported on stderr and replaced by the next ones in the sample's order.</param>
    public static ImageDataset Sample(string data, bool train, int channels, int resolution, int count, int seed = 0, bool skipBad = false)
    {
        if (data != FashionMnistName)
        {
            if (!Directory.Exists(data)) throw new DirectoryNotFoundException($"'{data}' is neither '{FashionMnistName}' nor an existing folder.");
            return Imaging.ImageFolder.Sample(data, channels, resolution, count, seed, skipBad,
                onBad: (path, reason) => Console.Error.WriteLine($"mnet: skipped {path}: {reason}"));
        }
        var set = Load(data, train, channels, resolution);
        var order = Shuffle.Permutation(set.Count, seed);
        return set.Subset(order.AsSpan(0, Math.Min(count, set.Count)));
    }
}
