using MobileNetSharp.Runtime;

namespace MobileNetSharp.Tests.Runtime;

/// <summary>The background kernel warm-up: started once per process, finishes without fault, and every group of it works.</summary>
public class KernelWarmupTests
{
    [Fact]
    public async Task StartsOnceAndFinishesWithoutFault()
    {
        KernelWarmup.Start();
        var first = KernelWarmup.Completion;
        KernelWarmup.Start();
        Assert.Same(first, KernelWarmup.Completion);
        await first.WaitAsync(TimeSpan.FromMinutes(5)); // throws if it faulted or did not finish in time
        // Any process with a spare core and the warm-up enabled (the default) has started it by now.
        if (KernelWarmup.Enabled && Environment.ProcessorCount > 1) Assert.NotSame(Task.CompletedTask, first);
    }

    /// <summary>The background warm-up swallows errors; here every group runs with errors rethrown, so none is silently broken.</summary>
    [Fact]
    public void EveryGroupRunsWithoutError() => KernelWarmup.RunGroups(stopWhenARunStarts: false, rethrow: true);
}
