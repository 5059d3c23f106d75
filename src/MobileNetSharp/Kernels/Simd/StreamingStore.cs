using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileNetSharp.Kernels.Simd;

/// <summary>
/// Writes of large outputs around the caches. A normal store to a line not in cache first reads the line from memory
/// (read for ownership), so writing a tensor that will not stay in cache costs its size twice in memory traffic; a
/// non-temporal store (<c>vmovntps</c>, Intel SDM vol. 1 section 10.4.6.2 "Caching of Temporal vs. Non-Temporal Data")
/// skips that read. Kernels that write such a tensor make each L1-sized chunk in scratch, read it there for anything
/// else they need (batch-norm moments), then copy it out with <see cref="Copy"/>. The bits are unchanged.
/// <para>
/// Measured on Zen 3 (32 MB L3 shared with other tenants), writing then reading back a tensor, 1 thread:
/// 19 MB 2.4 -> 1.3 ms to write with the read back level; 9.6 MB 1.1 -> 0.7 ms, read back level; 4.8 MB and smaller
/// stay in L3 for the next reader with normal stores (the read back after streaming took 1.6x as long), hence
/// <see cref="DefaultMinBytes"/>, which also leaves out the 9.6 MB layers of the training step below (streaming one of
/// them measured 0.1-0.3 ms slower, the others level). In a MobileNetV2 training step (28x28 maps, batch 64), steps toggled one by one in
/// one process: the median of the 19 MB layers' forward steps 0.7-1.1 ms lower at 1 thread (expand 6.6-7.3 -> 5.6-6.5,
/// depthwise 9.2-10.1 -> 8.3-9.0), 0.2-0.7 ms at 2; the fastest runs, on a quiet machine, level.
/// </para>
/// </summary>
internal static unsafe class StreamingStore
{
    /// <summary>Outputs of at least this many bytes are streamed (see the class remarks for the measurements).</summary>
    public const long DefaultMinBytes = 12L << 20;

    private static int s_forced;
    private static long s_copies;

    /// <summary>Turns streaming off, so a benchmark can time both ways in one process (the bits are the same).</summary>
    internal static bool Disabled;

    /// <summary>Whether an output of <paramref name="floats"/> floats should be streamed: large enough, on a CPU with
    /// non-temporal vector stores (x86 with AVX; elsewhere <see cref="Copy"/> is a plain copy that would only add a pass);
    /// or forced by a test (<see cref="ForceForTests"/>), on any CPU.</summary>
    public static bool Pays(long floats) =>
        !Disabled && (Volatile.Read(ref s_forced) > 0 || (Avx.IsSupported && floats * sizeof(float) >= DefaultMinBytes));

    /// <summary>Streams every output while the returned scope is open, so tests take these paths on small shapes. The bits
    /// are the same either way, so code running meanwhile on other threads is unaffected.</summary>
    internal static IDisposable ForceForTests()
    {
        Interlocked.Increment(ref s_forced);
        return new Scope();
    }

    /// <summary>Calls of <see cref="Copy"/> made while a <see cref="ForceForTests"/> scope was open (tests check that a path streamed).</summary>
    internal static long Copies => Volatile.Read(ref s_copies);

    private sealed class Scope : IDisposable
    {
        private int _open = 1;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _open, 0) == 1) Interlocked.Decrement(ref s_forced);
        }
    }

    /// <summary>
    /// dst[0, n) = src[0, n), with non-temporal stores for the 32-byte-aligned part of dst (normal stores for the ends),
    /// then a store fence, so that another thread that synchronizes with this one afterwards sees the data. Without AVX
    /// (Arm, old x86) a plain copy.
    /// </summary>
    public static void Copy(float* src, float* dst, long n)
    {
        if (Volatile.Read(ref s_forced) > 0) Interlocked.Increment(ref s_copies); // counted for tests only: no shared line in production
        if (!Avx.IsSupported)
        {
            Buffer.MemoryCopy(src, dst, n * sizeof(float), n * sizeof(float));
            return;
        }
        long i = 0;
        long head = Math.Min(n, (long)((32 - ((nuint)dst & 31)) & 31) / sizeof(float));
        if (((nuint)dst & 3) != 0) head = n; // not float-aligned: no aligned vector position exists
        for (; i < head; i++) dst[i] = src[i];
        for (; i + 32 <= n; i += 32)
        {
            Avx.StoreAlignedNonTemporal(dst + i, Avx.LoadVector256(src + i));
            Avx.StoreAlignedNonTemporal(dst + i + 8, Avx.LoadVector256(src + i + 8));
            Avx.StoreAlignedNonTemporal(dst + i + 16, Avx.LoadVector256(src + i + 16));
            Avx.StoreAlignedNonTemporal(dst + i + 24, Avx.LoadVector256(src + i + 24));
        }
        for (; i + 8 <= n; i += 8) Avx.StoreAlignedNonTemporal(dst + i, Avx.LoadVector256(src + i));
        for (; i < n; i++) dst[i] = src[i];
        Sse.StoreFence();
    }
}
