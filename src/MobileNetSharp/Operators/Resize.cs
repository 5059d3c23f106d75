using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>ONNX Resize "keep_aspect_ratio_policy" (opset 18): how <c>sizes</c> are fitted when the aspect ratio must be kept.</summary>
public enum AspectPolicy { Stretch, NotLarger, NotSmaller }

/// <summary>
/// ONNX Resize (and Upsample, which is Resize with asymmetric coordinates): nearest, linear or cubic
/// interpolation over any axes. Exactly one of <see cref="Scales"/> (one float per axis, as the model gives
/// them: the output is floor(in · scale) in float32 like ONNX's shape inference, so the node follows its input
/// to other sizes) and <see cref="Sizes"/> (the output shape; -1 keeps the input's length, which is what the
/// opset-18 <c>axes</c> attribute leaves out) is set. <see cref="Roi"/> is [starts..., ends...] for
/// tf_crop_and_resize (null: the whole input). With <see cref="AspectPolicy.NotLarger"/>/<see cref="AspectPolicy.NotSmaller"/>
/// the axes with a size share one scale (the min/max of size/in), and their lengths are round(scale · in), as in the ONNX reference.
/// Rank-4 inputs resized over H, W only run channels-last through <see cref="ResizePlan"/>.
/// </summary>
public sealed record Resize(
    ResizeMode Mode,
    CoordinateTransform Transform = CoordinateTransform.HalfPixel,
    NearestRounding Rounding = NearestRounding.RoundPreferFloor,
    float[]? Scales = null,
    int[]? Sizes = null,
    float[]? Roi = null,
    float CubicCoeffA = -0.75f,
    bool ExcludeOutside = false,
    float ExtrapolationValue = 0f,
    AspectPolicy KeepAspectRatio = AspectPolicy.Stretch) : Op, IRunnable
{
    public override string Type => "Resize";

    /// <summary>The output shape for input shape <paramref name="x"/>, and the per-axis scales the kernel samples with (empty: from the sizes).</summary>
    public (int[] Shape, double[] Scales) Resolve(int[] x)
    {
        int rank = x.Length;
        var y = new int[rank];
        if (Scales is { } scales)
        {
            if (Sizes is not null) throw new ArgumentException("Resize takes scales or sizes, not both.");
            if (scales.Length != rank) throw new ArgumentException($"{scales.Length} scales for an input of rank {rank}.");
            for (int i = 0; i < rank; i++) y[i] = OutputSize(x[i], scales[i]);
            return (y, scales.Select(s => (double)s).ToArray());
        }
        var sizes = Sizes ?? throw new ArgumentException("Resize needs scales or sizes.");
        if (sizes.Length != rank) throw new ArgumentException($"{sizes.Length} sizes for an input of rank {rank}.");
        if (sizes.Any(s => s < -1)) throw new ArgumentException($"sizes [{string.Join(",", sizes)}] must not be negative.");
        if (KeepAspectRatio == AspectPolicy.Stretch)
        {
            for (int i = 0; i < rank; i++) y[i] = sizes[i] < 0 ? x[i] : sizes[i];
            return (y, []);
        }
        // The ONNX reference: one scale over the given axes (min or max of size / in, in float64), lengths rounded half up.
        double scale = KeepAspectRatio == AspectPolicy.NotLarger ? double.MaxValue : 0;
        for (int i = 0; i < rank; i++)
        {
            if (sizes[i] < 0) continue;
            if (x[i] == 0) throw new ArgumentException($"keep_aspect_ratio_policy cannot fit the empty axis {i}.");
            double s = sizes[i] / (double)x[i];
            scale = KeepAspectRatio == AspectPolicy.NotLarger ? Math.Min(scale, s) : Math.Max(scale, s);
        }
        var kernelScales = new double[rank];
        for (int i = 0; i < rank; i++)
        {
            if (sizes[i] < 0) { y[i] = x[i]; kernelScales[i] = 1; continue; }
            double d = Math.Floor(scale * x[i] + 0.5);
            if (!(d >= 1 && d <= int.MaxValue)) throw new ArgumentException($"keep_aspect_ratio_policy gives length {d} on axis {i}.");
            y[i] = (int)d;
            kernelScales[i] = scale;
        }
        return (y, kernelScales);
    }

    /// <summary>floor(in · scale) in float32, as ONNX's shape inference and ONNX Runtime compute it; the scale must be positive and finite.</summary>
    public static int OutputSize(int inSize, float scale)
    {
        if (!(scale > 0) || float.IsInfinity(scale)) throw new ArgumentException($"scale {scale} must be positive and finite.");
        float product = inSize * scale;
        double size = Math.Floor((double)product);
        if (size > int.MaxValue) throw new ArgumentException($"{inSize} x {scale} is too large an output.");
        return (int)size;
    }

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        if (x.Length == 0) throw Error(node, "cannot resize a scalar.");
        if (Roi is { } roi && roi.Length != 2 * x.Length) throw Error(node, $"roi has {roi.Length} values; rank {x.Length} needs {2 * x.Length}.");
        try
        {
            var (y, _) = Resolve(x);
            for (int i = 0; i < x.Length; i++)
                if (x[i] == 0 && y[i] > 0) throw new ArgumentException($"cannot resize the empty axis {i} to {y[i]}.");
            return [y];
        }
        catch (ArgumentException e) { throw Error(node, e.Message); }
    }

    public override string Describe() => $"Resize {Mode} {Transform}";

    public override int OnnxOpset(Node node) =>
        Transform == CoordinateTransform.HalfPixelSymmetric ? 19 : KeepAspectRatio != AspectPolicy.Stretch ? 18 : 13;

    /// <summary>
    /// Resize (opset 13 form; 18 for keep_aspect_ratio_policy, 19 for half_pixel_symmetric). Opset-10 nearest rounding
    /// (floor when upsampling, ceil when downsampling) becomes nearest_mode floor/ceil, one node per direction when axes
    /// go both ways (nearest resizing is separable and an unscaled axis is copied).
    /// </summary>
    public override void ExportOnnx(Node n, IOnnxWriter w)
    {
        string x = w.Name(n.Input(0));
        var inShape = n.Input(0).Shape;
        var outShape = n.Output.Shape;
        if (Rounding != NearestRounding.Simple || Mode != ResizeMode.Nearest)
        {
            WriteNode(n, w, x, n.Output.Name, Rounding, Scales, Sizes, "");
            return;
        }
        var down = Enumerable.Range(0, inShape.Length).Select(i => (Scales is { } s ? s[i] : (double)outShape[i] / Math.Max(1, inShape[i])) < 1).ToArray();
        if (down.All(d => d) || down.All(d => !d))
        {
            WriteNode(n, w, x, n.Output.Name, down[0] ? NearestRounding.Ceil : NearestRounding.Floor, Scales, Sizes, "");
            return;
        }
        // Downsampled axes first (ceil), then upsampled ones (floor).
        float[]? ScalesWhere(bool d) => Scales?.Select((s, i) => down[i] == d ? s : 1f).ToArray();
        int[]? SizesWhere(bool d, int[] from) => Sizes is null ? null : outShape.Select((s, i) => down[i] == d ? s : from[i]).ToArray();
        string mid = w.Fresh(n.Output.Name + "/down");
        WriteNode(n, w, x, mid, NearestRounding.Ceil, ScalesWhere(true), SizesWhere(true, inShape), "/down");
        var midShape = inShape.Select((d, i) => down[i] ? outShape[i] : d).ToArray();
        WriteNode(n, w, mid, n.Output.Name, NearestRounding.Floor, ScalesWhere(false), SizesWhere(false, midShape), "/up");
    }

    private void WriteNode(Node n, IOnnxWriter w, string x, string y, NearestRounding rounding, float[]? scales, int[]? sizes, string suffix)
    {
        var inputs = new List<string> { x };
        var attrs = new List<OnnxAttribute>
        {
            OnnxAttribute.Of("mode", Mode.ToString().ToLowerInvariant()),
            OnnxAttribute.Of("coordinate_transformation_mode", TransformName(Transform)),
        };
        if (Mode == ResizeMode.Nearest) attrs.Add(OnnxAttribute.Of("nearest_mode", RoundingName(rounding)));
        if (Mode == ResizeMode.Cubic)
        {
            attrs.Add(OnnxAttribute.Of("cubic_coeff_a", CubicCoeffA));
            attrs.Add(OnnxAttribute.Of("exclude_outside", ExcludeOutside ? 1L : 0L));
        }
        if (Transform == CoordinateTransform.TfCropAndResize)
        {
            attrs.Add(OnnxAttribute.Of("extrapolation_value", ExtrapolationValue));
            int rank = n.Input(0).Rank;
            var roi = Roi ?? Enumerable.Repeat(0f, rank).Concat(Enumerable.Repeat(1f, rank)).ToArray();
            inputs.Add(w.Constant(y + "/roi", new Tensor(roi, roi.Length)));
        }
        else inputs.Add("");
        if (scales is not null) inputs.Add(w.Constant(y + "/scales", new Tensor((float[])scales.Clone(), scales.Length)));
        else if (KeepAspectRatio != AspectPolicy.Stretch)
        {
            // The given axes and their sizes: ONNX Runtime fits them to the input as we do.
            var axes = Enumerable.Range(0, sizes!.Length).Where(i => sizes[i] >= 0).ToArray();
            inputs.Add("");
            inputs.Add(w.Ints(y + "/sizes", axes.Select(i => (long)sizes[i])));
            attrs.Add(OnnxAttribute.Of("axes", axes));
            attrs.Add(OnnxAttribute.Of("keep_aspect_ratio_policy", KeepAspectRatio == AspectPolicy.NotLarger ? "not_larger" : "not_smaller"));
        }
        else
        {
            // -1 (keep the input's length) is written as the length it has in this graph.
            var full = sizes!.Select((s, i) => (long)(s >= 0 ? s : n.Input(0).Shape[i]));
            inputs.Add("");
            inputs.Add(w.Ints(y + "/sizes", full));
        }
        w.Node("Resize", n.Name + suffix, [.. inputs], [y], [.. attrs]);
    }

    internal static string TransformName(CoordinateTransform t) => t switch
    {
        CoordinateTransform.HalfPixel => "half_pixel",
        CoordinateTransform.HalfPixelSymmetric => "half_pixel_symmetric",
        CoordinateTransform.PytorchHalfPixel => "pytorch_half_pixel",
        CoordinateTransform.AlignCorners => "align_corners",
        CoordinateTransform.Asymmetric => "asymmetric",
        CoordinateTransform.TfHalfPixelForNn => "tf_half_pixel_for_nn",
        CoordinateTransform.TfCropAndResize => "tf_crop_and_resize",
        _ => throw new ArgumentException($"Unknown coordinate transform {t}."),
    };

    private static string RoundingName(NearestRounding r) => r switch
    {
        NearestRounding.RoundPreferFloor => "round_prefer_floor",
        NearestRounding.RoundPreferCeil => "round_prefer_ceil",
        NearestRounding.Floor => "floor",
        NearestRounding.Ceil => "ceil",
        _ => throw new ArgumentException($"Nearest rounding {r} has no single ONNX nearest_mode."),
    };

    void IRunnable.Lower(Node n, PlanCompiler plan)
    {
        PlanCompiler.Require(n, 0, DataType.Float32, "Resize input");
        var x = n.Input(0);
        int rank = x.Rank;
        var (y, scales) = Resolve(x.Shape);
        // Channels-last when only H and W change (the batch and channel tables are then copies).
        var layout = rank == 4 && y[0] == x.Shape[0] && y[1] == x.Shape[1] ? MemoryLayout.Nhwc : MemoryLayout.Plain;
        int[] order = layout == MemoryLayout.Nhwc ? PlanCompiler.ToNhwc : Enumerable.Range(0, rank).ToArray();
        double[] roi = [];
        if (Transform == CoordinateTransform.TfCropAndResize)
        {
            var r = Roi ?? Enumerable.Repeat(0f, rank).Concat(Enumerable.Repeat(1f, rank)).ToArray();
            roi = order.Select(d => (double)r[d]).Concat(order.Select(d => (double)r[rank + d])).ToArray();
        }
        var physicalScales = scales.Length == 0 ? scales : order.Select(d => scales[d]).ToArray();
        var inShape = PlanCompiler.Physical(x.Shape, layout);
        var outShape = PlanCompiler.Physical(y, layout);
        // The sampling tables hold (index, weight) pairs per output index of each axis: bound them before building.
        long tableBytes = y.Sum(d => (long)d) * 4 * (sizeof(int) + sizeof(float));
        if (tableBytes + Shape.Size(y) * sizeof(float) > plan.MaxArenaBytes)
            throw new ArgumentException($"resizing to {Shape.Format(y)} needs more memory than SessionOptions.MaxArenaBytes allows.");
        var kernel = ResizePlan.Create(inShape, outShape, physicalScales, Mode, Transform, Rounding, CubicCoeffA, ExcludeOutside, roi, ExtrapolationValue);
        plan.Add(new ResizeStep(n.Name, kernel, Mode, plan.Isa, plan.Get(x, layout), plan.Produce(n.Output, layout)));
    }

    public bool Equals(Resize? other) => other is not null && Mode == other.Mode && Transform == other.Transform && Rounding == other.Rounding
        && Same(Scales, other.Scales) && Same(Sizes, other.Sizes) && Same(Roi, other.Roi) && CubicCoeffA.Equals(other.CubicCoeffA)
        && ExcludeOutside == other.ExcludeOutside && ExtrapolationValue.Equals(other.ExtrapolationValue) && KeepAspectRatio == other.KeepAspectRatio;

    private static bool Same<T>(T[]? a, T[]? b) => a is null ? b is null : b is not null && a.SequenceEqual(b);

    public override int GetHashCode() => HashCode.Combine(Mode, Transform, Rounding, Scales?.Length ?? -1, Sizes?.Length ?? -1, KeepAspectRatio);
}

/// <summary>One Resize through its precompiled sampling tables.</summary>
internal sealed class ResizeStep(string name, ResizePlan kernel, ResizeMode mode, IsaLevel? isa, Slot x, Slot y) : Step(name, [x], [y])
{
    public override string Kernel => $"Resize({mode})";
    public override void Execute(RunContext ctx) => kernel.Run(ctx.Read(x), ctx.Write(y), ctx.Workers, isa);
}
