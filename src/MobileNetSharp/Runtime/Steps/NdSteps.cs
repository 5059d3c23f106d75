using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Runtime;

/// <summary>A convolution over other than two spatial axes, on plain N, C, spatial... slots, bias and activation fused.</summary>
internal sealed class ConvNdStep(string name, NdGeometry g, float[] weights, float[] bias, Activation act, Slot x, Slot y)
    : Step(name, [x], [y])
{
    public override string Kernel => act.IsNone ? "ConvNd" : $"ConvNd+{act}";

    public override void Execute(RunContext ctx) => NdConvolution.Run(g, ctx.Read(x), weights, bias, act, ctx.Write(y), ctx.Workers);
}

/// <summary>Max or average pooling over other than two spatial axes, on plain slots.</summary>
internal sealed class PoolNdStep(string name, Graph.PoolNd op, NdGeometry g, Slot x, Slot y) : Step(name, [x], [y])
{
    public override string Kernel => op.Type + "Nd";

    public override void Execute(RunContext ctx)
    {
        if (op.Kind == Graph.PoolKind.Max) NdPooling.Max(g, ctx.Read(x), ctx.Write(y), ctx.Workers);
        else NdPooling.Average(g, op.CountIncludePad, ctx.Read(x), ctx.Write(y), ctx.Workers);
    }
}
