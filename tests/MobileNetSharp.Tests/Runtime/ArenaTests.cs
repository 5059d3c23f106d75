using MobileNetSharp.Runtime;

namespace MobileNetSharp.Tests.Runtime;

public class ArenaTests
{
    [Fact]
    public unsafe void SlotsStartOnCacheLineBoundaries()
    {
        for (int trial = 0; trial < 20; trial++) // several allocations: the GC's placement varies
        {
            var ctx = new RunContext(1024, MobileNetSharp.Kernels.Workers.Single);
            foreach (int offset in new[] { 0, 16, 512 })
            {
                var slot = new Slot("s", [100]) { Offset = offset };
                fixed (float* p = ctx.Write(slot)) Assert.Equal(0, (long)p % 64);
            }
            Assert.Equal(1024 * sizeof(float), ctx.ArenaBytes);
        }
    }
}
