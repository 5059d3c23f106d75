namespace MobileNetSharp.Training.Data;

/// <summary>
/// Seeded randomness for data pipelines that gives the same numbers on every platform and .NET version
/// (System.Random's algorithm is not a documented contract): SplitMix64, and keys derived from
/// (seed, epoch, index) so each image's augmentation does not depend on which thread prepares it.
/// </summary>
public struct SplitMix64(ulong state)
{
    private ulong _state = state;

    public static SplitMix64 For(int seed, int epoch, long index) =>
        new(Mix((ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ Mix((ulong)(uint)epoch + 0x632BE59BD9B4E019UL) ^ Mix((ulong)index + 0x8CB92BA72F3D8DD7UL)));

    public ulong NextUInt64()
    {
        _state += 0x9E3779B97F4A7C15UL;
        return Mix(_state);
    }

    /// <summary>Uniform in [0, 1).</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform in [0, n), n ≥ 1 (multiply-shift; the bias is below 2^-32 for n &lt; 2^31).</summary>
    public int Next(int n) => (int)((NextUInt64() >> 32) * (ulong)n >> 32);

    /// <summary>Uniform in [lo, hi] inclusive.</summary>
    public int Next(int lo, int hi) => lo + Next(hi - lo + 1);

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}

public static class Shuffle
{
    /// <summary>A Fisher-Yates permutation of 0..n-1, the same for the same (n, seed, epoch) everywhere.</summary>
    public static int[] Permutation(int n, int seed, int epoch = 0)
    {
        var p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        var rng = SplitMix64.For(seed, epoch, -1);
        for (int i = n - 1; i > 0; i--)
        {
            int j = rng.Next(i + 1);
            (p[i], p[j]) = (p[j], p[i]);
        }
        return p;
    }
}
