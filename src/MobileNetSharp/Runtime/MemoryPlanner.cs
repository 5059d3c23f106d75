namespace MobileNetSharp.Runtime;

/// <summary>
/// Assigns arena offsets so that buffers whose lifetimes overlap never overlap in memory, largest
/// buffers first (the greedy-by-size strategy of TFLite's planner): a MobileNet needs a few of its
/// largest activations at a time, not the sum of all of them.
/// </summary>
internal static class MemoryPlanner
{
    /// <summary>Floats per alignment unit: 64 bytes, one cache line and one Vector512.</summary>
    private const int Align = 16;

    /// <summary>Computes lifetimes from the steps, assigns offsets and returns the arena length in 4-byte units.</summary>
    /// <remarks>Lengths are summed in long: the caller rejects an arena too large to allocate.</remarks>
    /// <param name="inputs">Written before the first step.</param>
    /// <param name="outputs">Read after the last step.</param>
    public static long Plan(IReadOnlyList<Step> steps, IEnumerable<Slot> inputs, IEnumerable<Slot> outputs)
    {
        var slots = new HashSet<Slot>();
        void Use(Slot s, int time)
        {
            if (s.Constant is not null) return;
            slots.Add(s);
            s.FirstUse = Math.Min(s.FirstUse, time);
            s.LastUse = Math.Max(s.LastUse, time);
        }
        foreach (var s in inputs) Use(s, -1);
        for (int i = 0; i < steps.Count; i++)
            foreach (var s in steps[i].Reads.Concat(steps[i].Writes)) Use(s, i);
        foreach (var s in outputs) Use(s, steps.Count);

        var placed = new List<Slot>();
        long arena = 0;
        foreach (var s in slots.OrderByDescending(s => s.ArenaLength).ThenBy(s => s.FirstUse))
        {
            long offset = 0;
            // Walk the live conflicting buffers by offset and take the first gap that fits.
            foreach (var p in placed.Where(p => p.FirstUse <= s.LastUse && s.FirstUse <= p.LastUse).OrderBy(p => p.Offset))
            {
                if (offset + s.ArenaLength <= p.Offset) break;
                offset = Math.Max(offset, RoundUp(p.Offset + (long)p.ArenaLength));
            }
            s.Offset = offset <= int.MaxValue ? (int)offset : -1; // -1: the arena will be refused as too large
            arena = Math.Max(arena, offset + s.ArenaLength);
            placed.Add(s);
        }
        return RoundUp(arena);
    }

    private static long RoundUp(long n) => (n + Align - 1) / Align * Align;
}
