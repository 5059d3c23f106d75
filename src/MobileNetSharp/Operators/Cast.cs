using System.Numerics;
using System.Runtime.InteropServices;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// ONNX Cast between our element types (Float32, UInt8, Int8, Int32, Int64, Bool), at run time and at load time
/// by the same code. Float to integer truncates toward zero (saturating where the value does not fit, NaN to 0:
/// ONNX leaves out-of-range values undefined); integer to narrower integer wraps; anything to Bool is "!= 0"
/// (NaN is true); Bool is 0 or 1. A model can take a uint8 image and return int64 indices.
/// </summary>
public sealed record CastOp(DataType To) : Op, IRunnable
{
    public override string Type => "Cast";

    public override int[][] InferShapes(Node node) => [node.Input(0).Shape];

    public override DataType[] InferTypes(Node node) => [To];

    public override string Describe() => $"Cast to {To}";

    public override Tensor[]? Fold(Node node)
    {
        var x = node.Input(0).Constant!;
        var y = ElementBytes.Allocate(To, x.Shape, out var bytes);
        Convert(x.DataType, ElementBytes.Of(x), To, bytes);
        return [y];
    }

    /// <summary>Converts <paramref name="x"/> (elements of <paramref name="from"/>) into <paramref name="y"/> (elements of <paramref name="to"/>).</summary>
    internal static void Convert(DataType from, ReadOnlySpan<byte> x, DataType to, Span<byte> y)
    {
        switch (from)
        {
            case DataType.Float32: Into(MemoryMarshal.Cast<byte, float>(x), to, y); break;
            case DataType.Int64: Into(MemoryMarshal.Cast<byte, long>(x), to, y); break;
            case DataType.Int32: Into(MemoryMarshal.Cast<byte, int>(x), to, y); break;
            case DataType.Int8: Into(MemoryMarshal.Cast<byte, sbyte>(x), to, y); break;
            case DataType.UInt8 or DataType.Bool: Into(x, to, y); break; // a bool is its 0/1 byte
            case DataType.Float16: Into(MemoryMarshal.Cast<byte, Half>(x), to, y); break;
            default: throw new ArgumentException($"Cast from {from} is not supported.");
        }
    }

    private static void Into<TFrom>(ReadOnlySpan<TFrom> x, DataType to, Span<byte> y) where TFrom : unmanaged, INumberBase<TFrom>
    {
        switch (to)
        {
            case DataType.Float32: System.Numerics.Tensors.TensorPrimitives.ConvertTruncating(x, MemoryMarshal.Cast<byte, float>(y)); break;
            case DataType.Int64: System.Numerics.Tensors.TensorPrimitives.ConvertTruncating(x, MemoryMarshal.Cast<byte, long>(y)); break;
            case DataType.Int32: System.Numerics.Tensors.TensorPrimitives.ConvertTruncating(x, MemoryMarshal.Cast<byte, int>(y)); break;
            case DataType.Int8: System.Numerics.Tensors.TensorPrimitives.ConvertTruncating(x, MemoryMarshal.Cast<byte, sbyte>(y)); break;
            case DataType.UInt8: System.Numerics.Tensors.TensorPrimitives.ConvertTruncating(x, y); break;
            case DataType.Float16: System.Numerics.Tensors.TensorPrimitives.ConvertTruncating(x, MemoryMarshal.Cast<byte, Half>(y)); break;
            case DataType.Bool:
                var b = MemoryMarshal.Cast<byte, bool>(y);
                for (int i = 0; i < x.Length; i++) b[i] = x[i] != TFrom.Zero;
                break;
            default: throw new ArgumentException($"Cast to {to} is not supported.");
        }
    }

    public override int OnnxOpset(Node node) => 6;

    public override void ExportOnnx(Node n, IOnnxWriter w) => w.Node("Cast", n.Name, [w.Name(n.Input(0))], [n.Output.Name], OnnxAttribute.Of("to", (long)To));

    /// <summary>Point-wise: keeps its input's layout.</summary>
    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        var x = n.Input(0);
        var layout = plan.NativeLayout(x);
        plan.Add(new CastStep(n.Name, x.DataType, To, plan.Get(x, layout), plan.Produce(n.Output, layout)));
    }
}

internal sealed class CastStep(string name, DataType from, DataType to, Slot x, Slot y) : Step(name, [x], [y])
{
    public override string Kernel => $"Cast({from}->{to})";
    public override void Execute(RunContext ctx) => CastOp.Convert(from, ctx.ReadBytes(x), to, ctx.WriteBytes(y));
}
