using MobileNetSharp.Training.Data;

namespace MobileNetSharp.Imaging;

/// <summary>
/// Loads a labelled image set laid out as one sub-folder per class (torchvision's ImageFolder layout):
/// <code>
/// root/cat/0001.jpg, root/cat/0002.png, …
/// root/dog/a.webp, …
/// </code>
/// <list type="bullet">
/// <item>Classes are the sub-folders of root, sorted ordinally (so the label numbering is the same on every machine and
/// culture); their names become <see cref="ImageDataset.ClassNames"/>. Sub-folders whose names start with '.' are ignored.
/// At most 256 classes (labels are bytes).</item>
/// <item>Images are the files directly inside each class folder with the extension .png, .jpg, .jpeg, .bmp, .gif or .webp
/// (any case), sorted ordinally; other files, and hidden ones (names starting with '.', such as macOS's ._x.jpg), are ignored. Dataset order is class by class, file by file.</item>
/// <item>Each image is decoded with SkiaSharp (a GIF's first frame; transparency composited on black), its header checked
/// against <see cref="RgbImage.MaxPixels"/> before decoding, then scaled so its shorter side is <c>resolution</c> and the
/// centred square kept (torchvision's Resize + CenterCrop). Cropping rather than squashing keeps the shapes the network
/// sees undistorted, whatever the photos' aspect ratios; the cost is the edges of the longer side.</item>
/// <item>Channels: 3 keeps RGB; 1 converts to grey as ITU-R BT.601 luma, round(0.299 R + 0.587 G + 0.114 B).
/// Stored as bytes [count, C, H, W], as <see cref="ImageDataset"/> holds them.</item>
/// </list>
/// Errors name the path: a missing root is a <see cref="DirectoryNotFoundException"/>; fewer than two classes, a class
/// folder with no images, an image that does not decode (including a truncated one) or is too large are
/// <see cref="InvalidDataException"/>. With <c>skipBad</c>, an image that does not decode or is too large is instead
/// passed to <c>onBad(path, reason)</c> and left out (a class left with no images is still an error).
/// </summary>
public static class ImageFolder
{
    public static readonly IReadOnlyList<string> Extensions = [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"];

    /// <param name="progress">Receives the number of files processed so far after each file (bad ones included).</param>
    public static ImageDataset Load(string root, int channels, int resolution, IProgress<int>? progress = null, bool skipBad = false,
        Action<string, string>? onBad = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        if (channels is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(channels), channels, "channels must be 1 (grey) or 3 (RGB).");
        if (resolution < 1 || resolution > 4096) throw new ArgumentOutOfRangeException(nameof(resolution), resolution, "resolution must be 1..4096.");
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"Image folder not found: {root}");

        var (classDirs, files) = ListClasses(root);
        int size = channels * resolution * resolution;
        if ((long)files.Count * size > Array.MaxLength)
            throw new InvalidDataException($"{root}: {files.Count} images of {channels}x{resolution}x{resolution} exceed the {Array.MaxLength:N0} bytes one dataset can hold.");
        var pixels = new byte[(long)files.Count * size];
        var labels = new List<byte>(files.Count);
        var perClass = new int[classDirs.Length];
        int done = 0;
        foreach (var (path, label) in files)
        {
            try
            {
                Decode(path, channels, resolution, pixels.AsSpan(labels.Count * size, size));
                labels.Add(label);
                perClass[label]++;
            }
            catch (InvalidDataException e) when (skipBad)
            {
                onBad?.Invoke(path, e.Message);
            }
            progress?.Report(++done);
        }
        for (int c = 0; c < classDirs.Length; c++)
            if (perClass[c] == 0) throw new InvalidDataException($"{classDirs[c]}: none of the class folder's images decoded.");
        if (labels.Count < files.Count) Array.Resize(ref pixels, labels.Count * size);
        return new ImageDataset(pixels, labels.ToArray(), channels, resolution, resolution, classDirs.Length,
            classDirs.Select(d => Path.GetFileName(d)).ToArray());
    }

    /// <summary>
    /// A seeded random sample of at most <paramref name="count"/> images from a folder in either layout, decoding only the
    /// images chosen (a calibration or evaluation sample of a large photo folder costs <paramref name="count"/> images of
    /// memory, not the folder's):
    /// <list type="bullet">
    /// <item>class folders (root holds no images itself and at least 2 sub-folders that do): labelled as <see cref="Load"/> labels them;</item>
    /// <item>anything else: every image in root and its sub-folders at any depth (hidden names skipped, ordinal order of
    /// relative paths), one class named "images", label 0.</item>
    /// </list>
    /// The sample is the first <paramref name="count"/> of <see cref="Shuffle.Permutation"/>(files, seed), so it is the same on
    /// every machine. Images are decoded, cropped and converted as in <see cref="Load"/>.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">root does not exist.</exception>
    /// <exception cref="InvalidDataException">The folder holds no images; an image does not decode (unless <paramref name="skipBad"/>,
    /// when it is passed to <paramref name="onBad"/> and the next one in the permutation is taken); or none decoded.</exception>
    public static ImageDataset Sample(string root, int channels, int resolution, int count, int seed = 0, bool skipBad = false,
        Action<string, string>? onBad = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        if (channels is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(channels), channels, "channels must be 1 (grey) or 3 (RGB).");
        if (resolution < 1 || resolution > 4096) throw new ArgumentOutOfRangeException(nameof(resolution), resolution, "resolution must be 1..4096.");
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "count must be >= 1.");
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"Image folder not found: {root}");

        string[] classNames;
        List<(string Path, byte Label)> files;
        if (IsClassLayout(root))
        {
            var (dirs, listed) = ListClasses(root);
            (classNames, files) = (dirs.Select(d => Path.GetFileName(d)).ToArray(), listed);
        }
        else
        {
            files = Directory.EnumerateFiles(root, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.Hidden | FileAttributes.System })
                .Where(f => !Path.GetRelativePath(root, f).Split(Path.DirectorySeparatorChar).Any(part => part.StartsWith('.')) && IsImage(f))
                .Order(StringComparer.Ordinal)
                .Select(f => (f, (byte)0))
                .ToList();
            if (files.Count == 0) throw new InvalidDataException($"{root}: holds no images ({string.Join(", ", Extensions)}), in it or its sub-folders.");
            classNames = ["images"];
        }

        int size = channels * resolution * resolution, take = Math.Min(count, files.Count);
        if ((long)take * size > Array.MaxLength)
            throw new InvalidDataException($"{root}: {take} images of {channels}x{resolution}x{resolution} exceed the {Array.MaxLength:N0} bytes one dataset can hold.");
        var pixels = new byte[(long)take * size];
        var labels = new List<byte>(take);
        foreach (int i in Shuffle.Permutation(files.Count, seed))
        {
            if (labels.Count == take) break;
            try
            {
                Decode(files[i].Path, channels, resolution, pixels.AsSpan(labels.Count * size, size));
                labels.Add(files[i].Label);
            }
            catch (InvalidDataException e) when (skipBad)
            {
                onBad?.Invoke(files[i].Path, e.Message);
            }
        }
        if (labels.Count == 0) throw new InvalidDataException($"{root}: none of its {files.Count} images decoded.");
        if (labels.Count < take) Array.Resize(ref pixels, labels.Count * size);
        return new ImageDataset(pixels, labels.ToArray(), channels, resolution, resolution, classNames.Length, classNames);
    }

    /// <summary>True when root is laid out as class folders: no images of its own, and at least 2 visible sub-folders holding images.</summary>
    public static bool IsClassLayout(string root) =>
        !Directory.EnumerateFiles(root).Any(f => !Path.GetFileName(f).StartsWith('.') && IsImage(f))
        && Directory.EnumerateDirectories(root).Count(d => !Path.GetFileName(d).StartsWith('.') && Directory.EnumerateFiles(d).Any(IsImage)) >= 2;

    private static bool IsImage(string path) => Extensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    /// <summary>The class folders of root (ordinal order) and their image files, labelled by folder; errors as <see cref="Load"/> documents.</summary>
    private static (string[] ClassDirs, List<(string Path, byte Label)> Files) ListClasses(string root)
    {
        var classDirs = Directory.GetDirectories(root)
            .Where(d => !Path.GetFileName(d).StartsWith('.'))
            .Order(StringComparer.Ordinal)
            .ToArray();
        if (classDirs.Length < 2)
            throw new InvalidDataException($"{root}: an image folder needs at least 2 class sub-folders, found {classDirs.Length}"
                + (classDirs.Length == 1 ? $" ({Path.GetFileName(classDirs[0])})." : "."));
        if (classDirs.Length > 256) throw new InvalidDataException($"{root}: {classDirs.Length} class sub-folders; at most 256 are supported.");

        var files = new List<(string Path, byte Label)>();
        for (int c = 0; c < classDirs.Length; c++)
        {
            var images = Directory.GetFiles(classDirs[c])
                .Where(f => !Path.GetFileName(f).StartsWith('.') && IsImage(f))
                .Order(StringComparer.Ordinal)
                .ToArray();
            if (images.Length == 0)
                throw new InvalidDataException($"{classDirs[c]}: class folder holds no images ({string.Join(", ", Extensions)}).");
            files.AddRange(images.Select(f => (f, (byte)c)));
        }
        return (classDirs, files);
    }

    /// <summary>
    /// One image file as the dataset holds it: decoded, scaled so the shorter side is <paramref name="resolution"/>,
    /// center-cropped, converted to 1 (grey, BT.601 luma) or 3 (RGB) channels: C x R x R bytes, planar.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not a decodable image, is truncated or too large (the path is named).</exception>
    public static byte[] LoadImage(string path, int channels, int resolution)
    {
        if (channels is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(channels), channels, "channels must be 1 (grey) or 3 (RGB).");
        if (resolution < 1 || resolution > 4096) throw new ArgumentOutOfRangeException(nameof(resolution), resolution, "resolution must be 1..4096.");
        var dst = new byte[channels * resolution * resolution];
        Decode(path, channels, resolution, dst);
        return dst;
    }

    /// <summary>Decodes, crops, scales and converts one file into <paramref name="dst"/> (C x R x R bytes).</summary>
    private static void Decode(string path, int channels, int resolution, Span<byte> dst)
    {
        RgbImage image;
        try
        {
            using var bitmap = RgbImage.DecodeBitmap(path, allowIncomplete: false);
            using var square = RgbImage.ResizeCenterCrop(bitmap, resolution);
            image = RgbImage.FromBitmap(square);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"{path}: cannot be read ({e.Message}).", e);
        }
        var rgb = image.Pixels;
        int plane = resolution * resolution;
        if (channels == 3)
            for (int p = 0; p < plane; p++)
            {
                dst[p] = rgb[3 * p];
                dst[plane + p] = rgb[3 * p + 1];
                dst[2 * plane + p] = rgb[3 * p + 2];
            }
        else
            for (int p = 0; p < plane; p++) dst[p] = Luma(rgb[3 * p], rgb[3 * p + 1], rgb[3 * p + 2]);
    }

    /// <summary>ITU-R BT.601 luma, round(0.299 R + 0.587 G + 0.114 B), in integers (halves round up).</summary>
    public static byte Luma(byte r, byte g, byte b) => (byte)((299 * r + 587 * g + 114 * b + 500) / 1000);
}
