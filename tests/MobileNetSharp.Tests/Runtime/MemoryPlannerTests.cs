using MobileNetSharp.Runtime;

namespace MobileNetSharp.Tests.Runtime;

/// <summary>The arena planner's one promise: buffers alive at the same time never share memory.</summary>
public class MemoryPlannerTests
{
    private sealed class FakeStep(Slot[] reads, Slot[] writes) : Step("fake", reads, writes)
    {
        public override void Execute(RunContext ctx) { }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void LiveBuffersNeverOverlapAndDeadOnesAreReused(int seed)
    {
        var rng = new Random(seed);
        var input = new Slot("in", [rng.Next(1, 5000)]);
        var written = new List<Slot> { input };
        var steps = new List<Step>();
        for (int i = 0; i < 200; i++)
        {
            // Read one or two recent values (a chain with skip connections, like residual networks).
            var reads = Enumerable.Range(0, rng.Next(1, 3)).Select(_ => written[Math.Max(0, written.Count - 1 - rng.Next(4))]).Distinct().ToArray();
            var output = new Slot($"v{i}", [rng.Next(1, 5000)]);
            var writes = rng.Next(5) == 0 ? new[] { output, new Slot($"scratch{i}", [rng.Next(1, 3000)]) } : [output];
            steps.Add(new FakeStep(reads, writes));
            written.Add(output);
        }
        var outputs = new[] { written[^1], written[^7] };
        long arena = MemoryPlanner.Plan(steps, [input], outputs);

        var slots = steps.SelectMany(s => s.Reads.Concat(s.Writes)).Append(input).Distinct().ToArray();
        foreach (var s in slots)
        {
            Assert.True(s.Offset >= 0 && s.Offset % 16 == 0 && s.Offset + s.Length <= arena, $"{s} outside the arena of {arena}");
        }
        for (int i = 0; i < slots.Length; i++)
            for (int j = i + 1; j < slots.Length; j++)
            {
                var (a, b) = (slots[i], slots[j]);
                bool alive = a.FirstUse <= b.LastUse && b.FirstUse <= a.LastUse;
                bool overlap = a.Offset < b.Offset + b.Length && b.Offset < a.Offset + a.Length;
                Assert.False(alive && overlap, $"{a} [{a.FirstUse},{a.LastUse}] and {b} [{b.FirstUse},{b.LastUse}] share memory while both alive");
            }
        Assert.Equal(-1, input.FirstUse);            // written before the first step
        Assert.Equal(steps.Count, outputs[1].LastUse); // read after the last one
        Assert.True(arena < slots.Sum(s => (long)s.Length) / 4, "the arena should reuse memory of dead buffers");
    }
}
