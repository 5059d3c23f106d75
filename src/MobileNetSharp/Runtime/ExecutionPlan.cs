using MobileNetSharp.Tensors;

namespace MobileNetSharp.Runtime;

/// <summary>
/// A compiled graph for fixed input shapes: steps in order, one arena holding every intermediate,
/// weights packed into their operators. Running it copies inputs in, runs the steps, copies outputs
/// out; nothing is allocated when the caller supplies the output tensors.
/// </summary>
internal sealed class ExecutionPlan
{
    private readonly RunContext _ctx;

    public Step[] Steps { get; }
    public Slot[] Inputs { get; }
    public int[][] InputShapes { get; }
    public Slot[] Outputs { get; }
    public int[][] OutputShapes { get; }
    public long ArenaBytes => _ctx.ArenaBytes;

    public ExecutionPlan(Step[] steps, Slot[] inputs, int[][] inputShapes, Slot[] outputs, int[][] outputShapes, int arenaLength, Kernels.Workers workers)
    {
        (Steps, Inputs, InputShapes, Outputs, OutputShapes) = (steps, inputs, inputShapes, outputs, outputShapes);
        _ctx = new RunContext(arenaLength, workers);
    }

    public void Run(ReadOnlySpan<Tensor> inputs, Span<Tensor> outputs, long[]? stepTicks = null)
    {
        using var burst = _ctx.Workers.Burst(); // workers stay hot between the layers of this run
        for (int i = 0; i < Inputs.Length; i++) inputs[i].Floats.AsSpan().CopyTo(_ctx.Write(Inputs[i]));
        for (int s = 0; s < Steps.Length; s++)
        {
            if (stepTicks is null) { Steps[s].Execute(_ctx); continue; }
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            Steps[s].Execute(_ctx);
            stepTicks[s] += System.Diagnostics.Stopwatch.GetTimestamp() - t0;
        }
        for (int i = 0; i < Outputs.Length; i++) _ctx.Read(Outputs[i]).CopyTo(outputs[i].Floats);
    }
}
