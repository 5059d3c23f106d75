using MobileNetSharp.Kernels;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Training.Data;

/// <summary>How a <see cref="BatchSource"/> turns images into model inputs.</summary>
/// <param name="BatchSize">Images per batch; the last batch of an epoch is smaller unless <paramref name="DropLast"/>.</param>
/// <param name="Resolution">Square model input size; null keeps the images' own size (they must then be square or not resized).</param>
/// <param name="Channels">Model input channels; null keeps the images' own. 1-channel images are replicated to any count.</param>
/// <param name="Resize">Nearest or (bi)linear (half-pixel centres, as ONNX Resize and PyTorch's interpolate).</param>
/// <param name="Shuffle">A new seeded permutation each epoch; false keeps the dataset's order.</param>
/// <param name="Augment">Applied at the images' own size, before resizing; null or <see cref="Augmentation.None"/> for evaluation.</param>
public sealed record BatchOptions(int BatchSize, int? Resolution = null, int? Channels = null, ResizeMode Resize = ResizeMode.Linear,
    bool Shuffle = true, int Seed = 0, Augmentation? Augment = null, bool DropLast = false);

/// <summary>One batch: images [N, C, R, R] as floats in [0, 1] (NCHW) and their labels.</summary>
public sealed record Batch(Tensor Images, int[] Labels, int Epoch, int Index);

/// <summary>
/// Makes batches from an <see cref="ImageDataset"/>: bytes to floats in [0, 1], augmentation, resizing to the
/// model's resolution, and channel replication (1 -> C, so Fashion-MNIST feeds a 3-channel model).
/// <para>
/// Deterministic: batch b of epoch e holds the images at positions b·N.. of the permutation for (seed, e),
/// and each image's augmentation draws from a generator keyed by (seed, e, position), so the same options
/// give the same batches whatever thread makes them and in whatever order. Thread-safe.
/// </para>
/// </summary>
public sealed class BatchSource
{
    /// <summary>b / 255 for every byte, rounded once (as torchvision's ToTensor divides).</summary>
    private static readonly float[] UnitScale = Enumerable.Range(0, 256).Select(b => b / 255f).ToArray();

    private readonly ImageDataset _data;
    private readonly ResizePlan? _resize;

    public BatchSource(ImageDataset data, BatchOptions options)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (options.BatchSize < 1 || options.BatchSize > 65536) throw new ArgumentException($"batch size must be 1..65536, got {options.BatchSize}.");
        options.Augment?.Validate();
        int channels = options.Channels ?? data.Channels;
        if (channels < 1 || channels > 1024) throw new ArgumentException($"channels must be 1..1024, got {channels}.");
        if (channels != data.Channels && data.Channels != 1)
            throw new ArgumentException($"The images have {data.Channels} channels and the model takes {channels}; only 1-channel images can be replicated.");
        int res = options.Resolution ?? data.Height;
        if (options.Resolution is { } r)
        {
            if (r < 1 || r > 4096) throw new ArgumentException($"resolution must be 1..4096, got {r}.");
        }
        else if (data.Height != data.Width) throw new ArgumentException($"The images are {data.Height}x{data.Width}; give a resolution to make them square.");
        if (options.DropLast && data.Count < options.BatchSize) throw new ArgumentException($"{data.Count} images make no full batch of {options.BatchSize}.");
        (_data, Options, Channels, Resolution) = (data, options, channels, res);
        if (res != data.Height || res != data.Width)
            _resize = ResizePlan.Create([1, data.Channels, data.Height, data.Width], [1, data.Channels, res, res], [],
                options.Resize, CoordinateTransform.HalfPixel, NearestRounding.RoundPreferFloor);
    }

    public BatchOptions Options { get; }
    public int Channels { get; }
    public int Resolution { get; }
    public ImageDataset Dataset => _data;

    public int BatchesPerEpoch => Options.DropLast ? _data.Count / Options.BatchSize : (_data.Count + Options.BatchSize - 1) / Options.BatchSize;

    /// <summary>The order of the dataset's images in <paramref name="epoch"/>.</summary>
    public int[] Order(int epoch) => Options.Shuffle ? Shuffle.Permutation(_data.Count, Options.Seed, epoch) : Enumerable.Range(0, _data.Count).ToArray();

    /// <summary>Batch <paramref name="index"/> of <paramref name="epoch"/>.</summary>
    public Batch Make(int epoch, int index) => Make(epoch, index, Order(epoch));

    private Batch Make(int epoch, int index, int[] order)
    {
        if ((uint)index >= (uint)BatchesPerEpoch) throw new ArgumentOutOfRangeException(nameof(index), $"batch {index} is outside 0..{BatchesPerEpoch - 1}.");
        int start = index * Options.BatchSize, n = Math.Min(Options.BatchSize, _data.Count - start);
        int c0 = _data.Channels, h = _data.Height, w = _data.Width, res = Resolution, c = Channels;
        int srcSize = c0 * h * w, outPlane = res * res, outSize = c * outPlane;
        var images = new float[(long)n * outSize];
        var labels = new int[n];
        var native = new float[srcSize];
        var scratch = new float[srcSize];
        var resized = _resize is null ? null : new float[c0 * outPlane];
        var augment = Options.Augment ?? Augmentation.None;
        for (int i = 0; i < n; i++)
        {
            int pos = start + i, item = order[pos];
            labels[i] = _data.Label(item);
            var src = _data.Image(item);
            for (int k = 0; k < srcSize; k++) native[k] = UnitScale[src[k]];
            if (!augment.IsIdentity)
            {
                var rng = SplitMix64.For(Options.Seed, epoch, pos);
                augment.Apply(native, c0, h, w, ref rng, scratch);
            }
            float[] img = native;
            if (_resize is not null)
            {
                _resize.Run(native, resized, Workers.Single);
                img = resized!;
            }
            var dst = images.AsSpan(i * outSize, outSize);
            if (c == c0) img.AsSpan(0, outSize).CopyTo(dst);
            else for (int ch = 0; ch < c; ch++) img.AsSpan(0, outPlane).CopyTo(dst.Slice(ch * outPlane, outPlane)); // 1 -> c
        }
        return new Batch(new Tensor(images, n, c, res, res), labels, epoch, index);
    }

    /// <summary>The batches of one epoch, made on the calling thread.</summary>
    public IEnumerable<Batch> Epoch(int epoch)
    {
        var order = Order(epoch);
        for (int b = 0; b < BatchesPerEpoch; b++) yield return Make(epoch, b, order);
    }

    /// <summary>
    /// The batches of one epoch from <paramref name="firstBatch"/> on (a resumed epoch skips what it trained),
    /// made on a background thread up to <paramref name="depth"/> ahead.
    /// </summary>
    public Prefetcher<Batch> Prefetch(int epoch, int depth = 2, CancellationToken cancellation = default, int firstBatch = 0)
    {
        if (firstBatch < 0 || firstBatch > BatchesPerEpoch) throw new ArgumentOutOfRangeException(nameof(firstBatch), $"batch {firstBatch} is outside 0..{BatchesPerEpoch}.");
        var order = Order(epoch);
        return new Prefetcher<Batch>(BatchesPerEpoch - firstBatch, b => Make(epoch, firstBatch + b, order), depth, cancellation);
    }
}
