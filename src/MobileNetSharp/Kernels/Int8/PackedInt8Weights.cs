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
/// </summary>
public sealed unsafe class PackedInt8Weights
{
    /// <summary>Output columns per packed panel.</summary>
    public const int PanelWidth = 16;

    private readonly int[] _array; // pinned; [panels][kPairs][16] packed words, then the padded column sums
    private readonly int _offset;  // ints from _array[0] to the first 64-byte boundary

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
        long packedInts = PanelInts * PanelCount, total = packedInts + (long)PanelCount * PanelWidth;
        if (total + 16 > Array.MaxLength) throw new ArgumentException($"Int8 weights {layout} with K {k}, N {n} are too large to pack.", nameof(b));
        _array = GC.AllocateArray<int>((int)total + 16, pinned: true); // zeroed: the padding stays 0
        nint address = (nint)Unsafe.AsPointer(ref _array[0]);
        _offset = (int)((64 - address % 64) % 64 / sizeof(int));

        int* data = Data, sums = ColumnSums;
        fixed (sbyte* pb = b)
            for (int p = 0; p < PanelCount; p++)
            {
                int n0 = p * PanelWidth, cols = Math.Min(PanelWidth, n - n0);
                int* panel = data + p * PanelInts;
                for (int j = 0; j < cols; j++)
                {
                    sbyte* src = pb + (long)(n0 + j) * strideN;
                    int sum = 0;
                    for (int q = 0; q < KPairs; q++)
                    {
                        int lo = src[(long)2 * q * strideK];
                        int hi = 2 * q + 1 < k ? src[(long)(2 * q + 1) * strideK] : 0;
                        panel[q * PanelWidth + j] = (ushort)(short)lo | (hi << 16);
                        sum += lo + hi;
                    }
                    sums[n0 + j] = sum;
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

    /// <summary>The first panel, 64-byte aligned; valid while this object is alive (the array is pinned).</summary>
    internal int* Data => (int*)Unsafe.AsPointer(ref _array[_offset]);

    /// <summary>sum_k B[k, j] for j in [0, PanelCount · 16); zero past N, so whole panels can be loaded.</summary>
    internal int* ColumnSums => Data + PanelInts * PanelCount;

    /// <summary>sum_k B[k, j]: what the activation zero point multiplies.</summary>
    public int ColumnSum(int j)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(j);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(j, N);
        return ColumnSums[j];
    }
}
