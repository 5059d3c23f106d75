using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

public unsafe class WorkersTests
{
    private struct Counter
    {
        public int* Hits;
        public int ThrowAt;
    }

    /// <summary>The pool the nested-loop test re-enters (a struct reached by pointer must not hold references).</summary>
    private static Workers? s_nestedPool;

    private static void Count(void* context, int i)
    {
        Counter* c = (Counter*)context;
        if (i == c->ThrowAt) throw new InvalidOperationException($"boom at {i}");
        Interlocked.Increment(ref c->Hits[i]);
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(1, 1)]
    [InlineData(1, 100)]
    [InlineData(2, 0)]
    [InlineData(2, 1)]
    [InlineData(2, 2)]
    [InlineData(2, 1000)]
    [InlineData(4, 37)]
    public void RunsEveryIndexExactlyOnce(int threads, int count)
    {
        using var pool = new Workers(threads);
        Assert.Equal(threads, pool.Count);
        var hits = new int[Math.Max(1, count)];
        for (int repeat = 0; repeat < 20; repeat++)
        {
            Array.Clear(hits);
            fixed (int* h = hits)
            {
                var c = new Counter { Hits = h, ThrowAt = -1 };
                pool.For(count, &Count, &c);
            }
            for (int i = 0; i < count; i++) Assert.Equal(1, hits[i]);
        }
    }

    /// <summary>
    /// Loops arriving while workers spin, while they fall asleep (gaps past the spin window) and back to back
    /// with tiny bodies, so the caller often finishes before a worker picks the job up and withdraws the offer:
    /// every index must still run exactly once per loop and no loop may run into the next one.
    /// </summary>
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void WithdrawnOffersNeverLoseOrRepeatAnIndex(int threads)
    {
        using var pool = new Workers(threads);
        var rng = new Random(threads);
        var hits = new int[64];
        fixed (int* h = hits)
        {
            for (int repeat = 0; repeat < 400; repeat++)
            {
                int count = rng.Next(2, 64);
                Array.Clear(hits);
                var c = new Counter { Hits = h, ThrowAt = -1 };
                pool.For(count, &Count, &c);
                for (int i = 0; i < hits.Length; i++) Assert.Equal(i < count ? 1 : 0, hits[i]);
                if (repeat % 50 == 0) Thread.Sleep(2);                       // workers go to sleep
                else if (repeat % 7 == 0) Thread.SpinWait(rng.Next(1, 2000)); // land around the spin window
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void WorkerExceptionReachesTheCallerAndThePoolStaysUsable(int threads)
    {
        using var pool = new Workers(threads);
        var hits = new int[64];
        fixed (int* h = hits)
        {
            for (int throwAt = 0; throwAt < 64; throwAt += 21)
            {
                var c = new Counter { Hits = h, ThrowAt = throwAt };
                Exception? caught = null;
                try { pool.For(64, &Count, &c); }
                catch (Exception e) { caught = e; }
                Assert.IsType<InvalidOperationException>(caught);
                Assert.Equal($"boom at {throwAt}", caught.Message);
            }
            Array.Clear(hits);
            var ok = new Counter { Hits = h, ThrowAt = -1 };
            pool.For(64, &Count, &ok);
        }
        Assert.All(hits, v => Assert.Equal(1, v));
    }

    private static void Outer(void* context, int i)
    {
        Counter* c = (Counter*)context;
        var inner = new Counter { Hits = c->Hits + i * 8, ThrowAt = -1 };
        s_nestedPool!.For(8, &Count, &inner); // the pool is busy: runs inline on this thread
    }

    [Fact]
    public void NestedLoopsRunInline()
    {
        using var pool = new Workers(2);
        var hits = new int[8 * 8];
        fixed (int* h = hits)
        {
            s_nestedPool = pool;
            var c = new Counter { Hits = h, ThrowAt = -1 };
            pool.For(8, &Outer, &c);
        }
        Assert.All(hits, v => Assert.Equal(1, v));
    }

    [Fact]
    public void RejectsZeroThreadsAndSurvivesDispose()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new Workers(0));
        var pool = new Workers(2);
        pool.Dispose();
        pool.Dispose();
        var hits = new int[5];
        fixed (int* h = hits)
        {
            var c = new Counter { Hits = h, ThrowAt = -1 };
            pool.For(5, &Count, &c); // after Dispose loops run inline
        }
        Assert.All(hits, v => Assert.Equal(1, v));
        Assert.Equal(1, Workers.Single.Count);
    }

    [Fact]
    public void IdleWorkersBlockAndWakeUp()
    {
        using var pool = new Workers(2);
        var hits = new int[16];
        fixed (int* h = hits)
        {
            var c = new Counter { Hits = h, ThrowAt = -1 };
            pool.For(16, &Count, &c);
            Thread.Sleep(50); // well past the spin window: the worker is now blocked
            pool.For(16, &Count, &c);
        }
        Assert.All(hits, v => Assert.Equal(2, v));
    }
}
