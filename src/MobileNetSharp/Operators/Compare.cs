using System.Runtime.InteropServices;
using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// ONNX Equal, Less, LessOrEqual, Greater, GreaterOrEqual with NumPy broadcasting: bool output, both operands of
/// one element type (Float32, Int64, Int32, Int8, UInt8; Bool for Equal). Floats compare as IEEE (NaN is never equal).
/// </summary>
public sealed record CompareOp(CompareKind Kind) : Op, IRunnable
{
    public override string Type => Kind.ToString();

    public override int[][] InferShapes(Node node)
    {
        Value a = node.Input(0), b = node.Input(1);
        if (a.DataType != b.DataType) throw Error(node, $"operands are {a.DataType} and {b.DataType}; {Type} needs one element type.");
        if (a.DataType == DataType.Bool && Kind != CompareKind.Equal) throw Error(node, $"{Type} is not defined on Bool.");
        try { return [Tensors.Shape.Broadcast(a.Shape, b.Shape)]; }
        catch (ArgumentException e) { throw Error(node, e.Message); }
    }

    public override DataType[] InferTypes(Node node) => [DataType.Bool];

    public override Tensor[]? Fold(Node node)
    {
        Tensor a = node.Input(0).Constant!, b = node.Input(1).Constant!;
        var y = new bool[Tensors.Shape.Size(node.Output.Shape)];
        Run(Kind, a.DataType, ElementBytes.Of(a), a.Shape, ElementBytes.Of(b), b.Shape, y, node.Output.Shape);
        return [new Tensor(DataType.Bool, node.Output.Shape, y)];
    }

    /// <summary>The kernel on raw operand bytes of <paramref name="type"/> (bool compares as its 0/1 byte).</summary>
    internal static void Run(CompareKind kind, DataType type, ReadOnlySpan<byte> a, int[] aShape, ReadOnlySpan<byte> b, int[] bShape, Span<bool> y, int[] yShape)
    {
        switch (type)
        {
            case DataType.Float32: Elementwise.Compare(kind, MemoryMarshal.Cast<byte, float>(a), aShape, MemoryMarshal.Cast<byte, float>(b), bShape, y, yShape); break;
            case DataType.Int64: Elementwise.Compare(kind, MemoryMarshal.Cast<byte, long>(a), aShape, MemoryMarshal.Cast<byte, long>(b), bShape, y, yShape); break;
            case DataType.Int32: Elementwise.Compare(kind, MemoryMarshal.Cast<byte, int>(a), aShape, MemoryMarshal.Cast<byte, int>(b), bShape, y, yShape); break;
            case DataType.Int8: Elementwise.Compare(kind, MemoryMarshal.Cast<byte, sbyte>(a), aShape, MemoryMarshal.Cast<byte, sbyte>(b), bShape, y, yShape); break;
            case DataType.UInt8 or DataType.Bool: Elementwise.Compare(kind, a, aShape, b, bShape, y, yShape); break;
            default: throw new ArgumentException($"{kind} on {type} is not supported.");
        }
    }

    public override int OnnxOpset(Node node) => Kind is CompareKind.LessOrEqual or CompareKind.GreaterOrEqual ? 12 : 11;

    public override void ExportOnnx(Node n, IOnnxWriter w) => w.Node(Type, n.Name, [w.Name(n.Input(0)), w.Name(n.Input(1))], [n.Output.Name]);

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        Value a = n.Input(0), b = n.Input(1);
        var layout = plan.FollowAny(n.Output, [a, b]);
        plan.Add(new CompareStep(n.Name, Kind, a.DataType, plan.Get(a, layout), PlanCompiler.Physical(a.Shape, layout),
            plan.Get(b, layout), PlanCompiler.Physical(b.Shape, layout), plan.Produce(n.Output, layout)));
    }
}

internal sealed class CompareStep(string name, CompareKind kind, DataType type, Slot a, int[] aShape, Slot b, int[] bShape, Slot y)
    : Step(name, [a, b], [y])
{
    public override string Kernel => $"{kind}({type})";
    public override void Execute(RunContext ctx) =>
        CompareOp.Run(kind, type, ctx.ReadBytes(a), aShape, ctx.ReadBytes(b), bShape, ctx.Write<bool>(y), y.Shape);
}

/// <summary>ONNX And, Or, Xor on bool tensors with NumPy broadcasting.</summary>
public sealed record LogicalOp(LogicalKind Kind) : Op, IRunnable
{
    public override string Type => Kind.ToString();

    public override int[][] InferShapes(Node node)
    {
        Value a = node.Input(0), b = node.Input(1);
        if (a.DataType != DataType.Bool || b.DataType != DataType.Bool) throw Error(node, $"operands are {a.DataType} and {b.DataType}; {Type} takes Bool.");
        try { return [Tensors.Shape.Broadcast(a.Shape, b.Shape)]; }
        catch (ArgumentException e) { throw Error(node, e.Message); }
    }

    public override Tensor[]? Fold(Node node)
    {
        Tensor a = node.Input(0).Constant!, b = node.Input(1).Constant!;
        var y = new bool[Tensors.Shape.Size(node.Output.Shape)];
        Elementwise.Logical(Kind, (bool[])a.Data, a.Shape, (bool[])b.Data, b.Shape, y, node.Output.Shape);
        return [new Tensor(DataType.Bool, node.Output.Shape, y)];
    }

    public override int OnnxOpset(Node node) => 7;

    public override void ExportOnnx(Node n, IOnnxWriter w) => w.Node(Type, n.Name, [w.Name(n.Input(0)), w.Name(n.Input(1))], [n.Output.Name]);

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        Value a = n.Input(0), b = n.Input(1);
        var layout = plan.FollowAny(n.Output, [a, b]);
        plan.Add(new LogicalStep(n.Name, Kind, plan.Get(a, layout), PlanCompiler.Physical(a.Shape, layout),
            plan.Get(b, layout), PlanCompiler.Physical(b.Shape, layout), plan.Produce(n.Output, layout)));
    }
}

internal sealed class LogicalStep(string name, LogicalKind kind, Slot a, int[] aShape, Slot b, int[] bShape, Slot y) : Step(name, [a, b], [y])
{
    public override string Kernel => kind.ToString();
    public override void Execute(RunContext ctx) =>
        Elementwise.Logical(kind, ctx.Read<bool>(a), aShape, ctx.Read<bool>(b), bShape, ctx.Write<bool>(y), y.Shape);
}

/// <summary>ONNX Not on a bool tensor.</summary>
public sealed record NotOp : Op, IRunnable
{
    public override string Type => "Not";

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0);
        if (x.DataType != DataType.Bool) throw Error(node, $"input '{x.Name}' is {x.DataType}; Not takes Bool.");
        return [x.Shape];
    }

    public override Tensor[]? Fold(Node node)
    {
        var x = node.Input(0).Constant!;
        var y = new bool[x.Length];
        Elementwise.Not((bool[])x.Data, y);
        return [new Tensor(DataType.Bool, x.Shape, y)];
    }

    public override void ExportOnnx(Node n, IOnnxWriter w) => w.Node("Not", n.Name, [w.Name(n.Input(0))], [n.Output.Name]);

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        var layout = plan.NativeLayout(n.Input(0));
        plan.Add(new NotStep(n.Name, plan.Get(n.Input(0), layout), plan.Produce(n.Output, layout)));
    }
}

internal sealed class NotStep(string name, Slot x, Slot y) : Step(name, [x], [y])
{
    public override string Kernel => "Not";
    public override void Execute(RunContext ctx) => Elementwise.Not(ctx.Read<bool>(x), ctx.Write<bool>(y));
}

/// <summary>ONNX Where: condition (bool) ? X : Y with three-way NumPy broadcasting; X and Y of any one element type.</summary>
public sealed record WhereOp : Op, IRunnable
{
    public override string Type => "Where";

    public override int[][] InferShapes(Node node)
    {
        Value c = node.Input(0), x = node.Input(1), y = node.Input(2);
        if (c.DataType != DataType.Bool) throw Error(node, $"condition '{c.Name}' is {c.DataType}; it must be Bool.");
        if (x.DataType != y.DataType) throw Error(node, $"X is {x.DataType} and Y {y.DataType}; Where needs one element type.");
        try { return [Tensors.Shape.Broadcast(Tensors.Shape.Broadcast(c.Shape, x.Shape), y.Shape)]; }
        catch (ArgumentException e) { throw Error(node, e.Message); }
    }

    public override DataType[] InferTypes(Node node) => [node.Input(1).DataType];

    public override Tensor[]? Fold(Node node)
    {
        Tensor c = node.Input(0).Constant!, x = node.Input(1).Constant!, y = node.Input(2).Constant!;
        var result = ElementBytes.Allocate(x.DataType, node.Output.Shape, out var bytes);
        Run(x.DataType.SizeOf(), (bool[])c.Data, c.Shape, ElementBytes.Of(x), x.Shape, ElementBytes.Of(y), y.Shape, bytes, node.Output.Shape);
        return [result];
    }

    /// <summary>The kernel on raw bytes, through a stand-in type of the element size.</summary>
    internal static void Run(int size, ReadOnlySpan<bool> c, int[] cShape, ReadOnlySpan<byte> x, int[] xShape, ReadOnlySpan<byte> y, int[] yShape,
        Span<byte> output, int[] outShape)
    {
        switch (size)
        {
            case 1: Elementwise.Where(c, cShape, x, xShape, y, yShape, output, outShape); break;
            case 4: Elementwise.Where(c, cShape, MemoryMarshal.Cast<byte, int>(x), xShape, MemoryMarshal.Cast<byte, int>(y), yShape, MemoryMarshal.Cast<byte, int>(output), outShape); break;
            case 8: Elementwise.Where(c, cShape, MemoryMarshal.Cast<byte, long>(x), xShape, MemoryMarshal.Cast<byte, long>(y), yShape, MemoryMarshal.Cast<byte, long>(output), outShape); break;
            default: throw new ArgumentException($"Where on {size}-byte elements is not supported.");
        }
    }

    public override int OnnxOpset(Node node) => 9;

    public override void ExportOnnx(Node n, IOnnxWriter w) =>
        w.Node("Where", n.Name, [w.Name(n.Input(0)), w.Name(n.Input(1)), w.Name(n.Input(2))], [n.Output.Name]);

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        Value c = n.Input(0), x = n.Input(1), y = n.Input(2);
        var layout = plan.FollowAny(n.Output, [c, x, y]);
        plan.Add(new WhereStep(n.Name, x.DataType.SizeOf(),
            plan.Get(c, layout), PlanCompiler.Physical(c.Shape, layout),
            plan.Get(x, layout), PlanCompiler.Physical(x.Shape, layout),
            plan.Get(y, layout), PlanCompiler.Physical(y.Shape, layout), plan.Produce(n.Output, layout)));
    }
}

internal sealed class WhereStep(string name, int size, Slot c, int[] cShape, Slot x, int[] xShape, Slot y, int[] yShape, Slot output)
    : Step(name, [c, x, y], [output])
{
    public override string Kernel => "Where";
    public override void Execute(RunContext ctx) =>
        WhereOp.Run(size, ctx.Read<bool>(c), cShape, ctx.ReadBytes(x), xShape, ctx.ReadBytes(y), yShape, ctx.WriteBytes(output), output.Shape);
}
