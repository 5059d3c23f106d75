using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Runtime;

internal sealed class ActivationStep(string name, Activation act, Slot x, Slot y) : Step(name, [x], [y])
{
    public override string Kernel => act.ToString();
    public override void Execute(RunContext ctx) => Elementwise.Apply(act, ctx.Read(x), ctx.Write(y));
}

/// <summary>Broadcasting binary op on physical shapes (both operands already in the output's layout).</summary>
internal sealed class BinaryStep(string name, BinaryKind kind, Activation act, Slot a, int[] aShape, Slot b, int[] bShape, Slot y)
    : Step(name, [a, b], [y])
{
    public override string Kernel => act.IsNone ? kind.ToString() : $"{kind}+{act}";

    public override void Execute(RunContext ctx)
    {
        var output = ctx.Write(y);
        Elementwise.Binary(kind, ctx.Read(a), aShape, ctx.Read(b), bShape, output, y.Shape);
        if (!act.IsNone) Elementwise.Apply(act, output, output);
    }
}

/// <summary>
/// Batch norm that could not be folded: a per-channel affine map. Channels are innermost in NHWC and in
/// rank-2 tensors; for other plain ranks each (n, c) plane is one contiguous run of `inner` values.
/// </summary>
internal sealed class BatchNormStep(string name, float[] scale, float[] shift, int inner, Slot x, Slot y) : Step(name, [x], [y])
{
    public override void Execute(RunContext ctx)
    {
        var input = ctx.Read(x);
        var output = ctx.Write(y);
        int c = scale.Length;
        if (inner == 1)
        {
            Elementwise.ChannelAffine(input, scale, shift, output, c, Activation.None);
            return;
        }
        for (int plane = 0, off = 0; off < input.Length; plane++, off += inner)
        {
            int ch = plane % c;
            var src = input.Slice(off, inner);
            var dst = output.Slice(off, inner);
            System.Numerics.Tensors.TensorPrimitives.Multiply(src, scale[ch], dst);
            System.Numerics.Tensors.TensorPrimitives.Add(dst, shift[ch], dst);
        }
    }
}

/// <summary>Softmax over the last axis of a [rows, cols] view (the compiler transposes other axes last).</summary>
internal sealed class SoftmaxStep(string name, bool log, int rows, int cols, Slot x, Slot y) : Step(name, [x], [y])
{
    public override string Kernel => log ? "LogSoftmax" : "Softmax";

    public override void Execute(RunContext ctx)
    {
        if (log) Elementwise.LogSoftmax(ctx.Read(x), ctx.Write(y), rows, cols);
        else Elementwise.Softmax(ctx.Read(x), ctx.Write(y), rows, cols);
    }
}
