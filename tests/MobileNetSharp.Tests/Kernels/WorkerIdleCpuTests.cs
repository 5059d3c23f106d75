using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>
/// CPU accounting of idle workers. It reads the CPU time of every mnet-worker thread in the process, so it runs in a
/// collection of its own that no other test runs beside: another test's busy pool would otherwise be counted as spin
/// (it failed that way in a clean-clone CI run).
/// </summary>
[Collection("ProcessCpu")]
public unsafe class WorkerIdleCpuTests
{
    /// <summary>
    /// Disposing a BurstScope twice (a copied struct) drives the burst count negative: idle workers must still go
    /// to sleep rather than cycle between spinning and waking (a wait on "count == 0" would never block).
    /// </summary>
    [Theory]
    [InlineData(false)] // control: one Dispose, the worker sleeps after ~50 us
    [InlineData(true)]
    public void OverDisposedBurstDoesNotLeaveWorkersSpinning(bool twice)
    {
        if (!OperatingSystem.IsLinux()) return; // reads per-thread CPU time from /proc; CI runs on Linux
        using var pool = new Workers(2);
        var scope = pool.Burst();
        var copy = scope;
        scope.Dispose();
        if (twice) copy.Dispose();
        Thread.Sleep(50);
        long t0 = WorkerTicks();
        Thread.Sleep(600);
        long ticks = WorkerTicks() - t0; // clock ticks, usually 100 per second
        Assert.True(ticks < 20, $"mnet-worker threads used {ticks} clock ticks of CPU in 600 ms idle");
    }

    /// <summary>utime + stime of this process's threads named mnet-worker-* (Linux /proc).</summary>
    private static long WorkerTicks()
    {
        long total = 0;
        foreach (var dir in Directory.GetDirectories("/proc/self/task"))
        {
            string stat;
            try { stat = File.ReadAllText(Path.Combine(dir, "stat")); } catch (IOException) { continue; }
            int open = stat.IndexOf('('), close = stat.LastIndexOf(')');
            if (!stat[(open + 1)..close].StartsWith("mnet-worker", StringComparison.Ordinal)) continue;
            var f = stat[(close + 2)..].Split(' ');
            total += long.Parse(f[11]) + long.Parse(f[12]); // fields 14 and 15: utime, stime
        }
        return total;
    }
}

[CollectionDefinition("ProcessCpu", DisableParallelization = true)]
public sealed class ProcessCpuCollection;
