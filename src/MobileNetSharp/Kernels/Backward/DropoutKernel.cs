using System.Runtime.CompilerServices;

namespace MobileNetSharp.Kernels;

/// <summary>
/// Inverted dropout in training mode (Srivastava et al. 2014; PyTorch's nn.Dropout and ONNX Dropout with
/// training_mode): each element is kept with probability 1 - ratio, y = x·mask/(1 - ratio), so the expectation of
/// y is x and inference needs no rescaling.
/// <para>
/// The mask is counter-based: element i is kept when the top 32 bits of SplitMix64's output mixer applied to
/// key(seed) + (i + 1)·0x9E3779B97F4A7C15 are at least round(ratio·2³²), where key(seed) is the same mixer applied
/// to the seed. Element i's draw depends only on (seed, i), never on the order or the thread that draws it, so the
/// mask is reproducible, equal for any partition of the work, and different seeds give independent-looking masks.
/// </para>
/// </summary>
public static class DropoutKernel
{
    private const ulong Golden = 0x9E3779B97F4A7C15;

    /// <summary>y [n] = x·mask/(1 - ratio) and mask [n] = 1 for kept elements, 0 for dropped ones (n = x.Length). y may alias x.</summary>
    /// <exception cref="ArgumentException">ratio outside [0, 1) or y / mask shorter than x.</exception>
    public static void Forward(ReadOnlySpan<float> x, Span<float> y, Span<byte> mask, float ratio, ulong seed) =>
        Forward(x, y, mask, ratio, seed, Workers.Single);

    /// <summary><see cref="Forward(ReadOnlySpan{float}, Span{float}, Span{byte}, float, ulong)"/> in chunks split between
    /// <paramref name="workers"/>: each element's draw depends only on (seed, index), so the mask is the same.</summary>
    public static unsafe void Forward(ReadOnlySpan<float> x, Span<float> y, Span<byte> mask, float ratio, ulong seed, Workers workers)
    {
        CheckRatio(ratio);
        if (y.Length < x.Length || mask.Length < x.Length)
            throw new ArgumentException($"Dropout forward: y ({y.Length}) and mask ({mask.Length}) need the {x.Length} values of x.");
        fixed (float* px = x, py = y)
        fixed (byte* pm = mask)
        {
            var body = new ForwardChunk { X = px, Y = py, Mask = pm, Scale = 1f / (1f - ratio), Threshold = Threshold(ratio), Key = Mix(seed) };
            Chunked.Run(workers, x.Length, ref body);
        }
    }

    private unsafe struct ForwardChunk : IChunkBody
    {
        public float* X, Y;
        public byte* Mask;
        public float Scale;
        public ulong Threshold, Key;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)] // one long loop per call: no tier-0 pass over a whole tensor
        public readonly void Invoke(long start, long count)
        {
            ulong counter = Key + (ulong)start * Golden; // key(seed) + i·Golden before element i's increment
            for (long i = start; i < start + count; i++)
            {
                counter += Golden;
                bool keep = Mix(counter) >> 32 >= Threshold;
                Mask[i] = keep ? (byte)1 : (byte)0;
                Y[i] = keep ? X[i] * Scale : 0f;
            }
        }
    }

    /// <summary>dx [n] = dy·mask/(1 - ratio) (n = dy.Length), with the mask and ratio of the forward. dx may alias dy.</summary>
    /// <exception cref="ArgumentException">ratio outside [0, 1) or mask / dx shorter than dy.</exception>
    public static void Backward(ReadOnlySpan<float> dy, ReadOnlySpan<byte> mask, Span<float> dx, float ratio) =>
        Backward(dy, mask, dx, ratio, Workers.Single);

    /// <summary><see cref="Backward(ReadOnlySpan{float}, ReadOnlySpan{byte}, Span{float}, float)"/> in chunks split between <paramref name="workers"/>.</summary>
    public static unsafe void Backward(ReadOnlySpan<float> dy, ReadOnlySpan<byte> mask, Span<float> dx, float ratio, Workers workers)
    {
        CheckRatio(ratio);
        if (dx.Length < dy.Length || mask.Length < dy.Length)
            throw new ArgumentException($"Dropout backward: dx ({dx.Length}) and mask ({mask.Length}) need the {dy.Length} values of dy.");
        fixed (float* pdy = dy, pdx = dx)
        fixed (byte* pm = mask)
        {
            var body = new BackwardChunk { Dy = pdy, Dx = pdx, Mask = pm, Scale = 1f / (1f - ratio) };
            Chunked.Run(workers, dy.Length, ref body);
        }
    }

    private unsafe struct BackwardChunk : IChunkBody
    {
        public float* Dy, Dx;
        public byte* Mask;
        public float Scale;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke(long start, long count)
        {
            for (long i = start; i < start + count; i++) Dx[i] = Mask[i] != 0 ? Dy[i] * Scale : 0f;
        }
    }

    private static void CheckRatio(float ratio)
    {
        if (!(ratio >= 0 && ratio < 1)) throw new ArgumentException($"Dropout ratio must be in [0, 1), got {ratio}.", nameof(ratio));
    }

    /// <summary>round(ratio·2³²): a 32-bit draw u is kept when u ≥ this, with probability 1 - ratio.</summary>
    private static ulong Threshold(float ratio) => (ulong)Math.Round(ratio * 4294967296.0);

    /// <summary>SplitMix64's output function (Steele, Lea &amp; Flood 2014; Vigna's splitmix64.c).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }
}
