using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// ONNX DepthToSpace ([N, C, H, W] → [N, C/b², H·b, W·b], DCR or CRD channel order) and, with
/// <see cref="Inverse"/>, SpaceToDepth ([N, C, H, W] → [N, C·b², H/b, W/b], DCR order), on any element type.
/// Runs channels-last when its input was produced channels-last (pixel shuffles follow convolutions), plain
/// otherwise; folds at load time on constants.
/// </summary>
public sealed record DepthToSpace(int BlockSize, DepthToSpaceMode Mode = DepthToSpaceMode.Dcr, bool Inverse = false) : Op, IRunnable
{
    public override string Type => Inverse ? "SpaceToDepth" : "DepthToSpace";

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        if (x.Length != 4) throw Error(node, $"expects a 4-D NCHW input, got rank {x.Length}.");
        if (BlockSize < 1) throw Error(node, $"blocksize must be positive, got {BlockSize}.");
        long b = BlockSize, b2 = b * b;
        if (Inverse)
        {
            if (x[2] % b != 0 || x[3] % b != 0) throw Error(node, $"height {x[2]} and width {x[3]} must be divisible by the blocksize {b}.");
            if (x[1] * b2 > int.MaxValue) throw Error(node, $"{x[1]} channels x blocksize² {b2} is too many.");
            return [[x[0], (int)(x[1] * b2), (int)(x[2] / b), (int)(x[3] / b)]];
        }
        if (x[1] % b2 != 0) throw Error(node, $"{x[1]} channels are not divisible by blocksize² = {b2}.");
        if (x[2] * b > int.MaxValue || x[3] * b > int.MaxValue) throw Error(node, $"{x[2]}x{x[3]} x blocksize {b} is too large.");
        return [[x[0], (int)(x[1] / b2), (int)(x[2] * b), (int)(x[3] * b)]];
    }

    public override string Describe() => Inverse ? $"SpaceToDepth b{BlockSize}" : $"DepthToSpace b{BlockSize} {Mode.ToString().ToUpperInvariant()}";

    /// <summary>The spec's reshape → 6-D transpose → reshape, on the constant's elements.</summary>
    public override Tensor[]? Fold(Node node)
    {
        var t = node.Input(0).Constant!;
        var (view, perm) = SixD(t.Shape);
        return [TensorIndexing.Transpose(t.Reshape(view), perm).Reshape(node.Output.Shape)];
    }

    private (int[] View, int[] Perm) SixD(int[] x)
    {
        int b = BlockSize, n = x[0], c = x[1], h = x[2], w = x[3];
        if (Inverse) return ([n, c, h / b, b, w / b, b], [0, 3, 5, 1, 2, 4]);
        return Mode == DepthToSpaceMode.Dcr
            ? ([n, b, b, c / (b * b), h, w], [0, 3, 4, 1, 5, 2])
            : ([n, c / (b * b), b, b, h, w], [0, 1, 4, 2, 5, 3]);
    }

    public override int OnnxOpset(Node node) => Mode == DepthToSpaceMode.Crd && !Inverse ? 11 : 1;

    public override void ExportOnnx(Node n, IOnnxWriter w)
    {
        var attrs = new List<OnnxAttribute> { OnnxAttribute.Of("blocksize", (long)BlockSize) };
        if (!Inverse) attrs.Add(OnnxAttribute.Of("mode", Mode == DepthToSpaceMode.Crd ? "CRD" : "DCR"));
        w.Node(Type, n.Name, [w.Name(n.Input(0))], [n.Output.Name], [.. attrs]);
    }

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        var x = n.Input(0);
        var layout = plan.FollowInput(x);
        var shape = PlanCompiler.Physical(x.Shape, layout);
        var channels = layout == MemoryLayout.Nhwc ? ChannelLayout.Nhwc : ChannelLayout.Nchw;
        var input = plan.Get(x, layout);
        plan.Add(DataMovement.Sized(input, new Factory(n.Name, this, shape, channels, input, plan.Produce(n.Output, layout))));
    }

    private readonly record struct Factory(string Name, DepthToSpace Op, int[] Shape, ChannelLayout Layout, Slot X, Slot Y) : DataMovement.IFactory
    {
        public Step Create<T>() where T : unmanaged => new DepthToSpaceStep<T>(Name, Op, Shape, Layout, X, Y);
    }
}

/// <summary>DepthToSpace or SpaceToDepth on the element size of the slot (a stand-in type of that size).</summary>
internal sealed class DepthToSpaceStep<T>(string name, DepthToSpace op, int[] shape, ChannelLayout layout, Slot x, Slot y)
    : Step(name, [x], [y]) where T : unmanaged
{
    public override string Kernel => op.Type;

    public override void Execute(RunContext ctx)
    {
        if (op.Inverse) Layout.SpaceToDepth(ctx.Read<T>(x), shape, op.BlockSize, layout, ctx.Write<T>(y));
        else Layout.DepthToSpace(ctx.Read<T>(x), shape, op.BlockSize, op.Mode, layout, ctx.Write<T>(y));
    }
}
