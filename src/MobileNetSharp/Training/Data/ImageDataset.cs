namespace MobileNetSharp.Training.Data;

/// <summary>
/// A labelled image set held in memory as bytes: <see cref="Count"/> images of Channels x Height x Width
/// (CHW, one byte per value, as IDX and decoded images store them) and one label per image in
/// 0..<see cref="Classes"/>-1. Immutable; subsets copy.
/// </summary>
public sealed class ImageDataset
{
    private readonly byte[] _pixels;
    private readonly byte[] _labels;

    public ImageDataset(byte[] pixels, byte[] labels, int channels, int height, int width, int classes, IReadOnlyList<string>? classNames = null)
    {
        if (channels < 1 || height < 1 || width < 1) throw new ArgumentException($"Image size {channels}x{height}x{width} must be positive.");
        if (classes < 1 || classes > 256) throw new ArgumentException($"classes must be 1..256, got {classes}.");
        long size = (long)channels * height * width;
        if (labels.Length == 0 || pixels.Length != size * labels.Length)
            throw new ArgumentException($"{pixels.Length} pixel bytes do not hold {labels.Length} images of {channels}x{height}x{width}.");
        for (int i = 0; i < labels.Length; i++)
            if (labels[i] >= classes) throw new ArgumentException($"label {labels[i]} of image {i} is outside 0..{classes - 1}.");
        if (classNames is not null && classNames.Count != classes) throw new ArgumentException($"{classNames.Count} class names for {classes} classes.");
        (_pixels, _labels, Channels, Height, Width, Classes) = (pixels, labels, channels, height, width, classes);
        ClassNames = classNames ?? Enumerable.Range(0, classes).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
    }

    public int Count => _labels.Length;
    public int Channels { get; }
    public int Height { get; }
    public int Width { get; }
    public int Classes { get; }
    public IReadOnlyList<string> ClassNames { get; }
    public int ImageSize => Channels * Height * Width;

    public ReadOnlySpan<byte> Image(int index) => _pixels.AsSpan(checked(index * ImageSize), ImageSize);
    public int Label(int index) => _labels[index];
    public ReadOnlySpan<byte> Labels => _labels;

    /// <summary>The images at <paramref name="indices"/>, in that order (copied).</summary>
    public ImageDataset Subset(ReadOnlySpan<int> indices)
    {
        if (indices.IsEmpty) throw new ArgumentException("A subset needs at least one image.");
        int size = ImageSize;
        var pixels = new byte[(long)indices.Length * size];
        var labels = new byte[indices.Length];
        for (int i = 0; i < indices.Length; i++)
        {
            int j = indices[i];
            if ((uint)j >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(indices), $"index {j} is outside 0..{Count - 1}.");
            Image(j).CopyTo(pixels.AsSpan(i * size, size));
            labels[i] = _labels[j];
        }
        return new ImageDataset(pixels, labels, Channels, Height, Width, Classes, ClassNames);
    }

    /// <summary>The same images with label l renamed to <paramref name="map"/>[l], under <paramref name="classNames"/> (a model's own label order).</summary>
    public ImageDataset Relabel(IReadOnlyList<int> map, IReadOnlyList<string> classNames)
    {
        if (map.Count < Classes) throw new ArgumentException($"the label map has {map.Count} entries for {Classes} classes.");
        if (classNames.Count > 256 || map.Any(m => m < 0 || m >= classNames.Count))
            throw new ArgumentException($"label map entries must be in 0..{Math.Min(classNames.Count, 256) - 1}.");
        var labels = new byte[_labels.Length];
        for (int i = 0; i < labels.Length; i++) labels[i] = (byte)map[_labels[i]];
        return new ImageDataset(_pixels, labels, Channels, Height, Width, classNames.Count, classNames);
    }

    /// <summary>The first <paramref name="count"/> images (all when there are fewer): `--limit N`.</summary>
    public ImageDataset Take(int count) =>
        count >= Count ? this : Subset(Enumerable.Range(0, Math.Max(1, count)).ToArray());

    /// <summary>
    /// Splits off a validation set: a seeded permutation (<see cref="Shuffle.Permutation"/>, the same on every
    /// platform), the first round(fraction · Count) images of it for validation and the rest for training, each
    /// part then in the dataset's order. Plain, not stratified: class proportions match only in expectation, which
    /// is close for the sizes a validation set needs. A fraction outside (0, 1), or one that rounds to an empty
    /// part, is an <see cref="ArgumentException"/>.
    /// </summary>
    public (ImageDataset Train, ImageDataset Validation) Split(double validationFraction, int seed)
    {
        if (!(validationFraction > 0 && validationFraction < 1))
            throw new ArgumentOutOfRangeException(nameof(validationFraction), validationFraction, "The validation fraction must be in (0, 1).");
        int nVal = (int)Math.Round(validationFraction * Count);
        if (nVal < 1 || nVal > Count - 1)
            throw new ArgumentException($"A validation fraction of {validationFraction} of {Count} images leaves the {(nVal < 1 ? "validation" : "training")} set empty.",
                nameof(validationFraction));
        var order = Shuffle.Permutation(Count, seed);
        var val = order.AsSpan(0, nVal).ToArray();
        var train = order.AsSpan(nVal).ToArray();
        Array.Sort(val);
        Array.Sort(train);
        return (Subset(train), Subset(val));
    }

    /// <summary>Pairs an image file with a label file (IDX, gzipped or not), as Fashion-MNIST and MNIST ship.</summary>
    public static ImageDataset FromIdx(string imagesPath, string labelsPath, int classes = 10, IReadOnlyList<string>? classNames = null)
    {
        var images = Idx.Read(imagesPath);
        var labels = Idx.Read(labelsPath);
        if (images.Dims.Length != 3) throw new InvalidDataException($"{imagesPath}: expected images [N, H, W], got rank {images.Dims.Length}.");
        if (labels.Dims.Length != 1) throw new InvalidDataException($"{labelsPath}: expected labels [N], got rank {labels.Dims.Length}.");
        if (images.Dims[0] != labels.Dims[0])
            throw new InvalidDataException($"{imagesPath} holds {images.Dims[0]} images but {labelsPath} holds {labels.Dims[0]} labels.");
        for (int i = 0; i < labels.Data.Length; i++)
            if (labels.Data[i] >= classes) throw new InvalidDataException($"{labelsPath}: label {labels.Data[i]} of item {i} is outside 0..{classes - 1}.");
        return new ImageDataset(images.Data, labels.Data, 1, images.Dims[1], images.Dims[2], classes, classNames);
    }
}

/// <summary>Fashion-MNIST (Zalando; Debian package dataset-fashion-mnist): 60,000 + 10,000 grey 28x28 images, 10 classes.</summary>
public static class FashionMnist
{
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";

    public static readonly IReadOnlyList<string> ClassNames =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>True when the training and test files are present in <paramref name="directory"/>.</summary>
    public static bool IsInstalled(string directory = DefaultDirectory) =>
        new[] { "train", "t10k" }.All(p => File.Exists(FilePath(directory, p, "images-idx3")) && File.Exists(FilePath(directory, p, "labels-idx1")));

    /// <summary>Loads the training set (60,000 images) or the test set (10,000).</summary>
    public static ImageDataset Load(bool train, string directory = DefaultDirectory)
    {
        string part = train ? "train" : "t10k";
        string images = FilePath(directory, part, "images-idx3"), labels = FilePath(directory, part, "labels-idx1");
        if (!File.Exists(images) || !File.Exists(labels))
            throw new FileNotFoundException($"Fashion-MNIST not found: {images} (install it with `apt-get install dataset-fashion-mnist`, or give its folder).");
        return ImageDataset.FromIdx(images, labels, 10, ClassNames);
    }

    /// <summary>The gzipped file, or the plain one if only that exists.</summary>
    private static string FilePath(string directory, string part, string kind)
    {
        string gz = Path.Combine(directory, $"{part}-{kind}-ubyte.gz"), plain = Path.Combine(directory, $"{part}-{kind}-ubyte");
        return File.Exists(gz) || !File.Exists(plain) ? gz : plain;
    }
}
