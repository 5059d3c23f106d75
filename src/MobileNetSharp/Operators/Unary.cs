using System.Numerics;
using System.Runtime.InteropServices;
using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// A point-wise float function that no kernel epilogue applies (ONNX Abs, Neg, Sqrt, Exp, Log, Reciprocal,
/// Floor, Ceil, Round, Sign, Sin, Cos, Erf, Gelu, Softplus, Softsign, Elu, Selu). Alpha is Elu's and Selu's
/// alpha, Gamma Selu's gamma. The activations that conv and gemm epilogues can take (Relu, Clip, Sigmoid,
/// Tanh, LeakyRelu, ...) are <see cref="ActivationOp"/> instead, so that they fuse. Abs, Neg and Sign also take
/// the signed integer types (ONNX LayerNormalization's expanded form negates int64 axes); integer Neg and Abs wrap
/// at the type's minimum, as in C.
/// </summary>
public sealed record UnaryOp(UnaryKind Kind, float Alpha = 0f, float Gamma = 0f) : Op, IRunnable
{
    public const float SeluAlpha = 1.67326319217681884765625f, SeluGamma = 1.05070102214813232421875f;

    public override string Type => Kind.ToString();

    /// <summary>Whether the op is defined on signed integers too.</summary>
    public bool TakesIntegers => Kind is UnaryKind.Abs or UnaryKind.Neg or UnaryKind.Sign;

    public override int[][] InferShapes(Node node)
    {
        var t = node.Input(0).DataType;
        if (t != DataType.Float32 && !(TakesIntegers && t is DataType.Int64 or DataType.Int32 or DataType.Int8))
            throw Error(node, $"input '{node.Input(0).Name}' is {t}; {Type} is computed on Float32{(TakesIntegers ? " and signed integers" : "")} only.");
        return [node.Input(0).Shape];
    }

    public override string Describe() => Kind switch
    {
        UnaryKind.Elu or UnaryKind.LeakyRelu => $"{Type}({Alpha})",
        UnaryKind.Selu => $"{Type}({Alpha},{Gamma})",
        _ => Type,
    };

    public override Tensor[]? Fold(Node node)
    {
        var x = node.Input(0).Constant!;
        var y = ElementBytes.Allocate(x.DataType, x.Shape, out var bytes);
        Run(x.DataType, ElementBytes.Of(x), bytes);
        return [y];
    }

    /// <summary>The float kernel, or the integer loop for Abs, Neg and Sign, on raw bytes of <paramref name="type"/>.</summary>
    internal void Run(DataType type, ReadOnlySpan<byte> x, Span<byte> y)
    {
        switch (type)
        {
            case DataType.Float32: Elementwise.Unary(Kind, MemoryMarshal.Cast<byte, float>(x), MemoryMarshal.Cast<byte, float>(y), Alpha, Gamma); break;
            case DataType.Int64: Integers(MemoryMarshal.Cast<byte, long>(x), MemoryMarshal.Cast<byte, long>(y)); break;
            case DataType.Int32: Integers(MemoryMarshal.Cast<byte, int>(x), MemoryMarshal.Cast<byte, int>(y)); break;
            case DataType.Int8: Integers(MemoryMarshal.Cast<byte, sbyte>(x), MemoryMarshal.Cast<byte, sbyte>(y)); break;
            default: throw new ArgumentException($"{Type} on {type} is not supported.");
        }
    }

    private void Integers<T>(ReadOnlySpan<T> x, Span<T> y) where T : unmanaged, IBinaryInteger<T>, ISignedNumber<T>
    {
        for (int i = 0; i < x.Length; i++)
        {
            T v = x[i];
            y[i] = Kind switch
            {
                UnaryKind.Abs => T.IsNegative(v) ? T.Zero - v : v,
                UnaryKind.Neg => T.Zero - v,
                UnaryKind.Sign => T.IsNegative(v) ? T.NegativeOne : T.IsZero(v) ? T.Zero : T.One,
                _ => throw new ArgumentException($"{Type} is not defined on integers."),
            };
        }
    }

    public override int OnnxOpset(Node node) => Kind switch
    {
        UnaryKind.Gelu => 20,
        UnaryKind.Round => 11,
        UnaryKind.Sign or UnaryKind.Erf => 9,
        UnaryKind.Sin or UnaryKind.Cos => 7,
        _ => 1,
    };

    public override void ExportOnnx(Node n, IOnnxWriter w)
    {
        OnnxAttribute[] attrs = Kind switch
        {
            UnaryKind.Elu or UnaryKind.LeakyRelu => [OnnxAttribute.Of("alpha", Alpha)],
            UnaryKind.Selu => [OnnxAttribute.Of("alpha", Alpha), OnnxAttribute.Of("gamma", Gamma)],
            _ => [],
        };
        w.Node(Type, n.Name, [w.Name(n.Input(0))], [n.Output.Name], attrs);
    }

    /// <summary>Point-wise: runs in whatever layout its input was produced in.</summary>
    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        var x = n.Input(0);
        if (!TakesIntegers) PlanCompiler.Require(n, 0, DataType.Float32, $"{Type} input");
        var layout = plan.NativeLayout(x);
        plan.Add(new UnaryStep(n.Name, this, x.DataType, plan.Get(x, layout), plan.Produce(n.Output, layout)));
    }
}

internal sealed class UnaryStep(string name, UnaryOp op, DataType type, Slot x, Slot y) : Step(name, [x], [y])
{
    public override string Kernel => type == DataType.Float32 ? op.Describe() : $"{op.Describe()}({type})";

    public override void Execute(RunContext ctx)
    {
        if (type == DataType.Float32) Elementwise.Unary(op.Kind, ctx.Read(x), ctx.Write(y), op.Alpha, op.Gamma); // no type dispatch on the hot path
        else op.Run(type, ctx.ReadBytes(x), ctx.WriteBytes(y));
    }
}
