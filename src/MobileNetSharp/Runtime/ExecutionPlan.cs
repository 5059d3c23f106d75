using MobileNetSharp.Tensors;

namespace MobileNetSharp.Runtime;

/// <summary>
/// A compiled graph for fixed input shapes: steps in order, the arena layout of every intermediate,
/// weights packed into their operators. Running it copies inputs in, runs the steps, copies outputs
/// out; nothing is allocated when the caller supplies the output tensors.
/// </summary>
/// <remarks>
/// Thread-safe: steps are immutable and each run takes a <see cref="RunContext"/> (its own arena) from a
/// small pool, so concurrent runs never share intermediates. At most <see cref="MaxPooledContexts"/> idle
/// contexts are kept; a burst of more concurrent callers allocates extra arenas that are dropped afterwards,
/// so memory stays bounded by the peak concurrency, not by the number of runs.
/// </remarks>
internal sealed class ExecutionPlan
{
    /// <summary>Idle arenas kept per plan for later runs.</summary>
    public static readonly int MaxPooledContexts = Math.Max(2, Environment.ProcessorCount);

    private readonly Stack<RunContext> _idle = new();
    private readonly int _arenaLength;

    public Step[] Steps { get; }
    public Slot[] Inputs { get; }
    public Slot[] Outputs { get; }
    public int[][] InputShapes { get; }
    public int[][] OutputShapes { get; }
    public long ArenaBytes => (long)_arenaLength * sizeof(float);
    /// <summary>Arenas waiting for the next run.</summary>
    public int IdleContexts { get { lock (_idle) return _idle.Count; } }

    /// <param name="outputShapes">Logical shapes of the outputs (a slot may hold an output under another physical shape, e.g. before a reshape).</param>
    public ExecutionPlan(Step[] steps, Slot[] inputs, Slot[] outputs, int[][] outputShapes, int arenaLength)
    {
        (Steps, Inputs, Outputs, OutputShapes, _arenaLength) = (steps, inputs, outputs, outputShapes, arenaLength);
        InputShapes = inputs.Select(s => s.Shape).ToArray();
        _idle.Push(new RunContext(arenaLength, Kernels.Workers.Single)); // the first run finds its arena ready
    }

    /// <summary>
    /// Runs on <paramref name="inputs"/> (shapes and types already checked by the session) into
    /// <paramref name="outputs"/>. The kernels fork onto <paramref name="workers"/> when this run wins it;
    /// a concurrent run finds it taken and runs on its own thread (still correct, and the callers' threads
    /// then share the cores instead of waiting on each other).
    /// </summary>
    /// <param name="warmUp">This is <see cref="KernelWarmup"/>'s run; any other tells the warm-up that real work has begun.</param>
    public void Run(ReadOnlySpan<Tensor> inputs, Span<Tensor> outputs, Kernels.Workers workers, long[]? stepTicks = null, bool warmUp = false)
    {
        if (!warmUp) KernelWarmup.NoteRun();
        var ctx = Rent();
        bool leased = workers.Count > 1 && Monitor.TryEnter(workers);
        try
        {
            ctx.Workers = leased ? workers : Kernels.Workers.Single;
            using var burst = ctx.Workers.Burst(); // workers stay hot between the layers of this run
            for (int i = 0; i < Inputs.Length; i++) CopyIn(inputs[i], ctx, Inputs[i]);
            for (int s = 0; s < Steps.Length; s++)
            {
                if (stepTicks is null) { Steps[s].Execute(ctx); continue; }
                long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
                Steps[s].Execute(ctx);
                stepTicks[s] += System.Diagnostics.Stopwatch.GetTimestamp() - t0;
            }
            for (int i = 0; i < Outputs.Length; i++) CopyOut(ctx, Outputs[i], outputs[i]);
        }
        finally
        {
            if (leased) Monitor.Exit(workers);
            Return(ctx);
        }
    }

    private static void CopyIn(Tensor t, RunContext ctx, Slot s)
    {
        if (t.Data is float[] f) { f.AsSpan().CopyTo(ctx.Write(s)); return; }
        RunContext.Bytes(t.Data).CopyTo(ctx.WriteBytes(s));
    }

    private static void CopyOut(RunContext ctx, Slot s, Tensor t)
    {
        if (t.Data is float[] f) { ctx.Read(s).CopyTo(f); return; }
        ctx.ReadBytes(s).CopyTo(System.Runtime.InteropServices.MemoryMarshal.CreateSpan(
            ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(t.Data), t.Length * t.DataType.SizeOf()));
    }

    private RunContext Rent()
    {
        lock (_idle)
            if (_idle.TryPop(out var ctx)) return ctx;
        return new RunContext(_arenaLength, Kernels.Workers.Single);
    }

    private void Return(RunContext ctx)
    {
        lock (_idle)
            if (_idle.Count < MaxPooledContexts) _idle.Push(ctx);
    }
}
