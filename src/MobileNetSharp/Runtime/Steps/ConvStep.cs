using MobileNetSharp.Kernels;

namespace MobileNetSharp.Runtime;

/// <summary>A convolution (any kind) on NHWC slots, with bias, residual and activation fused.</summary>
internal sealed class ConvStep(string name, Conv2dOperator op, int batch, Slot input, Slot output, Slot? residual, Slot? scratch)
    : Step(name, residual is null ? [input] : [input, residual], scratch is null ? [output] : [output, scratch])
{
    public override string Kernel => op.KernelName;

    public override void Execute(RunContext ctx) =>
        op.Run(batch, ctx.Read(input), ctx.Write(output), ctx.ReadOptional(residual),
            scratch is null ? default : ctx.Write(scratch), ctx.Workers);
}
