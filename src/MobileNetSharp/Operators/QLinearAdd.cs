using MobileNetSharp.Kernels;
using MobileNetSharp.Kernels.Int8;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// y = QuantizeLinear(act(DequantizeLinear(a) + DequantizeLinear(b))) on uint8 codes of one shape (ONNX Runtime's
/// com.microsoft QLinearAdd), with act none or ReLU: one pass over the codes (<see cref="QuantizedAdd"/>), bit-identical
/// to the three QDQ nodes it replaces. Made by <see cref="Passes.FuseQuantizedOps"/>.
/// </summary>
public sealed record QLinearAdd(QuantParams A, QuantParams B, QuantParams Y, bool Relu) : Op, IRunnable
{
    public override string Type => "QLinearAdd";

    public override int[][] InferShapes(Node node)
    {
        var a = node.Input(0);
        var b = node.Input(1);
        if (a.DataType != DataType.UInt8 || b.DataType != DataType.UInt8) throw Error(node, $"adds uint8 codes, got {a.DataType} and {b.DataType}.");
        if (!Shape.Equal(a.Shape, b.Shape)) throw Error(node, $"adds tensors of one shape, got {Shape.Format(a.Shape)} and {Shape.Format(b.Shape)}.");
        return [a.Shape];
    }

    public override DataType[] InferTypes(Node node) => [DataType.UInt8];

    public override string Describe() => Relu ? "QLinearAdd +Relu" : "QLinearAdd";

    /// <summary>Written back as the QDQ nodes it came from.</summary>
    public override void ExportOnnx(Node n, IOnnxWriter w)
    {
        string Dequantize(QuantParams p, Value v, string tag)
        {
            p.Write(w, n.Name + "_" + tag, out var s, out var z);
            string f = w.Fresh(n.Name + "_" + tag + "_dequantized");
            w.Node("DequantizeLinear", n.Name + "_dequantize_" + tag, [w.Name(v), s, z], [f]);
            return f;
        }
        string fa = Dequantize(A, n.Input(0), "a"), fb = Dequantize(B, n.Input(1), "b");
        string sum = w.Fresh(n.Name + "_sum");
        w.Node("Add", n.Name, [fa, fb], [sum]);
        if (Relu)
        {
            string r = w.Fresh(n.Name + "_relu");
            w.Node("Relu", n.Name + "_relu", [sum], [r]);
            sum = r;
        }
        Y.Write(w, n.Name + "_y", out var ys, out var yz);
        w.Node("QuantizeLinear", n.Name + "_quantize_y", [sum, ys, yz], [n.Output.Name]);
    }

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        var layout = plan.FollowAny(n.Output, n.Inputs);
        var a = plan.Get(n.Input(0), layout);
        var b = plan.Get(n.Input(1), layout);
        plan.Add(new QLinearAddStep(n.Name, this, plan.Isa, a, b, plan.Produce(n.Output, layout)));
    }
}

internal sealed class QLinearAddStep(string name, QLinearAdd op, IsaLevel? isa, Slot a, Slot b, Slot y) : Step(name, [a, b], [y])
{
    public override string Kernel => "qadd";
    public override KernelWarmer? Warmer => new($"qadd|{op.Relu}|{Kernels.Isa.Resolve(isa)}", () =>
        QuantizedAdd.Run(new byte[100], 0.1f, 128, new byte[100], 0.1f, 128, new byte[100], 0.2f, 128, op.Relu, isa));

    public override void Execute(RunContext ctx) =>
        QuantizedAdd.Run(ctx.ReadBytes(a), op.A.Scales[0], (byte)op.A.ZeroPoints[0], ctx.ReadBytes(b), op.B.Scales[0], (byte)op.B.ZeroPoints[0],
            ctx.WriteBytes(y), op.Y.Scales[0], (byte)op.Y.ZeroPoints[0], op.Relu, isa);
}
