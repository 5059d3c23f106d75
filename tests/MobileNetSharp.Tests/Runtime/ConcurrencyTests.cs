using MobileNetSharp.Models;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Runtime;

/// <summary>One session, many threads calling Run at once: each call gets exactly what a serial call gets.</summary>
public class ConcurrencyTests
{
    /// <summary>
    /// 8 threads x 200 runs each, alternating two input sizes (two plans) and three different images, against
    /// outputs computed serially first. Runs that win the worker pool and runs that compute on their own thread
    /// both happen; the kernels split work by output ranges without changing any sum's order, so results are
    /// bit-identical. The arenas kept afterwards are bounded by the pool, not by the number of runs.
    /// </summary>
    [Fact]
    public void EightThreadsTimesTwoHundredRunsAtTwoSizesMatchSerialRuns()
    {
        var g = ModelZoo.Create("mobilenet_v2", new ModelOptions(0.35f, 48, Classes: 16));
        using var session = new InferenceSession(g, new SessionOptions { Threads = 2 });
        int[][] shapes = [[1, 3, 48, 48], [2, 3, 64, 40]];
        var inputs = Enumerable.Range(0, 6).Select(i => Tensor.Random(100 + i, shapes[i % 2])).ToArray();
        var expected = inputs.Select(x => session.Run(x)[0].Floats).ToArray();

        const int threads = 8, runs = 200;
        var errors = new System.Collections.Concurrent.ConcurrentBag<string>();
        using var start = new Barrier(threads);
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            for (int r = 0; r < runs; r++)
            {
                int k = (t * 7 + r) % inputs.Length;
                var y = session.Run(inputs[k])[0].Floats;
                if (!y.AsSpan().SequenceEqual(expected[k])) errors.Add($"thread {t} run {r} input {k}: differs from the serial result");
            }
        })).ToArray();
        foreach (var w in workers) w.Start();
        foreach (var w in workers) w.Join();
        Assert.True(errors.IsEmpty, string.Join("\n", errors.Take(5)));
        Assert.InRange(session.PooledArenas, 1, 2 * ExecutionPlan.MaxPooledContexts);
    }

    [Fact]
    public void CallerOwnedOutputsFromManyThreadsStayApart()
    {
        var g = ModelZoo.Create("mobilenet_v1", new ModelOptions(0.25f, 32, Classes: 8));
        using var session = new InferenceSession(g, new SessionOptions { Threads = 2 });
        var inputs = Enumerable.Range(0, 4).Select(i => Tensor.Random(i, [1, 3, 32, 32])).ToArray();
        var expected = inputs.Select(x => session.Run(x)[0].Floats).ToArray();
        Parallel.For(0, 400, new ParallelOptions { MaxDegreeOfParallelism = 6 }, i =>
        {
            var output = new[] { Tensor.Zeros(1, 8) };
            session.Run([inputs[i % 4]], output);
            Assert.Equal(expected[i % 4], output[0].Floats);
        });
    }
}
