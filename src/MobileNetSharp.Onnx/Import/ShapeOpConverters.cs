using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Onnx.Import;

/// <summary>
/// Data-movement ops. Their parameters (target shapes, axes, pads, split sizes, slice bounds) moved from
/// attributes to inputs across opsets; as inputs they must be known at load time.
/// </summary>
internal static class ShapeOpConverters
{
    public static void Identity(NodeContext n) => n.Emit(new Graph.Identity(), n.Input(0));

    public static void Flatten(NodeContext n)
    {
        var x = n.Input(0);
        long axis = n.Attr.Int("axis", 1);
        if (axis < -x.Rank || axis > x.Rank) throw n.Error($"axis {axis} is out of range for rank {x.Rank}.");
        n.Emit(new Graph.Flatten((int)(axis < 0 ? axis + x.Rank : axis)), x);
    }

    public static void Reshape(NodeContext n)
    {
        var target = n.Opset < 5 ? n.Attr.Ints("shape") : n.OptionalInts(1, "shape");
        if (target is null) throw n.Error("the target shape is missing.");
        ImportContext.CheckRank(target.Length, "the reshaped tensor", n.Error);
        n.Emit(new Graph.Reshape(target, n.Opset >= 14 && n.Attr.Int("allowzero", 0) != 0), n.Input(0));
    }

    public static void Squeeze(NodeContext n)
    {
        var x = n.Input(0);
        var axes = n.Opset < 13 ? n.Attr.Ints("axes") : n.OptionalInts(1, "axes");
        n.Emit(new Graph.Squeeze(axes?.Select(a => n.Axis(a, x.Rank)).ToArray()), x);
    }

    public static void Unsqueeze(NodeContext n)
    {
        var x = n.Input(0);
        var axes = (n.Opset < 13 ? n.Attr.Ints("axes") : n.OptionalInts(1, "axes")) ?? throw n.Error("axes are required.");
        ImportContext.CheckRank((long)x.Rank + axes.Length, "the unsqueezed tensor", n.Error);
        int rank = x.Rank + axes.Length;
        n.Emit(new Graph.Unsqueeze(axes.Select(a => n.Axis(a, rank)).ToArray()), x);
    }

    public static void Transpose(NodeContext n) => n.Emit(new Graph.Transpose(n.Attr.Int32s("perm")), n.Input(0));

    public static void Concat(NodeContext n)
    {
        if (n.InputCount == 0) throw n.Error("needs at least one input.");
        var inputs = Enumerable.Range(0, n.InputCount).Select(n.Input).ToArray();
        if (n.Opset >= 4 && !n.Attr.Has("axis")) throw n.Error("the axis attribute is required.");
        n.Emit(new Graph.Concat(n.Axis(n.Attr.Int("axis", 1), Math.Max(1, inputs[0].Rank))), inputs);
    }

    /// <summary>Split sizes: attribute before opset 13, input from then on; otherwise equal parts (opset 18: the last may be smaller).</summary>
    public static void Split(NodeContext n)
    {
        var x = n.Input(0);
        int axis = n.Axis(n.Attr.Int("axis", 0), Math.Max(1, x.Rank));
        int dim = x.Rank == 0 ? 0 : x.Shape[axis];
        int parts = n.OutputCount;
        if (parts == 0) throw n.Error("has no outputs.");
        long[]? sizes = n.Opset < 13 ? n.Attr.Ints("split") : n.OptionalInts(1, "split");
        if (sizes is null)
        {
            if (n.Opset >= 18 && n.Attr.Has("num_outputs")) parts = n.Attr.Int32("num_outputs", parts);
            if (parts < 1 || parts != n.OutputCount) throw n.Error($"num_outputs {parts} differs from the {n.OutputCount} outputs.");
            int chunk = n.Opset >= 18 ? (dim + parts - 1) / parts : dim / parts;
            if (n.Opset < 18 && dim % parts != 0) throw n.Error($"axis of size {dim} cannot be split into {parts} equal parts.");
            sizes = Enumerable.Range(0, parts).Select(i => (long)Math.Clamp(dim - i * chunk, 0, chunk)).ToArray();
        }
        if (sizes.Any(s => s < 0 || s > int.MaxValue)) throw n.Error($"split sizes [{string.Join(",", sizes)}] are invalid.");
        n.EmitMany(new Graph.Split(axis, sizes.Select(s => (int)s).ToArray()), sizes.Length, x);
    }

    /// <summary>Slice: attributes before opset 10, inputs (starts, ends, axes, steps) from then on.</summary>
    public static void Slice(NodeContext n)
    {
        var x = n.Input(0);
        long[] starts, ends;
        long[]? axes, steps = null;
        if (n.Opset < 10)
        {
            starts = n.Attr.Ints("starts") ?? throw n.Error("starts are required.");
            ends = n.Attr.Ints("ends") ?? throw n.Error("ends are required.");
            axes = n.Attr.Ints("axes");
        }
        else
        {
            starts = n.OptionalInts(1, "starts") ?? throw n.Error("starts are required.");
            ends = n.OptionalInts(2, "ends") ?? throw n.Error("ends are required.");
            axes = n.OptionalInts(3, "axes");
            steps = n.OptionalInts(4, "steps");
        }
        axes ??= Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray();
        steps ??= Enumerable.Repeat(1L, starts.Length).ToArray();
        if (ends.Length != starts.Length || axes.Length != starts.Length || steps.Length != starts.Length)
            throw n.Error("starts, ends, axes and steps must have the same length.");
        var normalized = axes.Select(a => n.Axis(a, x.Rank)).ToArray();
        if (normalized.Distinct().Count() != normalized.Length) throw n.Error("axes repeat.");
        // Any step at least as long as the axis selects one element; clamping keeps the count arithmetic in range.
        var clamped = steps.Select(s => s == 0 ? throw n.Error("steps cannot be 0.") : Math.Clamp(s, -int.MaxValue, int.MaxValue)).ToArray();
        n.Emit(new Graph.Slice(starts, ends, normalized, clamped), x);
    }

    /// <summary>Pad: attributes (pads, value) before opset 11; inputs (pads, constant_value, axes) from then on.</summary>
    public static void Pad(NodeContext n)
    {
        var x = n.Input(0);
        var mode = n.Attr.String("mode", "constant") switch
        {
            "constant" => PadMode.Constant,
            "reflect" => PadMode.Reflect,
            "edge" => PadMode.Edge,
            "wrap" when n.Opset >= 19 => PadMode.Wrap,
            var other => throw n.Error($"mode '{other}' is not supported."),
        };
        long[] pads;
        float value;
        if (n.Opset < 11)
        {
            pads = n.Attr.Ints(n.Opset < 2 ? "paddings" : "pads") ?? throw n.Error("pads are required.");
            value = n.Attr.Float("value", 0f);
        }
        else
        {
            pads = n.OptionalInts(1, "pads") ?? throw n.Error("pads are required.");
            value = n.OptionalScalar(2, "constant_value") ?? 0f;
            if (n.OptionalInts(3, "axes") is { } axes) pads = ExpandPads(n, pads, axes, x.Rank);
        }
        if (pads.Any(p => p is < -int.MaxValue or > int.MaxValue)) throw n.Error($"pads [{string.Join(",", pads)}] are out of range.");
        n.Emit(new Graph.Pad(mode, pads, value), x);
    }

    /// <summary>Opset 18's axes input: pads for the listed axes only, zero elsewhere.</summary>
    private static long[] ExpandPads(NodeContext n, long[] pads, long[] axes, int rank)
    {
        if (pads.Length != 2 * axes.Length) throw n.Error($"{pads.Length} pads for {axes.Length} axes.");
        var full = new long[2 * rank];
        for (int i = 0; i < axes.Length; i++)
        {
            int a = n.Axis(axes[i], rank);
            full[a] = pads[i];
            full[a + rank] = pads[i + axes.Length];
        }
        return full;
    }

    /// <summary>
    /// Gather on a runtime tensor with constant indices (exporters' x[:, k]): one slice per index, concatenated,
    /// then reshaped to the index shape.
    /// </summary>
    public static void Gather(NodeContext n)
    {
        var x = n.Input(0);
        if (x.Rank == 0) throw n.Error("data must have rank >= 1.");
        int axis = n.Axis(n.Attr.Int("axis", 0), x.Rank);
        var (indices, indexShape) = LoadTimeOps.GatherIndices(n, x.Shape[axis]);
        if (indices.Length == 0) throw n.Error("0 indices on a runtime tensor are not supported.");
        n.Import.ChargeGatherSlices(indices.Length, n.Error);
        var slices = indices.Select((k, i) => n.EmitHelper(new Graph.Slice([k], [k + 1L], [axis], [1]), $"take{i}", x)).ToArray();
        var joined = slices.Length == 1 ? slices[0] : n.EmitHelper(new Graph.Concat(axis), "concat", slices);
        var shape = x.Shape[..axis].Concat(indexShape).Concat(x.Shape[(axis + 1)..]).Select(d => (long)d).ToArray();
        n.Emit(new Graph.Reshape(shape, AllowZero: true), joined);
    }
    /// <summary>DepthToSpace (mode from opset 11 on, DCR before) and SpaceToDepth; blocksize is required.</summary>
    public static void DepthToSpace(NodeContext n, bool inverse)
    {
        if (!n.Attr.Has("blocksize")) throw n.Error("the blocksize attribute is required.");
        int block = n.Attr.Int32("blocksize", 0);
        var mode = inverse || n.Opset < 11 ? DepthToSpaceMode.Dcr : n.Attr.String("mode", "DCR") switch
        {
            "DCR" => DepthToSpaceMode.Dcr,
            "CRD" => DepthToSpaceMode.Crd,
            var other => throw n.Error($"mode '{other}' is not DCR or CRD."),
        };
        n.Emit(new Graph.DepthToSpace(block, mode, inverse), n.Input(0));
    }
}
