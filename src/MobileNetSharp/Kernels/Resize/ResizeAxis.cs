namespace MobileNetSharp.Kernels;

/// <summary>ONNX Resize "mode": nearest, (n-)linear or (n-)cubic interpolation.</summary>
public enum ResizeMode { Nearest, Linear, Cubic }

/// <summary>ONNX Resize "coordinate_transformation_mode": how an output coordinate maps to an input one.</summary>
public enum CoordinateTransform
{
    /// <summary>(x + 0.5) / scale - 0.5 (the default since opset 11).</summary>
    HalfPixel,
    /// <summary>half_pixel re-centred when the output length is not exactly scale · input (opset 19).</summary>
    HalfPixelSymmetric,
    /// <summary>half_pixel, but 0 when the output length is 1.</summary>
    PytorchHalfPixel,
    /// <summary>x · (in - 1) / (out - 1), 0 when the output length is 1.</summary>
    AlignCorners,
    /// <summary>x / scale (opset 10 Resize and Upsample).</summary>
    Asymmetric,
    /// <summary>(x + 0.5) / scale (opset 11-12, nearest only).</summary>
    TfHalfPixelForNn,
    /// <summary>Maps into the region of interest; samples outside the input take the extrapolation value.</summary>
    TfCropAndResize,
}

/// <summary>ONNX Resize "nearest_mode": how a fractional source coordinate rounds in nearest mode.</summary>
public enum NearestRounding
{
    /// <summary>Round half down (the ONNX default).</summary>
    RoundPreferFloor,
    /// <summary>Round half up.</summary>
    RoundPreferCeil,
    Floor,
    Ceil,
    /// <summary>Opset-10 Resize and Upsample as ONNX Runtime runs them: floor when upsampling (scale ≥ 1), ceil when
    /// downsampling (the spec of those opsets leaves the rounding open).</summary>
    Simple,
}

/// <summary>
/// The precomputed 1-D sampling table of one axis of ONNX Resize: for each output index, <see cref="Taps"/> input
/// indices (already clamped, i.e. edge-padded) with their weights, plus whether the sample lies outside the input
/// (tf_crop_and_resize only; the output then takes the extrapolation value). Built once when a plan is compiled.
/// <para>
/// Source: the ONNX operator spec "Resize" (opset 19) and its reference implementation
/// (onnx/reference/ops/op_resize.py: <c>_interpolate_1d_with_x</c>, <c>_nearest_coeffs</c>, <c>_linear_coeffs</c>,
/// <c>_cubic_coeffs</c>, <c>_get_neighbor</c>). The source coordinate is computed in float64 from
/// length_resized = scale · in when a scale is given (ONNX uses the given scales, not out / in, and the
/// float output length for align_corners / half_pixel_symmetric), else from the integer output size. A
/// fractional coordinate takes its neighbours below it (an integer coordinate is the right neighbour with
/// ratio 1, exactly as the reference does, which matters for cubic weights and exclude_outside).
/// </para>
/// </summary>
public sealed class ResizeAxis
{
    private ResizeAxis(int inSize, int outSize, int taps)
    {
        InSize = inSize;
        OutSize = outSize;
        Taps = taps;
        Index = new int[(long)outSize * taps];
        Weight = new float[(long)outSize * taps];
    }

    public int InSize { get; }
    public int OutSize { get; }
    /// <summary>Input samples per output index: 1 (nearest, identity), 2 (linear) or 4 (cubic).</summary>
    public int Taps { get; }
    /// <summary>Clamped input index of tap t of output o at [o · Taps + t].</summary>
    internal int[] Index { get; }
    internal float[] Weight { get; }
    /// <summary>Per output index, whether it samples outside the input (tf_crop_and_resize); null when none does.</summary>
    internal bool[]? Outside { get; private set; }
    /// <summary>Every output index reads exactly its own input index with weight 1.</summary>
    public bool IsIdentity { get; private set; }

    public ReadOnlySpan<int> Indices => Index;
    public ReadOnlySpan<float> Weights => Weight;
    public bool IsOutside(int o) => Outside?[o] ?? false;

    /// <summary>ONNX output length for a given scale: floor(in · scale), computed in float64.</summary>
    public static int OutputSize(int inSize, double scale)
    {
        if (!(scale > 0) || double.IsInfinity(scale)) throw new ArgumentException($"Resize: scale {scale} must be positive and finite.", nameof(scale));
        double size = Math.Floor(inSize * scale);
        if (size > int.MaxValue) throw new ArgumentException($"Resize: {inSize} x {scale} is too large an output.");
        return (int)size;
    }

    /// <summary>An axis that is copied as is.</summary>
    public static ResizeAxis Identity(int size)
    {
        var axis = new ResizeAxis(size, size, 1) { IsIdentity = true };
        for (int o = 0; o < size; o++) { axis.Index[o] = o; axis.Weight[o] = 1f; }
        return axis;
    }

    /// <summary>
    /// Builds the table of one axis. <paramref name="scale"/> is the ONNX scale of this axis when the model gives
    /// scales (null when it gives sizes: out / in is used, with the integer output length). <paramref name="roiStart"/>
    /// and <paramref name="roiEnd"/> are this axis' normalized region of interest (tf_crop_and_resize only).
    /// </summary>
    public static ResizeAxis Create(int inSize, int outSize, double? scale, ResizeMode mode, CoordinateTransform transform,
        NearestRounding rounding = NearestRounding.RoundPreferFloor, float cubicCoeffA = -0.75f, bool excludeOutside = false,
        double roiStart = 0, double roiEnd = 1)
    {
        if (inSize < 0 || outSize < 0) throw new ArgumentException($"Resize: negative size ({inSize} → {outSize}).");
        if (inSize == 0 && outSize > 0) throw new ArgumentException($"Resize: cannot resize an empty axis to {outSize}.");
        if (scale is { } given && (!(given > 0) || double.IsInfinity(given))) throw new ArgumentException($"Resize: scale {given} must be positive and finite.", nameof(scale));
        int taps = mode switch { ResizeMode.Nearest => 1, ResizeMode.Linear => 2, ResizeMode.Cubic => 4, _ => throw new ArgumentOutOfRangeException(nameof(mode)) };
        if ((long)outSize * taps > int.MaxValue) throw new ArgumentException($"Resize: output length {outSize} is too large.");
        if (outSize == 0 || inSize == 0) return new ResizeAxis(inSize, outSize, taps) { IsIdentity = inSize == outSize };

        double s = scale ?? (double)outSize / inSize;
        double lengthResized = scale is { } sc ? sc * inSize : outSize;
        var axis = new ResizeAxis(inSize, outSize, taps);
        Span<double> w = stackalloc double[4];
        Span<int> idx = stackalloc int[4];
        bool identity = inSize == outSize;
        for (int o = 0; o < outSize; o++)
        {
            double x = SourceCoordinate(o, inSize, outSize, s, lengthResized, transform, roiStart, roiEnd);
            if (transform == CoordinateTransform.TfCropAndResize && (x < 0 || x > inSize - 1))
            {
                (axis.Outside ??= new bool[outSize])[o] = true;
                identity = false;
                for (int t = 0; t < taps; t++) { axis.Index[o * taps + t] = 0; axis.Weight[o * taps + t] = 0f; }
                continue;
            }
            // Neighbours below x: for an integer x the reference takes x - 1 and x with ratio 1.
            double floor = Math.Floor(x);
            bool integral = floor == x;
            long bottom = integral ? (long)x - 1 : (long)floor;
            double ratio = integral ? 1 : x - floor;
            switch (mode)
            {
                case ResizeMode.Nearest:
                {
                    bool up = integral || rounding switch
                    {
                        NearestRounding.RoundPreferFloor => ratio > 0.5,
                        NearestRounding.RoundPreferCeil => ratio >= 0.5,
                        NearestRounding.Floor => false,
                        NearestRounding.Ceil => true,
                        NearestRounding.Simple => s < 1,
                        _ => throw new ArgumentOutOfRangeException(nameof(rounding)),
                    };
                    idx[0] = Clamp(bottom + (up ? 1 : 0), inSize);
                    w[0] = 1;
                    break;
                }
                case ResizeMode.Linear:
                    w[0] = 1 - ratio; w[1] = ratio;
                    idx[0] = (int)Math.Clamp(bottom, int.MinValue, int.MaxValue); idx[1] = (int)Math.Clamp(bottom + 1, int.MinValue, int.MaxValue);
                    break;
                default:
                {
                    double a = cubicCoeffA, r = ratio, q = 1 - ratio;
                    w[0] = ((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a;
                    w[1] = ((a + 2) * r - (a + 3)) * r * r + 1;
                    w[2] = ((a + 2) * q - (a + 3)) * q * q + 1;
                    w[3] = ((a * (q + 1) - 5 * a) * (q + 1) + 8 * a) * (q + 1) - 4 * a;
                    for (int t = 0; t < 4; t++) idx[t] = (int)Math.Clamp(bottom - 1 + t, int.MinValue, int.MaxValue);
                    break;
                }
            }
            if (mode != ResizeMode.Nearest)
            {
                if (excludeOutside)
                {
                    double sum = 0;
                    for (int t = 0; t < taps; t++)
                    {
                        if (idx[t] < 0 || idx[t] >= inSize) w[t] = 0;
                        sum += w[t];
                    }
                    if (sum != 0) for (int t = 0; t < taps; t++) w[t] /= sum;
                }
                for (int t = 0; t < taps; t++) idx[t] = Clamp(idx[t], inSize);
            }
            for (int t = 0; t < taps; t++)
            {
                axis.Index[o * taps + t] = idx[t];
                axis.Weight[o * taps + t] = (float)w[t];
                if (w[t] != 0 && (idx[t] != o || w[t] != 1)) identity = false;
            }
        }
        axis.IsIdentity = identity;
        return axis;
    }

    private static int Clamp(long i, int n) => (int)Math.Clamp(i, 0, n - 1);

    /// <summary>The input coordinate output index <paramref name="x"/> samples (ONNX coordinate_transformation_mode).</summary>
    public static double SourceCoordinate(int x, int inSize, int outSize, double scale, double lengthResized, CoordinateTransform transform,
        double roiStart = 0, double roiEnd = 1) => transform switch
    {
        CoordinateTransform.HalfPixel => (x + 0.5) / scale - 0.5,
        CoordinateTransform.HalfPixelSymmetric =>
            inSize / 2.0 * (1 - outSize / lengthResized) + (x + 0.5) / scale - 0.5,
        CoordinateTransform.PytorchHalfPixel => lengthResized > 1 ? (x + 0.5) / scale - 0.5 : 0,
        CoordinateTransform.AlignCorners => lengthResized > 1 ? x * (inSize - 1) / (lengthResized - 1) : 0,
        CoordinateTransform.Asymmetric => x / scale,
        CoordinateTransform.TfHalfPixelForNn => (x + 0.5) / scale,
        CoordinateTransform.TfCropAndResize => lengthResized > 1
            ? roiStart * (inSize - 1) + x * (roiEnd - roiStart) * (inSize - 1) / (lengthResized - 1)
            : 0.5 * (roiStart + roiEnd) * (inSize - 1),
        _ => throw new ArgumentOutOfRangeException(nameof(transform), transform, "Unknown coordinate transformation."),
    };
}
