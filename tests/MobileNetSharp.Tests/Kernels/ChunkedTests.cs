using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>The chunked element-wise split: every element exactly once, chunks on whole cache lines, any size and thread count.</summary>
public class ChunkedTests
{
    private unsafe struct Mark : IChunkBody
    {
        public int* Hits;
        public long* MinChunkStart;
        public int ElementSize;

        public readonly void Invoke(long start, long count)
        {
            if (start != 0 && start * ElementSize % 64 != 0 && ElementSize < 64) Interlocked.Exchange(ref *MinChunkStart, start); // off a line
            for (long i = start; i < start + count; i++) Interlocked.Increment(ref Hits[i]);
        }
    }

    [Theory]
    [InlineData(1, 4)]
    [InlineData(1000, 4)]
    [InlineData(65_535, 4)]
    [InlineData(65_536, 4)]
    [InlineData(100_003, 4)]
    [InlineData(1_000_001, 4)]
    [InlineData(262_145, 1)]
    [InlineData(7, 81_920)]
    [InlineData(64, 81_920)]
    public unsafe void EveryElementOnceOnWholeLines(int n, int elementSize)
    {
        foreach (var workers in new[] { Workers.Single, TestData.Two })
        {
            var hits = new int[n];
            long offLine = -1;
            fixed (int* h = hits)
            {
                var body = new Mark { Hits = h, MinChunkStart = &offLine, ElementSize = elementSize };
                Chunked.Run(workers, n, ref body, elementSize);
            }
            Assert.All(hits, v => Assert.Equal(1, v));
            Assert.Equal(-1, offLine);
        }
    }
}
