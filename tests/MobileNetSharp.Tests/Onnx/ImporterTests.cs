using MobileNetSharp.Graph;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Onnx;

/// <summary>
/// Operator spellings across opsets and the load-time machinery (folding, symbolic dimensions), each checked
/// against ONNX Runtime running the original file. Tolerance 1e-5 of the output scale: a handful of fp32 ops.
/// </summary>
public class ImporterTests
{
    private static void AssertMatchesOrt(OnnxModelBuilder model, OnnxImportOptions? options = null, int seed = 1)
    {
        var bytes = model.ToBytes();
        var graph = OnnxImporter.Load(bytes, options);
        var inputs = graph.Inputs.Select((v, i) => new KeyValuePair<string, Tensor>(v.Name, Tensor.Random(seed + i, v.Shape, -3f, 3f))).ToArray();
        var expected = OrtRunner.Run(bytes, inputs);
        using var session = new InferenceSession(graph, new SessionOptions { Threads = 1 });
        var actual = session.Run(inputs.ToDictionary(kv => kv.Key, kv => kv.Value));
        foreach (var o in graph.Outputs) Compare.Close(expected[o.Name], actual[o.Name], 1e-5, o.Name);
    }

    [Fact]
    public void DynamicReshapeChainFoldsForTheBatchGiven()
    {
        var graph = OnnxImporter.Load(FuzzTests.DynamicReshape().ToBytes(), new OnnxImportOptions { Dimensions = { ["batch"] = 3 } });
        Assert.Equal([3, 4, 3, 3], graph.Inputs[0].Shape);
        Assert.DoesNotContain(graph.Nodes, n => n.Op.Type is "Shape" or "Gather");
        Assert.Contains(graph.Nodes, n => n.Op is Reshape { Target: [3, -1] });
        AssertMatchesOrt(FuzzTests.DynamicReshape(), new OnnxImportOptions { Dimensions = { ["batch"] = 3 } });
        AssertMatchesOrt(FuzzTests.DynamicReshape()); // unknown batch: DefaultBatch 1
    }

    [Fact]
    public void UnknownNonBatchDimensionMustBeGiven()
    {
        var m = new OnnxModelBuilder().Input("x", "n", 3, "height", "width").Node("Relu", ["x"], ["y"]).Output("y");
        var e = Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(m.ToBytes()));
        Assert.Contains("'height' (axis 2) and 'width' (axis 3)", e.Message);
        Assert.Contains("--dim height=VALUE --dim width=VALUE", e.Message); // the command line's options
        Assert.Contains("--shape x=1x3x224x224", e.Message);
        Assert.Contains("OnnxImportOptions.Dimensions", e.Message); // and the C# ones
        var g = OnnxImporter.Load(m.ToBytes(), new OnnxImportOptions { Dimensions = { ["height"] = 8, ["width"] = 6 }, DefaultBatch = 2 });
        Assert.Equal([2, 3, 8, 6], g.Inputs[0].Shape);
    }

    [Fact]
    public void Opset6LegacyForms()
    {
        var g = OnnxImporter.Load(FuzzTests.LegacyForms().ToBytes());
        // The bias broadcast on axis 1 is reshaped to [2,1,1] at load time; clip bounds come from attributes.
        Assert.Equal(["BatchNormalization", "Add", "Pad", "Clip", "GlobalAveragePool", "Squeeze", "Softmax"], g.Nodes.Select(n => n.Op.Type));
        Assert.Equal([2, 1, 1], g.Nodes[1].Input(1).Shape);
        Assert.Contains(g.Nodes, n => n.Op is ActivationOp { Activation: { Kind: MobileNetSharp.Graph.ActivationKind.Clip, Alpha: 0f, Beta: 6f } });
        var x = Tensor.Random(3, [1, 2, 5, 5], -3f, 3f);
        using var session = new InferenceSession(g, new SessionOptions { Threads = 1 });
        var y = session.Run(x)[0].Floats;
        var expected = LegacyReference(x.Floats);
        for (int i = 0; i < 2; i++) Assert.Equal(expected[i], y[i], 1e-5f);
    }

    /// <summary>The opset-6 test model computed by hand: BN, per-channel bias, reflect pad, ReLU6, mean, softmax.</summary>
    private static float[] LegacyReference(float[] x)
    {
        float[] s = [1f, 2f], b = [0.1f, -0.1f], m = [0f, 0.5f], v = [1f, 2f], bias = [0.5f, -0.5f];
        var mean = new double[2];
        for (int c = 0; c < 2; c++)
        {
            var plane = new float[5, 5];
            for (int i = 0; i < 5; i++)
                for (int j = 0; j < 5; j++)
                    plane[i, j] = (x[c * 25 + i * 5 + j] - m[c]) / MathF.Sqrt(v[c] + 1e-3f) * s[c] + b[c] + bias[c];
            double sum = 0;
            for (int i = -1; i < 6; i++)
                for (int j = -1; j < 6; j++)
                {
                    int ri = i < 0 ? -i : i > 4 ? 8 - i : i, rj = j < 0 ? -j : j > 4 ? 8 - j : j;
                    sum += Math.Clamp(plane[ri, rj], 0f, 6f);
                }
            mean[c] = sum / 49;
        }
        double e0 = Math.Exp(mean[0]), e1 = Math.Exp(mean[1]);
        return [(float)(e0 / (e0 + e1)), (float)(e1 / (e0 + e1))];
    }

    [Fact]
    public void GatherOnRuntimeDataBecomesSlices() => AssertMatchesOrt(new OnnxModelBuilder(13)
        .Input("x", 2, 5, 3)
        .Initializer("one", new Tensor([1L], []))
        .Initializer("picks", new Tensor([4L, 0L, -1L, 2L], 2, 2))
        .Node("Gather", ["x", "one"], ["col"], "take_col", ("axis", 1))
        .Node("Gather", ["x", "picks"], ["many"], "take_many", ("axis", 1))
        .Output("col").Output("many"));

    [Fact]
    public void Opset11Spellings() => AssertMatchesOrt(new OnnxModelBuilder(11)
        .Input("x", 1, 6, 4, 4)
        .Initializer("max", new Tensor([2.5f], []))
        .Node("Clip", ["x", "", "max"], ["c"], "clip_max_only")
        .Node("Split", ["c"], ["a", "b"], "split", ("axis", 1), ("split", new[] { 2, 4 }))
        .Node("Softmax", ["a"], ["sa"], "legacy_softmax", ("axis", 1))
        .Node("ReduceMean", ["b"], ["rb"], "mean", ("axes", new[] { 2, 3 }), ("keepdims", 0))
        .Node("Unsqueeze", ["rb"], ["ub"], "unsqueeze", ("axes", new[] { 2 }))
        .Node("Squeeze", ["sa"], ["sq"], "squeeze_none")
        .Output("sq").Output("ub"));

    [Fact]
    public void Opset18And19Spellings() => AssertMatchesOrt(new OnnxModelBuilder(19)
        .Input("x", 1, 3, 7, 7)
        .Initializer("axes", new Tensor([2L, 3L], 2))
        .Initializer("pads", new Tensor([1L, 2L, 0L, 1L], 4))
        .Node("ReduceMean", ["x", "axes"], ["m"], "mean")
        .Node("Pad", ["x", "pads", "", "axes"], ["p"], "pad_axes", ("mode", "edge"))
        .Node("Split", ["p"], ["s0", "s1", "s2"], "split_uneven", ("axis", 3), ("num_outputs", 3))
        .Node("AveragePool", ["x"], ["ap"], "dilated_avg", ("kernel_shape", new[] { 2, 2 }), ("dilations", new[] { 2, 2 }))
        .Output("m").Output("s0").Output("s2").Output("ap"));

    [Fact]
    public void OneDimensionalConvAndPoolRunAs2D() => AssertMatchesOrt(new OnnxModelBuilder(13)
        .Input("x", 2, 4, 11)
        .Initializer("w", Tensor.Random(5, [6, 2, 3]))
        .Node("Conv", ["x", "w"], ["c"], "conv1d", ("group", 2), ("strides", new[] { 2 }), ("pads", new[] { 1, 2 }), ("dilations", new[] { 2 }))
        .Node("MaxPool", ["c"], ["p"], "pool1d", ("kernel_shape", new[] { 2 }), ("ceil_mode", 1))
        .Output("p"));

    [Fact]
    public void ConstantFormsAndArithmeticFold()
    {
        var m = new OnnxModelBuilder(13)
            .Input("x", 2, 6)
            .Node("Constant", [], ["two"], "c1", ("value_int", 2L))
            .Node("Constant", [], ["dims"], "c2", ("value_ints", new long[] { 3, 4 }))
            .Node("Constant", [], ["scale"], "c3", ("value_float", 0.5f))
            .Node("Mul", ["dims", "two"], ["dims2"], "mul")
            .Node("Div", ["dims2", "two"], ["dims3"], "div")
            .Node("ConstantOfShape", ["dims3"], ["ones"], "cos", ("value", new Tensor([1f], 1)))
            .Node("Range", ["zero_f", "three_f", "one_f"], ["r"], "range")
            .Node("Reshape", ["x", "dims3"], ["xr"], "reshape")
            .Node("Add", ["xr", "ones"], ["a"], "add")
            .Node("Mul", ["a", "scale"], ["b"], "scale_mul")
            .Node("Add", ["b", "r_col"], ["y"], "add_range")
            .Node("Unsqueeze", ["r", "axis1"], ["r_col"], "col")
            .Initializer("zero_f", new Tensor([0f], [])).Initializer("three_f", new Tensor([3f], [])).Initializer("one_f", new Tensor([1f], []))
            .Initializer("axis1", new Tensor([1L], 1))
            .Output("y");
        var g = OnnxImporter.Load(m.ToBytes());
        Assert.DoesNotContain(g.Nodes, n => n.Op.Type is "Constant" or "ConstantOfShape" or "Range" or "Unsqueeze");
        AssertMatchesOrt(m);
    }

    [Fact]
    public void DropoutMaskIsAllOnesAndUnusedOutputsAreIgnored()
    {
        var m = new OnnxModelBuilder(13).Input("x", 2, 3)
            .Node("Dropout", ["x"], ["y", "mask"], "drop")
            .Output("y").Output("mask");
        var g = OnnxImporter.Load(m.ToBytes());
        Assert.True(g.Outputs[1].Constant!.Data is bool[] mask && mask.All(b => b));
    }

    /// <summary>
    /// PyTorch's x * s.expand_as(x): Expand(s, Shape(x)) of a computed s into a broadcasting op. The Expand is
    /// dropped (the op broadcasts s itself) whichever side of the op it is on.
    /// </summary>
    [Theory]
    [InlineData("Mul", true)]
    [InlineData("Mul", false)]
    [InlineData("Add", false)]
    [InlineData("Sub", true)]
    [InlineData("Div", false)]
    [InlineData("Max", true)]
    [InlineData("Min", false)]
    public void ExpandOfAComputedTensorIntoABroadcastingOpIsDropped(string op, bool expandedFirst)
    {
        var m = new OnnxModelBuilder(13).Input("x", 2, 3, 4, 5)
            .Node("GlobalAveragePool", ["x"], ["pooled"], "pool")
            .Node("Sigmoid", ["pooled"], ["s"], "gate")
            .Node("Shape", ["x"], ["shape"], "shape")
            .Node("Expand", ["s", "shape"], ["e"], "expand")
            .Node(op, expandedFirst ? ["e", "x"] : ["x", "e"], ["y"], "scale")
            .Node("Add", ["e", "y"], ["z"], "second_reader")
            .Output("z");
        // The importer keeps the Expand (a runtime op); the session's optimizer drops it, as the Mul broadcasts by itself.
        using var session = new InferenceSession(OnnxImporter.Load(m.ToBytes()), new SessionOptions { Threads = 1 });
        var g = session.OptimizedGraph;
        Assert.DoesNotContain(g.Nodes, n => n.Op.Type == "Expand");
        Assert.Equal([2, 3, 1, 1], g.Nodes.Single(n => n.Name == "scale").Input(expandedFirst ? 0 : 1).Shape);
        Assert.Equal(1, session.Optimizations!.ExpandsDropped);
        AssertMatchesOrt(m);
    }

    [Fact]
    public void ExpandOfAComputedTensorToItsOwnShapeIsAnIdentity() => AssertMatchesOrt(new OnnxModelBuilder(13).Input("x", 2, 3)
        .Initializer("shape", new Tensor([1L, 3L], 2))
        .Node("Relu", ["x"], ["r"], "relu")
        .Node("Expand", ["r", "shape"], ["e"], "expand")
        .Node("Sigmoid", ["e"], ["y"], "sigmoid")
        .Output("y"));

    /// <summary>
    /// An Expand of a computed tensor that something other than an equivalent broadcast reads stays in the
    /// optimized graph and runs as a runtime Expand, matching ONNX Runtime.
    /// </summary>
    [Theory]
    [InlineData("relu")]
    [InlineData("small_other")]
    [InlineData("output")]
    public void ExpandOfAComputedTensorThatMustBeMaterializedRuns(string form)
    {
        var m = new OnnxModelBuilder(13).Input("x", 2, 3, 4, 5)
            .Initializer("c", Tensor.Random(2, [1, 3, 1, 1]))
            .Node("GlobalAveragePool", ["x"], ["s"], "pool")
            .Node("Shape", ["x"], ["shape"], "shape")
            .Node("Expand", ["s", "shape"], ["e"], "se_expand");
        if (form == "relu") m.Node("Relu", ["e"], ["y"], "after");
        else if (form == "small_other") m.Node("Mul", ["c", "e"], ["y"], "after");
        else m.Node("Identity", ["x"], ["y"], "after").Output("e");
        m.Output("y");
        using var session = new InferenceSession(OnnxImporter.Load(m.ToBytes()), new SessionOptions { Threads = 1 });
        Assert.Contains(session.OptimizedGraph.Nodes, n => n.Op.Type == "Expand");
        AssertMatchesOrt(m);
    }

    /// <summary>Tile of constants is computed at load time; of a computed tensor, along size-1 axes only, it is an Expand.</summary>
    [Fact]
    public void TileOfConstantsFoldsAndOfSizeOneAxesIsABroadcast()
    {
        var m = new OnnxModelBuilder(13).Input("x", 2, 3, 4, 5)
            .Initializer("c", Tensor.Random(4, [1, 3, 2, 1]))
            .Initializer("reps_c", new Tensor([2L, 1L, 2L, 5L], 4))
            .Initializer("reps_s", new Tensor([1L, 1L, 4L, 5L], 4))
            .Node("Tile", ["c", "reps_c"], ["ct"], "tile_const")
            .Node("GlobalAveragePool", ["x"], ["s"], "pool")
            .Node("Tile", ["s", "reps_s"], ["st"], "tile_se")
            .Node("Mul", ["st", "x"], ["y"], "scale")
            .Node("Add", ["y", "ct"], ["z"], "add")
            .Output("z");
        using var session = new InferenceSession(OnnxImporter.Load(m.ToBytes()), new SessionOptions { Threads = 1 });
        var g = session.OptimizedGraph;
        Assert.DoesNotContain(g.Nodes, n => n.Op.Type == "Tile");
        Assert.Equal([2, 3, 4, 5], g.Nodes.Single(n => n.Name == "add").Input(1).Shape);
        AssertMatchesOrt(m);
    }

    /// <summary>A Tile that repeats data of a computed tensor, or feeds something other than a broadcast, runs as a runtime Tile.</summary>
    [Fact]
    public void TileOfAComputedTensorThatRepeatsDataRuns()
    {
        AssertMatchesOrt(new OnnxModelBuilder(13).Input("x", 2, 3)
            .Initializer("reps", new Tensor([1L, 2L], 2))
            .Node("Relu", ["x"], ["r"], "relu")
            .Node("Tile", ["r", "reps"], ["y"], "tile")
            .Output("y"));
        AssertMatchesOrt(new OnnxModelBuilder(13).Input("x", 2, 3, 4, 5)
            .Initializer("reps", new Tensor([1L, 1L, 4L, 5L], 4))
            .Node("GlobalAveragePool", ["x"], ["s"], "pool")
            .Node("Tile", ["s", "reps"], ["t"], "tile")
            .Node("Relu", ["t"], ["y"], "relu")
            .Output("y"));
    }

    /// <summary>The op's own shape error names the node; the importer adds the ONNX context (opset) instead of repeating it.</summary>
    [Fact]
    public void AShapeErrorNamesItsNodeOnce()
    {
        var m = new OnnxModelBuilder(11).Input("x", 2, 5)
            .Initializer("w", Tensor.Random(1, [4, 3]))
            .Node("Gemm", ["x", "w"], ["y"], "fc")
            .Output("y");
        var e = Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(m.ToBytes()));
        Assert.StartsWith("Node 'fc' (Gemm, opset 11): ", e.Message);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(e.Message, "'fc'"));
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(e.Message, "Gemm"));
        Assert.Contains("inner dimensions differ", e.Message);
    }

    [Fact]
    public void MetadataAndNamesSurvive()
    {
        var m = HostileInputTests.ConvModel();
        m.Model.MetadataProps.Add(new MobileNetSharp.Onnx.Proto.StringStringEntryProto { Key = "author", Value = "tests" });
        var g = OnnxImporter.Load(m.ToBytes());
        Assert.Equal("tests", g.Metadata["author"]);
        Assert.Equal(["conv", "relu"], g.Nodes.Select(n => n.Name));
        Assert.Equal("y", g.Outputs[0].Name);
    }
}
