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
/// Idle workers spin for ~50 µs (layers of a model arrive back to back) and then block on a monitor.
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

    // The current job; written by the caller before _generation is bumped under _wake (a full fence).
    private delegate*<void*, int, void> _body;
    private void* _context;
    private int _pending;
    // Per participant: [p * Stride] = next index of its range, [p * Stride + 1] = end. Stride keeps each
    // cursor on its own cache line.
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
            _pending = _threads.Length;
            lock (_wake)
            {
                _generation++;
                Monitor.PulseAll(_wake);
            }

            Drain(0);
            WaitForWorkers();
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

    private void WaitForWorkers()
    {
        long deadline = Stopwatch.GetTimestamp() + SpinTicks;
        while (Volatile.Read(ref _pending) != 0 && Stopwatch.GetTimestamp() < deadline) Thread.SpinWait(16);
        if (Volatile.Read(ref _pending) == 0) return;
        lock (_done)
        {
            while (Volatile.Read(ref _pending) != 0) Monitor.Wait(_done);
        }
    }

    private void WorkerLoop(int self)
    {
        int seen = 0;
        while (true)
        {
            int generation;
            long deadline = Stopwatch.GetTimestamp() + SpinTicks;
            while ((generation = Volatile.Read(ref _generation)) == seen && !_disposed && Stopwatch.GetTimestamp() < deadline)
                Thread.SpinWait(16);
            if (generation == seen)
            {
                lock (_wake)
                {
                    while ((generation = _generation) == seen && !_disposed) Monitor.Wait(_wake);
                }
            }
            if (_disposed) return;
            seen = generation;

            Drain(self);
            if (Interlocked.Decrement(ref _pending) == 0)
            {
                lock (_done) Monitor.Pulse(_done);
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
