using MobileNetSharp.Kernels.Gemm;

namespace MobileNetSharp.Kernels;

/// <summary>Row-major C = A x B when neither operand is constant (nothing to pack ahead of time).</summary>
public static unsafe class MatMul
{
    /// <summary>
    /// c [m, n] = a [m, k] x b [k, n], all row-major, on the packed GEMM's register-tiled micro-kernel. When A has
    /// enough rows to repay it and B outgrows L1, B is first packed into a pooled buffer (<see cref="PackedB.Pack"/>);
    /// otherwise it is read in place (a 2-vector slice of a row is one panel row; the last partial vector of each row
    /// is read with a mask). Both give the same bits. Batched matmul is the caller's loop.
    /// </summary>
    /// <exception cref="ArgumentException">A negative size, or a buffer shorter than its shape.</exception>
    public static void Run(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n, Workers workers, IsaLevel? isa = null)
    {
        if (m < 0 || k < 0 || n < 0) throw new ArgumentException($"Negative matmul size {m}x{k}x{n}.");
        if (a.Length < (long)m * k || b.Length < (long)k * n || c.Length < (long)m * n)
            throw new ArgumentException($"Buffers too small for [{m},{k}] x [{k},{n}]: {a.Length}, {b.Length}, {c.Length}.");
        ArgumentNullException.ThrowIfNull(workers);
        if (m == 0 || n == 0) return;
        IsaLevel level = Isa.Resolve(isa);
        int w = Isa.Width(level);
        long packFloats = PackedB.PanelCountFor(n, w) * PackedB.PanelFloatsFor(k, w);
        if (m < MinRowsToPack || n <= w || (long)k * n < MinFloatsToPack || packFloats > Array.MaxLength - 16)
        {
            fixed (float* pa = a, pb = b, pc = c)
                GemmDriver.RunUnpacked(level, m, n, k, pa, k, pb, n, pc, n, workers);
            return;
        }
        // Read in place, B's rows are n floats apart, so every 2-vector step of the micro-kernel touches a new cache
        // line at a large stride, for every row tile of A; packed into contiguous panels, B streams from L2. Measured
        // on Zen 3 (1 thread, m = 3136, minimum of 25 alternating runs), k x n = 1280x160: 0.69 of the time in place,
        // 160x1280: 0.76; the twin's im2col 864x96 (m = 784): 0.82; B of under 16K floats level. The sums are formed
        // in the same order either way, so the result is bit-identical.
        var pool = System.Buffers.ArrayPool<float>.Shared;
        float[] packed = pool.Rent((int)packFloats + 16);
        try
        {
            fixed (float* pa = a, pp = packed, pc = c)
            {
                // 64-byte aligned, as PackedB's own buffers, so no vector load splits a cache line.
                int skip = (int)((64 - ((nint)pp & 63)) & 63) / sizeof(float);
                PackedB.Pack(b, k, n, n, 1, default, w, packed.AsSpan(skip, (int)packFloats));
                GemmDriver.RunPacked(level, m, n, k, pa, k, pp + skip, pc, n, workers);
            }
        }
        finally
        {
            pool.Return(packed);
        }
    }

    /// <summary>Rows of A from which packing B (one pass over it) costs less than it saves.</summary>
    internal const int MinRowsToPack = 48;
    /// <summary>B smaller than this (floats) stays in L1 as it is: packing it was level or slower (measured).</summary>
    internal const int MinFloatsToPack = 1 << 14;
}
