using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>
/// The N-D convolution and pooling kernels against naive references over randomized shapes: 1 to 3
/// spatial axes, strides, dilations, asymmetric pads, groups (depthwise included), ceil mode,
/// count_include_pad, batch above 1, channel counts that are not multiples of the vector width, 1 and 2 threads.
/// </summary>
public class NdConvTests
{
    /// <summary>One random window: sizes, kernel, strides, dilations and pads (begins, then ends) per axis.</summary>
    private sealed record Window(int[] In, int[] Kernel, int[] Strides, int[] Dilations, int[] Pads);

    private static Window RandomWindow(Random rng, int rank, bool ceil)
    {
        var w = new Window(new int[rank], new int[rank], new int[rank], new int[rank], new int[2 * rank]);
        for (int d = 0; d < rank; d++)
        {
            w.Kernel[d] = rng.Next(1, 4);
            w.Strides[d] = rng.Next(1, 4);
            w.Dilations[d] = rng.Next(1, 3);
            // Pads below the kernel extent, as ONNX exporters produce; begins and ends drawn independently.
            int extent = (w.Kernel[d] - 1) * w.Dilations[d] + 1;
            w.Pads[d] = rng.Next(0, Math.Min(3, extent));
            w.Pads[rank + d] = rng.Next(0, Math.Min(3, extent));
            // At least the dilation, so no window's taps step over the whole input (ONNX leaves that average undefined).
            w.In[d] = Math.Max(w.Dilations[d], extent - w.Pads[d] - w.Pads[rank + d]) + rng.Next(0, rank == 3 ? 5 : 9);
        }
        // Ceil mode matters only where the stride leaves a remainder; keep such windows common.
        if (ceil) for (int d = 0; d < rank; d++) w.Strides[d] = Math.Max(2, w.Strides[d]);
        return w;
    }

    /// <summary>ONNX's output size, written out from the operator specification.</summary>
    private static int OutSize(Window w, int d, bool ceil)
    {
        int rank = w.In.Length;
        int span = w.In[d] + w.Pads[d] + w.Pads[rank + d] - (w.Kernel[d] - 1) * w.Dilations[d] - 1;
        int o = (ceil ? (int)Math.Ceiling(span / (double)w.Strides[d]) : span / w.Strides[d]) + 1;
        return ceil && (o - 1) * w.Strides[d] >= w.In[d] + w.Pads[d] ? o - 1 : o;
    }

    /// <summary>Row-major multi-index of <paramref name="flat"/> in <paramref name="shape"/>.</summary>
    private static int[] Unravel(int flat, int[] shape)
    {
        var idx = new int[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--) { idx[d] = flat % shape[d]; flat /= shape[d]; }
        return idx;
    }

    private static int Volume(int[] s) => s.Aggregate(1, (a, v) => a * v);

    /// <summary>Plain loops, double accumulation, every tap bounds-checked.</summary>
    private static float[] ReferenceConv(Window w, int[] outSize, int batch, int inC, int outC, int groups,
        float[] x, float[] weights, float[] bias, Activation act)
    {
        int rank = w.In.Length, cpg = inC / groups, opg = outC / groups, plane = Volume(outSize), kv = Volume(w.Kernel), inPlane = Volume(w.In);
        var y = new float[batch * outC * plane];
        for (int n = 0; n < batch; n++)
        for (int oc = 0; oc < outC; oc++)
        for (int p = 0; p < plane; p++)
        {
            var o = Unravel(p, outSize);
            double acc = bias.Length > 0 ? bias[oc] : 0;
            for (int ic = 0; ic < cpg; ic++)
            for (int t = 0; t < kv; t++)
            {
                var k = Unravel(t, w.Kernel);
                int src = 0;
                bool inside = true;
                for (int d = 0; d < rank; d++)
                {
                    int i = o[d] * w.Strides[d] - w.Pads[d] + k[d] * w.Dilations[d];
                    inside &= i >= 0 && i < w.In[d];
                    src = src * w.In[d] + i;
                }
                if (inside) acc += (double)x[(n * inC + oc / opg * cpg + ic) * inPlane + src] * weights[(oc * cpg + ic) * kv + t];
            }
            y[(n * outC + oc) * plane + p] = act.Apply((float)acc);
        }
        return y;
    }

    /// <summary>Max or average; the include-pad divisor counts taps inside the input or its declared pads.</summary>
    private static float[] ReferencePool(Window w, int[] outSize, int planes, float[] x, bool max, bool countIncludePad)
    {
        int rank = w.In.Length, plane = Volume(outSize), kv = Volume(w.Kernel), inPlane = Volume(w.In);
        var y = new float[planes * plane];
        for (int c = 0; c < planes; c++)
        for (int p = 0; p < plane; p++)
        {
            var o = Unravel(p, outSize);
            double acc = max ? double.NegativeInfinity : 0;
            int inside = 0, padded = 0;
            for (int t = 0; t < kv; t++)
            {
                var k = Unravel(t, w.Kernel);
                int src = 0;
                bool inInput = true, inPads = true;
                for (int d = 0; d < rank; d++)
                {
                    int i = o[d] * w.Strides[d] - w.Pads[d] + k[d] * w.Dilations[d];
                    inInput &= i >= 0 && i < w.In[d];
                    inPads &= i >= -w.Pads[d] && i < w.In[d] + w.Pads[rank + d];
                    src = src * w.In[d] + i;
                }
                if (inPads) padded++;
                if (!inInput) continue;
                inside++;
                double v = x[c * inPlane + src];
                acc = max ? Math.Max(acc, v) : acc + v;
            }
            y[c * plane + p] = (float)(max ? acc : acc / (countIncludePad ? padded : inside));
        }
        return y;
    }

    public static TheoryData<int> Ranks() => new(1, 2, 3);

    [Theory]
    [MemberData(nameof(Ranks))]
    public void ConvolutionMatchesNaiveReference(int rank)
    {
        var rng = new Random(100 + rank);
        for (int trial = 0; trial < 40; trial++)
        {
            var w = RandomWindow(rng, rank, ceil: false);
            int groups = rng.Next(3) switch { 0 => 1, 1 => 2, _ => rng.Next(3, 6) };
            bool depthwise = groups > 2;
            int inC = depthwise ? groups : groups * rng.Next(1, 4);
            int outC = groups * (depthwise ? rng.Next(1, 3) : rng.Next(1, 4));
            int batch = rng.Next(1, 4);
            var g = new NdGeometry(batch, inC, outC, w.In, w.Kernel, w.Strides, w.Dilations, w.Pads, groups);
            var outSize = Enumerable.Range(0, rank).Select(d => OutSize(w, d, ceil: false)).ToArray();
            Assert.Equal(outSize, g.OutSize);
            var x = TestData.Random(rng, g.InputLength);
            var weights = TestData.Random(rng, g.WeightLength);
            var bias = rng.Next(2) == 0 ? [] : TestData.Random(rng, outC);
            var act = TestData.Activations[rng.Next(TestData.Activations.Length)];
            var expected = ReferenceConv(w, outSize, batch, inC, outC, groups, x, weights, bias, act);
            foreach (var workers in new[] { Workers.Single, TestData.Two })
            {
                var y = new float[g.OutputLength];
                NdConvolution.Run(g, x, weights, bias, act, y, workers);
                TestData.AssertClose(expected, y, g.InCPerGroup * g.KernelVolume, $"trial {trial}: {g} {act} {workers.Count}t");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Ranks))]
    public void PoolingMatchesNaiveReference(int rank)
    {
        var rng = new Random(200 + rank);
        for (int trial = 0; trial < 60; trial++)
        {
            bool ceil = trial % 2 == 1, max = trial % 4 < 2, includePad = !max && rng.Next(2) == 0;
            var w = RandomWindow(rng, rank, ceil);
            int channels = rng.Next(1, 6), batch = rng.Next(1, 4);
            var g = new NdGeometry(batch, channels, channels, w.In, w.Kernel, w.Strides, w.Dilations, w.Pads, ceilMode: ceil);
            var outSize = Enumerable.Range(0, rank).Select(d => OutSize(w, d, ceil)).ToArray();
            Assert.Equal(outSize, g.OutSize);
            var x = TestData.Random(rng, g.InputLength);
            var expected = ReferencePool(w, outSize, batch * channels, x, max, includePad);
            foreach (var workers in new[] { Workers.Single, TestData.Two })
            {
                var y = new float[g.OutputLength];
                if (max) NdPooling.Max(g, x, y, workers);
                else NdPooling.Average(g, includePad, x, y, workers);
                TestData.AssertClose(expected, y, g.KernelVolume, $"trial {trial}: {(max ? "max" : "avg")}{(includePad ? " incl. pad" : "")} {g} {workers.Count}t");
            }
        }
    }

    /// <summary>Big enough that the work is split across threads (the random shapes mostly run inline).</summary>
    [Fact]
    public void LargeThreeDimensionalShapesSplitAcrossThreads()
    {
        var rng = new Random(7);
        var w = new Window([9, 10, 11], [3, 3, 3], [1, 1, 2], [1, 2, 1], [1, 0, 2, 2, 1, 0]);
        var g = new NdGeometry(2, 6, 10, w.In, w.Kernel, w.Strides, w.Dilations, w.Pads, groups: 2);
        var outSize = Enumerable.Range(0, 3).Select(d => OutSize(w, d, ceil: false)).ToArray();
        var x = TestData.Random(rng, g.InputLength);
        var weights = TestData.Random(rng, g.WeightLength);
        var bias = TestData.Random(rng, 10);
        var y = new float[g.OutputLength];
        NdConvolution.Run(g, x, weights, bias, Activation.Relu6, y, TestData.Two);
        TestData.AssertClose(ReferenceConv(w, outSize, 2, 6, 10, 2, x, weights, bias, Activation.Relu6), y, g.InCPerGroup * g.KernelVolume, "conv");

        var p = new NdGeometry(2, 6, 6, w.In, w.Kernel, [2, 2, 2], w.Dilations, w.Pads, ceilMode: true);
        var pooled = new float[p.OutputLength];
        NdPooling.Average(p, countIncludePad: true, x, pooled, TestData.Two);
        var pw = w with { Strides = [2, 2, 2] };
        var pOut = Enumerable.Range(0, 3).Select(d => OutSize(pw, d, ceil: true)).ToArray();
        TestData.AssertClose(ReferencePool(pw, pOut, 12, x, max: false, countIncludePad: true), pooled, p.KernelVolume, "avg");
    }

    /// <summary>Hand-checked against ONNX's rule: with ceil mode the last window may overhang but must start inside.</summary>
    [Theory]
    [InlineData(4, 3, 2, 0, 0, false, 1)]
    [InlineData(4, 3, 2, 0, 0, true, 2)]  // windows at 0 and 2; the one at 2 overhangs by one
    [InlineData(4, 1, 2, 0, 1, true, 2)]  // a third window would start at 4, in the end padding only
    [InlineData(5, 2, 2, 1, 1, true, 3)]  // starts -1, 1, 3; a fourth at 5 would start in the end padding
    [InlineData(6, 2, 2, 1, 0, true, 4)]  // starts -1, 1, 3, 5: the last overhangs the end by one
    public void CeilModeOutputSizes(int size, int kernel, int stride, int padBegin, int padEnd, bool ceil, int expected)
    {
        var g = new NdGeometry(1, 1, 1, [size], [kernel], [stride], [1], [padBegin, padEnd], ceilMode: ceil);
        Assert.Equal(expected, g.OutSize[0]);
    }

    [Fact]
    public void AverageDivisorNeverCountsTheCeilModeOverhang()
    {
        // Input 1..5, kernel 3, stride 2, pads (1, 0), ceil: windows start at -1 (pad, 1, 2), 1 (2, 3, 4) and
        // 3 (4, 5, past the end). The begin pad counts with count_include_pad; the overhang never does.
        var g = new NdGeometry(1, 1, 1, [5], [3], [2], [1], [1, 0], ceilMode: true);
        Assert.Equal(3, g.OutSize[0]);
        var y = new float[3];
        NdPooling.Average(g, countIncludePad: true, [1, 2, 3, 4, 5], y, Workers.Single);
        Assert.Equal([1f, 3f, 4.5f], y);
        NdPooling.Average(g, countIncludePad: false, [1, 2, 3, 4, 5], y, Workers.Single);
        Assert.Equal([1.5f, 3f, 4.5f], y);
    }

    [Fact]
    public void ImpossibleGeometriesAreRejectedWithReasons()
    {
        var tooSmall = Assert.Throws<ArgumentException>(() => new NdGeometry(1, 1, 1, [2, 2, 2], [3, 3, 3], [1, 1, 1], [1, 1, 1], [0, 0, 0, 0, 0, 0]));
        Assert.Contains("too small", tooSmall.Message);
        var pads = Assert.Throws<ArgumentException>(() => new NdGeometry(1, 1, 1, [4, 4, 4], [3, 3, 3], [1, 1, 1], [1, 1, 1], [0, 0, 0]));
        Assert.Contains("6 pads", pads.Message);
        var groups = Assert.Throws<ArgumentException>(() => new NdGeometry(1, 3, 4, [4], [3], [1], [1], [0, 0], groups: 2));
        Assert.Contains("Groups", groups.Message);
        var huge = Assert.Throws<ArgumentException>(() => new NdGeometry(1, 1, 1, [1 << 16, 1 << 16, 1 << 16], [1, 1, 1], [1, 1, 1], [1, 1, 1], new int[6]));
        Assert.Contains("2^31", huge.Message);
    }
}
