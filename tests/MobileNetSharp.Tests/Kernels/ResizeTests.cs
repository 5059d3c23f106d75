using MobileNetSharp.Kernels;
using MobileNetSharp.Onnx;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>
/// Resize plans against a literal port of the ONNX reference implementation (onnx/reference/ops/op_resize.py:
/// axis-by-axis recursion, edge padding, neighbours chosen by distance), in float64, over random shapes, scales,
/// modes, coordinate transforms and nearest roundings, on NCHW and on the physical NHWC layout, every ISA, 1 and 2
/// threads; then the ONNX backend test data and the spec's worked examples.
/// </summary>
public class ResizeTests
{
    private sealed record Options(ResizeMode Mode, CoordinateTransform Transform, NearestRounding Rounding = NearestRounding.RoundPreferFloor,
        double CubicA = -0.75, bool ExcludeOutside = false, float Extrapolation = 0f);

    // ---- Reference (ONNX op_resize.py, ported literally) ----

    private static double[] Coefficients(Options o, double ratio, double scale) => o.Mode switch
    {
        ResizeMode.Nearest => ratio == Math.Floor(ratio) ? [0, 1] : o.Rounding switch
        {
            NearestRounding.RoundPreferFloor => [ratio <= 0.5 ? 1 : 0, ratio > 0.5 ? 1 : 0],
            NearestRounding.RoundPreferCeil => [ratio < 0.5 ? 1 : 0, ratio >= 0.5 ? 1 : 0],
            NearestRounding.Floor => [1, 0],
            NearestRounding.Ceil => [0, 1],
            _ => scale < 1 ? [0, 1] : [1, 0], // Simple (ONNX Runtime's opset-10 rule)
        },
        ResizeMode.Linear => [1 - ratio, ratio],
        _ => Cubic(ratio, o.CubicA),
    };

    private static double[] Cubic(double r, double a) =>
    [
        ((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
        ((a + 2) * r - (a + 3)) * r * r + 1,
        ((a + 2) * (1 - r) - (a + 3)) * (1 - r) * (1 - r) + 1,
        ((a * ((1 - r) + 1) - 5 * a) * ((1 - r) + 1) + 8 * a) * ((1 - r) + 1) - 4 * a,
    ];

    private static double Interpolate1D(double[] data, double scale, int outputInt, int x, Options o, double roiStart, double roiEnd)
    {
        int inputWidth = data.Length;
        double outputWidth = scale * inputWidth;
        double xOri;
        switch (o.Transform)
        {
            case CoordinateTransform.AlignCorners: xOri = outputWidth == 1 ? 0 : x * (inputWidth - 1) / (outputWidth - 1); break;
            case CoordinateTransform.Asymmetric: xOri = x / scale; break;
            case CoordinateTransform.TfCropAndResize:
                xOri = outputWidth == 1 ? (roiEnd - roiStart) * (inputWidth - 1) / 2 : x * (roiEnd - roiStart) * (inputWidth - 1) / (outputWidth - 1);
                xOri += roiStart * (inputWidth - 1);
                if (xOri < 0 || xOri > inputWidth - 1) return o.Extrapolation;
                break;
            // The spec says 0 for a length-1 output (the Python reference says -0.5; ONNX Runtime and we follow the spec).
            case CoordinateTransform.PytorchHalfPixel: xOri = outputWidth == 1 ? 0 : (x + 0.5) / scale - 0.5; break;
            case CoordinateTransform.HalfPixel: xOri = (x + 0.5) / scale - 0.5; break;
            case CoordinateTransform.HalfPixelSymmetric:
                double adjustment = outputInt / outputWidth, center = inputWidth / 2.0, offset = center * (1 - adjustment);
                xOri = offset + (x + 0.5) / scale - 0.5;
                break;
            default: xOri = (x + 0.5) / scale; break; // tf_half_pixel_for_nn
        }
        int xOriInt = (int)Math.Floor(xOri);
        double ratio = xOri == Math.Floor(xOri) ? 1 : xOri - xOriInt;
        double[] coeffs = Coefficients(o, ratio, scale);
        int n = coeffs.Length;
        // _get_neighbor: edge-pad by ceil(n/2), take the n indices nearest x (ties to the smaller), ascending.
        int pad = (n + 1) / 2;
        double xp = xOri + pad;
        int[] idxes = Enumerable.Range(0, inputWidth + 2 * pad).OrderBy(i => Math.Abs(xp - i)).ThenBy(i => i).Take(n).OrderBy(i => i).ToArray();
        double[] points = idxes.Select(i => data[Math.Clamp(i - pad, 0, inputWidth - 1)]).ToArray();
        if (o.ExcludeOutside)
        {
            for (int i = 0; i < n; i++) if (idxes[i] - pad < 0 || idxes[i] - pad >= inputWidth) coeffs[i] = 0;
            double sum = coeffs.Sum();
            for (int i = 0; i < n; i++) coeffs[i] /= sum;
        }
        double result = 0;
        for (int i = 0; i < n; i++) result += coeffs[i] * points[i];
        return result;
    }

    /// <summary>_interpolate_nd_with_x: interpolate the sub-tensors along axis 0, then along it.</summary>
    private static double InterpolateNd(double[] data, int[] shape, double[] scales, int[] outSizes, int[] x, int axis, Options o, double[] roi)
    {
        int rank = scales.Length;
        if (axis == rank - 1) return Interpolate1D(data, scales[axis], outSizes[axis], x[axis], o, roi[axis], roi[rank + axis]);
        int n = shape[axis], sub = data.Length / n;
        var res = new double[n];
        for (int i = 0; i < n; i++) res[i] = InterpolateNd(data[(i * sub)..((i + 1) * sub)], shape, scales, outSizes, x, axis + 1, o, roi);
        return Interpolate1D(res, scales[axis], outSizes[axis], x[axis], o, roi[axis], roi[rank + axis]);
    }

    private static float[] ReferenceResize(float[] x, int[] shape, int[] outShape, double[] scales, Options o, double[]? roi = null)
    {
        int rank = shape.Length;
        roi ??= Enumerable.Repeat(0.0, rank).Concat(Enumerable.Repeat(1.0, rank)).ToArray();
        double[] data = x.Select(v => (double)v).ToArray();
        var y = new float[outShape.Aggregate(1, (p, d) => p * d)];
        for (int i = 0; i < y.Length; i++)
            y[i] = (float)InterpolateNd(data, shape, scales, outShape, Reference.Unravel(i, outShape), 0, o, roi);
        return y;
    }

    private static ResizePlan Plan(int[] shape, int[] outShape, double[]? scales, Options o, double[]? roi = null) =>
        ResizePlan.Create(shape, outShape, scales ?? [], o.Mode, o.Transform, o.Rounding, (float)o.CubicA, o.ExcludeOutside, roi ?? [], o.Extrapolation);

    // ---- Randomized comparison ----

    [Fact]
    public void RandomResizesMatchTheOnnxReferenceOnNchwAndNhwc()
    {
        var rng = new Random(61);
        double[] scaleChoices = [0.5, 0.6, 0.75, 1.0, 1.3, 1.5, 2.0, 3.0, 2.5];
        CoordinateTransform[] transforms = Enum.GetValues<CoordinateTransform>();
        for (int trial = 0; trial < 90; trial++)
        {
            var mode = (ResizeMode)(trial % 3);
            CoordinateTransform transform = transforms[trial / 3 % transforms.Length];
            var o = new Options(mode, transform, (NearestRounding)rng.Next(5), rng.Next(2) == 0 ? -0.75 : -0.5, mode == ResizeMode.Cubic && rng.Next(2) == 0,
                Extrapolation: transform == CoordinateTransform.TfCropAndResize ? 7.5f : 0f);
            int n = 1 + rng.Next(2), c = new[] { 1, 3, 5, 17, 20 }[rng.Next(5)], h = 1 + rng.Next(6), w = 1 + rng.Next(7);
            bool useScales = rng.Next(2) == 0;
            double sh = scaleChoices[rng.Next(scaleChoices.Length)], sw = scaleChoices[rng.Next(scaleChoices.Length)];
            int oh = useScales ? ResizeAxis.OutputSize(h, sh) : 1 + rng.Next(9), ow = useScales ? ResizeAxis.OutputSize(w, sw) : 1 + rng.Next(9);
            if (oh == 0 || ow == 0) { oh = Math.Max(oh, 1); ow = Math.Max(ow, 1); useScales = false; }
            double[]? scales = useScales ? [1, 1, sh, sw] : null;
            double[]? roi = transform == CoordinateTransform.TfCropAndResize
                ? [0, 0, rng.NextDouble() * 0.5 - 0.2, rng.NextDouble() * 0.4, 1, 1, 0.6 + rng.NextDouble() * 0.6, 0.5 + rng.NextDouble() * 0.5]
                : null;
            CheckBothLayouts(rng, o, n, c, h, w, oh, ow, scales, roi, $"trial {trial}");
        }
    }

    /// <summary>Shapes models use: 2x upsampling of decoder maps (nearest and bilinear), arbitrary target sizes.</summary>
    [Theory]
    [InlineData(ResizeMode.Nearest, CoordinateTransform.Asymmetric, 1, 24, 10, 12, 20, 24)]
    [InlineData(ResizeMode.Linear, CoordinateTransform.HalfPixel, 1, 33, 9, 7, 18, 14)]
    [InlineData(ResizeMode.Linear, CoordinateTransform.AlignCorners, 2, 16, 8, 8, 31, 29)]
    [InlineData(ResizeMode.Linear, CoordinateTransform.PytorchHalfPixel, 1, 40, 12, 10, 6, 5)]
    [InlineData(ResizeMode.Cubic, CoordinateTransform.HalfPixel, 1, 19, 6, 6, 13, 11)]
    [InlineData(ResizeMode.Nearest, CoordinateTransform.HalfPixel, 2, 3, 17, 13, 40, 9)]
    public void ModelShapesMatchTheReference(ResizeMode mode, CoordinateTransform transform, int n, int c, int h, int w, int oh, int ow) =>
        CheckBothLayouts(new Random(c), new Options(mode, transform), n, c, h, w, oh, ow, null, null, "model shape");

    private static void CheckBothLayouts(Random rng, Options o, int n, int c, int h, int w, int oh, int ow, double[]? scales, double[]? roi, string context)
    {
        int[] shape = [n, c, h, w], outShape = [n, c, oh, ow];
        float[] x = TestData.Random(rng, n * c * h * w, 2f);
        double[] refScales = scales ?? [1, 1, (double)oh / h, (double)ow / w];
        float[] expected = ReferenceResize(x, shape, outShape, refScales, o, roi);
        string what = $"{context} {o} [{string.Join(",", shape)}]->[{string.Join(",", outShape)}] scales={(scales == null ? "sizes" : string.Join(",", scales))}";

        ResizePlan nchw = Plan(shape, outShape, scales, o, roi);
        Assert.Equal(outShape, nchw.OutputShape);
        // NHWC: the same resize on the physical layout, tables and roi permuted.
        int[] perm = [0, 2, 3, 1];
        ResizePlan nhwc = Plan(perm.Select(p => shape[p]).ToArray(), perm.Select(p => outShape[p]).ToArray(), scales == null ? null : perm.Select(p => scales[p]).ToArray(), o,
            roi == null ? null : perm.Select(p => roi[p]).Concat(perm.Select(p => roi[4 + p])).ToArray());
        float[] xNhwc = Reference.Transpose(x, shape, perm), expectedNhwc = Reference.Transpose(expected, outShape, perm);
        foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
        {
            var y = new float[expected.Length + 5];
            y.AsSpan(expected.Length).Fill(-999f);
            nchw.Run(x, y, workers, isa);
            TestData.AssertClose(expected, y, 16, $"NCHW {what} {isa} t{workers.Count}");
            Assert.All(y[expected.Length..], v => Assert.Equal(-999f, v));
            var yNhwc = new float[expected.Length];
            nhwc.Run(xNhwc, yNhwc, workers, isa);
            TestData.AssertClose(expectedNhwc, yNhwc, 16, $"NHWC {what} {isa} t{workers.Count}");
        }
    }

    [Fact]
    public void AnyAxisAndRankCanBeResized()
    {
        var rng = new Random(67);
        (int[] Shape, int[] Out)[] cases =
        [
            ([7], [12]),                // rank 1
            ([5, 4], [3, 9]),           // rank 2
            ([3, 4, 5], [5, 4, 2]),     // first and last axes, middle kept
            ([2, 3, 4, 5], [3, 3, 4, 5]), // batch axis only: inner run of 60
            ([2, 3, 4, 5], [2, 6, 4, 5]), // channel axis only (NCHW)
            ([2, 3, 2, 2, 3], [3, 2, 3, 1, 3]), // rank 5, four axes
        ];
        foreach ((int[] shape, int[] outShape) in cases)
            foreach (ResizeMode mode in Enum.GetValues<ResizeMode>())
            {
                var o = new Options(mode, CoordinateTransform.HalfPixel);
                float[] x = TestData.Random(rng, shape.Aggregate(1, (p, d) => p * d));
                double[] scales = shape.Select((d, i) => (double)outShape[i] / d).ToArray();
                float[] expected = ReferenceResize(x, shape, outShape, scales, o);
                ResizePlan plan = Plan(shape, outShape, null, o);
                foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
                {
                    var y = new float[expected.Length];
                    plan.Run(x, y, workers, isa);
                    TestData.AssertClose(expected, y, 16, $"{mode} [{string.Join(",", shape)}]->[{string.Join(",", outShape)}] {isa} t{workers.Count}");
                }
            }
    }

    // ---- Hand-computed values from the ONNX spec examples ----

    [Fact]
    public void SpecExampleUpsampleNearest()
    {
        // Upsample / Resize nearest, scales [1, 1, 2, 3] on [[1, 2], [3, 4]].
        ResizePlan plan = ResizePlan.Create([1, 1, 2, 2], [1, 1, 4, 6], [1, 1, 2, 3], ResizeMode.Nearest, CoordinateTransform.Asymmetric, NearestRounding.Simple);
        var y = new float[24];
        plan.Run([1, 2, 3, 4], y, Workers.Single);
        Assert.Equal(new float[] { 1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4 }, y);
    }

    [Fact]
    public void SpecExampleUpsampleLinearHalfPixel()
    {
        // test_resize_upsample_scales_linear: scales [1, 1, 2, 2], half_pixel.
        ResizePlan plan = ResizePlan.Create([1, 1, 2, 2], [1, 1, 4, 4], [1, 1, 2, 2], ResizeMode.Linear, CoordinateTransform.HalfPixel);
        var y = new float[16];
        plan.Run([1, 2, 3, 4], y, Workers.Single);
        Assert.Equal(new float[] { 1, 1.25f, 1.75f, 2, 1.5f, 1.75f, 2.25f, 2.5f, 2.5f, 2.75f, 3.25f, 3.5f, 3, 3.25f, 3.75f, 4 }, y);
    }

    [Fact]
    public void SpecExampleDownsampleLinearAlignCornersUsesTheGivenScale()
    {
        // test_resize_downsample_scales_linear_align_corners: 2x4 with scales 0.6 → 1x2 = [[1, 3.142857]]: the column
        // coordinate is x · (4 - 1) / (0.6 · 4 - 1), i.e. from the scale, not from the integer output length.
        ResizePlan plan = ResizePlan.Create([1, 1, 2, 4], [1, 1, 1, 2], [1, 1, 0.6f, 0.6f], ResizeMode.Linear, CoordinateTransform.AlignCorners);
        var y = new float[2];
        plan.Run([1, 2, 3, 4, 5, 6, 7, 8], y, Workers.Single);
        Assert.Equal(1f, y[0], 1e-6f);
        Assert.Equal(3.142857f, y[1], 1e-5f);
    }

    // ---- ONNX backend test data ----

    public static IEnumerable<object[]> OnnxCases =>
    [
        ["test_resize_downsample_scales_cubic", ResizeMode.Cubic, CoordinateTransform.HalfPixel, NearestRounding.RoundPreferFloor, -0.75, false],
        ["test_resize_downsample_scales_cubic_A_n0p5_exclude_outside", ResizeMode.Cubic, CoordinateTransform.HalfPixel, NearestRounding.RoundPreferFloor, -0.5, true],
        ["test_resize_downsample_scales_cubic_align_corners", ResizeMode.Cubic, CoordinateTransform.AlignCorners, NearestRounding.RoundPreferFloor, -0.75, false],
        ["test_resize_downsample_scales_linear", ResizeMode.Linear, CoordinateTransform.HalfPixel, NearestRounding.RoundPreferFloor, -0.75, false],
        ["test_resize_downsample_scales_linear_align_corners", ResizeMode.Linear, CoordinateTransform.AlignCorners, NearestRounding.RoundPreferFloor, -0.75, false],
        ["test_resize_downsample_scales_nearest", ResizeMode.Nearest, CoordinateTransform.HalfPixel, NearestRounding.RoundPreferFloor, -0.75, false],
        ["test_resize_downsample_sizes_cubic", ResizeMode.Cubic, CoordinateTransform.HalfPixel, NearestRounding.RoundPreferFloor, -0.75, false],
        ["test_resize_downsample_sizes_linear_pytorch_half_pixel", ResizeMode.Linear, CoordinateTransform.PytorchHalfPixel, NearestRounding.RoundPreferFloor, -0.75, false],
        ["test_resize_downsample_sizes_nearest", ResizeMode.Nearest, CoordinateTransform.HalfPixel, NearestRounding.RoundPreferFloor, -0.75, false],
        ["test_resize_downsample_sizes_nearest_tf_half_pixel_for_nn", ResizeMode.Nearest, CoordinateTransform.TfHalfPixelForNn, NearestRounding.RoundPreferFloor, -0.75, false],
        ["test_resize_tf_crop_and_resize", ResizeMode.Linear, CoordinateTransform.TfCropAndResize, NearestRounding.RoundPreferFloor, -0.75, false],
        ["test_resize_upsample_scales_cubic", ResizeMode.Cubic, CoordinateTransform.HalfPixel, NearestRounding.RoundPreferFloor, -0.75, false],
        ["test_resize_upsample_scales_cubic_A_n0p5_exclude_outside", ResizeMode.Cubic, CoordinateTransform.HalfPixel, NearestRounding.RoundPreferFloor, -0.5, true],
        ["test_resize_upsample_scales_cubic_align_corners", ResizeMode.Cubic, CoordinateTransform.AlignCorners, NearestRounding.RoundPreferFloor, -0.75, false],
        ["test_resize_upsample_scales_cubic_asymmetric", ResizeMode.Cubic, CoordinateTransform.Asymmetric, NearestRounding.RoundPreferFloor, -0.75, false],
        ["test_resize_upsample_scales_linear", ResizeMode.Linear, CoordinateTransform.HalfPixel, NearestRounding.RoundPreferFloor, -0.75, false],
        ["test_resize_upsample_scales_linear_align_corners", ResizeMode.Linear, CoordinateTransform.AlignCorners, NearestRounding.RoundPreferFloor, -0.75, false],
        ["test_resize_upsample_scales_nearest", ResizeMode.Nearest, CoordinateTransform.HalfPixel, NearestRounding.RoundPreferFloor, -0.75, false],
        ["test_resize_upsample_sizes_cubic", ResizeMode.Cubic, CoordinateTransform.HalfPixel, NearestRounding.RoundPreferFloor, -0.75, false],
        ["test_resize_upsample_sizes_nearest", ResizeMode.Nearest, CoordinateTransform.HalfPixel, NearestRounding.RoundPreferFloor, -0.75, false],
        ["test_resize_upsample_sizes_nearest_ceil_half_pixel", ResizeMode.Nearest, CoordinateTransform.HalfPixel, NearestRounding.Ceil, -0.75, false],
        ["test_resize_upsample_sizes_nearest_floor_align_corners", ResizeMode.Nearest, CoordinateTransform.AlignCorners, NearestRounding.Floor, -0.75, false],
        ["test_resize_upsample_sizes_nearest_round_prefer_ceil_asymmetric", ResizeMode.Nearest, CoordinateTransform.Asymmetric, NearestRounding.RoundPreferCeil, -0.75, false],
        ["test_upsample_nearest", ResizeMode.Nearest, CoordinateTransform.Asymmetric, NearestRounding.Simple, -0.75, false],
    ];

    [Theory]
    [MemberData(nameof(OnnxCases))]
    public void MatchesTheOnnxBackendTestData(string test, ResizeMode mode, CoordinateTransform transform, NearestRounding rounding, double a, bool exclude)
    {
        string dir = $"/usr/share/libonnx-testdata/data/node/{test}/test_data_set_0";
        if (!Directory.Exists(dir)) return; // CI installs libonnx-testdata
        var x = TensorProtoFile.Read(Path.Combine(dir, "input_0.pb"));
        var expected = TensorProtoFile.Read(Path.Combine(dir, "output_0.pb"));
        var second = TensorProtoFile.Read(Path.Combine(dir, "input_1.pb"));
        double[] scales = [], roi = [];
        if (transform == CoordinateTransform.TfCropAndResize)
            roi = ((float[])second.Data).Select(v => (double)v).ToArray(); // input_1 roi, input_2 sizes
        else if (second.Data is float[] s)
            scales = s.Select(v => (double)v).ToArray();
        int[] outShape = second.Data is long[] sizes ? sizes.Select(v => (int)v).ToArray()
            : transform == CoordinateTransform.TfCropAndResize ? ((long[])TensorProtoFile.Read(Path.Combine(dir, "input_2.pb")).Data).Select(v => (int)v).ToArray()
            : x.Shape.Select((d, i) => ResizeAxis.OutputSize(d, scales[i])).ToArray();
        Assert.Equal(expected.Shape, outShape);
        ResizePlan plan = ResizePlan.Create(x.Shape, outShape, scales, mode, transform, rounding, (float)a, exclude, roi,
            extrapolationValue: transform == CoordinateTransform.TfCropAndResize ? 10f : 0f);
        foreach ((IsaLevel isa, Workers workers) in TestData.Sweep())
        {
            var y = new float[expected.Length];
            plan.Run((float[])x.Data, y, workers, isa);
            TestData.AssertClose((float[])expected.Data, y, 16, $"{test} {isa} t{workers.Count}");
        }
    }

    // ---- Validation and steady state ----

    [Fact]
    public void RejectsBadGeometryBeforeAllocating()
    {
        Assert.Throws<ArgumentException>(() => ResizePlan.Create([1, 3, 4, 4], [1, 3, 8], [], ResizeMode.Linear, CoordinateTransform.HalfPixel));
        Assert.Throws<ArgumentException>(() => ResizePlan.Create([1, 3, 4, 4], [1, 3, 1 << 20, 1 << 20], [], ResizeMode.Linear, CoordinateTransform.HalfPixel));
        Assert.Throws<ArgumentException>(() => ResizePlan.Create([1, 3, 4, 4], [1, 3, -1, 4], [], ResizeMode.Nearest, CoordinateTransform.HalfPixel));
        Assert.Throws<ArgumentException>(() => ResizeAxis.OutputSize(4, 0));
        Assert.Throws<ArgumentException>(() => ResizeAxis.OutputSize(4, double.NaN));
        Assert.Throws<ArgumentException>(() => ResizeAxis.OutputSize(1 << 20, 1e6));
        Assert.Throws<ArgumentException>(() => ResizeAxis.Create(0, 3, null, ResizeMode.Linear, CoordinateTransform.HalfPixel));
        ResizePlan plan = ResizePlan.Create([1, 2, 3, 3], [1, 2, 6, 6], [], ResizeMode.Linear, CoordinateTransform.HalfPixel);
        Assert.Throws<ArgumentException>(() => plan.Run(new float[17], new float[72], Workers.Single));
        Assert.Throws<ArgumentException>(() => plan.Run(new float[18], new float[71], Workers.Single));
    }

    [Fact]
    public void SteadyStateRunsAllocateNothing()
    {
        var rng = new Random(71);
        using var two = new Workers(2);
        foreach (Workers workers in new[] { Workers.Single, two })
            foreach (ResizeMode mode in Enum.GetValues<ResizeMode>())
            {
                ResizePlan nhwc = ResizePlan.Create([1, 40, 40, 24], [1, 80, 80, 24], [1, 2, 2, 1], mode, CoordinateTransform.HalfPixel);
                ResizePlan nchw = ResizePlan.Create([1, 24, 40, 40], [1, 24, 80, 80], [1, 1, 2, 2], mode, CoordinateTransform.HalfPixel);
                float[] x = TestData.Random(rng, nhwc.InputLength), y = new float[nhwc.OutputLength];
                AllocationTests.AssertNoAllocation(() => nhwc.Run(x, y, workers), $"resize NHWC {mode} t{workers.Count}");
                AllocationTests.AssertNoAllocation(() => nchw.Run(x, y, workers), $"resize NCHW {mode} t{workers.Count}");
            }
    }
}
