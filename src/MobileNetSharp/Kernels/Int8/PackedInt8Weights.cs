using System.Runtime.CompilerServices;

namespace MobileNetSharp.Kernels.Int8;

/// <summary>
/// Symmetric int8 weights B [K, N] (K = input channels, N = output channels; weight zero point 0, values in
/// [-128, 127]) packed once, at load time, for <see cref="QuantizedGemm"/>, with the per-column sums of B that
/// the activation zero point needs (acc -= zpA · colsum(B)[j], as in ONNX Runtime's MLAS).
/// <para>
/// Layout: panels of <see cref="PanelWidth"/> = 16 output columns. Panel p holds ceil(K/2) rows of 16 int32
/// words; word j of row q is the int16 pair (B[2q, 16p+j] in the low half, B[2q+1, 16p+j] in the high half),
/// sign-extended from int8. That is the operand vpmaddwd (<c>Avx2.MultiplyAddAdjacent</c> on int16) multiplies
/// against a broadcast pair of zero-extended activations: two exact products summed into an int32 lane, so no
/// k step ever saturates (vpmaddubsw would: 255·127·2 overflows int16). One row of a panel is one 64-byte cache
/// line and the buffer is 64-byte aligned. The padding (an odd K's last high half, columns past N) is zero, so
/// it adds nothing. The layout does not depend on the ISA: the 256-bit kernel reads a row as two vectors, the
/// 128-bit kernel as four, the scalar kernel word by word.
/// </para>
/// <para>
/// Byte quads (<see cref="HasByteQuads"/>): when no pair of weights can make vpmaddubsw saturate, the weights
/// are also packed as bytes for the AVX2 u8 x s8 kernel: panel p holds ceil(K/4) rows of 16 columns x 4 bytes
/// (B[4q..4q+3, 16p+j] in word j), again one 64-byte line per row. vpmaddubsw multiplies a broadcast quad of
/// activations by it and adds adjacent products into int16, which is exact when, for both pairs (4q, 4q+1) and
/// (4q+2, 4q+3) of every column, the positive weights of the pair sum to at most 128 and the negative ones to at
/// least -128: then |a0·w0 + a1·w1| &lt;= 255·128 = 32,640 for any activations in [0, 255]. Every 7-bit
/// weight (|w| &lt;= 64, ONNX Runtime's reduce_range and TFLite's usual x86 setting) qualifies. Then the
/// int16-pair layout is built only if a non-AVX2 kernel asks for it.
/// </para>
/// </summary>
public sealed unsafe class PackedInt8Weights
{
    /// <summary>Output columns per packed panel.</summary>
    public const int PanelWidth = 16;

    private int[]? _array;         // pinned; [panels][kPairs][16] packed words
    private int _offset;           // ints from _array[0] to the first 64-byte boundary
    private readonly byte[]? _quads; // pinned; [panels][kQuads][16][4] bytes, when HasByteQuads
    private readonly int _quadOffset;
    private readonly sbyte[]? _source;  // the weights as [N, K], kept to build the pair layout on demand
    private readonly object _pairLock = new();

    private PackedInt8Weights(ReadOnlySpan<sbyte> b, int k, int n, int strideK, int strideN, string layout)
    {
        if (k < 1 || n < 1) throw new ArgumentException($"Int8 weights {layout}: K and N must be at least 1, got K {k}, N {n}.");
        long expected = (long)k * n;
        if (b.Length != expected) throw new ArgumentException($"Int8 weights {layout} with K {k}, N {n}: expected {expected} values, got {b.Length}.", nameof(b));
        K = k;
        N = n;
        KPairs = (k + 1) / 2;
        PanelCount = (n + PanelWidth - 1) / PanelWidth;
        PanelInts = (long)KPairs * PanelWidth;
        KQuads = (k + 3) / 4;
        QuadPanelBytes = (long)KQuads * PanelWidth * 4;
        long total = PanelInts * PanelCount + (long)PanelCount * PanelWidth;
        if (total + 16 > Array.MaxLength || QuadPanelBytes * PanelCount + 64 > Array.MaxLength || (long)n * k > Array.MaxLength)
            throw new ArgumentException($"Int8 weights {layout} with K {k}, N {n} are too large to pack.", nameof(b));

        // One copy as [N, K] (output-major): both layouts and the column sums read it column by column.
        var source = new sbyte[(long)n * k];
        fixed (sbyte* pb = b, dst = source)
            for (int j = 0; j < n; j++)
            {
                sbyte* from = pb + (long)j * strideN, to = dst + (long)j * k;
                for (int kk = 0; kk < k; kk++) to[kk] = from[(long)kk * strideK];
            }
        _columnSums = GC.AllocateArray<int>(PanelCount * PanelWidth, pinned: true); // zero past N
        for (int j = 0; j < n; j++)
        {
            int sum = 0;
            foreach (sbyte w in source.AsSpan(j * k, k)) sum += w;
            _columnSums[j] = sum;
        }

        HasByteQuads = NoPairSaturates(source, k, n);
        if (HasByteQuads)
        {
            _quads = GC.AllocateArray<byte>((int)(QuadPanelBytes * PanelCount) + 64, pinned: true); // zeroed: padding adds 0
            _quadOffset = (int)((64 - (nint)Unsafe.AsPointer(ref _quads[0]) % 64) % 64);
            byte* quads = ByteQuads;
            for (int j = 0; j < n; j++)
            {
                byte* column = quads + j / PanelWidth * QuadPanelBytes + j % PanelWidth * 4;
                for (int kk = 0; kk < k; kk++) column[kk / 4 * PanelWidth * 4 + kk % 4] = (byte)source[(long)j * k + kk];
            }
            _source = source; // the pair layout waits until a non-AVX2 kernel needs it
        }
        else BuildPairs(source);
    }

    private readonly int[] _columnSums; // pinned

    /// <summary>True when every same-signed pair (4q, 4q+1), (4q+2, 4q+3) of every column sums to at most 128 in magnitude.</summary>
    private static bool NoPairSaturates(sbyte[] source, int k, int n)
    {
        for (int j = 0; j < n; j++)
        {
            ReadOnlySpan<sbyte> column = source.AsSpan(j * k, k);
            for (int kk = 0; kk < k; kk += 2)
            {
                int w0 = column[kk], w1 = kk + 1 < k ? column[kk + 1] : 0;
                if (Math.Max(w0, 0) + Math.Max(w1, 0) > 128 || Math.Min(w0, 0) + Math.Min(w1, 0) < -128) return false;
            }
        }
        return true;
    }

    private void BuildPairs(sbyte[] source)
    {
        int k = K;
        var array = GC.AllocateArray<int>((int)(PanelInts * PanelCount) + 16, pinned: true); // zeroed: the padding stays 0
        int offset = (int)((64 - (nint)Unsafe.AsPointer(ref array[0]) % 64) % 64 / sizeof(int));
        int* data = (int*)Unsafe.AsPointer(ref array[offset]);
        for (int j = 0; j < N; j++)
        {
            int* column = data + j / PanelWidth * PanelInts + j % PanelWidth;
            ReadOnlySpan<sbyte> src = source.AsSpan(j * k, k);
            for (int q = 0; q < KPairs; q++)
            {
                int lo = src[2 * q];
                int hi = 2 * q + 1 < k ? src[2 * q + 1] : 0;
                column[q * PanelWidth] = (ushort)(short)lo | (hi << 16);
            }
        }
        _offset = offset;
        Volatile.Write(ref _array, array); // published last: a reader that sees it sees the offset and contents
    }

    /// <summary>Packs row-major B [K, N]: element (k, n) at b[k·N + n] (the MatMul / QLinearMatMul B operand).</summary>
    /// <exception cref="ArgumentException">K or N below 1, or b.Length is not K·N.</exception>
    public static PackedInt8Weights FromKxN(ReadOnlySpan<sbyte> b, int k, int n) => new(b, k, n, n, 1, "[K, N]");

    /// <summary>
    /// Packs output-major weights W [N, K]: element (n, k) at w[n·K + k]. This is the ONNX order of a 1x1
    /// QLinearConv weight [N, K, 1, 1] (OIHW) and of a transposed fully connected weight.
    /// </summary>
    /// <exception cref="ArgumentException">K or N below 1, or w.Length is not N·K.</exception>
    public static PackedInt8Weights FromNxK(ReadOnlySpan<sbyte> w, int n, int k) => new(w, k, n, 1, k, "[N, K]");

    /// <summary>Input channels (the reduction length).</summary>
    public int K { get; }
    /// <summary>Output channels.</summary>
    public int N { get; }
    /// <summary>Packed rows per panel: ceil(K / 2).</summary>
    public int KPairs { get; }
    public int PanelCount { get; }
    /// <summary>Ints one panel takes: <see cref="KPairs"/> · 16.</summary>
    public long PanelInts { get; }

    /// <summary>Packed byte rows per panel of the quad layout: ceil(K / 4).</summary>
    public int KQuads { get; }
    /// <summary>Bytes one panel of the quad layout takes: <see cref="KQuads"/> · 64.</summary>
    public long QuadPanelBytes { get; }

    /// <summary>
    /// Whether the weights are also packed as byte quads for the vpmaddubsw kernel, i.e. no activations in [0, 255]
    /// can make its int16 pair sums saturate (see the class remarks). True for every 7-bit weight set.
    /// </summary>
    public bool HasByteQuads { get; }

    /// <summary>The first panel of the int16-pair layout, 64-byte aligned, built on first use when the quads exist;
    /// valid while this object is alive (the array is pinned).</summary>
    internal int* Data
    {
        get
        {
            int[]? array = Volatile.Read(ref _array);
            if (array == null)
            {
                lock (_pairLock)
                    if (_array == null) BuildPairs(_source!);
                array = _array!;
            }
            return (int*)Unsafe.AsPointer(ref array[_offset]);
        }
    }

    /// <summary>The first panel of the byte-quad layout, 64-byte aligned; only when <see cref="HasByteQuads"/>.</summary>
    internal byte* ByteQuads => (byte*)Unsafe.AsPointer(ref _quads![_quadOffset]);

    /// <summary>sum_k B[k, j] for j in [0, PanelCount · 16); zero past N, so whole panels can be loaded (pinned).</summary>
    internal int* ColumnSums => (int*)Unsafe.AsPointer(ref _columnSums[0]);

    /// <summary>sum_k B[k, j]: what the activation zero point multiplies.</summary>
    public int ColumnSum(int j)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(j);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(j, N);
        return _columnSums[j];
    }
}
