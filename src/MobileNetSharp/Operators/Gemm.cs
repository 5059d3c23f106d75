using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Training;

namespace MobileNetSharp.Graph;

/// <summary>ONNX Gemm: Y = act(alpha * A' * B' + beta * C) on 2-D A and B; C broadcasts to [M, N].</summary>
public sealed record Gemm(float Alpha = 1f, float Beta = 1f, bool TransA = false, bool TransB = false,
    Activation Activation = default) : Op, IRunnable, IDifferentiable
{
    public override string Type => "Gemm";

    public override int[][] InferShapes(Node node)
    {
        var a = node.Input(0).Shape;
        var b = node.Input(1).Shape;
        if (a.Length != 2 || b.Length != 2) throw Error(node, $"expects 2-D A and B, got {Tensors.Shape.Format(a)} and {Tensors.Shape.Format(b)}.");
        int m = TransA ? a[1] : a[0], k = TransA ? a[0] : a[1];
        int kb = TransB ? b[1] : b[0], n = TransB ? b[0] : b[1];
        if (k != kb) throw Error(node, $"inner dimensions differ: A {Tensors.Shape.Format(a)} and B {Tensors.Shape.Format(b)} (transA={TransA}, transB={TransB}).");
        if (node.OptionalInput(2) is { } c)
        {
            try
            {
                var bc = Tensors.Shape.Broadcast(c.Shape, [m, n]);
                if (!Tensors.Shape.Equal(bc, [m, n])) throw new ArgumentException("C is larger than the output.");
            }
            catch (ArgumentException e) { throw Error(node, $"C {Tensors.Shape.Format(c.Shape)} does not broadcast to [{m},{n}]: {e.Message}"); }
        }
        return [[m, n]];
    }

    public override string Describe() => Activation.IsNone ? "Gemm" : $"Gemm +{Activation}";

    public override OpCost Cost(Node node) =>
        new(Tensors.Shape.Size(node.Output.Shape) * (TransA ? node.Input(0).Shape[0] : node.Input(0).Shape[1]), LayerKind.FullyConnected, [1, 2]);

    public override Op? WithActivation(Activation activation) => Activation.IsNone ? this with { Activation = activation } : null;

    public override void ExportOnnx(Node n, IOnnxWriter w)
    {
        var inputs = new List<string> { w.Name(n.Input(0)), w.Name(n.Input(1)) };
        if (n.OptionalInput(2) is { } bias) inputs.Add(w.Name(bias));
        string raw = OnnxForms.Raw(w, n, !Activation.IsNone, "gemm");
        w.Node("Gemm", n.Name, [.. inputs], [raw], OnnxAttribute.Of("alpha", Alpha), OnnxAttribute.Of("beta", Beta),
            OnnxAttribute.Of("transA", TransA ? 1L : 0L), OnnxAttribute.Of("transB", TransB ? 1L : 0L));
        OnnxForms.Activation(w, n.Name, Activation, raw, n.Output.Name);
    }

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        for (int i = 0; i < 3; i++) PlanCompiler.Require(n, i, DataType.Float32, "Gemm operand");
        var a = n.Input(0);
        var b = n.Input(1);
        var c = n.OptionalInput(2);
        int k = TransA ? a.Shape[0] : a.Shape[1];
        int outF = n.Output.Shape[1];
        bool biasLike = c is null || (c.IsConstant && Tensors.Shape.Size(c.Shape) is var len && (len == 1 || len == outF) && (c.Rank < 2 || c.Shape[0] == 1));
        if (b.IsConstant && !TransA && biasLike)
        {
            var bw = PlanCompiler.ConstantFloats(n, 1, "Gemm B");
            var cv = c is null ? null : PlanCompiler.ConstantFloats(n, 2, "Gemm C");
            var fc = plan.Cache.FullyConnected((bw, cv, this, k, outF, plan.Isa), () =>
            {
                // The FC kernel takes weights as [out, in]: that is B itself under transB, else B transposed.
                var weights = new float[bw.Length];
                if (TransB) bw.CopyTo(weights, 0);
                else Kernels.Layout.Transpose<float>(bw, b.Shape, [1, 0], weights);
                if (Alpha != 1f) System.Numerics.Tensors.TensorPrimitives.Multiply(weights, Alpha, weights);
                var bias = new float[cv is null ? 0 : outF];
                for (int i = 0; i < bias.Length; i++) bias[i] = Beta * cv![cv.Length == 1 ? 0 : i];
                return new FullyConnectedOperator(k, outF, weights, bias, Activation, plan.Isa);
            });
            plan.Add(new FullyConnectedStep(n.Name, fc, n.Output.Shape[0], plan.Get(a, MemoryLayout.Plain), plan.Produce(n.Output, MemoryLayout.Plain)));
            return;
        }
        var cSlot = c is null ? null : plan.Get(c, MemoryLayout.Plain);
        var scratch = PlanCompiler.Buffer(n.Name + ".scratch", [Math.Max(GemmStep.ScratchLength(a.Shape, b.Shape), c is null ? 0 : (int)c.Length)]);
        plan.Add(new GemmStep(n.Name, this, plan.Get(a, MemoryLayout.Plain), a.Shape, plan.Get(b, MemoryLayout.Plain), b.Shape, cSlot, c?.Shape ?? [],
            plan.Produce(n.Output, MemoryLayout.Plain), scratch));
    }

    /// <summary>
    /// The fully connected layer's gradients (PyTorch Linear; ONNX Gemm with transA = 0, alpha = beta = 1 and a
    /// bias C of shape [N] or [1, N]): with transB, Y = A·Bᵀ + C gives dA = dY·B, dB = dYᵀ·A, dC = Σ_rows dY;
    /// without it, dA = dY·Bᵀ and dB = Aᵀ·dY.
    /// </summary>
    void IDifferentiable.LowerBackward(Node n, GradientCompiler t)
    {
        var a = n.Input(0);
        var b = n.Input(1);
        var c = n.OptionalInput(2);
        if (TransA || Alpha != 1f || (c is not null && Beta != 1f))
            throw new ArgumentException("only the fully connected form of Gemm (transA = 0, alpha = beta = 1) is differentiable.");
        if (c is not null && !(c.Length == n.Output.Shape[1] && (c.Rank == 1 || c.Shape[0] == 1)))
            throw new ArgumentException($"Gemm bias {Tensors.Shape.Format(c.Shape)} is not a per-output bias; it is not differentiable here.");
        if (!Activation.IsNone && !ActivationBackward.OutputDetermines(Activation.Kind))
            throw new ArgumentException($"fused {Activation} is not differentiable from the output; train the unfused graph.");
        int rows = a.Shape[0], inF = a.Shape[1], outF = n.Output.Shape[1];
        var dy = t.OutputGrad(n.Output, MemoryLayout.Plain);
        if (!Activation.IsNone)
        {
            var pre = PlanCompiler.Buffer(n.Name + ".dpre", dy.Shape);
            t.Plan.Add(new ActivationGradStep(n.Name + ".act.grad", Activation, t.Plan.Get(n.Output, MemoryLayout.Plain), dy, pre, fromOutput: true));
            dy = pre;
        }
        var da = t.InputGrad(a, MemoryLayout.Plain);
        var db = t.InputGrad(b, MemoryLayout.Plain);
        var dc = t.InputGrad(c, MemoryLayout.Plain);
        if (da is null && db is null && dc is null) return;
        t.Plan.Add(new LinearGradStep(n.Name + ".grad", TransB, rows, inF, outF, t.Plan.Isa, t.Plan.Get(a, MemoryLayout.Plain), t.Plan.Get(b, MemoryLayout.Plain),
            dy, da, db, dc, PlanCompiler.Buffer(n.Name + ".grad.scratch", [inF * outF])));
    }
}

/// <summary>NumPy matmul: batched over leading dimensions with broadcasting; 1-D operands are promoted.</summary>
public sealed record MatMul : Op, IRunnable
{
    public override string Type => "MatMul";

    public override int[][] InferShapes(Node node)
    {
        var a = node.Input(0).Shape;
        var b = node.Input(1).Shape;
        if (a.Length == 0 || b.Length == 0) throw Error(node, "operands must have rank >= 1.");
        int[] a2 = a.Length == 1 ? [1, a[0]] : a;
        int[] b2 = b.Length == 1 ? [b[0], 1] : b;
        if (a2[^1] != b2[^2]) throw Error(node, $"inner dimensions differ: {Tensors.Shape.Format(a)} x {Tensors.Shape.Format(b)}.");
        int[] batch;
        try { batch = Tensors.Shape.Broadcast(a2.AsSpan(0, a2.Length - 2), b2.AsSpan(0, b2.Length - 2)); }
        catch (ArgumentException e) { throw Error(node, e.Message); }
        var y = new List<int>(batch);
        if (a.Length > 1) y.Add(a2[^2]);
        if (b.Length > 1) y.Add(b2[^1]);
        return [y.ToArray()];
    }

    public override OpCost Cost(Node node) => new(Tensors.Shape.Size(node.Output.Shape) * node.Input(0).Shape[^1], LayerKind.FullyConnected, [0, 1]);

    /// <summary>A 2-D MatMul by constant weights (a bias-free Linear, e.g. in squeeze-excite) is a Gemm, which has an epilogue.</summary>
    public override Op? WithActivation(Node node, Activation activation) =>
        node.Input(0).Rank == 2 && node.Input(1) is { IsConstant: true, Rank: 2 } ? new Gemm(Activation: activation) : null;

    public override void ExportOnnx(Node n, IOnnxWriter w) => w.Node("MatMul", n.Name, [w.Name(n.Input(0)), w.Name(n.Input(1))], [n.Output.Name]);

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        for (int i = 0; i < 2; i++) PlanCompiler.Require(n, i, DataType.Float32, "MatMul operand");
        var a = n.Input(0);
        var b = n.Input(1);
        if (b.IsConstant && b.Rank == 2)
        {
            // x @ W with constant W is a fully connected layer over all leading rows.
            var bw = PlanCompiler.ConstantFloats(n, 1, "MatMul B");
            var fc = plan.Cache.FullyConnected((bw, b.Shape[0], b.Shape[1], plan.Isa), () =>
            {
                var weights = new float[bw.Length];
                Kernels.Layout.Transpose<float>(bw, b.Shape, [1, 0], weights);
                return new FullyConnectedOperator(b.Shape[0], b.Shape[1], weights, [], Activation.None, plan.Isa);
            });
            int rows = (int)(a.Length / b.Shape[0]);
            plan.Add(new FullyConnectedStep(n.Name, fc, rows, plan.Get(a, MemoryLayout.Plain), plan.Produce(n.Output, MemoryLayout.Plain)));
            return;
        }
        plan.Add(new MatMulStep(n.Name, plan.Get(a, MemoryLayout.Plain), a.Shape, plan.Get(b, MemoryLayout.Plain), b.Shape, plan.Produce(n.Output, MemoryLayout.Plain), n.Output.Shape));
    }
}

/// <summary>Rows times constant weights: Gemm with constant B, MatMul with a constant 2-D right operand.</summary>
internal sealed class FullyConnectedStep(string name, FullyConnectedOperator op, int rows, Slot input, Slot output)
    : Step(name, [input], [output])
{
    public override string Kernel => "fc";
    public override KernelWarmer? Warmer => op.Miniature(rows) is var (key, run) ? new(key, run) : null;
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
    private readonly Gemm _op;
    private readonly int[] _aShape, _bShape, _cShape, _yShape;

    public GemmStep(string name, Gemm op, Slot a, int[] aShape, Slot b, int[] bShape, Slot? c, int[] cShape, Slot y, Slot scratch)
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

/// <summary>Gradients of a fully connected layer: dA, dB (weights as stored: [out, in] under transB, else [in, out]) and dC, each optional.</summary>
internal sealed class LinearGradStep(string name, bool transB, int rows, int inF, int outF, IsaLevel? isa, Slot a, Slot b, Slot dy,
    Slot? da, Slot? db, Slot? dc, Slot scratch)
    : Step(name, [a, b, dy], new[] { da, db, dc, scratch }.OfType<Slot>().ToArray())
{
    public override string Kernel => "fc-grad";

    public override void Execute(RunContext ctx)
    {
        var g = ctx.Read(dy);
        var w = ctx.Read(b);
        var tmp = ctx.Write(scratch);
        if (da is not null)
        {
            // The kernel wants weights as [out, in]: B itself under transB, else Bᵀ.
            if (!transB) { Layout.Transpose(w, [inF, outF], [1, 0], tmp); w = tmp; }
            LinearBackward.InputGradient(g, w, ctx.Write(da), rows, inF, outF, ctx.Workers, isa);
        }
        if (db is not null || dc is not null)
        {
            var dw = db is null ? tmp : transB ? ctx.Write(db) : tmp;
            LinearBackward.WeightGradient(ctx.Read(a), g, db is null ? tmp : dw, dc is null ? default : ctx.Write(dc), rows, inF, outF, ctx.Workers, isa);
            if (db is not null && !transB) Layout.Transpose(tmp, [outF, inF], [1, 0], ctx.Write(db));
        }
    }
}
