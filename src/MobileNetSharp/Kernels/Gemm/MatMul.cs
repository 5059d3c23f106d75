using MobileNetSharp.Kernels.Gemm;

namespace MobileNetSharp.Kernels;

/// <summary>Row-major C = A x B when neither operand is constant (nothing to pack ahead of time).</summary>
public static unsafe class MatMul
{
    /// <summary>
    /// c [m, n] = a [m, k] x b [k, n]. B is read in place by the same register-tiled micro-kernel as the
    /// packed GEMM (rows of B are contiguous, so a 2-vector slice of a row is one panel row); the last
    /// partial vector of each row is read with a mask. Batched matmul is the caller's loop.
    /// </summary>
    public static void Run(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n, Workers workers, IsaLevel? isa = null)
    {
        if (m < 0 || k < 0 || n < 0) throw new ArgumentException($"Negative matmul size {m}x{k}x{n}.");
        if (a.Length < (long)m * k || b.Length < (long)k * n || c.Length < (long)m * n)
            throw new ArgumentException($"Buffers too small for [{m},{k}] x [{k},{n}]: {a.Length}, {b.Length}, {c.Length}.");
        ArgumentNullException.ThrowIfNull(workers);
        if (m == 0 || n == 0) return;
        fixed (float* pa = a, pb = b, pc = c)
            GemmDriver.RunUnpacked(Isa.Resolve(isa), m, n, k, pa, k, pb, n, pc, n, workers);
    }
}
