using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Training;

namespace MobileNetSharp.Graph;

/// <summary>
/// A point-wise activation (ONNX Relu, Clip, HardSwish, HardSigmoid, Sigmoid, Tanh, LeakyRelu; Silu is x*Sigmoid(x)).
/// Input 0 is X. A Clip whose bounds arrive at run time (ONNX Clip-11 min/max inputs that are not constants)
/// has them as inputs 1 and 2 (scalars; either may be omitted), and <see cref="Activation"/> then holds the
/// unbounded Clip(-inf, inf).
/// </summary>
public sealed record ActivationOp(Activation Activation) : Op, IRunnable, IDifferentiable
{
    public override string Type => Activation.Kind switch
    {
        ActivationKind.Relu => "Relu",
        ActivationKind.Clip => "Clip",
        ActivationKind.HardSwish => "HardSwish",
        ActivationKind.HardSigmoid => "HardSigmoid",
        ActivationKind.Sigmoid => "Sigmoid",
        ActivationKind.Silu => "Silu",
        ActivationKind.Tanh => "Tanh",
        ActivationKind.LeakyRelu => "LeakyRelu",
        _ => "Identity",
    };

    /// <summary>True for a Clip whose bounds are inputs rather than constants folded into <see cref="Activation"/>.</summary>
    public static bool HasRuntimeBounds(Node n) => n.Inputs.Length > 1 && n.Inputs.Skip(1).Any(v => v is not null);

    public override int[][] InferShapes(Node node)
    {
        if (HasRuntimeBounds(node))
        {
            if (Activation.Kind != ActivationKind.Clip) throw Error(node, "only Clip takes bounds as inputs.");
            foreach (var b in node.Inputs.Skip(1).OfType<Value>())
                if (b.Length != 1) throw Error(node, $"Clip bound '{b.Name}' must be a scalar, got {Tensors.Shape.Format(b.Shape)}.");
        }
        return [node.Input(0).Shape];
    }

    public override string Describe() => Activation.ToString();

    public override Tensor[]? Fold(Node node)
    {
        var x = node.Input(0).Constant!;
        if (HasRuntimeBounds(node) || x.DataType != DataType.Float32) return null;
        var y = new float[x.Length];
        Elementwise.Apply(Activation, x.Floats, y);
        return [new Tensor(y, x.Shape)];
    }

    public override void ExportOnnx(Node n, IOnnxWriter w)
    {
        if (!HasRuntimeBounds(n))
        {
            OnnxForms.Activation(w, n.Name, Activation, w.Name(n.Input(0)), n.Output.Name, n.Input(0).DataType);
            return;
        }
        w.Node("Clip", n.Name, [w.Name(n.Input(0)), n.OptionalInput(1) is { } lo ? w.Name(lo) : "", n.OptionalInput(2) is { } hi ? w.Name(hi) : ""], [n.Output.Name]);
    }

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        PlanCompiler.Require(n, 0, DataType.Float32, $"{Type} input");
        var layout = plan.NativeLayout(n.Input(0));
        var x = plan.Get(n.Input(0), layout);
        var y = plan.Produce(n.Output, layout);
        if (!HasRuntimeBounds(n))
        {
            plan.Add(new ActivationStep(n.Name, Activation, x, y));
            return;
        }
        PlanCompiler.Require(n, 1, DataType.Float32, "Clip min");
        PlanCompiler.Require(n, 2, DataType.Float32, "Clip max");
        plan.Add(new RuntimeClipStep(n.Name, x, n.OptionalInput(1) is { } lo ? plan.Get(lo, MemoryLayout.Plain) : null,
            n.OptionalInput(2) is { } hi ? plan.Get(hi, MemoryLayout.Plain) : null, y));
    }

    /// <summary>dX = f'(x) · dY, from the output when it determines the derivative (ReLU, ReLU6: no need to keep x).</summary>
    void IDifferentiable.LowerBackward(Node n, GradientCompiler t)
    {
        if (HasRuntimeBounds(n)) throw new ArgumentException("Clip with bounds fed at run time is not differentiable.");
        var x = n.Input(0);
        var layout = t.Plan.NativeLayout(n.Output);
        if (t.InputGrad(x, layout) is not { } dx) return;
        bool fromOutput = ActivationBackward.OutputDetermines(Activation.Kind);
        t.Plan.Add(new ActivationGradStep(n.Name + ".grad", Activation, t.Plan.Get(fromOutput ? n.Output : x, layout),
            t.OutputGrad(n.Output, layout), dx, fromOutput));
    }
}

/// <summary>dX of a point-wise activation, from its input or (when that determines the derivative) its output.</summary>
internal sealed class ActivationGradStep(string name, Activation act, Slot saved, Slot dy, Slot dx, bool fromOutput) : Step(name, [saved, dy], [dx])
{
    public override string Kernel => act + "-grad";
    public override void Execute(RunContext ctx)
    {
        if (fromOutput) ActivationBackward.FromOutput(act, ctx.Read(saved), ctx.Read(dy), ctx.Write(dx), ctx.Workers);
        else ActivationBackward.FromInput(act, ctx.Read(saved), ctx.Read(dy), ctx.Write(dx), ctx.Workers);
    }
}

internal sealed class ActivationStep(string name, Activation act, Slot x, Slot y) : Step(name, [x], [y])
{
    public override string Kernel => act.ToString();
    public override KernelWarmer? Warmer => new($"activation|{act.Kind}", () => Elementwise.Apply(act, new float[100], new float[100]));
    public override void Execute(RunContext ctx) => Elementwise.Apply(act, ctx.Read(x), ctx.Write(y));
}

/// <summary>Clip with bounds read from scalar slots on every run (absent bounds are unbounded).</summary>
internal sealed class RuntimeClipStep(string name, Slot x, Slot? min, Slot? max, Slot y)
    : Step(name, new[] { x, min, max }.OfType<Slot>().ToArray(), [y])
{
    public override string Kernel => "Clip(runtime bounds)";

    public override void Execute(RunContext ctx)
    {
        float lo = min is null ? float.NegativeInfinity : ctx.Read(min)[0];
        float hi = max is null ? float.PositiveInfinity : ctx.Read(max)[0];
        Elementwise.Apply(Activation.Clip(lo, hi), ctx.Read(x), ctx.Write(y));
    }
}

/// <summary>Element-wise binary op with NumPy broadcasting (ONNX Add, Sub, Mul, Div, Max, Min, Pow), optionally followed by a fused activation.</summary>
public sealed record BinaryOp(BinaryKind Kind, Activation Activation = default) : Op, IRunnable, IDifferentiable
{
    public override string Type => Kind.ToString();

    public override int[][] InferShapes(Node node)
    {
        if (Kind != BinaryKind.Pow && node.Input(0).DataType != node.Input(1).DataType) // Pow's exponent may have its own type
            throw Error(node, $"operands are {node.Input(0).DataType} and {node.Input(1).DataType}; {Kind} needs one element type.");
        try { return [Tensors.Shape.Broadcast(node.Input(0).Shape, node.Input(1).Shape)]; }
        catch (ArgumentException e) { throw Error(node, e.Message); }
    }

    public override string Describe() => Activation.IsNone ? Kind.ToString() : $"{Kind} +{Activation}";

    /// <summary>tf2onnx writes a dense layer as MatMul + Add(constant bias): that bias is a trainable parameter.</summary>
    public override OpCost Cost(Node node) =>
        Kind == BinaryKind.Add && node.Inputs.Any(i => i?.Producer?.Op is MatMul) ? new(0, LayerKind.FullyConnected, [0, 1]) : OpCost.None;

    public override Op? WithActivation(Activation activation) => Activation.IsNone ? this with { Activation = activation } : null;

    public override Tensor[]? Fold(Node node) =>
        Activation.IsNone ? [TensorArithmetic.Binary(Kind, node.Input(0).Constant!, node.Input(1).Constant!)] : null;

    public override void ExportOnnx(Node n, IOnnxWriter w)
    {
        string raw = OnnxForms.Raw(w, n, !Activation.IsNone, Kind.ToString().ToLowerInvariant());
        w.Node(Kind.ToString(), n.Name, [w.Name(n.Input(0)), w.Name(n.Input(1))], [raw]);
        OnnxForms.Activation(w, n.Name, Activation, raw, n.Output.Name);
    }

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        PlanCompiler.Require(n, 0, DataType.Float32, $"{Kind} operand");
        PlanCompiler.Require(n, 1, DataType.Float32, $"{Kind} operand");
        var x = n.Input(0);
        var y = n.Input(1);
        var layout = plan.FollowAny(n.Output, [x, y]);
        plan.Add(new BinaryStep(n.Name, Kind, Activation, plan.Get(x, layout), PlanCompiler.Physical(x.Shape, layout),
            plan.Get(y, layout), PlanCompiler.Physical(y.Shape, layout), plan.Produce(n.Output, layout)));
    }

    /// <summary>
    /// Add: dA = dY, dB = dY; Sub: dB = -dY; Mul: dA = dY · B, dB = dY · A; Div: dA = dY / B, dB = -dY · A / B²;
    /// each summed down to its operand's shape where the operand was broadcast (the squeeze-excite scale).
    /// Computed on the physical shapes of the forward pass, in the output's layout.
    /// </summary>
    void IDifferentiable.LowerBackward(Node n, GradientCompiler t)
    {
        if (!Activation.IsNone) throw new ArgumentException($"{Kind} with a fused {Activation} is not differentiable; train the unfused graph.");
        if (Kind is not (BinaryKind.Add or BinaryKind.Sub or BinaryKind.Mul or BinaryKind.Div))
            throw new ArgumentException($"{Kind} has no gradient here (Add, Sub, Mul and Div do).");
        var layout = t.Plan.NativeLayout(n.Output);
        var dy = t.OutputGrad(n.Output, layout);
        var yShape = PlanCompiler.Physical(n.Output.Shape, layout);
        for (int i = 0; i < 2; i++)
        {
            var v = n.Input(i);
            bool same = Tensors.Shape.Equal(PlanCompiler.Physical(v.Shape, layout), yShape);
            if (same && (Kind == BinaryKind.Add || (Kind == BinaryKind.Sub && i == 0)))
            {
                // A residual Add: the first operand's gradient is dY itself (its buffer handed over, no step at all),
                // the second's one copy of it.
                if (i == 0 && t.InputGradOver(v, layout, dy) is { } over)
                {
                    if (over != dy) t.Plan.Add(DataMovement.Copy(n.Name + ".da", dy, over));
                    continue;
                }
                if (t.InputGrad(v, layout) is { } copy) t.Plan.Add(DataMovement.Copy(n.Name + (i == 0 ? ".da" : ".db"), dy, copy));
                continue;
            }
            if (t.InputGrad(v, layout) is not { } dv) continue;
            var other = n.Input(1 - i);
            t.Plan.Add(new BinaryGradStep(n.Name + (i == 0 ? ".da" : ".db"), Kind, i, dy, yShape,
                t.Plan.Get(n.Input(0), layout), PlanCompiler.Physical(n.Input(0).Shape, layout),
                t.Plan.Get(n.Input(1), layout), PlanCompiler.Physical(n.Input(1).Shape, layout),
                dv, PlanCompiler.Physical(v.Shape, layout), PlanCompiler.Buffer(n.Name + ".grad.scratch", yShape)));
        }
    }
}

/// <summary>The gradient of operand <c>which</c> of a broadcasting Add/Sub/Mul/Div, reduced to that operand's shape.</summary>
internal sealed class BinaryGradStep(string name, BinaryKind kind, int which, Slot dy, int[] yShape, Slot a, int[] aShape, Slot b, int[] bShape,
    Slot dv, int[] vShape, Slot scratch) : Step(name, [dy, a, b], [dv, scratch])
{
    public override string Kernel => $"{kind}-grad";

    public override void Execute(RunContext ctx)
    {
        var g = ctx.Read(dy);
        var full = ctx.Write(scratch);
        switch (kind, which)
        {
            case (BinaryKind.Add, _): g.CopyTo(full); break;
            case (BinaryKind.Sub, 0): g.CopyTo(full); break;
            case (BinaryKind.Sub, _): System.Numerics.Tensors.TensorPrimitives.Negate(g, full); break;
            case (BinaryKind.Mul, _):
                // dY times the other operand, broadcast to the output's shape.
                if (which == 0) Elementwise.Binary(BinaryKind.Mul, g, yShape, ctx.Read(b), bShape, full, yShape);
                else Elementwise.Binary(BinaryKind.Mul, g, yShape, ctx.Read(a), aShape, full, yShape);
                break;
            case (BinaryKind.Div, 0): Elementwise.Binary(BinaryKind.Div, g, yShape, ctx.Read(b), bShape, full, yShape); break;
            default:
                // d(a/b)/db = -a/b² = -(a/b)/b: dY · a / b / b, negated.
                Elementwise.Binary(BinaryKind.Mul, g, yShape, ctx.Read(a), aShape, full, yShape);
                Elementwise.Binary(BinaryKind.Div, full, yShape, ctx.Read(b), bShape, full, yShape);
                Elementwise.Binary(BinaryKind.Div, full, yShape, ctx.Read(b), bShape, full, yShape);
                System.Numerics.Tensors.TensorPrimitives.Negate(full, full);
                break;
        }
        BroadcastBackward.SumTo(full, yShape, ctx.Write(dv), vShape, ctx.Workers);
    }
}

/// <summary>Broadcasting binary op on physical shapes (both operands already in the output's layout).</summary>
internal sealed class BinaryStep(string name, BinaryKind kind, Activation act, Slot a, int[] aShape, Slot b, int[] bShape, Slot y)
    : Step(name, [a, b], [y])
{
    public override string Kernel => act.IsNone ? kind.ToString() : $"{kind}+{act}";

    /// <summary>The same broadcast pattern (which axes are 1 in each operand) on at most 3 elements an axis, 24 on the last.</summary>
    public override KernelWarmer? Warmer => WarmerFor(kind, act, aShape, bShape);

    /// <summary>The kernels of a <paramref name="kind"/> with these operand shapes (their broadcasting pattern) at a
    /// miniature size; also run by <see cref="KernelWarmup"/>'s common groups for MobileNetV3's squeeze-excite product.</summary>
    internal static KernelWarmer WarmerFor(BinaryKind kind, Activation act, int[] aShape, int[] bShape)
    {
        int[] ma = Mini(aShape), mb = Mini(bShape), my = Tensors.Shape.Broadcast(ma, mb);
        string pattern = string.Join(",", aShape.Select(d => d == 1 ? '1' : 'n')) + "/" + string.Join(",", bShape.Select(d => d == 1 ? '1' : 'n'));
        return new($"binary|{kind}|{pattern}|{act.Kind}", () =>
        {
            var output = new float[Tensors.Shape.Size(my)];
            Elementwise.Binary(kind, new float[Tensors.Shape.Size(ma)], ma, new float[Tensors.Shape.Size(mb)], mb, output, my);
            if (!act.IsNone) Elementwise.Apply(act, output, output);
        });
        static int[] Mini(int[] s) => s.Select((d, i) => d == 1 ? 1 : Math.Min(d, i == s.Length - 1 ? 24 : 3)).ToArray();
    }

    private readonly bool _sameShapes = Tensors.Shape.Equal(aShape, bShape);

    public override void Execute(RunContext ctx)
    {
        var output = ctx.Write(y);
        if (_sameShapes && output.Length >= Chunked.MinParallel && ctx.Workers.Count > 1)
        {
            // No broadcast (a training graph's residual Add): chunks split between the workers.
            unsafe
            {
                fixed (float* pa = ctx.Read(a), pb = ctx.Read(b), py = output)
                {
                    var body = new SameShape { Kind = kind, Act = act, A = pa, B = pb, Y = py };
                    Chunked.Run(ctx.Workers, output.Length, ref body);
                }
            }
            return;
        }
        Elementwise.Binary(kind, ctx.Read(a), aShape, ctx.Read(b), bShape, output, y.Shape);
        if (!act.IsNone) Elementwise.Apply(act, output, output);
    }

    private unsafe struct SameShape : IChunkBody
    {
        public BinaryKind Kind;
        public Activation Act;
        public float* A, B, Y;

        public readonly void Invoke(long start, long count)
        {
            var y = new Span<float>(Y + start, (int)count);
            Elementwise.Binary(Kind, new ReadOnlySpan<float>(A + start, (int)count), [(int)count], new ReadOnlySpan<float>(B + start, (int)count), [(int)count], y, [(int)count]);
            if (!Act.IsNone) Elementwise.Apply(Act, y, y);
        }
    }
}

/// <summary>Softmax (or log-softmax) along an axis. Legacy2D: opset &lt; 13 semantics that flatten at the axis.</summary>
public sealed record Softmax(int Axis = -1, bool Log = false, bool Legacy2D = false) : Op, IRunnable
{
    public override string Type => Log ? "LogSoftmax" : "Softmax";

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        try { Tensors.Shape.Axis(Axis, Math.Max(1, x.Length)); }
        catch (ArgumentException e) { throw Error(node, e.Message); }
        return [x];
    }

    /// <summary>The pre-opset-13 form flattens at the axis; spelled out as Flatten, Softmax over the last axis, Reshape back.</summary>
    public override void ExportOnnx(Node n, IOnnxWriter w)
    {
        string y = n.Output.Name;
        var x = n.Input(0);
        if (!Legacy2D)
        {
            w.Node(Type, n.Name, [w.Name(x)], [y], OnnxAttribute.Of("axis", (long)Axis));
            return;
        }
        string flat = w.Fresh(y + "/flat"), soft = w.Fresh(y + "/2d");
        w.Node("Flatten", n.Name + "/flatten", [w.Name(x)], [flat], OnnxAttribute.Of("axis", (long)(Axis < 0 ? Axis + x.Rank : Axis)));
        w.Node(Type, n.Name, [flat], [soft], OnnxAttribute.Of("axis", 1L));
        w.Node("Reshape", n.Name + "/reshape", [soft, w.Ints(y + "/shape", x.Shape.Select(d => (long)d))], [y]);
    }

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        PlanCompiler.Require(n, 0, DataType.Float32, $"{Type} input");
        var x = n.Input(0);
        var shape = x.Shape;
        int rank = Math.Max(1, shape.Length);
        int axis = Tensors.Shape.Axis(Axis, rank);
        if (Legacy2D || axis == rank - 1 || shape.Length == 0)
        {
            // Legacy semantics flatten to [prod(before axis), prod(from axis)]; the modern last-axis case is the same view.
            int cols = shape.Length == 0 ? 1 : (int)Tensors.Shape.Size(shape.AsSpan(axis));
            int rows = (int)(x.Length / Math.Max(1, cols));
            plan.Add(new SoftmaxStep(n.Name, Log, rows, cols, plan.Get(x, MemoryLayout.Plain), plan.Produce(n.Output, MemoryLayout.Plain)));
            return;
        }
        if (x.Length == 0)
        {
            plan.Add(DataMovement.Copy(n.Name, plan.Get(x, MemoryLayout.Plain), plan.Produce(n.Output, MemoryLayout.Plain))); // nothing to normalize
            return;
        }
        // Move the axis last, normalize rows, move it back.
        var perm = Enumerable.Range(0, rank).Where(d => d != axis).Append(axis).ToArray();
        var inverse = new int[rank];
        for (int i = 0; i < rank; i++) inverse[perm[i]] = i;
        var moved = perm.Select(d => shape[d]).ToArray();
        var t1 = PlanCompiler.Buffer(n.Name + ".t", moved);
        var t2 = PlanCompiler.Buffer(n.Name + ".s", moved);
        plan.Add(DataMovement.Transpose(t1.Name, shape, perm, plan.Get(x, MemoryLayout.Plain), t1));
        plan.Add(new SoftmaxStep(n.Name, Log, (int)(x.Length / shape[axis]), shape[axis], t1, t2));
        plan.Add(DataMovement.Transpose(n.Name + ".back", moved, inverse, t2, plan.Produce(n.Output, MemoryLayout.Plain)));
    }
}

/// <summary>Softmax over the last axis of a [rows, cols] view (the compiler transposes other axes last).</summary>
internal sealed class SoftmaxStep(string name, bool log, int rows, int cols, Slot x, Slot y) : Step(name, [x], [y])
{
    public override string Kernel => log ? "LogSoftmax" : "Softmax";

    public override void Execute(RunContext ctx)
    {
        if (log) Elementwise.LogSoftmax(ctx.Read(x), ctx.Write(y), rows, cols);
        else Elementwise.Softmax(ctx.Read(x), ctx.Write(y), rows, cols);
    }
}

/// <summary>Passes its input through (ONNX Identity, Dropout at inference). Any element type.</summary>
public sealed record Identity : Op, IRunnable, IDifferentiable
{
    public override string Type => "Identity";
    public override int[][] InferShapes(Node node) => [node.Input(0).Shape];
    public override Tensor[]? Fold(Node node) => [node.Input(0).Constant!];
    public override bool FoldSharesData => true;
    public override void ExportOnnx(Node n, IOnnxWriter w) => w.Node("Identity", n.Name, [w.Name(n.Input(0))], [n.Output.Name]);
    void IRunnable.Lower(Node n, PlanCompiler plan) => plan.Alias(n.Output, n.Input(0));

    void IDifferentiable.LowerBackward(Node n, GradientCompiler t) => GradientCompiler.PassThrough(n, t);
}
