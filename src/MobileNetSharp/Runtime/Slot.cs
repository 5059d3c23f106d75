namespace MobileNetSharp.Runtime;

/// <summary>Physical element order of a value's buffer. Rank-4 activations run channels-last.</summary>
public enum MemoryLayout { Plain, Nhwc }

/// <summary>
/// A float buffer of the plan. Several values may share one (a reshape is the same buffer), each in
/// its own layout, so the layout belongs to the value-to-slot mapping of the compiler, not to the slot.
/// It is either a constant (its own array) or a region of the arena whose offset
/// the memory planner assigns from the lifetimes of the values that share it.
/// </summary>
internal sealed class Slot
{
    public string Name { get; }
    public int Length { get; }
    /// <summary>Physical shape (NHWC order when it holds a channels-last value).</summary>
    public int[] Shape { get; }
    public float[]? Constant { get; }
    public int Offset { get; set; } = -1;
    public int FirstUse { get; set; } = int.MaxValue;
    public int LastUse { get; set; } = -1;

    public Slot(string name, int[] physicalShape, float[]? constant = null)
    {
        Name = name;
        Shape = physicalShape;
        Length = checked((int)Tensors.Shape.Size(physicalShape));
        Constant = constant;
    }

    public override string ToString() => $"{Name}{Tensors.Shape.Format(Shape)} @{Offset}";
}

/// <summary>What every step sees at run time: the arena and the worker threads.</summary>
/// <remarks>
/// The arena is pinned and starts at a 64-byte boundary (slot offsets are multiples of 16 floats), so a
/// full Vector512 load never straddles two cache lines: depthwise kernels measured ~30% faster aligned.
/// </remarks>
internal sealed unsafe class RunContext
{
    private const int AlignFloats = 16;
    private readonly float[] _arena;
    private readonly int _base;

    public RunContext(int arenaLength, Kernels.Workers workers)
    {
        _arena = GC.AllocateUninitializedArray<float>(arenaLength + AlignFloats, pinned: true);
        fixed (float* p = _arena) _base = (int)((64 - (nint)p % 64) % 64 / sizeof(float));
        Workers = workers;
    }

    public long ArenaBytes => (long)(_arena.Length - AlignFloats) * sizeof(float);
    public Kernels.Workers Workers { get; }

    public ReadOnlySpan<float> Read(Slot s) => s.Constant is { } c ? c : new ReadOnlySpan<float>(_arena, _base + s.Offset, s.Length);
    public Span<float> Write(Slot s) => s.Constant is null ? new Span<float>(_arena, _base + s.Offset, s.Length)
        : throw new InvalidOperationException($"Step writes into constant {s.Name}.");
    public ReadOnlySpan<float> ReadOptional(Slot? s) => s is null ? default : Read(s);
}

/// <summary>One unit of a compiled plan: reads some slots, writes others, runs a kernel.</summary>
internal abstract class Step(string name, Slot[] reads, Slot[] writes)
{
    public string Name { get; } = name;
    public Slot[] Reads { get; } = reads;
    public Slot[] Writes { get; } = writes;
    /// <summary>Which kernel this step runs, for profiles and summaries.</summary>
    public virtual string Kernel => GetType().Name.Replace("Step", "");
    public abstract void Execute(RunContext ctx);
}
