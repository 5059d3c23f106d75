using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace MobileNetSharp.Kernels;

/// <summary>
/// A tiny fork-join pool for kernels. <c>Workers(n)</c> starts n-1 background threads; the thread that
/// calls <see cref="For"/> is worker 0 and takes part in the loop.
/// <para>
/// The loop body is a static function pointer plus an untyped context pointer (usually the address of a
/// struct on the caller's stack holding pinned pointers and sizes). Nothing is captured, so a call
/// allocates nothing. Iterations are handed out one index at a time from a shared counter, so bodies
/// should be coarse (a block of rows, not a row of floats).
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
    private int _count;
    private int _next;
    private int _pending;
    private Exception? _error;

    public Workers(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        Count = threads;
        _threads = new Thread[threads - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            _threads[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"mnet-worker-{i + 1}" };
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
            _count = count;
            _next = 0;
            _error = null;
            _pending = _threads.Length;
            lock (_wake)
            {
                _generation++;
                Monitor.PulseAll(_wake);
            }

            Drain();
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

    private void Drain()
    {
        try
        {
            int i;
            while ((i = Interlocked.Increment(ref _next) - 1) < _count) _body(_context, i);
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref _error, e, null);
            Volatile.Write(ref _next, _count); // the others stop taking indices
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

    private void WorkerLoop()
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

            Drain();
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
