using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Tests.Onnx;

namespace MobileNetSharp.Tests.Runtime;

/// <summary>
/// The point-wise, arg/reduction, comparison/logic, Cast and Expand/Tile ops through ONNX import and
/// InferenceSession on runtime tensors, each checked against a plain loop (or ONNX Runtime where a conv is
/// involved), plus their shape-inference errors and hostile sizes.
/// </summary>
public class ComputeOpTests
{
    private const int Float = 1, UInt8 = 2, Int8 = 3, Int32 = 6, Int64 = 7, Bool = 9;

    private static IReadOnlyDictionary<string, Tensor> Run(OnnxModelBuilder m, params (string Name, Tensor Value)[] inputs)
    {
        using var session = new InferenceSession(OnnxImporter.Load(m.ToBytes()), new SessionOptions { Threads = 2 });
        return session.Run(inputs.ToDictionary(i => i.Name, i => i.Value));
    }

    private static Tensor Map(Tensor x, Func<float, float> f) => new(x.Floats.Select(f).ToArray(), x.Shape);

    /// <summary>Row-major index of <paramref name="idx"/> in a tensor of <paramref name="shape"/>, broadcasting size-1 and missing leading axes.</summary>
    private static int Offset(int[] idx, int[] shape)
    {
        int o = 0, lead = idx.Length - shape.Length;
        for (int d = 0; d < shape.Length; d++) o = o * shape[d] + (shape[d] == 1 ? 0 : idx[lead + d]);
        return o;
    }

    private static int[] Unravel(int flat, int[] shape)
    {
        var idx = new int[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--) { idx[d] = flat % shape[d]; flat /= shape[d]; }
        return idx;
    }

    // ---- point-wise -------------------------------------------------------------------------------

    [Fact]
    public void UnaryOpsMatchScalarMath()
    {
        var cases = new (string Op, Func<float, float> Ref, (string, object)[] Attrs)[]
        {
            ("Abs", MathF.Abs, []), ("Neg", v => -v, []), ("Sqrt", v => MathF.Sqrt(MathF.Abs(v)), []),
            ("Exp", MathF.Exp, []), ("Log", v => MathF.Log(MathF.Abs(v)), []), ("Reciprocal", v => 1f / v, []),
            ("Floor", MathF.Floor, []), ("Ceil", MathF.Ceiling, []), ("Round", v => MathF.Round(v, MidpointRounding.ToEven), []),
            ("Sign", v => MathF.Sign(v), []), ("Sin", MathF.Sin, []), ("Cos", MathF.Cos, []),
            ("Erf", v => (float)Erf(v), []), ("Softplus", v => MathF.Log(1 + MathF.Exp(v)), []), ("Softsign", v => v / (1 + MathF.Abs(v)), []),
            ("Elu", v => v >= 0 ? v : 0.5f * (MathF.Exp(v) - 1), [("alpha", 0.5f)]),
            ("Selu", v => 1.05070102f * (v >= 0 ? v : 1.67326319f * (MathF.Exp(v) - 1)), []),
            ("Tanh", MathF.Tanh, []), ("LeakyRelu", v => v >= 0 ? v : 0.2f * v, [("alpha", 0.2f)]),
        };
        // Away from 0 (Reciprocal, Log) and from .5 ties (Round differs only in the rounding mode there).
        var x = Map(Tensor.Random(4, [2, 3, 4, 5], -3f, 3f), v => MathF.Abs(v) < 0.05f ? 0.3f : v);
        foreach (var (op, reference, attrs) in cases)
        {
            var m = new OnnxModelBuilder(13).Input("x", 2, 3, 4, 5);
            string input = "x";
            if (op is "Sqrt" or "Log") { m.Node("Abs", ["x"], ["ax"]); input = "ax"; }
            m.Node(op, [input], ["y"], attributes: attrs).Output("y", 2, 3, 4, 5);
            var y = Run(m, ("x", x))["y"];
            Compare.Close(Map(x, reference), y, 2e-6, op);
        }
    }

    private static double Erf(double x)
    {
        // Abramowitz-Stegun 7.1.26 is only 1e-7 absolute; a series is exact enough for |x| <= 3.
        double sum = 0, term = x;
        for (int n = 0; n < 60; n++) { sum += term / (2 * n + 1); term *= -x * x / (n + 1); }
        return 2 / Math.Sqrt(Math.PI) * sum;
    }

    [Fact]
    public void IntegerNegAbsAndSignRunAndWrapAtTheMinimum()
    {
        var x = new Tensor(new[] { long.MinValue, -5L, 0L, 7L }, 4);
        var m = new OnnxModelBuilder(13).TypedInput("x", Int64, 4)
            .Node("Neg", ["x"], ["n"]).Node("Abs", ["x"], ["a"]).Node("Sign", ["x"], ["s"])
            .TypedOutput("n", Int64, 4).TypedOutput("a", Int64, 4).TypedOutput("s", Int64, 4);
        var r = Run(m, ("x", x));
        Assert.Equal([long.MinValue, 5L, 0L, -7L], r["n"].Int64s);
        Assert.Equal([long.MinValue, 5L, 0L, 7L], r["a"].Int64s);
        Assert.Equal([-1L, -1L, 0L, 1L], r["s"].Int64s);
        var bad = new OnnxModelBuilder(13).TypedInput("x", Int64, 4).Node("Exp", ["x"], ["y"]).Output("y", 4);
        Assert.Contains("Float32 only", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(bad.ToBytes())).Message);
    }

    /// <summary>Tanh and LeakyRelu import as activations and fuse into the conv epilogue; checked against ONNX Runtime on the file.</summary>
    [Fact]
    public void TanhAndLeakyReluFuseIntoConvEpilogues()
    {
        var m = new OnnxModelBuilder(13).Input("x", 1, 3, 8, 8)
            .Initializer("w1", Tensor.Random(1, [8, 3, 3, 3], -0.5f, 0.5f)).Initializer("w2", Tensor.Random(2, [4, 8, 1, 1], -0.5f, 0.5f))
            .Node("Conv", ["x", "w1"], ["c1"], attributes: [("pads", new[] { 1, 1, 1, 1 })]).Node("Tanh", ["c1"], ["t"])
            .Node("Conv", ["t", "w2"], ["c2"]).Node("LeakyRelu", ["c2"], ["y"], attributes: [("alpha", 0.1f)])
            .Output("y", 1, 4, 8, 8);
        var bytes = m.ToBytes();
        using var session = new InferenceSession(OnnxImporter.Load(bytes), new SessionOptions { Threads = 2 });
        Assert.Equal(2, session.Optimizations!.ActivationsFused);
        Assert.DoesNotContain(session.OptimizedGraph.Nodes, n => n.Op is ActivationOp);
        Assert.Contains(session.OptimizedGraph.Nodes, n => n.Op is Conv { Activation.Kind: ActivationKind.Tanh });
        Assert.Contains(session.OptimizedGraph.Nodes, n => n.Op is Conv { Activation: { Kind: ActivationKind.LeakyRelu, Alpha: 0.1f } });
        var x = Tensor.Random(3, [1, 3, 8, 8], -2f, 2f);
        var expected = OrtRunner.Run(bytes, [new("x", x)])["y"];
        Compare.Close(expected, session.Run(x)[0], 1e-5, "conv+tanh, conv+leakyrelu");
    }

    [Fact]
    public void PReluTakesAPerChannelConstantAfterAConvAndARuntimeSlope()
    {
        // Per-channel constant slope on a channels-last conv output, checked against ONNX Runtime.
        var m = new OnnxModelBuilder(13).Input("x", 2, 3, 5, 5)
            .Initializer("w", Tensor.Random(1, [4, 3, 3, 3], -0.5f, 0.5f)).Initializer("slope", new Tensor([0.1f, -0.5f, 2f, 0f], 4, 1, 1))
            .Node("Conv", ["x", "w"], ["c"]).Node("PRelu", ["c", "slope"], ["y"]).Output("y", 2, 4, 3, 3);
        var x = Tensor.Random(2, [2, 3, 5, 5], -2f, 2f);
        Compare.Close(OrtRunner.Run(m.ToBytes(), [new("x", x)])["y"], Run(m, ("x", x))["y"], 1e-5, "conv+prelu");

        // A runtime slope broadcasting along the last axis.
        var r = new OnnxModelBuilder(13).Input("x", 2, 3, 4).Input("s", 4).Node("PRelu", ["x", "s"], ["y"]).Output("y", 2, 3, 4);
        var xs = Tensor.Random(3, [2, 3, 4], -2f, 2f);
        var s = Tensor.Random(4, [4], -1f, 1f);
        var expected = new Tensor(xs.Floats.Select((v, i) => v >= 0 ? v : v * s.Floats[i % 4]).ToArray(), xs.Shape);
        Compare.Close(expected, Run(r, ("x", xs), ("s", s))["y"], 1e-6, "runtime slope");

        var bad = new OnnxModelBuilder(13).Input("x", 2, 3, 4).Input("s", 2, 1, 1, 1).Node("PRelu", ["x", "s"], ["y"]).Output("y", 2, 3, 4);
        Assert.Contains("does not broadcast to X", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(bad.ToBytes())).Message);
    }

    // ---- arg and reductions -----------------------------------------------------------------------

    [Theory]
    [InlineData(true, 1, true, false)]
    [InlineData(true, -1, false, true)]
    [InlineData(false, 0, true, true)]
    [InlineData(false, 2, false, false)]
    public void ArgMaxAndArgMinReturnInt64Indices(bool max, int axis, bool keepDims, bool last)
    {
        // Few distinct values, so ties are everywhere and the first/last rule matters.
        var x = Map(Tensor.Random(5, [3, 4, 5], 0f, 3f), MathF.Floor);
        int a = axis < 0 ? axis + 3 : axis;
        var outShape = keepDims ? x.Shape.Select((d, i) => i == a ? 1 : d).ToArray() : x.Shape.Where((_, i) => i != a).ToArray();
        var m = new OnnxModelBuilder(13).Input("x", 3, 4, 5)
            .Node(max ? "ArgMax" : "ArgMin", ["x"], ["y"], attributes: [("axis", axis), ("keepdims", keepDims ? 1 : 0), ("select_last_index", last ? 1 : 0)])
            .TypedOutput("y", Int64, outShape.Cast<object>().ToArray());
        var y = Run(m, ("x", x))["y"];
        Assert.Equal(DataType.Int64, y.DataType);
        Assert.Equal(outShape, y.Shape);
        var reduced = x.Shape.Select((d, i) => i == a ? 1 : d).ToArray();
        for (int o = 0; o < y.Length; o++)
        {
            var idx = Unravel(o, reduced);
            long best = 0;
            for (int k = 1; k < x.Shape[a]; k++)
            {
                idx[a] = k; float v = x.Floats[Offset(idx, x.Shape)];
                idx[a] = (int)best; float b = x.Floats[Offset(idx, x.Shape)];
                if (max ? v > b || (last && v == b) : v < b || (last && v == b)) best = k;
            }
            Assert.Equal(best, y.Int64s[o]);
        }
    }

    [Fact]
    public void ArgMaxAxisOutOfRangeIsRefusedWithTheAxisNamed()
    {
        var m = new OnnxModelBuilder(13).Input("x", 3, 4).Node("ArgMax", ["x"], ["y"], attributes: [("axis", 2)]).TypedOutput("y", Int64, 3, 1);
        Assert.Contains("axis 2 is out of range for rank 2", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(m.ToBytes())).Message);
        // The op itself checks too (graphs built in code).
        var g = new ModelGraph("argmax");
        var x = new Value("x", DataType.Float32, [3, 4]);
        var node = new Node("argmax", new ArgReduceOp(true, -3), [x], [new Value("y", DataType.Int64, [])]);
        Assert.Contains("out of range", Assert.Throws<GraphException>(() => node.Op.InferShapes(node)).Message);
        var ints = new Node("argmax", new ArgReduceOp(true, 0), [new Value("i", DataType.Int64, [3])], [new Value("y", DataType.Int64, [])]);
        Assert.Contains("Float32 only", Assert.Throws<GraphException>(() => ints.Op.InferShapes(ints)).Message);
        var empty = new Node("argmax", new ArgReduceOp(true, 1), [new Value("e", DataType.Float32, [3, 0])], [new Value("y", DataType.Int64, [])]);
        Assert.Contains("empty", Assert.Throws<GraphException>(() => empty.Op.InferShapes(empty)).Message);
    }

    public static TheoryData<string, int, int[]?, bool, bool> ReduceCases()
    {
        var d = new TheoryData<string, int, int[]?, bool, bool>();
        foreach (var op in new[] { "ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMin", "ReduceMean", "ReduceSum" })
        {
            d.Add(op, 13, [1], true, false);                 // axes attribute (ReduceSum: input)
            d.Add(op, 18, [-1, 0], false, false);            // axes input, negative, keepdims=0
            d.Add(op, 18, null, true, false);                // no axes: all
            d.Add(op, 18, null, false, true);                // no axes with noop_with_empty_axes: identity
        }
        return d;
    }

    [Theory]
    [MemberData(nameof(ReduceCases))]
    public void ReductionsMatchAPlainLoopInEveryAxesForm(string op, int opset, int[]? axes, bool keepDims, bool noop)
    {
        var x = Tensor.Random(6, [2, 3, 4], 0.2f, 1.5f);
        bool axesInput = op == "ReduceSum" ? opset >= 13 : opset >= 18;
        var m = new OnnxModelBuilder(opset).Input("x", 2, 3, 4);
        var attrs = new List<(string, object)> { ("keepdims", keepDims ? 1 : 0) };
        if (noop) attrs.Add(("noop_with_empty_axes", 1));
        string[] inputs = ["x"];
        if (axes is not null && axesInput) { m.Initializer("axes", new Tensor(axes.Select(a => (long)a).ToArray(), axes.Length)); inputs = ["x", "axes"]; }
        else if (axes is not null) attrs.Add(("axes", axes));
        m.Node(op, inputs, ["y"], attributes: [.. attrs]).Output("y");
        var y = Run(m, ("x", x))["y"];
        if (noop)
        {
            Assert.Equal(x.Floats, y.Floats);
            return;
        }
        var reduce = (axes ?? [0, 1, 2]).Select(a => a < 0 ? a + 3 : a).ToHashSet();
        var kept = x.Shape.Select((dim, i) => reduce.Contains(i) ? 1 : dim).ToArray();
        var expected = new double[Shape.Size(kept)];
        var groups = new List<double>[expected.Length];
        for (int i = 0; i < groups.Length; i++) groups[i] = [];
        for (int i = 0; i < x.Length; i++)
        {
            var idx = Unravel(i, x.Shape);
            foreach (var a in reduce) idx[a] = 0;
            groups[Offset(idx, kept)].Add(x.Floats[i]);
        }
        for (int i = 0; i < expected.Length; i++)
        {
            var g = groups[i];
            expected[i] = op switch
            {
                "ReduceProd" => g.Aggregate(1.0, (p, v) => p * v),
                "ReduceL1" => g.Sum(Math.Abs),
                "ReduceL2" => Math.Sqrt(g.Sum(v => v * v)),
                "ReduceSumSquare" => g.Sum(v => v * v),
                "ReduceLogSum" => Math.Log(g.Sum()),
                "ReduceLogSumExp" => Math.Log(g.Sum(Math.Exp)),
                "ReduceMax" => g.Max(),
                "ReduceMin" => g.Min(),
                "ReduceMean" => g.Average(),
                _ => g.Sum(),
            };
        }
        var outShape = keepDims ? kept : x.Shape.Where((_, i) => !reduce.Contains(i)).ToArray();
        Compare.Close(new Tensor(expected.Select(v => (float)v).ToArray(), outShape), y, 1e-5, $"{op} opset {opset}");
    }

    // ---- comparisons, logic, Where ----------------------------------------------------------------

    [Fact]
    public void ComparisonsLogicAndWhereRunOnRuntimeFloatAndInt64Tensors()
    {
        var m = new OnnxModelBuilder(13).Input("a", 2, 3).Input("b", 3).TypedInput("i", Int64, 2, 3).TypedInput("j", Int64, 1, 3)
            .Node("Less", ["a", "b"], ["lt"]).Node("GreaterOrEqual", ["a", "b"], ["ge"]).Node("Equal", ["i", "j"], ["eq"])
            .Node("Greater", ["i", "j"], ["gt"]).Node("LessOrEqual", ["a", "b"], ["le"])
            .Node("Not", ["lt"], ["nlt"]).Node("And", ["nlt", "eq"], ["and"]).Node("Or", ["lt", "eq"], ["or"]).Node("Xor", ["ge", "le"], ["xor"])
            .Node("Where", ["lt", "a", "b"], ["min"]).Node("Where", ["eq", "i", "j"], ["pick"])
            .TypedOutput("ge", Bool, 2, 3).TypedOutput("gt", Bool, 2, 3).TypedOutput("and", Bool, 2, 3).TypedOutput("or", Bool, 2, 3)
            .TypedOutput("xor", Bool, 2, 3).Output("min", 2, 3).TypedOutput("pick", Int64, 2, 3);
        var a = new Tensor([1f, 5f, -2f, 3f, 3f, float.NaN], 2, 3);
        var b = new Tensor([2f, 3f, -2f], 3);
        var i = new Tensor([1L, 2L, 3L, 4L, 5L, 6L], 2, 3);
        var j = new Tensor([1L, 9L, 6L], 1, 3);
        var r = Run(m, ("a", a), ("b", b), ("i", i), ("j", j));
        bool[] lt = [true, false, false, false, false, false], eq = [true, false, false, false, false, true];
        bool[] ge = [false, true, true, true, true, false], le = [true, false, true, false, true, false];
        Assert.Equal(ge, (bool[])r["ge"].Data);
        Assert.Equal([false, false, false, true, false, false], (bool[])r["gt"].Data);
        Assert.Equal(lt.Zip(eq, (p, q) => !p && q), (bool[])r["and"].Data);
        Assert.Equal(lt.Zip(eq, (p, q) => p || q), (bool[])r["or"].Data);
        Assert.Equal(ge.Zip(le, (p, q) => p ^ q), (bool[])r["xor"].Data);
        Assert.Equal([1f, 3f, -2f, 2f, 3f, -2f], r["min"].Floats);
        Assert.Equal([1L, 9L, 6L, 1L, 9L, 6L], r["pick"].Int64s);
    }

    [Fact]
    public void ComparisonShapeAndTypeErrorsNameTheOperands()
    {
        var mixed = new OnnxModelBuilder(13).Input("a", 2, 3).TypedInput("i", Int64, 2, 3).Node("Less", ["a", "i"], ["y"]).TypedOutput("y", Bool, 2, 3);
        Assert.Contains("operands are Float32 and Int64", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(mixed.ToBytes())).Message);
        var shapes = new OnnxModelBuilder(13).Input("a", 2, 3).Input("b", 4).Node("Equal", ["a", "b"], ["y"]).TypedOutput("y", Bool, 2, 3);
        Assert.Contains("do not broadcast", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(shapes.ToBytes())).Message);
        var cond = new OnnxModelBuilder(13).Input("a", 2, 3).Node("Where", ["a", "a", "a"], ["y"]).Output("y", 2, 3);
        Assert.Contains("must be Bool", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(cond.ToBytes())).Message);
        var not = new OnnxModelBuilder(13).Input("a", 2, 3).Node("Not", ["a"], ["y"]).TypedOutput("y", Bool, 2, 3);
        Assert.Contains("Not takes Bool", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(not.ToBytes())).Message);
    }

    /// <summary>With constant inputs the same ops fold at load time: the exporters' shape arithmetic leaves no node behind.</summary>
    [Fact]
    public void ConstantComparisonsWhereCastAndExpandFoldAtLoadTime()
    {
        var m = new OnnxModelBuilder(13).Input("x", 2, 3)
            .Initializer("shape", new Tensor([2L, -1L], 2)).Initializer("minus_one", new Tensor([-1L], []))
            .Initializer("three", new Tensor([3L], 1)).Initializer("target", new Tensor([2L, 1L], 2))
            .Node("Equal", ["shape", "minus_one"], ["is_neg"]).Node("Where", ["is_neg", "three", "shape"], ["fixed"])
            .Node("Cast", ["fixed"], ["fixed_f"], attributes: [("to", Float)]).Node("Cast", ["fixed_f"], ["fixed_i"], attributes: [("to", Int64)])
            .Node("Expand", ["three", "target"], ["threes"]).Node("Reshape", ["x", "fixed_i"], ["y"])
            .Output("y", 2, 3).TypedOutput("threes", Int64, 2, 1);
        var g = OnnxImporter.Load(m.ToBytes());
        Assert.DoesNotContain(g.Nodes, n => n.Op is CompareOp or WhereOp or CastOp or ExpandOp);
        Assert.Equal([3L, 3L], g.Outputs[1].Constant!.Int64s);
        Assert.Contains(g.Nodes, n => n.Op is Reshape { Target: [2, 3] });
    }

    // ---- Cast -------------------------------------------------------------------------------------

    /// <summary>A model that takes a uint8 NHWC image and returns int64 class indices per pixel.</summary>
    [Fact]
    public void Uint8ImageInCastConvArgMaxInt64Out()
    {
        const int H = 6, W = 7, C = 3, K = 5;
        var w = Tensor.Random(11, [K, C, 3, 3], -0.05f, 0.05f);
        var bias = Tensor.Random(12, [K], -1f, 1f);
        var m = new OnnxModelBuilder(13).TypedInput("image", UInt8, 1, H, W, C)
            .Initializer("w", w).Initializer("b", bias)
            .Node("Cast", ["image"], ["f"], attributes: [("to", Float)])
            .Node("Transpose", ["f"], ["nchw"], attributes: [("perm", new[] { 0, 3, 1, 2 })])
            .Node("Conv", ["nchw", "w", "b"], ["logits"], attributes: [("pads", new[] { 1, 1, 1, 1 })])
            .Node("ArgMax", ["logits"], ["classes"], attributes: [("axis", 1), ("keepdims", 0)])
            .TypedOutput("classes", Int64, 1, H, W);
        var rng = new Random(13);
        var pixels = new byte[H * W * C];
        rng.NextBytes(pixels);
        var image = new Tensor(DataType.UInt8, [1, H, W, C], pixels);

        using var session = new InferenceSession(OnnxImporter.Load(m.ToBytes()), new SessionOptions { Threads = 2 });
        Assert.Equal(DataType.UInt8, session.Inputs[0].DataType);
        Assert.Equal(DataType.Int64, session.Outputs[0].DataType);
        var classes = session.Run(image)[0];
        Assert.Equal([1, H, W], classes.Shape);

        var expected = new long[H * W];
        for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
        {
            double bestValue = double.NegativeInfinity;
            for (int k = 0; k < K; k++)
            {
                double acc = bias.Floats[k];
                for (int c = 0; c < C; c++)
                for (int dy = 0; dy < 3; dy++)
                for (int dx = 0; dx < 3; dx++)
                {
                    int iy = y + dy - 1, ix = x + dx - 1;
                    if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                    acc += pixels[(iy * W + ix) * C + c] * (double)w.Floats[((k * C + c) * 3 + dy) * 3 + dx];
                }
                if (acc > bestValue) { bestValue = acc; expected[y * W + x] = k; }
            }
        }
        Assert.Equal(expected, classes.Int64s);
        Assert.Equal(expected, OrtRunner.Run(m.ToBytes(), [new("image", image)])["classes"].Int64s);
    }

    public static TheoryData<int, int> CastPairs()
    {
        var d = new TheoryData<int, int>();
        foreach (int from in new[] { Float, UInt8, Int8, Int32, Int64, Bool })
            foreach (int to in new[] { Float, UInt8, Int8, Int32, Int64, Bool })
                d.Add(from, to);
        return d;
    }

    [Theory]
    [MemberData(nameof(CastPairs))]
    public void CastRunsBetweenEveryPairOfOurTypes(int from, int to)
    {
        // In range for every target (ONNX leaves out-of-range float -> integer undefined); fractions truncate toward zero.
        double[] values = [0, 1, 2.75, 7, 100.5, 127, 3, 0];
        var source = TensorArithmetic.Cast(new Tensor(values.Select(v => (float)v).ToArray(), values.Length), (DataType)from);
        var m = new OnnxModelBuilder(13).TypedInput("x", from, values.Length).Node("Cast", ["x"], ["y"], attributes: [("to", to)])
            .TypedOutput("y", to, values.Length);
        var y = Run(m, ("x", source))["y"];
        var expected = TensorArithmetic.Cast(source, (DataType)to);
        Assert.Equal((DataType)to, y.DataType);
        Assert.Equal(expected.Data.Cast<object>(), y.Data.Cast<object>());
        var signed = new Tensor([-2.9f, -1f, -128f], 3);
        if (from == Float && to is Int8 or Int32 or Int64)
        {
            var neg = new OnnxModelBuilder(13).Input("x", 3).Node("Cast", ["x"], ["y"], attributes: [("to", to)]).TypedOutput("y", to, 3);
            Assert.Equal(new long[] { -2, -1, -128 }, TensorArithmetic.Int64s(Run(neg, ("x", signed))["y"]));
        }
    }

    /// <summary>Conv outputs run channels-last: masks, Where, Cast and ArgMax on them come back in NCHW order.</summary>
    [Fact]
    public void MasksAndCastsOfChannelsLastConvOutputsMatchOnnxRuntime()
    {
        var m = new OnnxModelBuilder(13).Input("x", 2, 3, 5, 6)
            .Initializer("w", Tensor.Random(1, [4, 3, 3, 3], -0.5f, 0.5f)).Initializer("zero", new Tensor([0f], []))
            .Initializer("other", Tensor.Random(2, [4, 1, 1], -1f, 1f))
            .Node("Conv", ["x", "w"], ["c"], attributes: [("pads", new[] { 1, 1, 1, 1 })])
            .Node("Greater", ["c", "zero"], ["mask"]).Node("Where", ["mask", "c", "other"], ["w_out"])
            .Node("Mul", ["c", "c"], ["sq"]).Node("Cast", ["sq"], ["ints"], attributes: [("to", Int32)])
            .Node("Exp", ["c"], ["e"]).Node("ArgMin", ["e"], ["am"], attributes: [("axis", 1)])
            .TypedOutput("mask", Bool, 2, 4, 5, 6).Output("w_out", 2, 4, 5, 6).TypedOutput("ints", Int32, 2, 4, 5, 6).TypedOutput("am", Int64, 2, 1, 5, 6);
        var x = Tensor.Random(3, [2, 3, 5, 6], -3f, 3f);
        var expected = OrtRunner.Run(m.ToBytes(), [new("x", x)]);
        var actual = Run(m, ("x", x));
        Assert.Equal((bool[])expected["mask"].Data, (bool[])actual["mask"].Data);
        Compare.Close(expected["w_out"], actual["w_out"], 1e-5, "where");
        Assert.Equal(expected["am"].Int64s, actual["am"].Int64s);
        // Truncation of values that differ in the last bit can differ by one.
        var ei = (int[])expected["ints"].Data; var ai = (int[])actual["ints"].Data;
        Assert.All(ei.Zip(ai), p => Assert.InRange(p.Second - p.First, -1, 1));
    }

    [Fact]
    public void CastOfNonFiniteFloatsNeverThrows()
    {
        var x = new Tensor([float.NaN, float.PositiveInfinity, float.NegativeInfinity, 1e20f, -1e20f, 0f], 6);
        foreach (int to in new[] { UInt8, Int8, Int32, Int64, Bool })
        {
            var m = new OnnxModelBuilder(13).Input("x", 6).Node("Cast", ["x"], ["y"], attributes: [("to", to)]).TypedOutput("y", to, 6);
            var y = Run(m, ("x", x))["y"];
            Assert.Equal((DataType)to, y.DataType);
            if (to == Bool) Assert.Equal([true, true, true, true, true, false], (bool[])y.Data);
        }
    }

    [Fact]
    public void CastToATypeWeDoNotHoldIsRefused()
    {
        var m = new OnnxModelBuilder(13).Input("x", 3).Node("Cast", ["x"], ["y"], attributes: [("to", 11)]).Output("y", 3);
        Assert.Contains("DOUBLE, which is not supported", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(m.ToBytes())).Message);
    }

    // ---- Expand and Tile --------------------------------------------------------------------------

    [Fact]
    public void ExpandAndTileRuntimeTensorsOfAnyType()
    {
        var m = new OnnxModelBuilder(13).Input("s", 3, 1).TypedInput("i", Int64, 2, 3).TypedInput("b", Bool, 1, 2)
            .Initializer("shape", new Tensor([2L, 3L, 4L], 3)).Initializer("reps", new Tensor([2L, 3L], 2)).Initializer("breps", new Tensor([3L, 2L], 2))
            .Node("Expand", ["s", "shape"], ["e"]).Node("Tile", ["i", "reps"], ["t"]).Node("Tile", ["b", "breps"], ["tb"])
            .Output("e", 2, 3, 4).TypedOutput("t", Int64, 4, 9).TypedOutput("tb", Bool, 3, 4);
        var s = Tensor.Random(1, [3, 1]);
        var i = new Tensor(Enumerable.Range(1, 6).Select(v => (long)v).ToArray(), 2, 3);
        var b = new Tensor(DataType.Bool, [1, 2], new[] { true, false });
        var r = Run(m, ("s", s), ("i", i), ("b", b));
        Assert.Equal(Enumerable.Range(0, 24).Select(k => s.Floats[k / 4 % 3]), r["e"].Floats);
        Assert.Equal(Enumerable.Range(0, 36).Select(k => i.Int64s[k / 9 % 2 * 3 + k % 9 % 3]), r["t"].Int64s);
        Assert.Equal(Enumerable.Range(0, 12).Select(k => k % 2 == 0), (bool[])r["tb"].Data);
        // PyTorch's x * s.expand_as(x) on a channels-last conv output.
        var pt = new OnnxModelBuilder(13).Input("x", 1, 4, 3, 3).Input("g", 1, 4, 1, 1)
            .Initializer("w", Tensor.Random(2, [4, 4, 1, 1])).Initializer("like", new Tensor([1L, 4L, 3L, 3L], 4))
            .Node("Conv", ["x", "w"], ["c"]).Node("Expand", ["g", "like"], ["ge"]).Node("Mul", ["c", "ge"], ["y"]).Output("y", 1, 4, 3, 3);
        var x = Tensor.Random(3, [1, 4, 3, 3]);
        var gate = Tensor.Random(4, [1, 4, 1, 1]);
        Compare.Close(OrtRunner.Run(pt.ToBytes(), [new("x", x), new("g", gate)])["y"], Run(pt, ("x", x), ("g", gate))["y"], 1e-5, "x * s.expand_as(x)");
    }

    [Fact]
    public void AbsurdExpandAndTileSizesAreRefusedBeforeAnythingIsAllocated()
    {
        // Over the element limit: refused at import.
        var huge = new OnnxModelBuilder(13).Input("x", 1, 1).Initializer("shape", new Tensor([65536L, 65536L, 4L], 3))
            .Node("Expand", ["x", "shape"], ["y"]).Output("y", 65536, 65536, 4);
        Assert.Contains("elements", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(huge.ToBytes())).Message);
        var tile = new OnnxModelBuilder(13).Input("x", 4, 4).Initializer("reps", new Tensor([1L << 20, 1L << 20], 2))
            .Node("Tile", ["x", "reps"], ["y"]).Output("y", 1, 1);
        Assert.Contains("elements", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(tile.ToBytes())).Message);
        var negative = new OnnxModelBuilder(13).Input("x", 4, 4).Initializer("reps", new Tensor([1L, -2L], 2))
            .Node("Tile", ["x", "reps"], ["y"]).Output("y", 1, 1);
        Assert.Contains("invalid", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(negative.ToBytes())).Message);
        var notBroadcast = new OnnxModelBuilder(13).Input("x", 3, 2).Initializer("shape", new Tensor([3L, 4L], 2))
            .Node("Expand", ["x", "shape"], ["y"]).Output("y", 3, 4);
        Assert.Contains("do not broadcast", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(notBroadcast.ToBytes())).Message);

        // A constant expanded past the load-time budget: refused before folding.
        var folded = new OnnxModelBuilder(13).Input("x", 1).Initializer("c", new Tensor([1f], 1)).Initializer("shape", new Tensor([16384L, 16384L], 2))
            .Node("Expand", ["c", "shape"], ["big"]).Node("Add", ["x", "x"], ["y"]).Output("y", 1).Output("big", 16384, 16384);
        Assert.Contains("load time", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(folded.ToBytes())).Message);

        // Within the element limit but not the arena: import is cheap, the session refuses with the limit named.
        var wide = new OnnxModelBuilder(13).Input("x", 1, 1).Initializer("shape", new Tensor([16384L, 16384L], 2))
            .Node("Expand", ["x", "shape"], ["y"]).Output("y", 16384, 16384);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var g = OnnxImporter.Load(wide.ToBytes());
        var e = Assert.Throws<GraphException>(() => new InferenceSession(g, new SessionOptions { Threads = 1, MaxArenaBytes = 64 << 20 }));
        Assert.Contains("MaxArenaBytes", e.Message);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20, "the refusal allocated the expanded tensor");
    }

    [Fact]
    public void ExpandNeedsItsShapeAtLoadTime()
    {
        var m = new OnnxModelBuilder(13).Input("x", 3, 1).TypedInput("shape", Int64, 2).Node("Expand", ["x", "shape"], ["y"]).Output("y", 3, 4);
        var e = Assert.Throws<ConstantInputRequiredException>(() => OnnxImporter.Load(m.ToBytes()));
        Assert.Equal(["shape"], e.RuntimeInputs);
        var g = OnnxImporter.Load(m.ToBytes(), new OnnxImportOptions { Constants = { ["shape"] = new Tensor([3L, 4L], 2) } });
        Assert.Contains(g.Nodes, n => n.Op is ExpandOp { Target: [3, 4] });
    }
}
