using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Kernels.Fused;

namespace MobileNetSharp.Runtime;

/// <summary>
/// A pass over a lowered inference plan: each chain of convolution steps 1x1 -> depthwise -> 1x1 (an inverted
/// residual block, the residual already fused into the last) or depthwise -> 1x1 (a separable pair) whose
/// intermediates nobody else reads becomes one <see cref="BandedBlockStep"/>, when the kernels allow it and those
/// intermediates are too large to stay in cache and outweigh the weights the bands re-read (<see cref="BandedBlock.TryCreate"/>). Runs on steps rather than on the graph so the
/// graph keeps its ONNX form (export, summaries, training) and the choice can depend on the plan's shapes.
/// </summary>
internal static class BlockFusion
{
    /// <param name="steps">The plan's steps in order; rewritten in place.</param>
    /// <param name="keep">Slots that must stay materialized (graph outputs).</param>
    /// <param name="threads">Most thread ranges a run may split a block into (scratch is sized for them).</param>
    /// <param name="cacheBytes">Per-thread scratch budget, and the size below which intermediates count as cached.</param>
    /// <param name="savingsFactor">See <see cref="BandedBlock.TryCreate"/>; 0 fuses every chain whose intermediates exceed the cache.</param>
    /// <returns>How many chains were fused.</returns>
    public static int Run(List<Step> steps, IReadOnlySet<Slot> keep, int threads, long cacheBytes, long savingsFactor = BandedBlock.DefaultSavingsFactor)
    {
        var readers = new Dictionary<Slot, int>();
        foreach (var s in steps)
            foreach (var r in s.Reads.Distinct()) readers[r] = readers.GetValueOrDefault(r) + 1;
        bool Private(Slot s) => readers.GetValueOrDefault(s) == 1 && !keep.Contains(s);

        int fused = 0;
        for (int i = 0; i < steps.Count; i++)
        {
            if (steps[i] is not ConvStep first) continue;
            // expand -> depthwise -> project, or depthwise -> project.
            ConvStep? expand = null, dw, project;
            if (first.Operator.IsPointwiseGemm && first.Residual is null && i + 2 < steps.Count
                && steps[i + 1] is ConvStep d1 && d1.Operator.Depthwise is not null && steps[i + 2] is ConvStep p1)
                (expand, dw, project) = (first, d1, p1);
            else if (first.Operator.Depthwise is not null && i + 1 < steps.Count && steps[i + 1] is ConvStep p2)
                (dw, project) = (first, p2);
            else continue;

            if (dw.Residual is not null || dw.Scratch is not null || project.Scratch is not null) continue;
            if (expand is not null && (expand.Scratch is not null || expand.Output != dw.Input || !Private(expand.Output))) continue;
            if (project.Input != dw.Output || !Private(dw.Output)) continue;
            // The residual may be the block's input (read twice, never written), not the depthwise output the bands never materialize.
            if (project.Residual is { } r && r == project.Input) continue;
            int batch = dw.Batch;
            if ((expand?.Batch ?? batch) != batch || project.Batch != batch) continue;
            var block = BandedBlock.TryCreate(expand?.Operator, dw.Operator, project.Operator, batch, cacheBytes, savingsFactor);
            if (block is null || block.FloatsPerRange * threads > Tensors.Shape.MaxElements) continue; // no scratch buffer that large: leave the layers as they are

            var parts = expand is null ? new[] { dw.Name, project.Name } : [expand.Name, dw.Name, project.Name];
            var scratch = PlanCompiler.Buffer(project.Name + ".bands", [checked((int)(block.FloatsPerRange * threads))]);
            var step = new BandedBlockStep(parts, block, batch, threads, expand?.Input ?? dw.Input, project.Output, project.Residual, scratch);
            steps.RemoveRange(i, parts.Length);
            steps.Insert(i, step);
            fused++;
        }
        return fused;
    }
}

/// <summary>A fused block (see <see cref="BandedBlock"/>); named after its last node, with every node it runs in <see cref="Step.Nodes"/>.</summary>
internal sealed class BandedBlockStep(string[] nodes, BandedBlock block, int batch, int ranges, Slot input, Slot output, Slot? residual, Slot scratch)
    : Step(nodes[^1], residual is null ? [input] : [input, residual], [output, scratch])
{
    public override string Kernel => nodes.Length == 3 ? "fused-ir" : "fused-dw-pw";
    public override IReadOnlyList<string> Nodes => nodes;

    public override unsafe void Execute(RunContext ctx)
    {
        fixed (float* x = ctx.Read(input), y = ctx.Write(output), r = ctx.ReadOptional(residual), s = ctx.Write(scratch))
            block.Run(batch, x, y, residual is null ? null : r, s, ranges, ctx.Workers);
    }
}
