using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;

namespace MobileNetSharp.Training.Data;

/// <summary>
/// Produces items 0..count-1 on a background thread, at most <c>depth</c> ahead of the consumer, and hands
/// them out in order: data preparation overlaps training. An exception in the producer is rethrown to the
/// consumer (original stack) when it reaches the failed item; cancelling the token, or disposing the
/// prefetcher, stops the producer, and <see cref="Dispose"/> waits for it to finish.
/// </summary>
public sealed class Prefetcher<T> : IEnumerable<T>, IDisposable
{
    private readonly BlockingCollection<T> _queue;
    private readonly CancellationTokenSource _cts;
    private readonly Task _producer;
    private ExceptionDispatchInfo? _error;
    private int _enumerated;

    public Prefetcher(int count, Func<int, T> produce, int depth = 2, CancellationToken cancellation = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (depth < 1 || depth > 1024) throw new ArgumentOutOfRangeException(nameof(depth), "prefetch depth must be 1..1024.");
        _queue = new BlockingCollection<T>(new ConcurrentQueue<T>(), depth);
        _cts = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        var token = _cts.Token;
        _producer = Task.Factory.StartNew(() =>
        {
            try
            {
                for (int i = 0; i < count; i++)
                {
                    token.ThrowIfCancellationRequested();
                    _queue.Add(produce(i), token);
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested) { }
            catch (Exception e) { _error = ExceptionDispatchInfo.Capture(e); }
            finally { _queue.CompleteAdding(); }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>The items in order; throws the producer's exception, or OperationCanceledException once cancelled.</summary>
    public IEnumerator<T> GetEnumerator()
    {
        if (Interlocked.Exchange(ref _enumerated, 1) != 0) throw new InvalidOperationException("A prefetcher can be enumerated once.");
        foreach (var item in _queue.GetConsumingEnumerable(_cts.Token)) yield return item;
        _error?.Throw();
        _cts.Token.ThrowIfCancellationRequested();
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();

    public void Dispose()
    {
        _cts.Cancel();
        try { _producer.Wait(); } catch (AggregateException) { }
        _cts.Dispose();
        _queue.Dispose();
    }
}
