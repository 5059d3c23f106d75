using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace MobileNetSharp.Kernels;

/// <summary>
/// A tiny fork-join pool for kernels. <c>Workers(n)</c> starts n-1 background threads; the thread that
/// calls <see cref="For"/> is worker 0 and takes part in the loop.
/// <para>
/// The loop body is a static function pointer plus an untyped context pointer (usually the address of a
/// struct on the caller's stack holding pinned pointers and sizes). Nothing is captured, so a call
/// allocates nothing. Bodies should be coarse (a block of rows, not a row of floats).
/// </para>
/// <para>
/// Scheduling: participant p owns the contiguous index range p*count/Count .. (p+1)*count/Count and
/// works through it first, then steals leftover indices from the others' ranges. Owning the same range
/// on every call keeps a thread on the same rows of consecutive layers and benchmark iterations, so its
/// caches (and on multi-die parts its L3) already hold them; with a shared handout counter rows
/// migrated between cores each call and large layers ran slower on two threads than on one.
/// </para>
/// <para>
/// Idle workers spin for ~50 µs (layers of a model arrive back to back) and then block on a monitor;
/// inside a <see cref="Burst"/> (a whole model run) they keep spinning, because the sequential steps
/// between two parallel layers can outlast 50 µs and a wake-up per layer costs more than the layer.
/// When the burst ends they block again, so an idle session costs no CPU.
/// The caller never waits for a worker to wake up: once it has run out of indices it withdraws the offer
/// from every worker that has not started, and waits only for those still running an index. So a sleeping
/// or preempted worker (a loaded machine, another runtime's spinning threads) costs at most the
/// single-threaded time, not a wake-up latency per loop.
/// An exception thrown by any iteration stops the remaining ones and is rethrown on the caller with its
/// original stack. A nested or concurrent <see cref="For"/> on a busy pool runs inline on its caller.
/// </para>
/// </summary>
public sealed unsafe class Workers : IDisposable
{
    private static readonly long SpinTicks = Stopwatch.Frequency / 20_000; // 50 µs

    /// <summary>A pool of one: every loop runs inline, no thread is ever created.</summary>
    public static Workers Single { get; } = new(1);

    private readonly Thread[] _threads;
    private readonly object _wake = new();
    private readonly object _done = new();
    private volatile bool _disposed;
    private int _generation;
    private int _busy;
    private int _callerWaiting;
    private int _bursts; // open Burst scopes: while > 0, idle workers spin instead of blocking

    // The current job; written by the caller before the claims are offered (a full fence).
    private delegate*<void*, int, void> _body;
    private void* _context;
    // Per participant, Stride ints apart so each sits on its own cache line: [p * Stride] = next index of its
    // range, [+1] = end, [+2] = claim of worker p on the current job: G = offered (job generation G > 0),
    // -G = running, 0 = finished or withdrawn by the caller.
    private const int Stride = 16;
    private readonly int[] _ranges;
    private Exception? _error;

    public Workers(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        Count = threads;
        _ranges = new int[threads * Stride];
        _threads = new Thread[threads - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            int self = i + 1;
            _threads[i] = new Thread(() => WorkerLoop(self)) { IsBackground = true, Name = $"mnet-worker-{self}" };
            _threads[i].Start();
        }
    }

    /// <summary>Threads taking part in a loop, the caller included.</summary>
    public int Count { get; }

    /// <summary>
    /// Keeps idle workers spinning until the returned scope is disposed: wrap a sequence of loops that
    /// follow each other closely (one inference). Scopes may nest and overlap; a pool of one ignores them.
    /// </summary>
    public BurstScope Burst()
    {
        if (Count > 1) Interlocked.Increment(ref _bursts);
        return new BurstScope(this);
    }

    /// <summary>Ends a <see cref="Burst"/>; a struct so opening one allocates nothing.</summary>
    public readonly struct BurstScope(Workers pool) : IDisposable
    {
        public void Dispose()
        {
            if (pool.Count > 1) Interlocked.Decrement(ref pool._bursts);
        }
    }

    /// <summary>Runs <c>body(context, i)</c> for i in [0, count) across the pool and returns when all are done.</summary>
    public void For(int count, delegate*<void*, int, void> body, void* context)
    {
        if (count <= 0) return;
        if (count == 1 || _threads.Length == 0 || _disposed || Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            for (int i = 0; i < count; i++) body(context, i);
            return;
        }

        try
        {
            _body = body;
            _context = context;
            for (int p = 0; p < Count; p++)
                (_ranges[p * Stride], _ranges[p * Stride + 1]) = Split(count, Count, p);
            _error = null;
            int generation = _generation == int.MaxValue ? 1 : _generation + 1;
            for (int p = 1; p < Count; p++) Volatile.Write(ref _ranges[p * Stride + 2], generation);
            lock (_wake)
            {
                _generation = generation;
                Monitor.PulseAll(_wake);
            }

            Drain(0);
            WaitForWorkers(generation);
            if (_error is { } error) ExceptionDispatchInfo.Throw(error);
        }
        finally
        {
            _body = null;
            _context = null;
            _error = null;
            Volatile.Write(ref _busy, 0);
        }
    }

    /// <summary>Runs participant <paramref name="self"/>'s own range, then steals from the others in turn.</summary>
    private void Drain(int self)
    {
        try
        {
            for (int k = 0; k < Count; k++)
            {
                int p = (self + k) % Count;
                ref int cursor = ref _ranges[p * Stride];
                int end = _ranges[p * Stride + 1], i;
                while ((i = Interlocked.Increment(ref cursor) - 1) < end) _body(_context, i);
            }
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref _error, e, null);
            for (int p = 0; p < Count; p++) Volatile.Write(ref _ranges[p * Stride], _ranges[p * Stride + 1]); // everyone stops taking indices
        }
    }

    /// <summary>
    /// Called once the caller has run out of indices (its own and stolen ones). A worker that has not yet picked
    /// the job up (asleep, being woken, or preempted by another process) has its offer withdrawn, so the caller
    /// never waits for a wake-up that would bring no work; only workers that are running an index are awaited.
    /// </summary>
    private void WaitForWorkers(int generation)
    {
        for (int p = 1; p < Count; p++)
        {
            ref int claim = ref _ranges[p * Stride + 2];
            if (Interlocked.CompareExchange(ref claim, 0, generation) == generation) continue; // withdrawn
            if (Volatile.Read(ref claim) == 0) continue;
            long deadline = Stopwatch.GetTimestamp() + SpinTicks;
            while (Volatile.Read(ref claim) != 0 && Stopwatch.GetTimestamp() < deadline) Thread.SpinWait(8);
            if (Volatile.Read(ref claim) == 0) continue;
            lock (_done)
            {
                Interlocked.Exchange(ref _callerWaiting, 1);
                while (Volatile.Read(ref claim) != 0) Monitor.Wait(_done);
                _callerWaiting = 0;
            }
        }
    }

    private void WorkerLoop(int self)
    {
        int seen = 0;
        ref int claim = ref _ranges[self * Stride + 2];
        while (true)
        {
            int generation;
            long deadline = Stopwatch.GetTimestamp() + SpinTicks;
            while ((generation = Volatile.Read(ref _generation)) == seen && !_disposed
                   && (Volatile.Read(ref _bursts) > 0 || Stopwatch.GetTimestamp() < deadline))
                Thread.SpinWait(8);
            if (generation == seen)
            {
                lock (_wake)
                {
                    while ((generation = _generation) == seen && !_disposed) Monitor.Wait(_wake);
                }
            }
            if (_disposed) return;
            seen = generation;

            // Take the job unless the caller has already finished it and withdrawn the offer.
            if (Interlocked.CompareExchange(ref claim, -generation, generation) != generation) continue;
            Drain(self);
            Interlocked.Exchange(ref claim, 0);
            if (Volatile.Read(ref _callerWaiting) != 0)
            {
                lock (_done) Monitor.PulseAll(_done);
            }
        }
    }

    public void Dispose()
    {
        if (_disposed || _threads.Length == 0) return;
        _disposed = true;
        lock (_wake) Monitor.PulseAll(_wake);
        foreach (Thread t in _threads) t.Join();
    }

    /// <summary>Splits [0, total) into <paramref name="parts"/> near-equal ranges; returns the i-th.</summary>
    internal static (int Start, int End) Split(int total, int parts, int i)
    {
        int baseSize = total / parts, extra = total % parts;
        int start = i * baseSize + Math.Min(i, extra);
        return (start, start + baseSize + (i < extra ? 1 : 0));
    }
}
