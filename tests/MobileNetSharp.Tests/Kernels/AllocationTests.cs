using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>Steady-state Run allocates nothing on the calling thread, for every conv path and the FC operator.</summary>
public class AllocationTests
{
    [Fact]
    public void SteadyStateRunsAllocateNothing()
    {
        var rng = new Random(5);
        Conv2dGeometry[] geometries =
        [
            new(1, 14, 14, 32, 48, 1, 1),                                              // gemm-1x1
            new(1, 14, 14, 48, 48, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 48),                  // dw3x3s2
            new(1, 14, 14, 20, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 20),                  // dw-generic (multiplier 2)
            new(1, 32, 32, 3, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1),                       // stem3
            new(1, 12, 12, 8, 8, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 2),                     // im2col-gemm
        ];
        using var two = new Workers(2);
        foreach (Workers workers in new[] { Workers.Single, two })
        {
            foreach (Conv2dGeometry g in geometries)
            {
                var op = new Conv2dOperator(g, TestData.Random(rng, g.WeightLength), TestData.Random(rng, g.OutC), Activation.HardSwish);
                float[] x = TestData.Random(rng, g.InputLength), y = new float[g.OutputLength], r = TestData.Random(rng, g.OutputLength);
                float[] scratch = new float[op.ScratchLength(1)];
                AssertNoAllocation(() => op.Run(1, x, y, r, scratch, workers), $"{op.KernelName} t{workers.Count}");
                float[] w = TestData.Random(rng, g.WeightLength), b = TestData.Random(rng, g.OutC);
                AssertNoAllocation(() => op.Repack(w, b), $"{op.KernelName} repack"); // a training step's new weights
            }
            var fc = new FullyConnectedOperator(64, 40, TestData.Random(rng, 64 * 40), TestData.Random(rng, 40), Activation.Relu);
            float[] fx = TestData.Random(rng, 3 * 64), fy = new float[3 * 40];
            AssertNoAllocation(() => fc.Run(3, fx, fy, workers), $"fc t{workers.Count}");
        }
    }

    /// <summary>
    /// A per-run allocation shows in every window of 20 runs; the JIT tiering a method up (or replacing it on
    /// the stack) can touch one window on a busy machine. So: three windows, and one must be clean.
    /// </summary>
    internal static void AssertNoAllocation(Action run, string what)
    {
        for (int i = 0; i < 5; i++) run();
        var windows = new List<long>();
        for (int w = 0; w < 3; w++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 20; i++) run();
            windows.Add(GC.GetAllocatedBytesForCurrentThread() - before);
            if (windows[^1] == 0) return;
        }
        Assert.Fail($"{what}: allocated {string.Join(", ", windows)} bytes in three windows of 20 steady-state runs");
    }
}
