using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Runtime;

/// <summary>Copies a buffer as is (reshape into a graph output that must not alias its input).</summary>
internal sealed class CopyStep(string name, Slot x, Slot y) : Step(name, [x], [y])
{
    public override void Execute(RunContext ctx) => ctx.Read(x).CopyTo(ctx.Write(y));
}

/// <summary>Permutes axes; also converts layouts (NCHW &lt;-&gt; NHWC).</summary>
internal sealed class TransposeStep(string name, int[] shape, int[] perm, Slot x, Slot y) : Step(name, [x], [y])
{
    public override string Kernel => perm.SequenceEqual([0, 2, 3, 1]) ? "ToNhwc" : perm.SequenceEqual([0, 3, 1, 2]) ? "ToNchw" : "Transpose";
    public override void Execute(RunContext ctx) => Layout.Transpose(ctx.Read(x), shape, perm, ctx.Write(y));
}

/// <summary>Concatenation along one physical axis: each input is `outer` blocks copied side by side.</summary>
internal sealed class ConcatStep : Step
{
    private readonly (Slot Slot, int Block, int Offset)[] _parts;
    private readonly int _outer, _stride;
    private readonly Slot _y;

    public ConcatStep(string name, Slot[] inputs, int[][] shapes, int axis, Slot y) : base(name, inputs, [y])
    {
        _y = y;
        _outer = 1;
        for (int d = 0; d < axis; d++) _outer *= y.Shape[d];
        int inner = 1;
        for (int d = axis + 1; d < y.Shape.Length; d++) inner *= y.Shape[d];
        _stride = y.Shape[axis] * inner;
        _parts = new (Slot, int, int)[inputs.Length];
        int offset = 0;
        for (int i = 0; i < inputs.Length; i++)
        {
            int block = shapes[i][axis] * inner;
            _parts[i] = (inputs[i], block, offset);
            offset += block;
        }
    }

    public override void Execute(RunContext ctx)
    {
        var y = ctx.Write(_y);
        foreach (var (slot, block, offset) in _parts)
            if (block > 0) Layout.CopyBlocks(ctx.Read(slot), y, _outer, block, _stride, offset);
    }
}

/// <summary>
/// Strided N-D copy: for each output element, the input element at start + index * step per axis.
/// Serves Slice and (with unit steps) each output of Split.
/// </summary>
internal sealed class SliceStep : Step
{
    private readonly Slot _x, _y;
    private readonly int[] _outShape;
    private readonly int[] _inStrides; // input element stride per output axis step
    private readonly int _base;

    public SliceStep(string name, int[] inShape, (int Start, int Step, int Count)[] axes, Slot x, Slot y) : base(name, [x], [y])
    {
        (_x, _y) = (x, y);
        _outShape = axes.Select(a => a.Count).ToArray();
        _inStrides = new int[inShape.Length];
        int stride = 1;
        for (int d = inShape.Length - 1; d >= 0; d--)
        {
            _inStrides[d] = stride * axes[d].Step;
            _base += stride * axes[d].Start;
            stride *= inShape[d];
        }
    }

    public override string Kernel => "Slice";

    public override void Execute(RunContext ctx)
    {
        var input = ctx.Read(_x);
        var output = ctx.Write(_y);
        if (output.Length == 0) return;
        int rank = _outShape.Length;
        int inner = rank == 0 ? 1 : _outShape[^1];
        int innerStride = rank == 0 ? 0 : _inStrides[^1];
        Span<int> index = stackalloc int[Math.Max(rank, 1)];
        int src = _base;
        for (int o = 0; o < output.Length; o += inner)
        {
            if (innerStride == 1) input.Slice(src, inner).CopyTo(output.Slice(o, inner));
            else for (int i = 0; i < inner; i++) output[o + i] = input[src + i * innerStride];
            for (int d = rank - 2; d >= 0; d--)
            {
                src += _inStrides[d];
                if (++index[d] < _outShape[d]) break;
                src -= _inStrides[d] * _outShape[d];
                index[d] = 0;
            }
        }
    }
}

internal sealed class PadStep(string name, int[] shape, int[] pads, PadMode mode, float value, Slot x, Slot y) : Step(name, [x], [y])
{
    public override string Kernel => $"Pad({mode})";
    public override void Execute(RunContext ctx) => Layout.Pad(ctx.Read(x), shape, pads, mode, value, ctx.Write(y));
}
