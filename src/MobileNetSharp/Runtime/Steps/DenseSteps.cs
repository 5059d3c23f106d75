using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Runtime;

/// <summary>Rows times constant weights: Gemm with constant B, MatMul with a constant 2-D right operand.</summary>
internal sealed class FullyConnectedStep(string name, FullyConnectedOperator op, int rows, Slot input, Slot output)
    : Step(name, [input], [output])
{
    public override string Kernel => "fc";
    public override void Execute(RunContext ctx) => op.Run(rows, ctx.Read(input), ctx.Write(output), ctx.Workers);
}

/// <summary>
/// NumPy-style batched matmul of two plain tensors, broadcasting the batch dimensions. Each batch index of
/// the output maps to one batch index of each operand through their broadcast strides.
/// </summary>
internal sealed class MatMulStep : Step
{
    private readonly Slot _a, _b, _y;
    private readonly int _m, _k, _n;
    private readonly int[] _aBatchOffsets, _bBatchOffsets;

    public MatMulStep(string name, Slot a, int[] aShape, Slot b, int[] bShape, Slot y, int[] yShape) : base(name, [a, b], [y])
    {
        (_a, _b, _y) = (a, b, y);
        int[] a2 = aShape.Length == 1 ? [1, aShape[0]] : aShape;
        int[] b2 = bShape.Length == 1 ? [bShape[0], 1] : bShape;
        _m = a2[^2]; _k = a2[^1]; _n = b2[^1];
        var batch = Tensors.Shape.Broadcast(a2.AsSpan(0, a2.Length - 2), b2.AsSpan(0, b2.Length - 2));
        _aBatchOffsets = BatchOffsets(a2[..^2], batch, _m * _k);
        _bBatchOffsets = BatchOffsets(b2[..^2], batch, _k * _n);
    }

    /// <summary>Element offset of each broadcast batch index within an operand.</summary>
    internal static int[] BatchOffsets(int[] own, int[] batch, int matrixSize)
    {
        int count = (int)Tensors.Shape.Size(batch);
        var offsets = new int[count];
        for (int i = 0; i < count; i++)
        {
            int rem = i, off = 0, stride = matrixSize;
            for (int d = batch.Length - 1; d >= 0; d--)
            {
                int idx = rem % batch[d];
                rem /= batch[d];
                int od = d - (batch.Length - own.Length);
                if (od >= 0)
                {
                    if (own[od] != 1) off += idx * stride;
                    stride *= own[od];
                }
            }
            offsets[i] = off;
        }
        return offsets;
    }

    public override void Execute(RunContext ctx)
    {
        var a = ctx.Read(_a);
        var b = ctx.Read(_b);
        var y = ctx.Write(_y);
        for (int i = 0; i < _aBatchOffsets.Length; i++)
            Kernels.MatMul.Run(a.Slice(_aBatchOffsets[i], _m * _k), b.Slice(_bBatchOffsets[i], _k * _n),
                y.Slice(i * _m * _n, _m * _n), _m, _k, _n, ctx.Workers);
    }
}

/// <summary>
/// The general ONNX Gemm (non-constant B, transposed A, alpha, beta, full C): materialize A' and B' in
/// scratch, multiply, then y = alpha * y + beta * C with broadcasting, then the activation.
/// </summary>
internal sealed class GemmStep : Step
{
    private readonly Slot _a, _b, _y, _scratch;
    private readonly Slot? _c;
    private readonly Graph.Gemm _op;
    private readonly int[] _aShape, _bShape, _cShape, _yShape;

    public GemmStep(string name, Graph.Gemm op, Slot a, int[] aShape, Slot b, int[] bShape, Slot? c, int[] cShape, Slot y, Slot scratch)
        : base(name, c is null ? [a, b] : [a, b, c], [y, scratch])
    {
        (_op, _a, _b, _c, _y, _scratch) = (op, a, b, c, y, scratch);
        (_aShape, _bShape, _cShape, _yShape) = (aShape, bShape, cShape, y.Shape);
    }

    public static int ScratchLength(int[] a, int[] b) => a[0] * a[1] + b[0] * b[1];

    public override void Execute(RunContext ctx)
    {
        var scratch = ctx.Write(_scratch);
        ReadOnlySpan<float> a = ctx.Read(_a), b = ctx.Read(_b);
        int la = _aShape[0] * _aShape[1];
        if (_op.TransA) { Layout.Transpose(a, _aShape, [1, 0], scratch[..la]); a = scratch[..la]; }
        if (_op.TransB) { Layout.Transpose(b, _bShape, [1, 0], scratch.Slice(la, b.Length)); b = scratch.Slice(la, b.Length); }
        int m = _yShape[0], n = _yShape[1], k = _op.TransA ? _aShape[0] : _aShape[1];
        var y = ctx.Write(_y);
        Kernels.MatMul.Run(a, b, y, m, k, n, ctx.Workers);
        if (_op.Alpha != 1f) System.Numerics.Tensors.TensorPrimitives.Multiply(y, _op.Alpha, y);
        if (_c is not null && _op.Beta != 0f)
        {
            // y += beta * C, broadcasting C: scale into scratch first, then one broadcast add.
            var c = ctx.Read(_c);
            var cs = scratch[..c.Length];
            System.Numerics.Tensors.TensorPrimitives.Multiply(c, _op.Beta, cs);
            Elementwise.Binary(BinaryKind.Add, y, _yShape, cs, _cShape, y, _yShape);
        }
        if (!_op.Activation.IsNone) Elementwise.Apply(_op.Activation, y, y);
    }
}
