using MobileNetSharp.Graph;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Tests.Onnx;
using MobileNetSharp.TfLite;
using B = MobileNetSharp.Tests.TfLite.TfLiteModelBuilder;

namespace MobileNetSharp.Tests.TfLite;

/// <summary>
/// STRIDED_SLICE and DEPTH_TO_SPACE on flatbuffers written in the test, run in our session and through ONNX export in
/// ORT, against naive references written from TensorFlow's definitions on the file's (NHWC) layout.
/// </summary>
public class TfLiteSliceOperatorTests
{
    private const int DepthToSpace = 5, Conv = 3, StridedSlice = 45, Relu = 19;

    private static float[] Rand(int seed, int n) => Tensor.Random(seed, [n]).Floats;
    private static int Size(int[] s) => s.Aggregate(1, (a, b) => a * b);

    private static void Check(byte[] model, float[] input, int[] inputShape, float[] expected, int[] expectedShape)
    {
        var graph = TfLiteImporter.Load(model);
        var x = new Tensor(input, inputShape);
        using (var session = new InferenceSession(graph))
        {
            var y = session.Run(x)[0];
            Assert.Equal(expectedShape, y.Shape);
            Assert.Equal(expected, y.Floats);
        }
        var ort = OrtRunner.Run(OnnxExporter.ToBytes(graph), [new(graph.Inputs[0].Name, x)]);
        var r = ort[graph.Outputs[0].Name];
        Assert.Equal(expectedShape, r.Shape);
        Assert.Equal(expected, r.Floats);
    }

    /// <summary>
    /// tf.strided_slice for one axis, written from TensorFlow's documentation: masked begin/end take the whole axis in the
    /// stride's direction, negative indices count from the end, then Python clamping; shrink takes the one element at begin.
    /// </summary>
    private static int[] Indices(int dim, int begin, int end, int stride, bool beginMasked, bool endMasked, bool shrink)
    {
        if (shrink) return [begin < 0 ? begin + dim : begin];
        var list = new List<int>();
        if (stride > 0)
        {
            int s = beginMasked ? 0 : Math.Clamp(begin < 0 ? begin + dim : begin, 0, dim);
            int e = endMasked ? dim : Math.Clamp(end < 0 ? end + dim : end, 0, dim);
            for (int i = s; i < e; i += stride) list.Add(i);
        }
        else
        {
            int s = beginMasked ? dim - 1 : Math.Clamp(begin < 0 ? begin + dim : begin, -1, dim - 1);
            int e = endMasked ? -1 : Math.Clamp(end < 0 ? end + dim : end, -1, dim - 1);
            for (int i = s; i > e; i += stride) list.Add(i);
        }
        return list.ToArray();
    }

    /// <summary>Gathers x (row-major, shape xs) at the per-axis index lists; shrunk axes are left out of the returned shape.</summary>
    private static (float[] Y, int[] Shape) Gather(float[] x, int[] xs, int[][] idx, bool[] shrunk)
    {
        var strides = new int[xs.Length];
        for (int a = xs.Length - 1, s = 1; a >= 0; s *= xs[a], a--) strides[a] = s;
        var y = new List<float>();
        void Walk(int axis, int offset)
        {
            if (axis == xs.Length) { y.Add(x[offset]); return; }
            foreach (int i in idx[axis]) Walk(axis + 1, offset + i * strides[axis]);
        }
        Walk(0, 0);
        return (y.ToArray(), idx.Select(l => l.Length).Where((_, a) => !shrunk[a]).ToArray());
    }

    private static Func<Google.FlatBuffers.FlatBufferBuilder, int> SliceOptions(int beginMask, int endMask, int shrink, int ellipsis = 0, int newAxis = 0) =>
        B.Options(6, o => { o.AddInt(0, beginMask, 0); o.AddInt(1, endMask, 0); o.AddInt(2, ellipsis, 0); o.AddInt(3, newAxis, 0); o.AddInt(4, shrink, 0); });

    /// <summary>A rank-4 slice after a convolution (so it runs on the NCHW form): masks, negative indices, a negative stride, clamping.</summary>
    [Fact]
    public void StridedSliceOnFeatureMapsWithMasksNegativeStrideAndClamping()
    {
        int[] xs = [1, 7, 6, 4];
        float[] x = Rand(1, Size(xs));
        int[] begin = [0, -2, 5, 1], end = [1, 0, -100, 100], strides = [1, -2, -1, 2];
        const int beginMask = 0b0001, endMask = 0b0001;
        // A 1x1 identity convolution first, so the input of the slice exists in NCHW form.
        var w = new float[16];
        for (int c = 0; c < 4; c++) w[c * 4 + c] = 1;
        var idx = Enumerable.Range(0, 4).Select(a => Indices(xs[a], begin[a], end[a], strides[a], (beginMask >> a & 1) != 0, (endMask >> a & 1) != 0, false)).ToArray();
        var (y, ys) = Gather(x, xs, idx, new bool[4]);
        var b = new B();
        int tx = b.Tensor("x", xs), tw = b.Tensor("w", [4, 1, 1, 4], w), tc = b.Tensor("conv", xs), ty = b.Tensor("y", ys);
        int tb = b.IntTensor("begin", [4], begin), te = b.IntTensor("end", [4], end), ts = b.IntTensor("strides", [4], strides);
        b.Op(Conv, [tx, tw, -1], [tc], 1, B.Options(6, o => { o.AddByte(0, 1, 0); o.AddInt(1, 1, 0); o.AddInt(2, 1, 0); }));
        b.Op(StridedSlice, [tc, tb, te, ts], [ty], 32, SliceOptions(beginMask, endMask, 0));
        Check(b.Build([tx], [ty]), x, xs, y, ys);
    }

    /// <summary>shrink_axis_mask drops axes (here the batch and the last of a [1, N, 4] box tensor, as SSD heads slice coordinates), with fewer begin values than the rank.</summary>
    [Theory]
    [InlineData(new[] { 0, 2, 1 }, new[] { 1, 9, 2 }, new[] { 1, 3, 1 }, 0b000, 0b000, 0b101)]
    [InlineData(new[] { 0, -1 }, new[] { 1, 0 }, new[] { 1, 1 }, 0b00, 0b00, 0b11)]
    [InlineData(new[] { 0, 0, 3 }, new[] { 0, 0, 0 }, new[] { 1, 1, -1 }, 0b011, 0b111, 0b000)]
    public void StridedSliceShrinksAxes(int[] begin, int[] end, int[] strides, int beginMask, int endMask, int shrink)
    {
        int[] xs = [1, 10, 4];
        float[] x = Rand(2, Size(xs));
        var idx = new int[3][];
        var shrunk = new bool[3];
        for (int a = 0; a < 3; a++)
        {
            if (a >= begin.Length) { idx[a] = Enumerable.Range(0, xs[a]).ToArray(); continue; }
            shrunk[a] = (shrink >> a & 1) != 0;
            idx[a] = Indices(xs[a], begin[a], end[a], strides[a], (beginMask >> a & 1) != 0, (endMask >> a & 1) != 0, shrunk[a]);
        }
        var (y, ys) = Gather(x, xs, idx, shrunk);
        var b = new B();
        int tx = b.Tensor("x", xs), tr = b.Tensor("relu", xs), ty = b.Tensor("y", ys);
        int tb = b.IntTensor("begin", [begin.Length], begin), te = b.IntTensor("end", [end.Length], end), ts = b.IntTensor("strides", [strides.Length], strides);
        b.Op(Relu, [tx], [tr]);
        b.Op(StridedSlice, [tr, tb, te, ts], [ty], 32, SliceOptions(beginMask, endMask, shrink));
        Check(b.Build([tx], [ty]), x, xs, y.Select(v => MathF.Max(v, 0)).ToArray(), ys);
    }

    [Theory]
    [InlineData(0b1, 0, "ellipsis_mask")]
    [InlineData(0, 0b1, "new_axis_mask")]
    public void StridedSliceRefusesEllipsisAndNewAxisMasksClearly(int ellipsis, int newAxis, string named)
    {
        var b = new B();
        int tx = b.Tensor("x", [1, 4, 4, 2]), ty = b.Tensor("y", [1, 4, 4, 2]);
        int tb = b.IntTensor("begin", [4], [0, 0, 0, 0]), te = b.IntTensor("end", [4], [1, 4, 4, 2]), ts = b.IntTensor("strides", [4], [1, 1, 1, 1]);
        b.Op(StridedSlice, [tx, tb, te, ts], [ty], 32, SliceOptions(0, 0, 0, ellipsis, newAxis));
        var e = Assert.Throws<ModelFormatException>(() => TfLiteImporter.Load(b.Build([tx], [ty])));
        Assert.Contains("STRIDED_SLICE", e.Message);
        Assert.Contains(named, e.Message);
        Assert.Contains("not supported", e.Message);
    }

    [Fact]
    public void StridedSliceRefusesAShrunkIndexOutsideTheAxis()
    {
        var b = new B();
        int tx = b.Tensor("x", [1, 4, 3]), ty = b.Tensor("y", [1, 3]);
        int tb = b.IntTensor("begin", [2], [0, 4]), te = b.IntTensor("end", [2], [1, 5]), ts = b.IntTensor("strides", [2], [1, 1]);
        b.Op(StridedSlice, [tx, tb, te, ts], [ty], 32, SliceOptions(0, 0, 0b10));
        var e = Assert.Throws<ModelFormatException>(() => TfLiteImporter.Load(b.Build([tx], [ty])));
        Assert.Contains("shrink_axis_mask takes index 4 of axis 1", e.Message);
    }

    /// <summary>tf.nn.depth_to_space (NHWC): y[n, h·b + i, w·b + j, c] = x[n, h, w, (i·b + j)·C' + c].</summary>
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void DepthToSpaceInTheFilesLayout(int block)
    {
        int h = 3, w = 4, cOut = 2, c = cOut * block * block;
        int[] xs = [1, h, w, c], ys = [1, h * block, w * block, cOut];
        float[] x = Rand(3, Size(xs));
        var y = new float[Size(ys)];
        for (int oy = 0; oy < h * block; oy++)
            for (int ox = 0; ox < w * block; ox++)
                for (int oc = 0; oc < cOut; oc++)
                {
                    int iy = oy / block, ix = ox / block, i = oy % block, j = ox % block;
                    y[(oy * w * block + ox) * cOut + oc] = x[(iy * w + ix) * c + (i * block + j) * cOut + oc];
                }
        var b = new B();
        int tx = b.Tensor("x", xs), ty = b.Tensor("y", ys);
        b.Op(DepthToSpace, [tx], [ty], 94, B.Options(1, o => o.AddInt(0, block, 0)));
        Check(b.Build([tx], [ty]), x, xs, y, ys);
    }

    [Fact]
    public void DepthToSpaceRefusesABadBlockSize()
    {
        var b = new B();
        int tx = b.Tensor("x", [1, 2, 2, 4]), ty = b.Tensor("y", [1, 2, 2, 4]);
        b.Op(DepthToSpace, [tx], [ty], 94, B.Options(1, o => o.AddInt(0, 0, 0)));
        var e = Assert.Throws<ModelFormatException>(() => TfLiteImporter.Load(b.Build([tx], [ty])));
        Assert.Contains("block_size 0 must be positive", e.Message);
    }
}
