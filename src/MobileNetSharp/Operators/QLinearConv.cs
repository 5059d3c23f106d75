using MobileNetSharp.Kernels;
using MobileNetSharp.Kernels.Int8;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// A convolution computed in integers: uint8 input X [N, C, H, W] (one scale and zero point), int8 weights
/// [M, C/groups, kH, kW] (symmetric, per tensor or per output channel), optional int32 bias [M] in units of
/// x_scale * w_scale, uint8 output [N, M, OH, OW]; y = saturate(round(x_scale * w_scale / y_scale * acc) + y_zero_point)
/// with acc the exact int32 sum (ONNX QLinearConv, operators.md), and the <see cref="Conv"/>'s fused ReLU or clip
/// applied as a clamp on the codes, or its hard-swish applied in float before the output quantization
/// (<see cref="Requantization.WithHardSwish"/>). Made by <see cref="Passes.FuseQuantizedOps"/> from a QDQ model's
/// DequantizeLinear -> Conv -> QuantizeLinear; the runtime computes 1x1 convolutions (stride 1, no padding, one
/// group) with <see cref="QuantizedGemm"/>, depthwise ones (any kernel, stride and padding, no dilation) with
/// <see cref="QuantizedDepthwise"/>, and other one-group convolutions (the stem) with <see cref="QuantizedConvolution"/>.
/// </summary>
/// <param name="Conv">The convolution's geometry and fused activation.</param>
/// <param name="Weights">int8 weights, OIHW.</param>
/// <param name="Bias">int32 bias, or null.</param>
public sealed record QLinearConv(Conv Conv, QuantParams X, QuantParams W, Tensor Weights, Tensor? Bias, QuantParams Y) : Op, IRunnable
{
    public override string Type => "QLinearConv";

    /// <summary>
    /// True for the convolutions the runtime computes in integers: 1x1 (the GEMM), depthwise (one output per channel),
    /// and standard ones of one group with any kernel (unfolded into the GEMM). Grouped convolutions between the two stay float.
    /// </summary>
    public static bool Computes(Conv c, int inChannels, int outChannels) =>
        IsPointwise(c) || (IsDepthwise(c, inChannels) && outChannels == inChannels) || c.Groups == 1;

    /// <summary>Depthwise: one group per input channel, one output per group, no dilation.</summary>
    public static bool IsDepthwise(Conv c, int inChannels) => c.Groups == inChannels && inChannels > 1 && c.DilationH == 1 && c.DilationW == 1;

    /// <summary>True for the shapes the integer GEMM computes directly.</summary>
    public static bool IsPointwise(Conv c) => c is { KernelH: 1, KernelW: 1, StrideH: 1, StrideW: 1, DilationH: 1, DilationW: 1, Groups: 1 }
        && c.ResolvePads(1, 1) == (0, 0, 0, 0) && c.PadTop == 0 && c.PadLeft == 0 && c.PadBottom == 0 && c.PadRight == 0;

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0);
        if (x.DataType != X.Type) throw Error(node, $"the input is {x.DataType}, the op reads {X.Type}.");
        if (x.Rank != 4) throw Error(node, $"expects a 4-D NCHW input, got rank {x.Rank}.");
        int m = Weights.Shape[0];
        var g = Conv.Geometry(x.Shape, m);
        try { g.Validate(); }
        catch (ArgumentException e) { throw Error(node, e.Message); }
        if (Weights.Shape[1] * Conv.Groups != x.Shape[1]) throw Error(node, $"weights {Shape.Format(Weights.Shape)} do not match {x.Shape[1]} input channels.");
        return [[x.Shape[0], m, g.OutH, g.OutW]];
    }

    public override DataType[] InferTypes(Node node) => [Y.Type];

    public override string Describe() => $"QLinearConv {Conv.KernelH}x{Conv.KernelW}/s{Conv.StrideH}" + (Conv.Activation.IsNone ? "" : $" +{Conv.Activation}");

    public override OpCost Cost(Node node)
    {
        int inC = node.Input(0).Shape[1];
        long macs = Tensors.Shape.Size(node.Output.Shape) * Conv.KernelH * Conv.KernelW * inC / Conv.Groups;
        return new OpCost(macs, CostModel.ConvKind(Conv.Groups, inC, Conv.KernelH == 1 && Conv.KernelW == 1), []);
    }

    /// <summary>Written back as the QDQ subgraph it came from (standard ONNX, any runtime): DequantizeLinear -> Conv (+ activation) -> QuantizeLinear.</summary>
    public override void ExportOnnx(Node n, IOnnxWriter w)
    {
        var inputs = QdqExport.DequantizedOperands(n, w, X, W, Weights, Bias);
        string y = w.Fresh(n.Name + "_y_float");
        string raw = Conv.Activation.IsNone ? y : w.Fresh(n.Name + "_conv");
        w.Node("Conv", n.Name, [.. inputs], [raw], OnnxAttribute.Of("kernel_shape", [Conv.KernelH, Conv.KernelW]),
            OnnxAttribute.Of("strides", [Conv.StrideH, Conv.StrideW]), OnnxAttribute.Of("pads", [Conv.PadTop, Conv.PadLeft, Conv.PadBottom, Conv.PadRight]),
            OnnxAttribute.Of("dilations", [Conv.DilationH, Conv.DilationW]), OnnxAttribute.Of("group", (long)Conv.Groups));
        if (!Conv.Activation.IsNone) OnnxForms.Activation(w, n.Name, Conv.Activation, raw, y);
        QdqExport.QuantizeOutput(n, w, Y, y);
    }

    /// <summary>The fused activation as a clamp on the output codes: Q(clip(v, lo, hi)) = clamp(Q(v), Q(lo), Q(hi)) since rounding is monotone.</summary>
    internal (byte Min, byte Max) Clamp()
    {
        var (qmin, qmax) = Y.Range;
        float lo = float.NegativeInfinity, hi = float.PositiveInfinity;
        var a = Conv.Activation;
        if (a.Kind == ActivationKind.Relu) lo = 0;
        else if (a.Kind == ActivationKind.HardSwish) { } // applied in float before quantizing (Requantization.WithHardSwish): no clamp on the codes
        else if (a.Kind == ActivationKind.Clip) (lo, hi) = (a.Alpha, a.Beta);
        else if (!a.IsNone) throw new ArgumentException($"QLinearConv takes ReLU, a clip or hard-swish as its activation, not {a}.");
        int Code(float v) => float.IsNegativeInfinity(v) ? qmin : float.IsPositiveInfinity(v) ? qmax
            : QuantizeLinearKernel.QuantizeOne(v, Y.Scales[0], qmin - Y.ZeroPoints[0], qmax - Y.ZeroPoints[0]) + Y.ZeroPoints[0];
        return ((byte)Code(lo), (byte)Code(hi));
    }

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        var x = n.Input(0);
        PlanCompiler.Require(n, 0, DataType.UInt8, "QLinearConv input");
        int m = Weights.Shape[0], c = x.Shape[1];
        bool depthwise = IsDepthwise(Conv, c) && m == c;
        if (!(IsPointwise(Conv) || depthwise || Conv.Groups == 1) || X.Type != DataType.UInt8 || Y.Type != DataType.UInt8)
            throw new ArgumentException($"QLinearConv runs one-group and depthwise convolutions on uint8 tensors; this one is {Describe()} with {Conv.Groups} groups.");
        var (min, max) = Clamp();
        int[] bias = Bias is null ? [] : (int[])Bias.Data;
        var rq = Conv.Activation.Kind == ActivationKind.HardSwish
            ? Requantization.WithHardSwish(m, X.Scales[0], W.Scales, Y.Scales[0], bias, (byte)Y.ZeroPoints[0], Conv.Activation.Alpha, Conv.Activation.Beta)
            : Requantization.FromScales(m, X.Scales[0], W.Scales, Y.Scales[0], bias, (byte)Y.ZeroPoints[0], min, max);
        var input = plan.Get(x, MemoryLayout.Nhwc);
        var output = plan.Produce(n.Output, MemoryLayout.Nhwc);
        if (depthwise)
        {
            var g = Conv.Geometry(x.Shape, m);
            var dw = PackedInt8DepthwiseWeights.FromOihw((sbyte[])Weights.Data, c, Conv.KernelH, Conv.KernelW);
            QuantizedDepthwise.Validate(g, dw, rq);
            plan.Add(new QLinearDepthwiseStep(n.Name, g, (byte)X.ZeroPoints[0], dw, rq, plan.Isa, input, output));
            return;
        }
        if (!IsPointwise(Conv))
        {
            var g = Conv.Geometry(x.Shape, m);
            var weights = QuantizedConvolution.PackWeights((sbyte[])Weights.Data, m, c, Conv.KernelH, Conv.KernelW);
            QuantizedConvolution.Validate(g, weights, rq);
            plan.Add(new QLinearConvolutionStep(n.Name, g, (byte)X.ZeroPoints[0], weights, rq, plan.Isa, input, output));
            return;
        }
        var packed = PackedInt8Weights.FromNxK((sbyte[])Weights.Data, m, c);
        plan.Add(new QLinearPointwiseStep(n.Name, x.Shape[0] * x.Shape[2] * x.Shape[3], c, m, (byte)X.ZeroPoints[0], packed, rq, plan.Isa, input, output));
    }
}

/// <summary>A 1x1 QLinearConv on channels-last uint8 slots: one integer GEMM over all pixels.</summary>
internal sealed class QLinearPointwiseStep(string name, int pixels, int inC, int outC, byte zeroPoint, PackedInt8Weights weights,
    Requantization requantization, IsaLevel? isa, Slot input, Slot output) : Step(name, [input], [output])
{
    public override string Kernel => "qgemm-1x1";
    public override KernelWarmer? Warmer => QGemmStep.Miniature(pixels, inC, weights, requantization, floatOutput: false, isa);

    public override void Execute(RunContext ctx) =>
        QuantizedGemm.Run(pixels, ctx.ReadBytes(input), inC, zeroPoint, weights, requantization, ctx.WriteBytes(output), outC, ctx.Workers, isa);
}

/// <summary>A depthwise QLinearConv on channels-last uint8 slots.</summary>
internal sealed class QLinearDepthwiseStep(string name, Conv2dGeometry g, byte zeroPoint, PackedInt8DepthwiseWeights weights,
    Requantization requantization, IsaLevel? isa, Slot input, Slot output) : Step(name, [input], [output])
{
    public override string Kernel => $"qdw{g.KernelH}x{g.KernelW}s{g.StrideH}";

    /// <summary>One compiled kernel serves every depthwise shape and epilogue (they branch at run time): a 40-channel
    /// miniature covers a whole 32-channel block and a partial one.</summary>
    public override KernelWarmer? Warmer => new($"qdw|{Isa.Resolve(isa)}", () =>
    {
        var mini = g.Miniature(channels: 40);
        var w = PackedInt8DepthwiseWeights.FromOihw(new sbyte[mini.WeightLength], mini.InC, mini.KernelH, mini.KernelW);
        QuantizedDepthwise.Run(mini, new byte[mini.InputLength], zeroPoint, w, Int8Miniature.Requantization(requantization, mini.OutC),
            new byte[mini.OutputLength], Workers.Single, isa);
    });

    public override void Execute(RunContext ctx) =>
        QuantizedDepthwise.Run(g, ctx.ReadBytes(input), zeroPoint, weights, requantization, ctx.WriteBytes(output), ctx.Workers, isa);
}

/// <summary>A one-group QLinearConv with a kernel larger than 1x1 (or strided, or padded) on channels-last uint8 slots: unfold, then the integer GEMM.</summary>
internal sealed class QLinearConvolutionStep(string name, Conv2dGeometry g, byte zeroPoint, PackedInt8Weights weights,
    Requantization requantization, IsaLevel? isa, Slot input, Slot output) : Step(name, [input], [output])
{
    public override string Kernel => $"qconv{g.KernelH}x{g.KernelW}s{g.StrideH}";

    public override KernelWarmer? Warmer => new($"qconv|{(weights.HasByteQuads ? "quads" : "pairs")}|{Isa.Resolve(isa)}", () =>
    {
        var mini = g.Miniature(channels: 24);
        var w = Int8Miniature.Weights(weights, mini.OutC, mini.InC * mini.KernelH * mini.KernelW);
        QuantizedConvolution.Run(mini, new byte[mini.InputLength], zeroPoint, w, Int8Miniature.Requantization(requantization, mini.OutC),
            new byte[mini.OutputLength], Workers.Single, isa);
    });

    public override void Execute(RunContext ctx) =>
        QuantizedConvolution.Run(g, ctx.ReadBytes(input), zeroPoint, weights, requantization, ctx.WriteBytes(output), ctx.Workers, isa);
}
