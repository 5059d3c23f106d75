using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Runtime;

/// <summary>Physical element order of a value's buffer. Rank-4 activations run channels-last.</summary>
public enum MemoryLayout { Plain, Nhwc }

/// <summary>
/// A typed buffer of the plan. Several values may share one (a reshape is the same buffer), each in
/// its own layout, so the layout belongs to the value-to-slot mapping of the compiler, not to the slot.
/// It is either a constant (its own array, of the slot's element type) or a region of the arena whose
/// offset the memory planner assigns from the lifetimes of the values that share it.
/// </summary>
internal sealed class Slot
{
    public string Name { get; }
    public DataType DataType { get; }
    /// <summary>Element count.</summary>
    public int Length { get; }
    /// <summary>Arena units (4 bytes each) the slot occupies: float32 slots take one per element.</summary>
    public int ArenaLength { get; }
    /// <summary>Physical shape (NHWC order when it holds a channels-last value).</summary>
    public int[] Shape { get; }
    /// <summary>The constant's own array (float[], long[], byte[], ...) or null for arena slots.</summary>
    public Array? Constant { get; }
    /// <summary>Offset into the arena in 4-byte units, assigned by <see cref="MemoryPlanner"/>.</summary>
    public int Offset { get; set; } = -1;
    public int FirstUse { get; set; } = int.MaxValue;
    public int LastUse { get; set; } = -1;

    public Slot(string name, int[] physicalShape, DataType type = DataType.Float32, Array? constant = null)
    {
        Name = name;
        Shape = physicalShape;
        DataType = type;
        Length = checked((int)Tensors.Shape.Size(physicalShape));
        ArenaLength = checked((int)(((long)Length * type.SizeOf() + 3) / 4));
        Constant = constant;
    }

    public Slot(string name, int[] physicalShape, float[] constant) : this(name, physicalShape, DataType.Float32, constant) { }

    public override string ToString() => $"{Name}<{DataType}>{Tensors.Shape.Format(Shape)} @{Offset}";
}

/// <summary>What every step sees during one run: an arena of its own and the worker threads it may use.</summary>
/// <remarks>
/// The arena is pinned and starts at a 64-byte boundary (slot offsets are multiples of 16 units), so a
/// full Vector512 load never straddles two cache lines: depthwise kernels measured ~30% faster aligned.
/// A plan keeps a small pool of contexts so that concurrent runs never share an arena.
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

    private Dictionary<Step, object>? _state;

    /// <summary>
    /// What <paramref name="step"/> keeps from one run of this context to the next, or null before it first stored
    /// any: buffers it would otherwise allocate on every run (say, weights that change each run, packed). A context
    /// serves one run at a time, so the state needs no locking; concurrent runs have contexts of their own.
    /// </summary>
    public T? State<T>(Step step) where T : class => _state is not null && _state.TryGetValue(step, out var s) ? (T)s : null;

    /// <summary>Stores <paramref name="state"/> for <paramref name="step"/> (see <see cref="State{T}"/>); returns it.</summary>
    public T SetState<T>(Step step, T state) where T : class
    {
        (_state ??= new(ReferenceEqualityComparer.Instance))[step] = state;
        return state;
    }
    /// <summary>The pool this run may fork onto: the session's, or the single-thread pool when another run holds it.</summary>
    public Kernels.Workers Workers { get; set; }

    /// <summary>A float32 slot's elements (the hot path: no type dispatch).</summary>
    public ReadOnlySpan<float> Read(Slot s) => s.Constant is { } c ? Unsafe.As<float[]>(c) : new ReadOnlySpan<float>(_arena, _base + s.Offset, s.Length);
    public Span<float> Write(Slot s) => s.Constant is null ? new Span<float>(_arena, _base + s.Offset, s.Length)
        : throw new InvalidOperationException($"Step writes into constant {s.Name}.");
    public ReadOnlySpan<float> ReadOptional(Slot? s) => s is null ? default : Read(s);

    /// <summary>Any slot's elements as <typeparamref name="T"/>, which must have the slot's element size.</summary>
    public ReadOnlySpan<T> Read<T>(Slot s) where T : unmanaged =>
        s.Constant is { } c ? MemoryMarshal.Cast<byte, T>(Bytes(c)) : Write<T>(s, allowConstant: true);

    public Span<T> Write<T>(Slot s) where T : unmanaged => Write<T>(s, allowConstant: false);

    private Span<T> Write<T>(Slot s, bool allowConstant) where T : unmanaged
    {
        if (s.Constant is not null && !allowConstant) throw new InvalidOperationException($"Step writes into constant {s.Name}.");
        return MemoryMarshal.Cast<float, T>(new Span<float>(_arena, _base + s.Offset, s.ArenaLength))[..s.Length];
    }

    /// <summary>A slot's bytes (any element type), for copying inputs in and outputs out.</summary>
    public Span<byte> WriteBytes(Slot s) =>
        MemoryMarshal.AsBytes(new Span<float>(_arena, _base + s.Offset, s.ArenaLength))[..(s.Length * s.DataType.SizeOf())];

    public ReadOnlySpan<byte> ReadBytes(Slot s) => s.Constant is { } c ? Bytes(c) : WriteBytes(s);

    /// <summary>The raw bytes of an array of any unmanaged element type.</summary>
    internal static ReadOnlySpan<byte> Bytes(Array a) => ElementBytes.Of(a);
}

/// <summary>One unit of a compiled plan: reads some slots, writes others, runs a kernel.</summary>
/// <remarks>Steps hold no per-run state (scratch lives in the arena), so one plan serves concurrent runs.</remarks>
internal abstract class Step(string name, Slot[] reads, Slot[] writes)
{
    public string Name { get; } = name;
    public Slot[] Reads { get; } = reads;
    public Slot[] Writes { get; } = writes;
    /// <summary>Which kernel this step runs, for profiles and summaries.</summary>
    public virtual string Kernel => GetType().Name.Replace("Step", "");
    /// <summary>The graph nodes this step computes: its own name, or every node of a fused block.</summary>
    public virtual IReadOnlyList<string> Nodes => [Name];
    /// <summary>This step's kernels at a miniature size, for <see cref="KernelWarmup"/> to compile ahead of the first run;
    /// null for steps whose code is cheap to compile.</summary>
    public virtual KernelWarmer? Warmer => null;
    public abstract void Execute(RunContext ctx);
}
