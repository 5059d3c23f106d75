using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// Inference batch normalization over axis 1 (ONNX BatchNormalization, inference mode):
/// y = (x - mean) / sqrt(var + epsilon) * scale + bias. Inputs: X [N, C, ...], scale (gamma), bias (beta),
/// mean, var, each [C]. Usually folded into the convolution before it (<see cref="Passes.FoldBatchNorm"/>);
/// what is left runs as a per-channel affine map, with the parameters read at run time when they are not constants.
/// </summary>
public sealed record BatchNorm(float Epsilon = 1e-5f) : Op, IRunnable
{
    public override string Type => "BatchNormalization";

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        if (x.Length < 2) throw Error(node, "expects an input of rank >= 2 with channels on axis 1.");
        for (int i = 1; i <= 4; i++)
        {
            var p = node.Input(i).Shape;
            if (p.Length != 1 || p[0] != x[1])
                throw Error(node, $"parameter #{i} has shape {Tensors.Shape.Format(p)}, expected [{x[1]}].");
        }
        return [x];
    }

    /// <summary>Gamma and beta are trainable parameters; the running statistics are not (published-figures.md).</summary>
    public override OpCost Cost(Node node) => new(0, LayerKind.Other, [1, 2]);

    public override void ExportOnnx(Node n, IOnnxWriter w) =>
        w.Node("BatchNormalization", n.Name, n.Inputs.Take(5).Select(v => w.Name(v!)).ToArray(), [n.Output.Name], OnnxAttribute.Of("epsilon", Epsilon));

    /// <summary>The per-channel scale and shift equivalent to the normalization, computed in double.</summary>
    public static void Affine(ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, ReadOnlySpan<float> mean, ReadOnlySpan<float> variance,
        float epsilon, Span<float> scale, Span<float> shift)
    {
        for (int c = 0; c < scale.Length; c++)
        {
            double s = gamma[c] / Math.Sqrt((double)variance[c] + epsilon);
            scale[c] = (float)s;
            shift[c] = (float)(beta[c] - mean[c] * s);
        }
    }

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        for (int i = 0; i < 5; i++) PlanCompiler.Require(n, i, DataType.Float32, i == 0 ? "BatchNormalization input" : "BatchNormalization parameter");
        var x = n.Input(0);
        int channels = x.Shape[1];
        var layout = x.Rank == 4 ? MemoryLayout.Nhwc : MemoryLayout.Plain;
        int inner = layout == MemoryLayout.Nhwc ? 1 : (int)Tensors.Shape.Size(x.Shape.AsSpan(2));
        var input = plan.Get(x, layout);
        var output = plan.Produce(n.Output, layout);
        if (Enumerable.Range(1, 4).All(i => n.Input(i).IsConstant))
        {
            var scale = new float[channels];
            var shift = new float[channels];
            Affine(PlanCompiler.ConstantFloats(n, 1, "scale"), PlanCompiler.ConstantFloats(n, 2, "bias"), PlanCompiler.ConstantFloats(n, 3, "mean"),
                PlanCompiler.ConstantFloats(n, 4, "var"), Epsilon, scale, shift);
            plan.Add(new BatchNormStep(n.Name, new Slot(n.Name + ".scale", [channels], scale), new Slot(n.Name + ".shift", [channels], shift),
                null, inner, input, output));
            return;
        }
        // Statistics supplied at run time: the affine map is computed per run into a small scratch buffer.
        var parameters = Enumerable.Range(1, 4).Select(i => plan.Get(n.Input(i), MemoryLayout.Plain)).ToArray();
        plan.Add(new BatchNormStep(n.Name, PlanCompiler.Buffer(n.Name + ".scale", [channels]), PlanCompiler.Buffer(n.Name + ".shift", [channels]),
            (parameters, Epsilon), inner, input, output));
    }
}

/// <summary>
/// Batch norm that could not be folded: a per-channel affine map. Channels are innermost in NHWC and in
/// rank-2 tensors; for other plain ranks each (n, c) plane is one contiguous run of `inner` values.
/// With <paramref name="runtime"/> set, scale and shift are computed from the four parameter slots first.
/// </summary>
internal sealed class BatchNormStep(string name, Slot scale, Slot shift, (Slot[] Parameters, float Epsilon)? runtime, int inner, Slot x, Slot y)
    : Step(name, runtime is { } r ? [x, .. r.Parameters] : [x, scale, shift], runtime is null ? [y] : [y, scale, shift])
{
    public override string Kernel => "BatchNormalization";

    public override void Execute(RunContext ctx)
    {
        if (runtime is var (p, eps))
            BatchNorm.Affine(ctx.Read(p[0]), ctx.Read(p[1]), ctx.Read(p[2]), ctx.Read(p[3]), eps, ctx.Write(scale), ctx.Write(shift));
        var input = ctx.Read(x);
        var output = ctx.Write(y);
        var sc = ctx.Read(scale);
        var sh = ctx.Read(shift);
        int c = sc.Length;
        if (inner == 1)
        {
            Elementwise.ChannelAffine(input, sc, sh, output, c, Activation.None);
            return;
        }
        for (int plane = 0, off = 0; off < input.Length; plane++, off += inner)
        {
            int ch = plane % c;
            var dst = output.Slice(off, inner);
            System.Numerics.Tensors.TensorPrimitives.Multiply(input.Slice(off, inner), sc[ch], dst);
            System.Numerics.Tensors.TensorPrimitives.Add(dst, sh[ch], dst);
        }
    }
}
