using System.Runtime.CompilerServices;

namespace MobileNetSharp.Kernels.Int8;

/// <summary>
/// Symmetric int8 depthwise weights W [C, 1, KH, KW] (ONNX QLinearConv OIHW with group = C; weight zero point
/// 0, values in [-128, 127]) packed once, at load time, for <see cref="QuantizedDepthwise"/>, with the per-channel
/// sum of the taps that the input zero point multiplies (acc -= zpX · sum_t W[c, t], as the GEMM's column sums).
/// <para>
/// Taps are numbered t = ky · KW + kx. Channels are padded with zero weights to <see cref="ChannelStride"/>, a
/// multiple of <see cref="BlockChannels"/> = 32, so every kernel reads whole vectors with no channel tail. Two
/// layouts are kept (both are small: a 3x3 layer of 960 channels takes 70 KB):
/// </para>
/// <list type="bullet">
/// <item><b>Pairs</b> (the AVX2 kernel): ceil(taps / 2) rows of ChannelStride int32 words; word j of row p is
/// the int16 pair (W[c, 2p] low, W[c, 2p+1] high; 0 past the last tap), sign-extended from int8: the operand of
/// vpmaddwd against the zero-extended activations of the same two taps, which multiplies and adds both products
/// exactly in int32. Within each 32-channel block the words are in the order the kernel's byte unpacks leave the
/// channels in (see <see cref="PairSlot"/>), so no shuffle is spent putting them back.</item>
/// <item><b>Wide</b> (the Vector128 and scalar kernels): taps rows of ChannelStride int32, W[c, t] sign-extended,
/// channels in order.</item>
/// </list>
/// </summary>
public sealed unsafe class PackedInt8DepthwiseWeights
{
    /// <summary>Channels per block of the widest kernel; <see cref="ChannelStride"/> is a multiple of it.</summary>
    public const int BlockChannels = 32;

    private readonly int[] _array; // pinned: pairs, then wide, then sums, from a 64-byte boundary
    private readonly int _offset;

    private PackedInt8DepthwiseWeights(ReadOnlySpan<sbyte> w, int channels, int kernelH, int kernelW)
    {
        if (channels < 1 || kernelH < 1 || kernelW < 1)
            throw new ArgumentException($"Int8 depthwise weights: channels and kernel size must be at least 1, got {channels} channels, kernel {kernelH}x{kernelW}.");
        long taps = (long)kernelH * kernelW, expected = channels * taps;
        if (w.Length != expected)
            throw new ArgumentException($"Int8 depthwise weights [C {channels}, 1, {kernelH}, {kernelW}]: expected {expected} values, got {w.Length}.", nameof(w));
        long stride = (channels + (long)BlockChannels - 1) / BlockChannels * BlockChannels;
        long pairs = (taps + 1) / 2;
        long total = (pairs + taps + 1) * stride;
        if (total + 16 > Array.MaxLength)
            throw new ArgumentException($"Int8 depthwise weights with {channels} channels and a {kernelH}x{kernelW} kernel are too large to pack.", nameof(w));
        Channels = channels;
        KernelH = kernelH;
        KernelW = kernelW;
        Taps = (int)taps;
        PairCount = (int)pairs;
        ChannelStride = (int)stride;
        _array = GC.AllocateArray<int>((int)total + 16, pinned: true); // zeroed: padding channels and the missing last tap stay 0
        nint address = (nint)Unsafe.AsPointer(ref _array[0]);
        _offset = (int)((64 - address % 64) % 64 / sizeof(int));

        int* pairData = Pairs, wide = Wide, sums = Sums;
        for (int c = 0; c < channels; c++)
        {
            int sum = 0;
            for (int t = 0; t < Taps; t++)
            {
                int v = w[c * Taps + t];
                wide[(long)t * stride + c] = v;
                sum += v;
            }
            sums[c] = sum;
            int slot = PairSlot(c);
            for (int p = 0; p < PairCount; p++)
            {
                int lo = w[c * Taps + 2 * p];
                int hi = 2 * p + 1 < Taps ? w[c * Taps + 2 * p + 1] : 0;
                pairData[(long)p * stride + slot] = (ushort)(short)lo | (hi << 16);
            }
        }
    }

    /// <summary>
    /// Packs ONNX depthwise QLinearConv weights [C, 1, KH, KW]: element (c, ky, kx) at w[(c · KH + ky) · KW + kx].
    /// </summary>
    /// <exception cref="ArgumentException">A size below 1, w.Length other than C · KH · KW, or a size too large to pack.</exception>
    public static PackedInt8DepthwiseWeights FromOihw(ReadOnlySpan<sbyte> w, int channels, int kernelH, int kernelW) =>
        new(w, channels, kernelH, kernelW);

    /// <summary>C, the channels (input = output, one group each).</summary>
    public int Channels { get; }
    public int KernelH { get; }
    public int KernelW { get; }
    /// <summary>KH · KW.</summary>
    public int Taps { get; }
    /// <summary>ceil(Taps / 2): rows of the pair layout.</summary>
    public int PairCount { get; }
    /// <summary>C rounded up to <see cref="BlockChannels"/>: the row length of both layouts.</summary>
    public int ChannelStride { get; }

    /// <summary>sum over taps of W[c, t]: what the input zero point multiplies.</summary>
    public int WeightSum(int channel)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(channel);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(channel, Channels);
        return Sums[channel];
    }

    /// <summary>
    /// Where channel c sits in the pair layout. The AVX2 kernel loads 32 channels of two taps (bytes), interleaves
    /// them (vpunpcklbw / vpunpckhbw, which work within 128-bit lanes) and zero-extends the byte pairs to int16
    /// pairs (unpack with zero). That leaves accumulator k (0..3) lane i (0..7) holding channel
    /// 16 · (i / 4) + 4 · k + i % 4 of the block; vpackssdw and vpackuswb then put the bytes back in order.
    /// </summary>
    internal static int PairSlot(int c)
    {
        int block = c / BlockChannels * BlockChannels, j = c % BlockChannels;
        int half = j / 16, k = j % 16 / 4, i = j % 4 + 4 * half;
        return block + 8 * k + i;
    }

    /// <summary><see cref="PairSlot"/> of channels 0..31, for loops over blocks.</summary>
    internal static ReadOnlySpan<byte> PairSlots =>
        [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31];

    /// <summary>Pair layout: PairCount rows of ChannelStride words, 64-byte aligned; valid while this object is alive (pinned).</summary>
    internal int* Pairs => (int*)Unsafe.AsPointer(ref _array[_offset]);
    /// <summary>Wide layout: Taps rows of ChannelStride int32, channels in order.</summary>
    internal int* Wide => Pairs + (long)PairCount * ChannelStride;
    /// <summary>Per-channel tap sums, channels in order, zero past C.</summary>
    internal int* Sums => Wide + (long)Taps * ChannelStride;
}
