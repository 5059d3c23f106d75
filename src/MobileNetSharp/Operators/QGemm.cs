using MobileNetSharp.Kernels;
using MobileNetSharp.Kernels.Int8;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// A fully connected layer computed in integers (ONNX Runtime's com.microsoft QGemm): uint8 input A [M, K] (one scale
/// and zero point), constant int8 weights B, [K, N] or, under transB, [N, K] (symmetric, per tensor or per output
/// column), optional int32 bias [N] in units of a_scale · b_scale[j]. acc[i, j] = Σ_k (A[i, k] - zpA) · B[k, j] + bias[j]
/// is exact in int32; the output is either float, Y = acc · a_scale · b_scale[j] (a classifier's logits: one rounding
/// of an exact sum, within float rounding of the DequantizeLinear -> Gemm it replaces), or, when <see cref="Y"/> is
/// given, uint8 codes requantized like <see cref="QLinearConv"/>, with the Gemm's ReLU or clip as a clamp or its
/// hard-swish (MobileNetV3's head) in the epilogue (<see cref="Requantization.WithHardSwish"/>).
/// Made by <see cref="Passes.FuseQuantizedOps"/> from DequantizeLinear -> Gemm (or a 2-D MatMul) [-> QuantizeLinear];
/// run by <see cref="QuantizedGemm"/>.
/// </summary>
/// <param name="TransB">Whether <paramref name="Weights"/> is [N, K] (ONNX Gemm transB = 1, PyTorch Linear) rather than [K, N].</param>
/// <param name="Activation">None for a float output; none, ReLU, a clip or hard-swish for a uint8 one.</param>
/// <param name="Y">The output's quantization, or null for a float output.</param>
public sealed record QGemm(bool TransB, Activation Activation, QuantParams X, QuantParams W, Tensor Weights, Tensor? Bias, QuantParams? Y)
    : Op, IRunnable
{
    public override string Type => "QGemm";

    private int K => TransB ? Weights.Shape[1] : Weights.Shape[0];
    private int N => TransB ? Weights.Shape[0] : Weights.Shape[1];

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0);
        if (x.DataType != X.Type) throw Error(node, $"the input is {x.DataType}, the op reads {X.Type}.");
        if (x.Rank != 2 || x.Shape[1] != K) throw Error(node, $"expects a [M, {K}] input, got {Shape.Format(x.Shape)}.");
        return [[x.Shape[0], N]];
    }

    public override DataType[] InferTypes(Node node) => [Y?.Type ?? DataType.Float32];

    public override string Describe() => (Y is null ? "QGemm -> float" : "QGemm") + (Activation.IsNone ? "" : $" +{Activation}");

    public override OpCost Cost(Node node) => new(Shape.Size(node.Output.Shape) * (long)K, LayerKind.FullyConnected, []);

    /// <summary>Written back as the QDQ subgraph it came from: DequantizeLinear -> Gemm (+ activation) [-> QuantizeLinear].</summary>
    public override void ExportOnnx(Node n, IOnnxWriter w)
    {
        var inputs = QdqExport.DequantizedOperands(n, w, X, W, Weights, Bias);
        string y = Y is null ? n.Output.Name : w.Fresh(n.Name + "_y_float");
        string raw = Activation.IsNone ? y : w.Fresh(n.Name + "_gemm");
        w.Node("Gemm", n.Name, [.. inputs], [raw], OnnxAttribute.Of("transB", TransB ? 1L : 0L));
        if (!Activation.IsNone) OnnxForms.Activation(w, n.Name, Activation, raw, y);
        if (Y is not null) QdqExport.QuantizeOutput(n, w, Y, y);
    }

    /// <summary>The uint8 output's clamp: the activation on the codes (rounding is monotone), as <see cref="QLinearConv.Clamp"/>.</summary>
    private (byte Min, byte Max) Clamp()
    {
        var (qmin, qmax) = Y!.Range;
        float lo = float.NegativeInfinity, hi = float.PositiveInfinity;
        if (Activation.Kind == ActivationKind.Relu) lo = 0;
        else if (Activation.Kind == ActivationKind.Clip) (lo, hi) = (Activation.Alpha, Activation.Beta);
        else if (Activation.Kind == ActivationKind.HardSwish) { } // in float before quantizing: no clamp on the codes
        else if (!Activation.IsNone) throw new ArgumentException($"QGemm takes ReLU, a clip or hard-swish as its activation, not {Activation}.");
        int Code(float v) => float.IsNegativeInfinity(v) ? qmin : float.IsPositiveInfinity(v) ? qmax
            : QuantizeLinearKernel.QuantizeOne(v, Y.Scales[0], qmin - Y.ZeroPoints[0], qmax - Y.ZeroPoints[0]) + Y.ZeroPoints[0];
        return ((byte)Code(lo), (byte)Code(hi));
    }

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        PlanCompiler.Require(n, 0, DataType.UInt8, "QGemm input");
        if (X.Type != DataType.UInt8 || (Y is not null && Y.Type != DataType.UInt8) || (Y is null && !Activation.IsNone))
            throw new ArgumentException($"QGemm runs uint8 inputs to float outputs without an activation, or to uint8 outputs; this one is {Describe()} from {X.Type}.");
        int rows = n.Input(0).Shape[0];
        var weights = (sbyte[])Weights.Data;
        var packed = TransB ? PackedInt8Weights.FromNxK(weights, N, K) : PackedInt8Weights.FromKxN(weights, K, N);
        int[] bias = Bias is null ? [] : (int[])Bias.Data;
        var input = plan.Get(n.Input(0), MemoryLayout.Plain);
        var output = plan.Produce(n.Output, MemoryLayout.Plain);
        if (Y is null)
        {
            // Float output: the multipliers dequantize (a_scale · b_scale[j]); no output scale, zero point or clamp.
            var dequantize = new Requantization(W.Scales.Length == 1 ? Enumerable.Repeat(X.Scales[0] * W.Scales[0], N).ToArray()
                : W.Scales.Select(s => X.Scales[0] * s).ToArray(), bias, 0);
            plan.Add(new QGemmStep(n.Name, rows, K, (byte)X.ZeroPoints[0], packed, dequantize, floatOutput: true, plan.Isa, input, output));
            return;
        }
        var (min, max) = Clamp();
        var rq = Activation.Kind == ActivationKind.HardSwish
            ? Requantization.WithHardSwish(N, X.Scales[0], W.Scales, Y.Scales[0], bias, (byte)Y.ZeroPoints[0], Activation.Alpha, Activation.Beta)
            : Requantization.FromScales(N, X.Scales[0], W.Scales, Y.Scales[0], bias, (byte)Y.ZeroPoints[0], min, max);
        plan.Add(new QGemmStep(n.Name, rows, K, (byte)X.ZeroPoints[0], packed, rq, floatOutput: false, plan.Isa, input, output));
    }
}

/// <summary>A <see cref="QGemm"/> on plain [M, K] uint8 rows, to float or uint8 [M, N].</summary>
internal sealed class QGemmStep(string name, int rows, int k, byte zeroPoint, PackedInt8Weights weights, Requantization requantization,
    bool floatOutput, IsaLevel? isa, Slot input, Slot output) : Step(name, [input], [output])
{
    public override string Kernel => "qfc";
    public override KernelWarmer? Warmer => Miniature(rows, k, weights, requantization, floatOutput, isa);

    /// <summary>The integer GEMM's code for <paramref name="rows"/> rows of <paramref name="weights"/> (byte quads or int16
    /// pairs, uint8 or float output), on at most 13 rows (two 6-row tiles and a one-row tail) and 24 columns.</summary>
    internal static KernelWarmer Miniature(int rows, int k, PackedInt8Weights weights, Requantization requantization, bool floatOutput, IsaLevel? isa)
    {
        int m = Math.Min(rows, 13), kk = Int8Miniature.ReductionLength(k), n = Math.Min(weights.N, 24);
        string key = $"qgemm|{(weights.HasByteQuads ? "quads" : "pairs")}|{(floatOutput ? "float" : "bytes")}|{(m == 1 ? "gemv" : "")}|{Isa.Resolve(isa)}";
        return new(key, () =>
        {
            var w = Int8Miniature.Weights(weights, n, kk);
            var rq = Int8Miniature.Requantization(requantization, n);
            if (floatOutput) QuantizedGemm.RunToFloat(m, new byte[m * kk], kk, 128, w, rq, new float[m * n], n, Workers.Single, isa);
            else QuantizedGemm.Run(m, new byte[m * kk], kk, 128, w, rq, new byte[m * n], n, Workers.Single, isa);
        });
    }

    public override void Execute(RunContext ctx)
    {
        if (floatOutput)
            QuantizedGemm.RunToFloat(rows, ctx.ReadBytes(input), k, zeroPoint, weights, requantization, ctx.Write(output), weights.N, ctx.Workers, isa);
        else
            QuantizedGemm.Run(rows, ctx.ReadBytes(input), k, zeroPoint, weights, requantization, ctx.WriteBytes(output), weights.N, ctx.Workers, isa);
    }
}
