using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.TfLite;
using B = MobileNetSharp.Tests.TfLite.TfLiteModelBuilder;

namespace MobileNetSharp.Tests.TfLite;

/// <summary>
/// 8-bit quantized TFLite models written by <see cref="TfLiteModelBuilder"/>, against a reference written from the TFLite
/// quantization spec in NHWC (real = scale · (q - zero_point); each op on real values, each output rounded onto its grid),
/// not from the importer's QDQ mapping: within one quantization step everywhere, through the integer kernels where they apply,
/// at every ISA level and 1 and 2 threads. Hostile quantization parameters are refused naming the tensor.
/// </summary>
public class TfLiteQuantizedTests
{
    private const int Conv = 3, Dw = 4, Dequantize = 6, Fc = 9, Add = 0, Mean = 40, Quantize = 114, Softmax = 25;

    private static sbyte[] Codes8(Random rng, int n, int lo = -128, int hi = 127) => Enumerable.Range(0, n).Select(_ => (sbyte)rng.Next(lo, hi + 1)).ToArray();

    /// <summary>TFLite's float reference rounding onto a grid: round half away from zero, then clamp.</summary>
    private static int OnGrid(double real, double scale, int zp, int lo, int hi) =>
        (int)Math.Clamp(Math.Round(real / scale, MidpointRounding.AwayFromZero) + zp, lo, hi);

    // By the tensor's type: the runtime lets a byte[] pass as sbyte[] (same-size integer arrays are interchangeable to the CLR).
    private static int[] ToInts(Tensor t) => t.DataType switch
    {
        DataType.Int8 => ((sbyte[])t.Data).Select(v => (int)v).ToArray(),
        DataType.UInt8 => ((byte[])t.Data).Select(v => (int)v).ToArray(),
        _ => throw new InvalidOperationException($"{t.DataType} output"),
    };

    /// <summary>Our output codes against the reference's: every one within a step; most exact.</summary>
    private static void WithinOneStep(int[] expected, int[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        int off = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1, $"{what} [{i}]: expected {expected[i]}, got {actual[i]}");
            if (expected[i] != actual[i]) off++;
        }
        Assert.True(off <= Math.Max(2, expected.Length / 20), $"{what}: {off} of {expected.Length} codes off by one");
    }

    private static void RunEverywhere(byte[] model, Tensor x, int[] expected, string kernel)
    {
        var g = TfLiteImporter.Load(model);
        foreach (var isa in Isa.Supported)
            foreach (int threads in new[] { 1, 2 })
            {
                using var s = new InferenceSession(g, new SessionOptions { Isa = isa, Threads = threads });
                Assert.Contains(s.Steps, st => st.Kernel == kernel);
                WithinOneStep(expected, ToInts(s.Run(x)[0]), $"{kernel} {isa} t{threads}");
            }
        using var simulated = new InferenceSession(g, new SessionOptions { IntegerKernels = false });
        WithinOneStep(expected, ToInts(simulated.Run(x)[0]), $"{kernel} simulated in float");
    }

    /// <summary>
    /// int8 CONV_2D or DEPTHWISE_CONV_2D, SAME, per-channel weights, an int32 bias whose stored scale is the converter's
    /// rounding of input scale · weight scale (not the product itself), a fused RELU6; int8 input and output codes.
    /// </summary>
    [Theory]
    [InlineData(false, 9, 7, 5, 6, 3, 2)]
    [InlineData(false, 6, 6, 3, 16, 3, 1)]
    [InlineData(false, 5, 5, 17, 9, 1, 1)]
    [InlineData(true, 8, 8, 6, 6, 3, 1)]
    [InlineData(true, 9, 11, 19, 19, 3, 2)]
    [InlineData(true, 7, 7, 8, 8, 5, 1)]
    public void ConvolutionsMatchTheSpecThroughIntegerKernels(bool depthwise, int h, int w, int c, int o, int k, int stride)
    {
        var rng = new Random(h * 100 + c * 10 + k);
        const float sx = 0.04f, sy = 0.05f;
        const int zx = 3, zy = -20;
        var sw = Enumerable.Range(0, o).Select(_ => (float)(0.005 + 0.02 * rng.NextDouble())).ToArray();
        int[] wShape = depthwise ? [1, k, k, o] : [o, k, k, c];
        var xq = Codes8(rng, h * w * c);
        var wq = Codes8(rng, wShape.Aggregate(1, (a, b) => a * b), -127, 127);
        var bq = Enumerable.Range(0, o).Select(_ => rng.Next(-3000, 3000)).ToArray();
        int oh = (h + stride - 1) / stride, ow = (w + stride - 1) / stride;
        int padT = Math.Max((oh - 1) * stride + k - h, 0) / 2, padL = Math.Max((ow - 1) * stride + k - w, 0) / 2;

        var b = new B();
        int tx = b.QuantizedTensor("x", [1, h, w, c], B.Int8, [sx], [zx]);
        int tw = b.QuantizedTensor("w", wShape, B.Int8, sw, new long[o], dimension: depthwise ? 3 : 0, codes: wq);
        // A converter stores the bias scale rounded; TFLite adds the codes at sx · sw whatever it says.
        int tb = b.QuantizedTensor("b", [o], B.Int32, sw.Select(s => sx * s * (1 + 3e-7f)).ToArray(), new long[o], codes: bq);
        int ty = b.QuantizedTensor("y", [1, oh, ow, o], B.Int8, [sy], [zy]);
        if (depthwise)
            b.Op(Dw, [tx, tw, tb], [ty], 2, B.Options(7, op => { op.AddByte(0, 0, 0); op.AddInt(1, stride, 0); op.AddInt(2, stride, 0); op.AddInt(3, o / c, 0); op.AddByte(4, 3, 0); }));
        else
            b.Op(Conv, [tx, tw, tb], [ty], 1, B.Options(6, op => { op.AddByte(0, 0, 0); op.AddInt(1, stride, 0); op.AddInt(2, stride, 0); op.AddByte(3, 3, 0); }));
        var model = b.Build([tx], [ty]);

        var expected = new int[oh * ow * o];
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int oc = 0; oc < o; oc++)
                {
                    double acc = (double)bq[oc] * sx * sw[oc];
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++)
                        {
                            int iy = oy * stride - padT + ky, ix = ox * stride - padL + kx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                            if (depthwise)
                                acc += sx * (xq[(iy * w + ix) * c + oc] - zx) * (double)sw[oc] * wq[(ky * k + kx) * o + oc];
                            else
                                for (int ic = 0; ic < c; ic++)
                                    acc += sx * (xq[(iy * w + ix) * c + ic] - zx) * (double)sw[oc] * wq[((oc * k + ky) * k + kx) * c + ic];
                        }
                    expected[(oy * ow + ox) * o + oc] = OnGrid(Math.Clamp(acc, 0, 6), sy, zy, -128, 127);
                }
        string kernel = depthwise ? $"qdw{k}x{k}s{stride}" : k == 1 && stride == 1 ? "qgemm-1x1" : $"qconv{k}x{k}s{stride}";
        RunEverywhere(model, new Tensor(DataType.Int8, [1, h, w, c], xq), expected, kernel);
    }

    /// <summary>int8 FULLY_CONNECTED (per-channel weights, int32 bias) on a batch of 3.</summary>
    [Fact]
    public void FullyConnectedMatchesTheSpecThroughTheIntegerKernel()
    {
        var rng = new Random(9);
        const int n = 3, k = 20, o = 7;
        const float sx = 0.1f, sy = 0.2f;
        const int zx = -5, zy = 10;
        var sw = Enumerable.Range(0, o).Select(_ => (float)(0.01 + 0.01 * rng.NextDouble())).ToArray();
        var xq = Codes8(rng, n * k);
        var wq = Codes8(rng, o * k, -127, 127);
        var bq = Enumerable.Range(0, o).Select(_ => rng.Next(-500, 500)).ToArray();
        var b = new B();
        int tx = b.QuantizedTensor("x", [n, k], B.Int8, [sx], [zx]);
        int tw = b.QuantizedTensor("w", [o, k], B.Int8, sw, new long[o], codes: wq);
        int tb = b.QuantizedTensor("b", [o], B.Int32, sw.Select(s => sx * s).ToArray(), new long[o], codes: bq);
        int ty = b.QuantizedTensor("y", [n, o], B.Int8, [sy], [zy]);
        b.Op(Fc, [tx, tw, tb], [ty], 8, B.Options(4, _ => { }));
        var expected = new int[n * o];
        for (int r = 0; r < n; r++)
            for (int j = 0; j < o; j++)
            {
                double acc = (double)bq[j] * sx * sw[j];
                for (int i = 0; i < k; i++) acc += sx * (xq[r * k + i] - zx) * (double)sw[j] * wq[j * k + i];
                expected[r * o + j] = OnGrid(acc, sy, zy, -128, 127);
            }
        RunEverywhere(b.Build([tx], [ty]), new Tensor(DataType.Int8, [n, k], xq), expected, "qfc");
    }

    /// <summary>int8 ADD of two inputs on different grids into a third.</summary>
    [Fact]
    public void AddOfDifferentScalesMatchesTheSpecThroughTheIntegerKernel()
    {
        var rng = new Random(4);
        var aq = Codes8(rng, 4 * 4 * 8);
        var cq = Codes8(rng, 4 * 4 * 8);
        var b = new B();
        int ta = b.QuantizedTensor("a", [1, 4, 4, 8], B.Int8, [0.03f], [7]);
        int tc = b.QuantizedTensor("c", [1, 4, 4, 8], B.Int8, [0.05f], [-9]);
        int ty = b.QuantizedTensor("y", [1, 4, 4, 8], B.Int8, [0.07f], [2]);
        b.Op(Add, [ta, tc], [ty], 11, B.Options(1, _ => { }));
        var model = b.Build([ta, tc], [ty]);
        var expected = aq.Zip(cq, (p, q) => OnGrid(0.03 * (p - 7) + 0.05 * (q + 9), 0.07, 2, -128, 127)).ToArray();
        var g = TfLiteImporter.Load(model);
        foreach (int threads in new[] { 1, 2 })
        {
            using var s = new InferenceSession(g, new SessionOptions { Threads = threads });
            Assert.Contains(s.Steps, st => st.Kernel == "qadd");
            WithinOneStep(expected, ToInts(s.Run(new Tensor(DataType.Int8, [1, 4, 4, 8], aq), new Tensor(DataType.Int8, [1, 4, 4, 8], cq))[0]), "add");
        }
    }

    /// <summary>
    /// A whole int8 model with a float interface, as converters write them: QUANTIZE → 1x1 CONV_2D (RELU) → 3x3 DEPTHWISE
    /// → MEAN over H and W → FULLY_CONNECTED → SOFTMAX (int8 at 1/256, zero point -128) → DEQUANTIZE. Each tensor is rounded
    /// onto its grid in the reference; ours may differ by a step where a rounding tie went the other way, and a step in a
    /// layer can move the next by one more, so the probabilities are checked to two steps of 1/256.
    /// </summary>
    [Fact]
    public void AWholeInt8ModelWithFloatInputAndOutputMatchesTheSpec()
    {
        var rng = new Random(21);
        const int h = 6, w = 6, c = 3, m = 8, classes = 5;
        float sIn = 0.02f, s1 = 0.03f, s2 = 0.04f, s3 = 0.02f, s4 = 0.1f, sOut = 1f / 256;
        int zIn = 0, z1 = -128, z2 = 5, z3 = -3, z4 = 0, zOut = -128;
        var w1 = Codes8(rng, m * c, -127, 127); var sw1 = Enumerable.Range(0, m).Select(_ => (float)(0.01 + 0.02 * rng.NextDouble())).ToArray();
        var w2 = Codes8(rng, 9 * m, -127, 127); var sw2 = Enumerable.Range(0, m).Select(_ => (float)(0.01 + 0.02 * rng.NextDouble())).ToArray();
        var w3 = Codes8(rng, classes * m, -127, 127); var sw3 = Enumerable.Range(0, classes).Select(_ => (float)(0.01 + 0.02 * rng.NextDouble())).ToArray();
        var b1 = Enumerable.Range(0, m).Select(_ => rng.Next(-200, 200)).ToArray();
        var b3 = Enumerable.Range(0, classes).Select(_ => rng.Next(-200, 200)).ToArray();

        var b = new B();
        int tf = b.Tensor("image", [1, h, w, c]);
        int tq = b.QuantizedTensor("image_q", [1, h, w, c], B.Int8, [sIn], [zIn]);
        int tw1 = b.QuantizedTensor("w1", [m, 1, 1, c], B.Int8, sw1, new long[m], codes: w1);
        int tb1 = b.QuantizedTensor("b1", [m], B.Int32, sw1.Select(s => sIn * s).ToArray(), new long[m], codes: b1);
        int t1 = b.QuantizedTensor("expand", [1, h, w, m], B.Int8, [s1], [z1]);
        int tw2 = b.QuantizedTensor("w2", [1, 3, 3, m], B.Int8, sw2, new long[m], dimension: 3, codes: w2);
        int t2 = b.QuantizedTensor("dw", [1, h, w, m], B.Int8, [s2], [z2]);
        int taxes = b.IntTensor("axes", [2], [1, 2]);
        int t3 = b.QuantizedTensor("pooled", [1, m], B.Int8, [s3], [z3]);
        int tw3 = b.QuantizedTensor("w3", [classes, m], B.Int8, sw3, new long[classes], codes: w3);
        int tb3 = b.QuantizedTensor("b3", [classes], B.Int32, sw3.Select(s => s3 * s).ToArray(), new long[classes], codes: b3);
        int t4 = b.QuantizedTensor("logits", [1, classes], B.Int8, [s4], [z4]);
        int t5 = b.QuantizedTensor("probs_q", [1, classes], B.Int8, [sOut], [zOut]);
        int t6 = b.Tensor("probs", [1, classes]);
        b.Op(Quantize, [tf], [tq]);
        b.Op(Conv, [tq, tw1, tb1], [t1], 1, B.Options(6, op => { op.AddByte(0, 1, 0); op.AddInt(1, 1, 0); op.AddInt(2, 1, 0); op.AddByte(3, 1, 0); }));
        b.Op(Dw, [t1, tw2, -1], [t2], 2, B.Options(7, op => { op.AddByte(0, 0, 0); op.AddInt(1, 1, 0); op.AddInt(2, 1, 0); op.AddInt(3, 1, 0); }));
        b.Op(Mean, [t2, taxes], [t3], 27, B.Options(1, op => op.AddBool(0, false, false)));
        b.Op(Fc, [t3, tw3, tb3], [t4], 8, B.Options(4, _ => { }));
        b.Op(Softmax, [t4], [t5], 9, B.Options(1, op => op.AddFloat(0, 1f, 0f)));
        b.Op(Dequantize, [t5], [t6]);
        var model = b.Build([tf], [t6]);

        var image = Tensor.Random(3, [1, h, w, c], 0, 2).Floats;
        // The reference, layer by layer on each tensor's grid.
        var q0 = image.Select(v => OnGrid(v, sIn, zIn, -128, 127)).ToArray();
        var q1 = new int[h * w * m];
        for (int p = 0; p < h * w; p++)
            for (int j = 0; j < m; j++)
            {
                double acc = (double)b1[j] * sIn * sw1[j];
                for (int i = 0; i < c; i++) acc += sIn * (q0[p * c + i] - zIn) * (double)sw1[j] * w1[j * c + i];
                q1[p * m + j] = OnGrid(Math.Max(acc, 0), s1, z1, -128, 127);
            }
        var q2 = new int[h * w * m];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int j = 0; j < m; j++)
                {
                    double acc = 0;
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++)
                        {
                            int iy = y - 1 + ky, ix = x - 1 + kx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                            acc += s1 * (q1[(iy * w + ix) * m + j] - z1) * (double)sw2[j] * w2[(ky * 3 + kx) * m + j];
                        }
                    q2[(y * w + x) * m + j] = OnGrid(acc, s2, z2, -128, 127);
                }
        var q3 = Enumerable.Range(0, m).Select(j => OnGrid(Enumerable.Range(0, h * w).Average(p => s2 * (q2[p * m + j] - z2)), s3, z3, -128, 127)).ToArray();
        var logits = Enumerable.Range(0, classes).Select(j =>
            OnGrid(b3[j] * sw3[j] * (double)s3 + Enumerable.Range(0, m).Sum(i => s3 * (q3[i] - z3) * (double)sw3[j] * w3[j * m + i]), s4, z4, -128, 127)).ToArray();
        var real = logits.Select(l => s4 * (l - z4)).ToArray();
        double max = real.Max(), sum = real.Sum(r => Math.Exp(r - max));
        var probs = real.Select(r => sOut * (OnGrid(Math.Exp(r - max) / sum, sOut, zOut, -128, 127) - zOut)).ToArray();

        var g = TfLiteImporter.Load(model);
        Assert.Equal(DataType.Float32, g.Inputs[0].DataType);
        Assert.Equal(DataType.Float32, g.Outputs[0].DataType);
        foreach (int threads in new[] { 1, 2 })
        {
            using var s = new InferenceSession(g, new SessionOptions { Threads = threads });
            Assert.Contains(s.Steps, st => st.Kernel == "qgemm-1x1");
            Assert.Contains(s.Steps, st => st.Kernel == "qdw3x3s1");
            Assert.Contains(s.Steps, st => st.Kernel == "qfc");
            var ours = s.Run(new Tensor(image, [1, h, w, c]))[0].Floats;
            for (int j = 0; j < classes; j++)
                Assert.True(Math.Abs(ours[j] - probs[j]) <= 2 * sOut + 1e-6, $"t{threads} class {j}: expected {probs[j]}, got {ours[j]}");
        }
    }

    /// <summary>
    /// A uint8 model of the TF1 kind: uint8 input, uint8 weights with a nonzero zero point (no integer kernel takes those:
    /// the float path on the same grid), uint8 output.
    /// </summary>
    [Fact]
    public void Uint8WeightsWithAZeroPointRunInFloatOnTheGrid()
    {
        var rng = new Random(8);
        const int h = 5, w = 5, c = 4, o = 6;
        var xq = Enumerable.Range(0, h * w * c).Select(_ => (byte)rng.Next(256)).ToArray();
        var wq = Enumerable.Range(0, o * 9 * c).Select(_ => (byte)rng.Next(256)).ToArray();
        const float sx = 0.02f, sw = 0.004f, sy = 0.1f;
        const int zx = 128, zw = 120, zy = 100;
        var b = new B();
        int tx = b.QuantizedTensor("x", [1, h, w, c], B.UInt8, [sx], [zx]);
        int tw = b.QuantizedTensor("w", [o, 3, 3, c], B.UInt8, [sw], [zw], codes: wq);
        int ty = b.QuantizedTensor("y", [1, h, w, o], B.UInt8, [sy], [zy]);
        b.Op(Conv, [tx, tw, -1], [ty], 1, B.Options(6, op => { op.AddByte(0, 0, 0); op.AddInt(1, 1, 0); op.AddInt(2, 1, 0); }));
        var expected = new int[h * w * o];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int oc = 0; oc < o; oc++)
                {
                    double acc = 0;
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++)
                        {
                            int iy = y - 1 + ky, ix = x - 1 + kx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                            for (int ic = 0; ic < c; ic++)
                                acc += sx * (xq[(iy * w + ix) * c + ic] - zx) * (double)sw * (wq[((oc * 3 + ky) * 3 + kx) * c + ic] - zw);
                        }
                    expected[(y * w + x) * o + oc] = OnGrid(acc, sy, zy, 0, 255);
                }
        using var s = new InferenceSession(TfLiteImporter.Load(b.Build([tx], [ty])));
        var y8 = s.Run(new Tensor(DataType.UInt8, [1, h, w, c], xq))[0];
        Assert.Equal(DataType.UInt8, y8.DataType);
        WithinOneStep(expected, ToInts(y8), "uint8 conv");
    }

    /// <summary>Bad quantization parameters, each refused with the tensor named; 16-bit and 4-bit models refused as such.</summary>
    [Theory]
    [InlineData("zero scale")]
    [InlineData("negative scale")]
    [InlineData("zero point out of int8")]
    [InlineData("scales not matching the dimension")]
    [InlineData("dimension out of range")]
    [InlineData("zero points not matching the scales")]
    [InlineData("int32 bias with a zero point")]
    [InlineData("int16 activations")]
    public void HostileQuantizationIsRefusedNamingTheTensor(string what)
    {
        var b = new B();
        float[] wScales = [0.01f, 0.02f, 0.03f, 0.04f];
        long[] wZero = new long[4];
        int dim = 0;
        float xScale = 0.1f;
        long xZero = 0;
        long[] bZero = new long[4];
        byte xType = B.Int8;
        switch (what)
        {
            case "zero scale": wScales[2] = 0; break;
            case "negative scale": xScale = -0.1f; break;
            case "zero point out of int8": xZero = 200; break;
            case "scales not matching the dimension": wScales = [0.01f, 0.02f, 0.03f]; wZero = new long[3]; break;
            case "dimension out of range": dim = 7; break;
            case "zero points not matching the scales": wZero = new long[2]; break;
            case "int32 bias with a zero point": bZero[1] = 5; break;
            case "int16 activations": xType = 7; break;
        }
        int tx = b.QuantizedTensor("x", [1, 4, 4, 3], xType, [xScale], [xZero]);
        int tw = b.QuantizedTensor("w", [4, 1, 1, 3], B.Int8, wScales, wZero, dim, new sbyte[12]);
        int tb = b.QuantizedTensor("b", [4], B.Int32, [0.001f, 0.002f, 0.003f, 0.004f], bZero, codes: new int[4]);
        int ty = b.QuantizedTensor("y", [1, 4, 4, 4], B.Int8, [0.1f], [0]);
        b.Op(Conv, [tx, tw, tb], [ty], 1, B.Options(6, op => { op.AddByte(0, 0, 0); op.AddInt(1, 1, 0); op.AddInt(2, 1, 0); }));
        var e = Assert.Throws<ModelFormatException>(() => TfLiteImporter.Load(b.Build([tx], [ty])));
        string tensor = what switch { "negative scale" or "zero point out of int8" or "int16 activations" => "'x'", "int32 bias with a zero point" => "'b'", _ => "'w'" };
        Assert.Contains(tensor, e.Message);
        if (what == "int16 activations") Assert.Contains("16x8", e.Message);
    }
}
