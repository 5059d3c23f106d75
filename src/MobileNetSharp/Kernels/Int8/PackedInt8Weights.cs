using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

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

        // One copy as [N, K] (output-major): both layouts and the column sums read it column by column. The loops
        // live in AggressiveOptimization helpers: they run once per layer at load, where tier-0 code took ~10 ns a weight.
        var source = new sbyte[(long)n * k];
        _columnSums = GC.AllocateArray<int>(PanelCount * PanelWidth, pinned: true); // zero past N
        fixed (sbyte* pb = b, dst = source)
        fixed (int* sums = _columnSums)
            ToOutputMajor(pb, k, n, strideK, strideN, dst, sums);

        HasByteQuads = NoPairSaturates(source, k, n);
        if (HasByteQuads)
        {
            _quads = GC.AllocateArray<byte>((int)(QuadPanelBytes * PanelCount) + 64, pinned: true); // zeroed: padding adds 0
            _quadOffset = (int)((64 - (nint)Unsafe.AsPointer(ref _quads[0]) % 64) % 64);
            fixed (sbyte* src = source) PackQuads(src, k, n, QuadPanelBytes, ByteQuads);
            // The pair layout waits until a non-AVX2 kernel needs it, and is then rebuilt from the quads: keeping the
            // [N, K] copy for it would hold a second copy of every weight (3.5 MB for MobileNetV2) that AVX2 never reads.
        }
        else BuildPairs(source);
    }

    /// <summary>B (element (k, n) at k·strideK + n·strideN) into dst [N, K], and each column's sum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ToOutputMajor(sbyte* b, int k, int n, int strideK, int strideN, sbyte* dst, int* sums)
    {
        for (int j = 0; j < n; j++)
        {
            sbyte* from = b + (long)j * strideN, to = dst + (long)j * k;
            if (strideK == 1) Buffer.MemoryCopy(from, to, k, k); // [N, K] already: a QLinearConv or transB weight
            else
                for (int kk = 0; kk < k; kk++) to[kk] = from[(long)kk * strideK];
            sums[j] = Sum(to, k);
        }
    }

    /// <summary>The sum of k int8 values, 32 at a time in int32 lanes.</summary>
    private static int Sum(sbyte* w, int k)
    {
        int kk = 0, sum = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<int> acc = Vector256<int>.Zero;
            for (; kk + 32 <= k; kk += 32)
            {
                Vector256<sbyte> v = Vector256.Load(w + kk);
                Vector256<short> lo = Vector256.WidenLower(v), hi = Vector256.WidenUpper(v);
                acc += Vector256.WidenLower(lo) + Vector256.WidenUpper(lo) + Vector256.WidenLower(hi) + Vector256.WidenUpper(hi);
            }
            sum = Vector256.Sum(acc);
        }
        for (; kk < k; kk++) sum += w[kk];
        return sum;
    }

    /// <summary>
    /// Column j of [N, K] <paramref name="src"/> into word j % 16 of panel j / 16, four k per 64-byte row: each row of
    /// a panel is written whole, from four bytes of each of its 16 columns (scattered byte stores cost ~3 ns a weight).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackQuads(sbyte* src, int k, int n, long panelBytes, byte* quads)
    {
        int whole = k / 4;
        for (int j0 = 0; j0 < n; j0 += PanelWidth)
        {
            int cols = Math.Min(PanelWidth, n - j0);
            uint* panel = (uint*)(quads + j0 / PanelWidth * panelBytes);
            for (int q = 0; q < whole; q++)
            {
                uint* row = panel + (long)q * PanelWidth;
                for (int jj = 0; jj < cols; jj++) row[jj] = Unsafe.ReadUnaligned<uint>(src + (long)(j0 + jj) * k + 4 * q);
            }
            if (k % 4 != 0) // the last quad: the real k, then the zeros the buffer was allocated with
                for (int jj = 0; jj < cols; jj++)
                    for (int kk = 4 * whole; kk < k; kk++) ((byte*)(panel + (long)whole * PanelWidth + jj))[kk - 4 * whole] = (byte)src[(long)(j0 + jj) * k + kk];
        }
    }

    private readonly int[] _columnSums; // pinned

    /// <summary>True when every same-signed pair (4q, 4q+1), (4q+2, 4q+3) of every column sums to at most 128 in magnitude.</summary>
    private static bool NoPairSaturates(sbyte[] source, int k, int n)
    {
        // Weights within [-64, 64] (7-bit ones) pass at once: one vectorized scan instead of a check per pair.
        if (Math.Abs((int)TensorPrimitives.MaxMagnitude<sbyte>(source)) <= 64) return true;
        fixed (sbyte* p = source) return NoPairSaturates(p, k, n);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool NoPairSaturates(sbyte* source, int k, int n)
    {
        for (int j = 0; j < n; j++)
        {
            sbyte* column = source + (long)j * k;
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
        var array = GC.AllocateArray<int>((int)(PanelInts * PanelCount) + 16, pinned: true); // zeroed: the padding stays 0
        int offset = (int)((64 - (nint)Unsafe.AsPointer(ref array[0]) % 64) % 64 / sizeof(int));
        fixed (sbyte* src = source) PackPairs(src, K, N, KPairs, PanelInts, (int*)Unsafe.AsPointer(ref array[offset]));
        _offset = offset;
        Volatile.Write(ref _array, array); // published last: a reader that sees it sees the offset and contents
    }

    /// <summary>The weights as [N, K] again, read back from the byte-quad layout (the inverse of <see cref="PackQuads"/>).</summary>
    private sbyte[] OutputMajorFromQuads()
    {
        var source = new sbyte[(long)N * K];
        fixed (sbyte* dst = source) UnpackQuads(ByteQuads, K, N, QuadPanelBytes, dst);
        return source;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void UnpackQuads(byte* quads, int k, int n, long panelBytes, sbyte* dst)
    {
        for (int j = 0; j < n; j++)
        {
            byte* column = quads + j / PanelWidth * panelBytes + j % PanelWidth * 4;
            sbyte* to = dst + (long)j * k;
            for (int kk = 0; kk < k; kk++) to[kk] = (sbyte)column[kk / 4 * PanelWidth * 4 + kk % 4];
        }
    }

    /// <summary>Column j of [N, K] <paramref name="src"/> as int16 pairs into word j % 16 of panel j / 16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackPairs(sbyte* src, int k, int n, int kPairs, long panelInts, int* data)
    {
        for (int j = 0; j < n; j++)
        {
            int* column = data + j / PanelWidth * panelInts + j % PanelWidth;
            sbyte* w = src + (long)j * k;
            for (int q = 0; q < kPairs; q++)
            {
                int lo = w[2 * q];
                int hi = 2 * q + 1 < k ? w[2 * q + 1] : 0;
                column[(long)q * PanelWidth] = (ushort)(short)lo | (hi << 16);
            }
        }
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
                    if (_array == null) BuildPairs(OutputMajorFromQuads());
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
