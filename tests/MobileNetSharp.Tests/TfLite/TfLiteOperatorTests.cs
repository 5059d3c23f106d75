using MobileNetSharp.Graph;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Tests.Onnx;
using MobileNetSharp.TfLite;
using B = MobileNetSharp.Tests.TfLite.TfLiteModelBuilder;

namespace MobileNetSharp.Tests.TfLite;

/// <summary>
/// Each converted operator on a small flatbuffer written by <see cref="TfLiteModelBuilder"/>, run in our session
/// and through our ONNX export in ONNX Runtime, against a naive NHWC reference written from TFLite's definitions
/// (not from the importer's layout mapping).
/// </summary>
public class TfLiteOperatorTests
{
    private const int Add = 0, AvgPool = 1, Concat = 2, Conv = 3, Dw = 4, Dequantize = 6, Fc = 9, Logistic = 14, MaxPool = 17, Mul = 18,
        Reshape = 22, Bilinear = 23, Softmax = 25, Custom = 32, Pad = 34, Mean = 40, Sub = 41, Div = 42, PRelu = 54, PadV2 = 60,
        TransposeConv = 67, Nearest = 97, HardSwish = 117;

    private static float[] Rand(int seed, int n) => Tensor.Random(seed, [n]).Floats;
    private static int Size(int[] s) => s.Aggregate(1, (a, b) => a * b);

    /// <summary>Loads, runs in our session and in ORT through export; both must match <paramref name="expected"/>.</summary>
    private static void Check(byte[] model, float[] input, int[] inputShape, float[] expected, int[] expectedShape, float tol = 1e-4f)
    {
        var graph = TfLiteImporter.Load(model);
        var x = new Tensor(input, inputShape);
        using (var session = new InferenceSession(graph))
        {
            var y = session.Run(x)[0];
            Assert.Equal(expectedShape, y.Shape);
            Close(expected, y.Floats, tol, "ours");
        }
        var ort = OrtRunner.Run(OnnxExporter.ToBytes(graph), [new(graph.Inputs[0].Name, x)]);
        var r = ort[graph.Outputs[0].Name];
        Assert.Equal(expectedShape, r.Shape);
        Close(expected, r.Floats, tol, "exported, in ORT");
    }

    private static void Close(float[] expected, float[] actual, float tol, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(MathF.Abs(expected[i] - actual[i]) <= tol * (1 + MathF.Abs(expected[i])), $"{what}: element {i}: expected {expected[i]}, got {actual[i]}");
    }

    private static (int Out, int PadBegin) Same(int size, int k, int s, int d, bool same)
    {
        int eff = (k - 1) * d + 1;
        int o = same ? (size + s - 1) / s : (size - eff + s) / s;
        int total = same ? Math.Max((o - 1) * s + eff - size, 0) : 0;
        return (o, total / 2);
    }

    /// <summary>TFLite CONV_2D / DEPTHWISE_CONV_2D in NHWC: weights [O,KH,KW,I] (conv) or [1,KH,KW,C·M] (depthwise, I = 1 per output).</summary>
    private static float[] ConvRef(float[] x, int[] xs, float[] w, int[] ws, float[] bias, int stride, int dil, bool same, bool depthwise, out int[] ys)
    {
        int h = xs[1], wd = xs[2], c = xs[3], kh = ws[1], kw = ws[2];
        int o = depthwise ? ws[3] : ws[0];
        int mult = depthwise ? o / c : 0;
        var (oh, pt) = Same(h, kh, stride, dil, same);
        var (ow, pl) = Same(wd, kw, stride, dil, same);
        ys = [1, oh, ow, o];
        var y = new float[oh * ow * o];
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int oc = 0; oc < o; oc++)
                {
                    float acc = bias[oc];
                    for (int ky = 0; ky < kh; ky++)
                        for (int kx = 0; kx < kw; kx++)
                        {
                            int iy = oy * stride - pt + ky * dil, ix = ox * stride - pl + kx * dil;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                            if (depthwise) acc += x[(iy * wd + ix) * c + oc / mult] * w[(ky * kw + kx) * o + oc];
                            else for (int ic = 0; ic < c; ic++) acc += x[(iy * wd + ix) * c + ic] * w[((oc * kh + ky) * kw + kx) * c + ic];
                        }
                    y[(oy * ow + ox) * o + oc] = acc;
                }
        return y;
    }

    [Theory]
    [InlineData(true, 2, 1)]
    [InlineData(false, 1, 2)]
    public void Conv2D(bool same, int stride, int dilation)
    {
        int[] xs = [1, 7, 6, 3], ws = [4, 3, 3, 3];
        float[] x = Rand(1, Size(xs)), w = Rand(2, Size(ws)), bias = Rand(3, 4);
        var y = ConvRef(x, xs, w, ws, bias, stride, dilation, same, false, out var ys);
        var b = new B();
        int tx = b.Tensor("x", xs), tw = b.Tensor("w", ws, w), tb = b.Tensor("b", [4], bias), ty = b.Tensor("y", ys);
        b.Op(Conv, [tx, tw, tb], [ty], 1, B.Options(6, o =>
        {
            o.AddByte(0, (byte)(same ? 0 : 1), 0); o.AddInt(1, stride, 0); o.AddInt(2, stride, 0); o.AddByte(3, 3, 0); // RELU6
            o.AddInt(4, dilation, 1); o.AddInt(5, dilation, 1);
        }));
        Check(b.Build([tx], [ty]), x, xs, y.Select(v => Math.Clamp(v, 0f, 6f)).ToArray(), ys);
    }

    [Fact]
    public void DepthwiseConvWithMultiplierAndDilationFromFp16Weights()
    {
        int[] xs = [1, 6, 7, 3], ws = [1, 3, 3, 6];
        float[] x = Rand(4, Size(xs)), w = Rand(5, Size(ws)).Select(v => (float)(Half)v).ToArray(), bias = Rand(6, 6);
        var y = ConvRef(x, xs, w, ws, bias, 1, 2, true, true, out var ys);
        var b = new B();
        int tx = b.Tensor("x", xs), th = b.HalfTensor("w16", ws, w), tw = b.Tensor("w", ws), tb = b.Tensor("b", [6], bias), ty = b.Tensor("y", ys);
        b.Op(Dequantize, [th], [tw]);
        b.Op(Dw, [tx, tw, tb], [ty], 2, B.Options(7, o =>
        {
            o.AddInt(1, 1, 0); o.AddInt(2, 1, 0); o.AddInt(3, 2, 0); o.AddByte(4, 1, 0); o.AddInt(5, 2, 1); o.AddInt(6, 2, 1);
        }));
        Check(b.Build([tx], [ty]), x, xs, y.Select(v => MathF.Max(v, 0)).ToArray(), ys);
    }

    [Fact]
    public void BinaryOpsBroadcastConstantsInTheFilesLayout()
    {
        int[] xs = [1, 3, 4, 5];
        float[] x = Rand(7, Size(xs)), c = Rand(8, 5), c4 = Rand(9, 4 * 5);
        var b = new B { Codes = B.CodeStyle.DeprecatedOnly }; // older converters: only deprecated_builtin_code
        int tx = b.Tensor("x", xs), tc = b.Tensor("c", [5], c), tc4 = b.Tensor("c4", [1, 1, 4, 5], c4);
        int t1 = b.Tensor("add", xs), t2 = b.Tensor("sub", xs), t3 = b.Tensor("mul", xs), t4 = b.Tensor("div", xs);
        b.Op(Add, [tx, tc], [t1], 11, B.Options(1, o => o.AddByte(0, 1, 0))); // + RELU; ADD's code 0 is the schema default
        b.Op(Sub, [tc4, t1], [t2], 28, null);
        b.Op(Mul, [t2, tx], [t3], 21, null);
        b.Op(Div, [t3, tc], [t4], 29, null);
        var y = new float[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            int ch = i % 5, wx = i / 5 % 4;
            float a = MathF.Max(x[i] + c[ch], 0), s = c4[wx * 5 + ch] - a;
            y[i] = s * x[i] / c[ch];
        }
        Check(b.Build([tx], [t4]), x, xs, y, xs);
    }

    [Theory]
    [InlineData(3)]
    [InlineData(-3)]
    public void ConcatenationAxesAreRemapped(int axis)
    {
        int[] xs = [1, 2, 3, 4];
        float[] x = Rand(10, Size(xs)), c = Rand(11, Size(xs));
        var b = new B();
        int tx = b.Tensor("x", xs), tc = b.Tensor("c", xs, c);
        int a = (axis + 4) % 4;
        var ys = (int[])xs.Clone(); ys[a] *= 2;
        int ty = b.Tensor("y", ys);
        b.Op(Concat, [tx, tc], [ty], 10, B.Options(2, o => o.AddInt(0, axis, 0)));
        // NHWC reference: outer blocks before the axis, then both parts' inner blocks.
        int outer = xs[..a].Aggregate(1, (p, q) => p * q), inner = xs[a..].Aggregate(1, (p, q) => p * q);
        var y = new List<float>();
        for (int o = 0; o < outer; o++) { y.AddRange(x.Skip(o * inner).Take(inner)); y.AddRange(c.Skip(o * inner).Take(inner)); }
        Check(b.Build([tx], [ty]), x, xs, y.ToArray(), ys);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void MeanOverHeightAndWidth(bool keepDims)
    {
        int[] xs = [1, 3, 4, 5];
        float[] x = Rand(12, Size(xs));
        var b = new B();
        int[] ys = keepDims ? [1, 1, 1, 5] : [1, 5];
        int tx = b.Tensor("x", xs), ta = b.IntTensor("axes", [2], [1, 2]), ty = b.Tensor("y", ys);
        b.Op(Mean, [tx, ta], [ty], 27, B.Options(1, o => o.AddBool(0, keepDims, false)));
        var y = Enumerable.Range(0, 5).Select(ch => Enumerable.Range(0, 12).Average(p => x[p * 5 + ch])).Select(v => (float)v).ToArray();
        Check(b.Build([tx], [ty]), x, xs, y, ys);
    }

    [Fact]
    public void PadAndPadV2()
    {
        int[] xs = [1, 2, 3, 2];
        float[] x = Rand(13, Size(xs));
        var b = new B();
        int[] ys1 = [1, 5, 4, 5], ys2 = [1, 5, 4, 6];
        int tx = b.Tensor("x", xs), tp = b.IntTensor("p", [4, 2], [0, 0, 1, 2, 0, 1, 0, 3]), t1 = b.Tensor("pad", ys1);
        int tp2 = b.IntTensor("p2", [4, 2], [0, 0, 0, 0, 0, 0, 1, 0]), tv = b.Tensor("v", [], [-2.5f]), ty = b.Tensor("y", ys2);
        b.Op(Pad, [tx, tp], [t1]);
        b.Op(PadV2, [t1, tp2, tv], [ty]);
        var y = new float[Size(ys2)];
        for (int h = 0; h < 5; h++)
            for (int w = 0; w < 4; w++)
                for (int c = 0; c < 6; c++)
                {
                    int sh = h - 1, sw = w, sc = c - 1;
                    y[(h * 4 + w) * 6 + c] = c == 0 ? -2.5f : sh >= 0 && sh < 2 && sw < 3 && sc < 2 ? x[(sh * 3 + sw) * 2 + sc] : 0f;
                }
        Check(b.Build([tx], [ty]), x, xs, y, ys2);
    }

    [Fact]
    public void FullyConnectedFlattensInTheFilesOrderThenSoftmaxWithBeta()
    {
        int[] xs = [1, 2, 2, 3];
        float[] x = Rand(14, 12), w = Rand(15, 5 * 12), bias = Rand(16, 5);
        var b = new B();
        int tx = b.Tensor("x", xs), tw = b.Tensor("w", [5, 12], w), tb = b.Tensor("b", [5], bias), tf = b.Tensor("fc", [1, 5]), ty = b.Tensor("y", [1, 5]);
        b.Op(Fc, [tx, tw, tb], [tf], 8, null);
        b.Op(Softmax, [tf], [ty], 9, B.Options(1, o => o.AddFloat(0, 0.5f, 0)));
        var logits = Enumerable.Range(0, 5).Select(o => bias[o] + Enumerable.Range(0, 12).Sum(k => x[k] * w[o * 12 + k])).ToArray();
        float max = logits.Max();
        var e = logits.Select(v => MathF.Exp(0.5f * (v - max))).ToArray();
        Check(b.Build([tx], [ty]), x, xs, e.Select(v => v / e.Sum()).ToArray(), [1, 5]);
    }

    [Fact]
    public void FullyConnectedKeepNumDimsAndActivations()
    {
        int[] xs = [2, 3, 4];
        float[] x = Rand(17, 24), w = Rand(18, 5 * 4);
        var b = new B();
        int tx = b.Tensor("x", xs), tw = b.Tensor("w", [5, 4], w), tf = b.Tensor("fc", [2, 3, 5]), ts = b.Tensor("sig", [2, 3, 5]), ty = b.Tensor("y", [2, 3, 5]);
        b.Op(Fc, [tx, tw, -1], [tf], 8, B.Options(3, o => o.AddBool(2, true, false)));
        b.Op(Logistic, [tf], [ts]);
        b.Op(HardSwish, [ts], [ty]);
        var y = new float[30];
        for (int r = 0; r < 6; r++)
            for (int o = 0; o < 5; o++)
            {
                float v = Enumerable.Range(0, 4).Sum(k => x[r * 4 + k] * w[o * 4 + k]);
                float s = 1 / (1 + MathF.Exp(-v));
                y[r * 5 + o] = s * Math.Clamp(s + 3, 0, 6) / 6;
            }
        Check(b.Build([tx], [ty]), x, xs, y, [2, 3, 5]);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void ResizeBilinearAndNearest(bool alignCorners, bool halfPixel)
    {
        int[] xs = [1, 3, 4, 2], ys = [1, 6, 7, 2];
        float[] x = Rand(19, Size(xs));
        foreach (bool nearest in new[] { false, true })
        {
            var b = new B();
            int tx = b.Tensor("x", xs), ts = b.IntTensor("size", [2], [6, 7]), ty = b.Tensor("y", ys);
            if (nearest) b.Op(Nearest, [tx, ts], [ty], 74, B.Options(2, o => { o.AddBool(0, alignCorners, false); o.AddBool(1, halfPixel, false); }));
            else b.Op(Bilinear, [tx, ts], [ty], 15, B.Options(4, o => { o.AddBool(2, alignCorners, false); o.AddBool(3, halfPixel, false); }));
            var y = new float[Size(ys)];
            for (int oy = 0; oy < 6; oy++)
                for (int ox = 0; ox < 7; ox++)
                    for (int c = 0; c < 2; c++)
                        y[(oy * 7 + ox) * 2 + c] = nearest ? NearestRef(x, oy, ox, c, alignCorners, halfPixel) : BilinearRef(x, oy, ox, c, alignCorners, halfPixel);
            Check(b.Build([tx], [ty]), x, xs, y, ys);
        }

        static float Scale(int inSize, int outSize, bool align) => align && outSize > 1 ? (inSize - 1f) / (outSize - 1) : (float)inSize / outSize;
        static float NearestRef(float[] x, int oy, int ox, int c, bool align, bool half)
        {
            float off = half ? 0.5f : 0f;
            int Src(int o, int inSize, int outSize)
            {
                float v = (o + off) * Scale(inSize, outSize, align);
                int i = Math.Min(align ? (int)MathF.Round(v, MidpointRounding.AwayFromZero) : (int)MathF.Floor(v), inSize - 1);
                return half ? Math.Max(0, i) : i;
            }
            return x[(Src(oy, 3, 6) * 4 + Src(ox, 4, 7)) * 2 + c];
        }
        static float BilinearRef(float[] x, int oy, int ox, int c, bool align, bool half)
        {
            (int, int, float) Src(int o, int inSize, int outSize)
            {
                float s = Scale(inSize, outSize, align);
                float v = half ? (o + 0.5f) * s - 0.5f : o * s;
                int lo = Math.Max((int)MathF.Floor(v), 0), hi = Math.Min((int)MathF.Ceiling(v), inSize - 1);
                return (lo, hi, v - MathF.Floor(v));
            }
            var (y0, y1, fy) = Src(oy, 3, 6);
            var (x0, x1, fx) = Src(ox, 4, 7);
            float At(int yy, int xx) => x[(yy * 4 + xx) * 2 + c];
            float top = At(y0, x0) + (At(y0, x1) - At(y0, x0)) * fx, bottom = At(y1, x0) + (At(y1, x1) - At(y1, x0)) * fx;
            return top + (bottom - top) * fy;
        }
    }

    /// <summary>TFLite TRANSPOSE_CONV (and MediaPipe's Convolution2DTransposeBias): scatter each input pixel through [O,KH,KW,I] weights.</summary>
    private static float[] TransposeConvRef(float[] x, int[] xs, float[] w, int[] ws, float[] bias, int stride, int[] ys, bool same)
    {
        int o = ws[0], kh = ws[1], kw = ws[2], c = ws[3];
        int padT = same ? Math.Max((xs[1] - 1) * stride + kh - ys[1], 0) / 2 : 0;
        int padL = same ? Math.Max((xs[2] - 1) * stride + kw - ys[2], 0) / 2 : 0;
        var y = new float[Size(ys)];
        for (int iy = 0; iy < xs[1]; iy++)
            for (int ix = 0; ix < xs[2]; ix++)
                for (int ky = 0; ky < kh; ky++)
                    for (int kx = 0; kx < kw; kx++)
                    {
                        int oy = iy * stride - padT + ky, ox = ix * stride - padL + kx;
                        if (oy < 0 || oy >= ys[1] || ox < 0 || ox >= ys[2]) continue;
                        for (int oc = 0; oc < o; oc++)
                            for (int ic = 0; ic < c; ic++)
                                y[(oy * ys[2] + ox) * o + oc] += x[(iy * xs[2] + ix) * c + ic] * w[((oc * kh + ky) * kw + kx) * c + ic];
                    }
        for (int i = 0; i < y.Length; i++) y[i] += bias[i % o];
        return y;
    }

    [Theory]
    [InlineData(true, 3)]
    [InlineData(false, 3)]
    [InlineData(true, 4)]
    public void TransposeConv2D(bool same, int kernel)
    {
        int[] xs = [1, 3, 3, 2], ws = [4, kernel, kernel, 2];
        int[] ys = same ? [1, 6, 6, 4] : [1, 2 * 2 + kernel, 2 * 2 + kernel, 4];
        float[] x = Rand(20, Size(xs)), w = Rand(21, Size(ws)), bias = Rand(22, 4);
        var b = new B();
        int tshape = b.IntTensor("shape", [4], ys), tw = b.Tensor("w", ws, w), tx = b.Tensor("x", xs), tb = b.Tensor("b", [4], bias), ty = b.Tensor("y", ys);
        b.Op(TransposeConv, [tshape, tw, tx, tb], [ty], 49, B.Options(3, o => { o.AddByte(0, (byte)(same ? 0 : 1), 0); o.AddInt(1, 2, 0); o.AddInt(2, 2, 0); }));
        Check(b.Build([tx], [ty]), x, xs, TransposeConvRef(x, xs, w, ws, bias, 2, ys, same), ys);
    }

    [Fact]
    public void MediaPipeConvolution2DTransposeBias()
    {
        int[] xs = [1, 3, 3, 2], ws = [4, 4, 4, 2], ys = [1, 6, 6, 4];
        float[] x = Rand(23, Size(xs)), w = Rand(24, Size(ws)), bias = Rand(25, 4);
        var b = new B();
        int tx = b.Tensor("x", xs), tw = b.Tensor("w", ws, w), tb = b.Tensor("b", [4], bias), ty = b.Tensor("y", ys);
        var options = new[] { 1, 2, 2 }.SelectMany(BitConverter.GetBytes).ToArray(); // SAME, stride_w, stride_h
        b.Op(Custom, [tx, tw, tb], [ty], custom: "Convolution2DTransposeBias", customOptions: options);
        Check(b.Build([tx], [ty]), x, xs, TransposeConvRef(x, xs, w, ws, bias, 2, ys, true), ys);
    }

    [Fact]
    public void PReluPoolsAndReshape()
    {
        int[] xs = [1, 4, 4, 3];
        float[] x = Rand(26, Size(xs)), slope = [0.1f, 0.2f, 0.3f];
        var b = new B { Codes = B.CodeStyle.NewOnly };
        int tx = b.Tensor("x", xs), ts = b.Tensor("slope", [1, 1, 3], slope), tp = b.Tensor("prelu", xs);
        int tm = b.Tensor("max", [1, 2, 2, 3]), ta = b.Tensor("avg", [1, 1, 1, 3]), tr = b.Tensor("y", [1, 3]), tshape = b.IntTensor("shape", [2], [1, 3]);
        b.Op(PRelu, [tx, ts], [tp]);
        b.Op(MaxPool, [tp], [tm], 5, B.Options(6, o => { o.AddByte(0, 1, 0); o.AddInt(1, 2, 0); o.AddInt(2, 2, 0); o.AddInt(3, 2, 0); o.AddInt(4, 2, 0); }));
        b.Op(AvgPool, [tm], [ta], 5, B.Options(6, o => { o.AddByte(0, 0, 0); o.AddInt(1, 2, 0); o.AddInt(2, 2, 0); o.AddInt(3, 2, 0); o.AddInt(4, 2, 0); }));
        b.Op(Reshape, [ta, tshape], [tr]);
        var p = x.Select((v, i) => v >= 0 ? v : v * slope[i % 3]).ToArray();
        var y = new float[3];
        for (int c = 0; c < 3; c++)
        {
            float sum = 0;
            for (int by = 0; by < 2; by++)
                for (int bx = 0; bx < 2; bx++)
                {
                    float m = float.MinValue;
                    for (int dy = 0; dy < 2; dy++)
                        for (int dx = 0; dx < 2; dx++) m = MathF.Max(m, p[((by * 2 + dy) * 4 + bx * 2 + dx) * 3 + c]);
                    sum += m;
                }
            y[c] = sum / 4;
        }
        Check(b.Build([tx], [tr]), x, xs, y, [1, 3]);
    }

    [Fact]
    public void SqueezeAndUnaryActivations()
    {
        int[] xs = [1, 1, 1, 6];
        float[] x = Rand(27, 6).Select(v => 3 * v).ToArray();
        var b = new B();
        int tx = b.Tensor("x", xs), ts = b.Tensor("sq", [1, 6]), tl = b.Tensor("leaky", [1, 6]), tt = b.Tensor("tanh", [1, 6]);
        int tr = b.Tensor("relu_n1", [1, 6]), t6 = b.Tensor("relu6", [1, 6]), ty = b.Tensor("y", [1, 6]);
        b.Op(43, [tx], [ts], 30, o => { int dims = VectorOf(o, [1, 2]); o.StartTable(1); o.AddOffset(0, dims, 0); return o.EndTable(); });
        b.Op(98, [ts], [tl], 75, B.Options(1, o => o.AddFloat(0, 0.2f, 0)));  // LEAKY_RELU
        b.Op(28, [tl], [tt]);                                                 // TANH
        b.Op(20, [tt], [tr]);                                                 // RELU_N1_TO_1
        b.Op(21, [tr], [t6]);                                                 // RELU6
        b.Op(19, [t6], [ty]);                                                 // RELU
        var y = x.Select(v => MathF.Tanh(v >= 0 ? v : 0.2f * v)).Select(v => Math.Clamp(v, 0f, 1f)).ToArray();
        Check(b.Build([tx], [ty]), x, xs, y, [1, 6]);

        static int VectorOf(Google.FlatBuffers.FlatBufferBuilder o, int[] v)
        {
            o.StartVector(4, v.Length, 4);
            for (int i = v.Length - 1; i >= 0; i--) o.AddInt(v[i]);
            return o.EndVector().Value;
        }
    }
}
