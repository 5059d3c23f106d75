using MobileNetSharp.Kernels;

namespace MobileNetSharp.Runtime;

/// <summary>Max or average pooling on NHWC; ceil-mode cells past the declared pads never count in an average.</summary>
internal sealed class PoolStep(string name, Graph.Pool op, Conv2dGeometry g, (int Bottom, int Right) ceilExtra, Slot x, Slot y)
    : Step(name, [x], [y])
{
    public override string Kernel => op.Type;

    public override void Execute(RunContext ctx)
    {
        if (op.Kind == Graph.PoolKind.Max) Pooling.MaxPool2d(g, g.Batch, ctx.Read(x), ctx.Write(y), ctx.Workers);
        else Pooling.AveragePool2d(g, op.CountIncludePad, g.Batch, ctx.Read(x), ctx.Write(y), ctx.Workers, ceilExtra.Bottom, ceilExtra.Right);
    }
}

/// <summary>Global pooling of a channels-last tensor: [N, spatial, C] -> [N, C].</summary>
internal sealed class GlobalPoolStep(string name, Graph.PoolKind kind, int batch, int spatial, int channels, Slot x, Slot y)
    : Step(name, [x], [y])
{
    public override string Kernel => kind == Graph.PoolKind.Max ? "GlobalMaxPool" : "GlobalAveragePool";

    public override void Execute(RunContext ctx)
    {
        if (kind == Graph.PoolKind.Max) Pooling.GlobalMaxPool(batch, spatial, channels, ctx.Read(x), ctx.Write(y));
        else Pooling.GlobalAveragePool(batch, spatial, channels, ctx.Read(x), ctx.Write(y));
    }
}

/// <summary>
/// Reduction over arbitrary axes of a plain tensor. Off the hot path (global pooling covers MobileNets),
/// so one generic pass: each input element is folded into the output element its kept indices name.
/// </summary>
internal sealed class ReduceStep : Step
{
    private readonly Graph.ReduceKind _kind;
    private readonly Slot _x, _y;
    private readonly int[] _shape;
    private readonly int[] _outStrides; // per input axis; 0 on reduced axes
    private readonly int _count;        // elements folded into each output

    public ReduceStep(string name, Graph.ReduceKind kind, int[] shape, int[] axes, Slot x, Slot y) : base(name, [x], [y])
    {
        (_kind, _shape, _x, _y) = (kind, shape, x, y);
        _outStrides = new int[shape.Length];
        int stride = 1;
        _count = 1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            if (axes.Contains(d)) { _count *= shape[d]; continue; }
            _outStrides[d] = stride;
            stride *= shape[d];
        }
    }

    public override string Kernel => "Reduce" + _kind;

    public override void Execute(RunContext ctx)
    {
        var input = ctx.Read(_x);
        var output = ctx.Write(_y);
        output.Fill(_kind switch
        {
            Graph.ReduceKind.Max => float.NegativeInfinity,
            Graph.ReduceKind.Min => float.PositiveInfinity,
            _ => 0f,
        });
        Span<int> index = stackalloc int[_shape.Length];
        int o = 0;
        for (int i = 0; i < input.Length; i++)
        {
            float v = input[i];
            output[o] = _kind switch
            {
                Graph.ReduceKind.Max => MathF.Max(output[o], v),
                Graph.ReduceKind.Min => MathF.Min(output[o], v),
                _ => output[o] + v,
            };
            // Advance the multi-index (row-major) and keep the output offset in step.
            for (int d = _shape.Length - 1; d >= 0; d--)
            {
                o += _outStrides[d];
                if (++index[d] < _shape[d]) break;
                o -= _outStrides[d] * _shape[d];
                index[d] = 0;
            }
        }
        if (_kind == Graph.ReduceKind.Mean && _count > 0)
            System.Numerics.Tensors.TensorPrimitives.Multiply(output, 1f / _count, output);
    }
}
