using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Onnx.Import;

/// <summary>
/// Resize (opset 10, 11, 13, 18, 19) and Upsample (opset 7-9) as the graph's <see cref="Graph.Resize"/>. Scales,
/// sizes and roi are inputs from opset 9/10 on and must be known at load time. Opset-10 Resize and Upsample use
/// asymmetric coordinates with ONNX Runtime's rounding (floor upsampling, ceil downsampling); the opset-18 axes
/// attribute is expanded to every axis (unlisted ones keep their length).
/// </summary>
internal static class ResizeConverters
{
    public static void Upsample(NodeContext n)
    {
        if (n.Opset < 7) throw n.Error("Upsample before opset 7 (height_scale/width_scale) is not supported.");
        var scales = n.Opset < 9
            ? n.Attr.Floats("scales") ?? throw n.Error("the scales attribute is required.")
            : Floats(n, 1, "scales") ?? throw n.Error("the scales input is required.");
        Legacy(n, scales);
    }

    public static void Resize(NodeContext n)
    {
        if (n.Opset < 10) throw n.Error("Resize exists from opset 10 on.");
        if (n.Opset == 10)
        {
            Legacy(n, Floats(n, 1, "scales") ?? throw n.Error("the scales input is required."));
            return;
        }
        var x = n.Input(0);
        int rank = x.Rank;
        var mode = Mode(n, legacy: false);
        var transform = n.Attr.String("coordinate_transformation_mode", "half_pixel") switch
        {
            "half_pixel" => CoordinateTransform.HalfPixel,
            "half_pixel_symmetric" when n.Opset >= 19 => CoordinateTransform.HalfPixelSymmetric,
            "pytorch_half_pixel" => CoordinateTransform.PytorchHalfPixel,
            "align_corners" => CoordinateTransform.AlignCorners,
            "asymmetric" => CoordinateTransform.Asymmetric,
            "tf_half_pixel_for_nn" => CoordinateTransform.TfHalfPixelForNn,
            "tf_crop_and_resize" => CoordinateTransform.TfCropAndResize,
            var other => throw n.Error($"coordinate_transformation_mode '{other}' is not supported."),
        };
        var rounding = n.Attr.String("nearest_mode", "round_prefer_floor") switch
        {
            "round_prefer_floor" => NearestRounding.RoundPreferFloor,
            "round_prefer_ceil" => NearestRounding.RoundPreferCeil,
            "floor" => NearestRounding.Floor,
            "ceil" => NearestRounding.Ceil,
            var other => throw n.Error($"nearest_mode '{other}' is not supported."),
        };
        var policy = n.Attr.String("keep_aspect_ratio_policy", "stretch") switch
        {
            "stretch" => AspectPolicy.Stretch,
            "not_larger" => AspectPolicy.NotLarger,
            "not_smaller" => AspectPolicy.NotSmaller,
            var other => throw n.Error($"keep_aspect_ratio_policy '{other}' is not one of stretch, not_larger, not_smaller."),
        };
        int[]? axes = null;
        if (n.Attr.Ints("axes") is { } given)
        {
            axes = given.Select(a => n.Axis(a, rank, "axes value")).ToArray();
            if (axes.Distinct().Count() != axes.Length) throw n.Error($"axes [{string.Join(",", given)}] repeat.");
        }
        int listed = axes?.Length ?? rank;

        var scales = Floats(n, 2, "scales");
        if (scales is { Length: 0 }) scales = null; // opsets 11-12 give an empty scales tensor beside sizes
        var sizes = n.OptionalInts(3, "sizes");
        if (sizes is { Length: 0 }) sizes = null;
        if ((scales is null) == (sizes is null)) throw n.Error("exactly one of scales and sizes must be given.");
        if (scales is not null && scales.Length != listed) throw n.Error($"scales has {scales.Length} values for {listed} axes.");
        if (sizes is not null && sizes.Length != listed) throw n.Error($"sizes has {sizes.Length} values for {listed} axes.");
        if (scales is not null && scales.Any(s => !(s > 0) || float.IsInfinity(s)))
            throw n.Error($"scales [{string.Join(",", scales)}] must be positive and finite.");
        if (sizes is not null && sizes.Any(s => s is < 0 or > int.MaxValue)) throw n.Error($"sizes [{string.Join(",", sizes)}] are out of range.");
        if (scales is not null && policy != AspectPolicy.Stretch) throw n.Error("keep_aspect_ratio_policy applies to sizes, but scales are given.");
        if (n.Attr.Int("antialias", 0) != 0 && mode != ResizeMode.Nearest && (scales is null || scales.Any(s => s < 1)))
            throw n.Error("antialias=1 (an antialiasing filter when downscaling) is not supported.");

        float[]? roi = null;
        if (transform == CoordinateTransform.TfCropAndResize && Floats(n, 1, "roi") is { Length: > 0 } r)
        {
            if (r.Length != 2 * listed) throw n.Error($"roi has {r.Length} values for {listed} axes; it needs starts and ends.");
            roi = Expand(axes, rank, r[..listed], 0f).Concat(Expand(axes, rank, r[listed..], 1f)).ToArray();
        }
        var op = new Graph.Resize(mode, transform, rounding,
            Scales: scales is null ? null : Expand(axes, rank, scales, 1f),
            Sizes: sizes is null ? null : Expand(axes, rank, sizes.Select(s => (int)s).ToArray(), -1),
            Roi: roi,
            CubicCoeffA: n.Attr.Float("cubic_coeff_a", -0.75f),
            ExcludeOutside: n.Attr.Int("exclude_outside", 0) != 0,
            ExtrapolationValue: n.Attr.Float("extrapolation_value", 0f),
            KeepAspectRatio: policy);
        n.Emit(op, x);
    }

    /// <summary>Upsample and opset-10 Resize: scales for every axis, asymmetric coordinates, ONNX Runtime's nearest rounding.</summary>
    private static void Legacy(NodeContext n, float[] scales)
    {
        var x = n.Input(0);
        if (scales.Length != x.Rank) throw n.Error($"scales has {scales.Length} values for an input of rank {x.Rank}.");
        if (scales.Any(s => !(s > 0) || float.IsInfinity(s))) throw n.Error($"scales [{string.Join(",", scales)}] must be positive and finite.");
        n.Emit(new Graph.Resize(Mode(n, legacy: true), CoordinateTransform.Asymmetric, NearestRounding.Simple, Scales: scales), x);
    }

    private static ResizeMode Mode(NodeContext n, bool legacy) => n.Attr.String("mode", "nearest") switch
    {
        "nearest" => ResizeMode.Nearest,
        "linear" => ResizeMode.Linear,
        "bilinear" when legacy => ResizeMode.Linear,
        "cubic" when !legacy => ResizeMode.Cubic,
        var other => throw n.Error($"mode '{other}' is not supported."),
    };

    /// <summary>Values for the listed axes spread over every axis, the rest <paramref name="fill"/>.</summary>
    private static T[] Expand<T>(int[]? axes, int rank, T[] values, T fill)
    {
        if (axes is null) return values;
        var full = Enumerable.Repeat(fill, rank).ToArray();
        for (int i = 0; i < axes.Length; i++) full[axes[i]] = values[i];
        return full;
    }

    /// <summary>A FLOAT constant input (scales, roi), or null when omitted.</summary>
    private static float[]? Floats(NodeContext n, int i, string role)
    {
        if (n.OptionalConstant(i, role) is not { } t) return null;
        if (t.DataType != DataType.Float32) throw n.Error($"{role} must be FLOAT, got {t.DataType}.");
        if (t.Rank > 1) throw n.Error($"{role} must be 1-D, got shape {Shape.Format(t.Shape)}.");
        return t.Floats;
    }
}
