namespace MobileNetSharp.Kernels;

/// <summary>One chunk of a <see cref="Chunked"/> pass: elements [start, start + count).</summary>
internal interface IChunkBody
{
    void Invoke(long start, long count);
}

/// <summary>
/// Element-wise passes over large tensors split between the workers in chunks (a residual Add, a gradient's fan-in sum, a
/// copy, dropout). Each element is computed by the same code whichever chunk it falls in, so the results do not depend on
/// the thread count. Small tensors run on the caller's thread: below <see cref="MinParallel"/> elements, waking a
/// worker costs more than it saves (a pass over 64K floats takes about 10-20 µs here).
/// </summary>
internal static unsafe class Chunked
{
    /// <summary>Bytes below which the caller runs the whole pass (64K floats).</summary>
    private const long MinParallelBytes = 1 << 18;

    /// <summary>Float elements below which the caller runs the whole pass.</summary>
    public const long MinParallel = MinParallelBytes / sizeof(float);

    /// <summary>Chunks per worker: a few, so a worker slowed by the shared machine does not hold up the rest.</summary>
    private const int ChunksPerWorker = 4;

    /// <summary>
    /// Runs <paramref name="body"/> over [0, <paramref name="n"/>) elements of <paramref name="elementSize"/> bytes. The workers
    /// reach <paramref name="body"/> through its address, so it must be a local of the caller (a stack value the GC never moves).
    /// </summary>
    public static void Run<T>(Workers workers, long n, ref T body, int elementSize = sizeof(float)) where T : struct, IChunkBody
    {
        if (n <= 0) return;
        if (workers.Count == 1 || n * elementSize < MinParallelBytes)
        {
            body.Invoke(0, n);
            return;
        }
        int chunks = (int)Math.Min(workers.Count * ChunksPerWorker, n * elementSize / (MinParallelBytes / 4));
        // Chunk boundaries on whole 64-byte lines, so no two chunks share a line.
        long line = Math.Max(1, 64 / elementSize);
        long size = ((n + chunks - 1) / chunks + line - 1) / line * line;
        chunks = (int)((n + size - 1) / size);
        var args = new Args<T> { Body = (T*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref body), N = n, Size = size };
        workers.For(chunks, &Task<T>, &args);
    }

    private struct Args<T> where T : struct, IChunkBody
    {
        public T* Body;
        public long N, Size;
    }

    private static void Task<T>(void* context, int index) where T : struct, IChunkBody
    {
        var a = (Args<T>*)context;
        long start = index * a->Size;
        a->Body->Invoke(start, Math.Min(a->Size, a->N - start));
    }
}
