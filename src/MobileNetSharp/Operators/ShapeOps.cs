using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Training;

namespace MobileNetSharp.Graph;

/// <summary>Flattens to 2-D at Axis: [prod(d[..axis]), prod(d[axis..])].</summary>
public sealed record Flatten(int Axis = 1) : Op, IRunnable, IDifferentiable
{
    public override string Type => "Flatten";

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        int a = Axis < 0 ? Axis + x.Length : Axis;
        if (a < 0 || a > x.Length) throw Error(node, $"axis {Axis} is out of range for rank {x.Length}.");
        long outer = 1, inner = 1;
        for (int i = 0; i < a; i++) outer *= x[i];
        for (int i = a; i < x.Length; i++) inner *= x[i];
        return [[(int)outer, (int)inner]];
    }

    public override Tensor[]? Fold(Node node) => [new Tensor(node.Input(0).Constant!.DataType, node.Output.Shape, node.Input(0).Constant!.Data)];
    public override bool FoldSharesData => true;
    // Same elements in the same (plain) order: the output shares the input's buffer.
    void IRunnable.Lower(Node n, PlanCompiler plan) => plan.Alias(n.Output, n.Input(0));
    void IDifferentiable.LowerBackward(Node n, GradientCompiler t) => GradientCompiler.PassThrough(n, t);

    public override void ExportOnnx(Node n, IOnnxWriter w) => w.Node("Flatten", n.Name, [w.Name(n.Input(0))], [n.Output.Name], OnnxAttribute.Of("axis", (long)Axis));
}

/// <summary>ONNX Reshape with a constant target: 0 copies the input dimension (unless AllowZero), -1 is inferred.</summary>
public sealed record Reshape(long[] Target, bool AllowZero = false) : Op, IRunnable, IDifferentiable
{
    public override string Type => "Reshape";

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        long total = Shape.Size(x);
        var y = new int[Target.Length];
        int infer = -1;
        long known = 1;
        for (int i = 0; i < Target.Length; i++)
        {
            long t = Target[i];
            if (t == -1)
            {
                if (infer >= 0) throw Error(node, "more than one -1 in the target shape.");
                infer = i;
                continue;
            }
            if (t == 0 && !AllowZero)
            {
                if (i >= x.Length) throw Error(node, $"target dimension {i} is 0 but the input has rank {x.Length}.");
                t = x[i];
            }
            if (t < 0 || t > int.MaxValue) throw Error(node, $"invalid target dimension {Target[i]}.");
            y[i] = (int)t;
            known *= t;
        }
        if (infer >= 0)
        {
            if (known == 0 || total % known != 0) throw Error(node, $"cannot reshape {Shape.Format(x)} to [{string.Join(",", Target)}].");
            y[infer] = (int)(total / known);
        }
        else if (known != total) throw Error(node, $"cannot reshape {Shape.Format(x)} ({total} elements) to {Shape.Format(y)}.");
        return [y];
    }

    public override string Describe() => $"Reshape [{string.Join(",", Target)}]";

    public override Tensor[]? Fold(Node node) => [new Tensor(node.Input(0).Constant!.DataType, node.Output.Shape, node.Input(0).Constant!.Data)];
    public override bool FoldSharesData => true;
    // Same elements in the same (plain) order: the output shares the input's buffer.
    void IRunnable.Lower(Node n, PlanCompiler plan) => plan.Alias(n.Output, n.Input(0));
    void IDifferentiable.LowerBackward(Node n, GradientCompiler t) => GradientCompiler.PassThrough(n, t);

    public override void ExportOnnx(Node n, IOnnxWriter w) =>
        w.Node("Reshape", n.Name, [w.Name(n.Input(0)), w.Ints(n.Output.Name + "/shape", Target)], [n.Output.Name], AllowZero ? [OnnxAttribute.Of("allowzero", 1L)] : []);

    public bool Equals(Reshape? other) => other is not null && AllowZero == other.AllowZero && Target.SequenceEqual(other.Target);
    public override int GetHashCode() => HashCode.Combine(AllowZero, Target.Length);
}

/// <summary>Removes size-1 axes (all of them when Axes is null).</summary>
public sealed record Squeeze(int[]? Axes) : Op, IRunnable, IDifferentiable
{
    public override string Type => "Squeeze";

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        if (Axes is null || Axes.Length == 0) return [x.Where(d => d != 1).ToArray()];
        var axes = new HashSet<int>();
        foreach (var a in Axes)
        {
            int n;
            try { n = Shape.Axis(a, x.Length); }
            catch (ArgumentException e) { throw Error(node, e.Message); }
            if (x[n] != 1) throw Error(node, $"cannot squeeze axis {a} of size {x[n]}.");
            axes.Add(n);
        }
        return [x.Where((_, i) => !axes.Contains(i)).ToArray()];
    }

    public override Tensor[]? Fold(Node node) => [new Tensor(node.Input(0).Constant!.DataType, node.Output.Shape, node.Input(0).Constant!.Data)];
    public override bool FoldSharesData => true;
    // Same elements in the same (plain) order: the output shares the input's buffer.
    void IRunnable.Lower(Node n, PlanCompiler plan) => plan.Alias(n.Output, n.Input(0));
    void IDifferentiable.LowerBackward(Node n, GradientCompiler t) => GradientCompiler.PassThrough(n, t);

    public override void ExportOnnx(Node n, IOnnxWriter w) =>
        w.Node("Squeeze", n.Name, Axes is { Length: > 0 } sq ? [w.Name(n.Input(0)), w.Ints(n.Output.Name + "/axes", sq.Select(v => (long)v))] : [w.Name(n.Input(0))], [n.Output.Name]);

    public bool Equals(Squeeze? other) => other is not null && (Axes ?? []).SequenceEqual(other.Axes ?? []);
    public override int GetHashCode() => Axes?.Length ?? 0;
}

/// <summary>Inserts size-1 axes at the given positions of the output.</summary>
public sealed record Unsqueeze(int[] Axes) : Op, IRunnable, IDifferentiable
{
    public override string Type => "Unsqueeze";

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        int rank = x.Length + Axes.Length;
        var axes = new HashSet<int>();
        foreach (var a in Axes)
        {
            try
            {
                if (!axes.Add(Shape.Axis(a, rank))) throw Error(node, $"axis {a} repeated.");
            }
            catch (ArgumentException e) { throw Error(node, e.Message); }
        }
        var y = new int[rank];
        for (int i = 0, j = 0; i < rank; i++) y[i] = axes.Contains(i) ? 1 : x[j++];
        return [y];
    }

    public override Tensor[]? Fold(Node node) => [new Tensor(node.Input(0).Constant!.DataType, node.Output.Shape, node.Input(0).Constant!.Data)];
    public override bool FoldSharesData => true;
    // Same elements in the same (plain) order: the output shares the input's buffer.
    void IRunnable.Lower(Node n, PlanCompiler plan) => plan.Alias(n.Output, n.Input(0));
    void IDifferentiable.LowerBackward(Node n, GradientCompiler t) => GradientCompiler.PassThrough(n, t);

    public override void ExportOnnx(Node n, IOnnxWriter w) =>
        w.Node("Unsqueeze", n.Name, [w.Name(n.Input(0)), w.Ints(n.Output.Name + "/axes", Axes.Select(v => (long)v))], [n.Output.Name]);

    public bool Equals(Unsqueeze? other) => other is not null && Axes.SequenceEqual(other.Axes);
    public override int GetHashCode() => Axes.Length;
}

/// <summary>Permutes axes (reverses them when Perm is null).</summary>
public sealed record Transpose(int[]? Perm) : Op, IRunnable
{
    public override string Type => "Transpose";

    public int[] Permutation(int rank) => Perm ?? Enumerable.Range(0, rank).Reverse().ToArray();

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        var p = Permutation(x.Length);
        if (p.Length != x.Length || p.Distinct().Count() != p.Length || p.Any(v => v < 0 || v >= x.Length))
            throw Error(node, $"perm [{string.Join(",", p)}] is not a permutation of rank {x.Length}.");
        return [p.Select(i => x[i]).ToArray()];
    }

    public override Tensor[]? Fold(Node node) => [TensorIndexing.Transpose(node.Input(0).Constant!, Permutation(node.Input(0).Rank))];

    public override void ExportOnnx(Node n, IOnnxWriter w) =>
        w.Node("Transpose", n.Name, [w.Name(n.Input(0))], [n.Output.Name], Perm is null ? [] : [OnnxAttribute.Of("perm", Perm)]);

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        var x = n.Input(0);
        var perm = Permutation(x.Rank);
        // NCHW -> NHWC of a channels-last value is its buffer as it already is (TensorFlow-born models).
        if (x.Rank == 4 && !x.IsConstant && plan.NativeLayout(x) == MemoryLayout.Nhwc && perm.SequenceEqual(PlanCompiler.ToNhwc))
        {
            plan.Alias(n.Output, plan.NativeSlot(x), MemoryLayout.Plain);
            return;
        }
        plan.Add(DataMovement.Transpose(n.Name, x.Shape, perm, plan.Get(x, MemoryLayout.Plain), plan.Produce(n.Output, MemoryLayout.Plain)));
    }

    public bool Equals(Transpose? other) => other is not null && (Perm ?? []).SequenceEqual(other.Perm ?? []) && (Perm is null) == (other.Perm is null);
    public override int GetHashCode() => Perm?.Length ?? -1;
}

/// <summary>Concatenates inputs along Axis.</summary>
public sealed record Concat(int Axis) : Op, IRunnable
{
    public override string Type => "Concat";

    public override int[][] InferShapes(Node node)
    {
        var first = node.Input(0).Shape;
        int axis;
        try { axis = Shape.Axis(Axis, first.Length); }
        catch (ArgumentException e) { throw Error(node, e.Message); }
        var y = (int[])first.Clone();
        for (int i = 1; i < node.Inputs.Length; i++)
        {
            var s = node.Input(i).Shape;
            if (node.Input(i).DataType != node.Input(0).DataType)
                throw Error(node, $"input #{i} is {node.Input(i).DataType}, input #0 {node.Input(0).DataType}; Concat needs one element type.");
            if (s.Length != first.Length) throw Error(node, $"input #{i} has rank {s.Length}, expected {first.Length}.");
            for (int d = 0; d < s.Length; d++)
            {
                if (d == axis) y[d] += s[d];
                else if (s[d] != first[d]) throw Error(node, $"input #{i} {Shape.Format(s)} differs from {Shape.Format(first)} off axis {axis}.");
            }
        }
        return [y];
    }

    public override Tensor[]? Fold(Node node)
    {
        var parts = node.Inputs.Select(i => i!.Constant!).ToArray();
        if (parts.Any(p => p.DataType != parts[0].DataType)) throw new ArgumentException("Concat inputs have different element types.");
        return [TensorIndexing.Concat(parts, Shape.Axis(Axis, parts[0].Rank), node.Output.Shape)];
    }

    public override void ExportOnnx(Node n, IOnnxWriter w) =>
        w.Node("Concat", n.Name, n.Inputs.Select(i => w.Name(i!)).ToArray(), [n.Output.Name], OnnxAttribute.Of("axis", (long)Axis));

    /// <summary>Keeps channels-last inputs channels-last, remapping the axis.</summary>
    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        var inputs = n.Inputs.Select((_, i) => n.Input(i)).ToArray();
        int axis = Shape.Axis(Axis, n.Output.Rank);
        var layout = plan.FollowAny(n.Output, inputs);
        plan.Add(DataMovement.Concat(n.Name, inputs.Select(v => plan.Get(v, layout)).ToArray(),
            inputs.Select(v => PlanCompiler.Physical(v.Shape, layout)).ToArray(), PlanCompiler.PhysicalAxis(axis, layout), plan.Produce(n.Output, layout)));
    }
}

/// <summary>Pads with a constant, reflection, edge or wrap. Pads: all begins, then all ends (ONNX order).</summary>
public sealed record Pad(PadMode Mode, long[] Pads, float Value = 0f) : Op, IRunnable
{
    public override string Type => "Pad";

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        if (Pads.Length != 2 * x.Length) throw Error(node, $"expects {2 * x.Length} pads for rank {x.Length}, got {Pads.Length}.");
        if (Pads.Any(p => p < int.MinValue / 2 || p > int.MaxValue / 2)) throw Error(node, $"pad values [{string.Join(",", Pads)}] are out of range.");
        var y = new int[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            long d = x[i] + Pads[i] + Pads[i + x.Length];
            if (d < 0 || d > int.MaxValue) throw Error(node, $"padding gives dimension {d} on axis {i}.");
            y[i] = (int)d;
        }
        return [y];
    }

    public override int OnnxOpset(Node node) => Mode == PadMode.Wrap ? 19 : 1;

    public override void ExportOnnx(Node n, IOnnxWriter w)
    {
        string y = n.Output.Name;
        var inputs = new List<string> { w.Name(n.Input(0)), w.Ints(y + "/pads", Pads) };
        if (Mode == PadMode.Constant) inputs.Add(w.Scalar(y + "/value", Value));
        w.Node("Pad", n.Name, [.. inputs], [y], OnnxAttribute.Of("mode", Mode.ToString().ToLowerInvariant()));
    }

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        PlanCompiler.Require(n, 0, DataType.Float32, "Pad input");
        var x = n.Input(0);
        var layout = plan.FollowInput(x);
        int rank = x.Rank;
        var pads = Pads.Select(v => checked((int)v)).ToArray();
        if (layout == MemoryLayout.Nhwc)
            pads = PlanCompiler.ToNhwc.Select(d => pads[d]).Concat(PlanCompiler.ToNhwc.Select(d => pads[rank + d])).ToArray();
        plan.Add(new PadStep(n.Name, PlanCompiler.Physical(x.Shape, layout), pads, Mode, Value, plan.Get(x, layout), plan.Produce(n.Output, layout)));
    }

    public bool Equals(Pad? other) => other is not null && Mode == other.Mode && Value.Equals(other.Value) && Pads.SequenceEqual(other.Pads);
    public override int GetHashCode() => HashCode.Combine(Mode, Value, Pads.Length);
}

/// <summary>Splits along Axis into pieces of the given sizes (one output per size).</summary>
public sealed record Split(int Axis, int[] Sizes) : Op, IRunnable
{
    public override string Type => "Split";

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        int axis;
        try { axis = Shape.Axis(Axis, x.Length); }
        catch (ArgumentException e) { throw Error(node, e.Message); }
        if (Sizes.Any(s => s < 0) || Sizes.Sum(s => (long)s) != x[axis])
            throw Error(node, $"sizes [{string.Join(",", Sizes)}] do not add up to dimension {x[axis]} on axis {axis}.");
        if (Sizes.Length != node.Outputs.Length) throw Error(node, $"has {node.Outputs.Length} outputs for {Sizes.Length} sizes.");
        return Sizes.Select(s => { var y = (int[])x.Clone(); y[axis] = s; return y; }).ToArray();
    }

    public override DataType[] InferTypes(Node node) => Enumerable.Repeat(node.Input(0).DataType, Sizes.Length).ToArray();

    public override Tensor[]? Fold(Node node)
    {
        var x = node.Input(0).Constant!;
        int axis = Shape.Axis(Axis, x.Rank);
        var parts = new Tensor[Sizes.Length];
        int start = 0;
        for (int i = 0; i < Sizes.Length; i++)
        {
            var axes = x.Shape.Select(d => (0, 1, d)).ToArray();
            axes[axis] = (start, 1, Sizes[i]);
            parts[i] = TensorIndexing.Slice(x, axes);
            start += Sizes[i];
        }
        return parts;
    }

    public override void ExportOnnx(Node n, IOnnxWriter w) =>
        w.Node("Split", n.Name, [w.Name(n.Input(0)), w.Ints(n.Output.Name + "/split", Sizes.Select(v => (long)v))], n.Outputs.Select(o => o.Name).ToArray(),
            OnnxAttribute.Of("axis", (long)Axis));

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        var x = n.Input(0);
        var layout = plan.FollowInput(x);
        int axis = PlanCompiler.PhysicalAxis(Shape.Axis(Axis, x.Rank), layout);
        var shape = PlanCompiler.Physical(x.Shape, layout);
        var src = plan.Get(x, layout);
        int start = 0;
        for (int i = 0; i < n.Outputs.Length; i++)
        {
            var ranges = shape.Select(d => (0, 1, d)).ToArray();
            ranges[axis] = (start, 1, Sizes[i]);
            start += Sizes[i];
            plan.Add(DataMovement.Slice(n.Outputs[i].Name, shape, ranges, src, plan.Produce(n.Outputs[i], layout)));
        }
    }

    public bool Equals(Split? other) => other is not null && Axis == other.Axis && Sizes.SequenceEqual(other.Sizes);
    public override int GetHashCode() => HashCode.Combine(Axis, Sizes.Length);
}

/// <summary>ONNX Slice with constant starts/ends/axes/steps, clamped the ONNX way.</summary>
public sealed record Slice(long[] Starts, long[] Ends, int[] Axes, long[] Steps) : Op, IRunnable
{
    public override string Type => "Slice";

    /// <summary>Per axis: (start, step, count) after clamping to the input shape.</summary>
    public (int Start, int Step, int Count)[] Resolve(int[] x)
    {
        var r = x.Select(d => (0, 1, d)).ToArray();
        for (int i = 0; i < Axes.Length; i++)
        {
            int a = Shape.Axis(Axes[i], x.Length);
            long dim = x[a], step = Steps[i];
            if (step == 0) throw new ArgumentException("Slice step cannot be 0.");
            if (dim == 0)
            {
                r[a] = (0, (int)Math.Clamp(step, int.MinValue, int.MaxValue), 0); // nothing to take from an empty axis
                continue;
            }
            long s = Starts[i] < 0 ? Starts[i] + dim : Starts[i];
            long e = Ends[i] < 0 ? Ends[i] + dim : Ends[i];
            if (step > 0) { s = Math.Clamp(s, 0, dim); e = Math.Clamp(e, 0, dim); }
            else { s = Math.Clamp(s, 0, dim - 1); e = Math.Clamp(e, -1, dim - 1); }
            long count = step > 0 ? Math.Max(0, (e - s + step - 1) / step) : Math.Max(0, (s - e + (-step) - 1) / (-step));
            r[a] = ((int)s, (int)Math.Clamp(step, -int.MaxValue, int.MaxValue), (int)count); // a step beyond int takes at most one element
        }
        return r;
    }

    public override int[][] InferShapes(Node node)
    {
        if (Starts.Length != Ends.Length || Starts.Length != Axes.Length || Steps.Length != Axes.Length)
            throw Error(node, "starts, ends, axes and steps must have the same length.");
        try { return [Resolve(node.Input(0).Shape).Select(t => t.Count).ToArray()]; }
        catch (ArgumentException e) { throw Error(node, e.Message); }
    }

    public override Tensor[]? Fold(Node node) => [TensorIndexing.Slice(node.Input(0).Constant!, Resolve(node.Input(0).Shape))];

    public override void ExportOnnx(Node n, IOnnxWriter w)
    {
        string y = n.Output.Name;
        w.Node("Slice", n.Name, [w.Name(n.Input(0)), w.Ints(y + "/starts", Starts), w.Ints(y + "/ends", Ends),
            w.Ints(y + "/axes", Axes.Select(v => (long)v)), w.Ints(y + "/steps", Steps)], [y]);
    }

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        var x = n.Input(0);
        var layout = plan.FollowInput(x);
        var ranges = Resolve(x.Shape);
        if (layout == MemoryLayout.Nhwc) ranges = PlanCompiler.ToNhwc.Select(d => ranges[d]).ToArray();
        plan.Add(DataMovement.Slice(n.Name, PlanCompiler.Physical(x.Shape, layout), ranges, plan.Get(x, layout), plan.Produce(n.Output, layout)));
    }

    public bool Equals(Slice? other) => other is not null && Starts.SequenceEqual(other.Starts) && Ends.SequenceEqual(other.Ends)
        && Axes.SequenceEqual(other.Axes) && Steps.SequenceEqual(other.Steps);
    public override int GetHashCode() => Axes.Length;
}

internal sealed class PadStep(string name, int[] shape, int[] pads, PadMode mode, float value, Slot x, Slot y) : Step(name, [x], [y])
{
    public override string Kernel => $"Pad({mode})";
    public override void Execute(RunContext ctx) => Layout.Pad(ctx.Read(x), shape, pads, mode, value, ctx.Write(y));
}
