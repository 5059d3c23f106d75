using Google.Protobuf;
using MobileNetSharp.Graph;
using MobileNetSharp.Onnx;
using MobileNetSharp.Onnx.Proto;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Onnx;

/// <summary>Broken and hostile files: each is refused with a ModelFormatException whose message says what is wrong.</summary>
public class HostileInputTests
{
    /// <summary>x[1,2,4,4] -> Conv(W[3,2,3,3], B) -> Relu -> y.</summary>
    internal static OnnxModelBuilder ConvModel(int opset = 13) => new OnnxModelBuilder(opset)
        .Input("x", 1, 2, 4, 4)
        .Initializer("W", Tensor.Random(1, [3, 2, 3, 3]))
        .Initializer("B", Tensor.Random(2, [3]))
        .Node("Conv", ["x", "W", "B"], ["c"], "conv", ("pads", new[] { 1, 1, 1, 1 }))
        .Node("Relu", ["c"], ["y"], "relu")
        .Output("y", 1, 3, 4, 4);

    private static ModelFormatException Refused(byte[] bytes, params string[] fragments)
    {
        var e = Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(bytes));
        foreach (var f in fragments) Assert.Contains(f, e.Message);
        return e;
    }

    [Fact]
    public void ValidModelLoads() => Assert.Equal(2, OnnxImporter.Load(ConvModel().ToBytes()).Nodes.Count);

    [Fact]
    public void TruncatedFile()
    {
        var bytes = ConvModel().ToBytes();
        foreach (int cut in new[] { 1, 7, bytes.Length / 3, bytes.Length / 2, bytes.Length - 1 })
            Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(bytes.AsSpan(0, cut)));
    }

    [Fact]
    public void RandomBytesAndEmptyFile()
    {
        var rng = new Random(5);
        for (int i = 0; i < 50; i++)
        {
            var bytes = new byte[rng.Next(1, 2000)];
            rng.NextBytes(bytes);
            Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(bytes));
        }
        Refused([], "no graph");
        Refused("not an onnx model at all"u8.ToArray());
    }

    [Fact]
    public void AbsurdAndNegativeInputDimensions()
    {
        Refused(new OnnxModelBuilder().Input("x", 1, 2, 1_000_000, 1_000_000).Node("Relu", ["x"], ["y"]).Output("y").ToBytes(), "Graph input 'x'", "elements");
        Refused(new OnnxModelBuilder().Input("x", 1, -3, 4).Node("Relu", ["x"], ["y"]).Output("y").ToBytes(), "invalid dimension -3");
        Refused(new OnnxModelBuilder().Input("x", 1L << 40).Node("Relu", ["x"], ["y"]).Output("y").ToBytes(), "invalid dimension");
    }

    [Fact]
    public void InitializerShapesNotBackedByData()
    {
        var m = ConvModel();
        var w = m.Graph.Initializer.First(t => t.Name == "W");
        w.RawData = ByteString.CopyFrom(w.RawData.Span[..10]);
        Refused(m.ToBytes(), "Initializer 'W'", "raw_data holds 10 bytes", "needs 216");

        m = ConvModel();
        m.Graph.Initializer.First(t => t.Name == "W").Dims[0] = 1L << 30; // claims 4 GiB, holds 216 bytes
        Refused(m.ToBytes(), "Initializer 'W'");

        m = ConvModel();
        m.Graph.Initializer.First(t => t.Name == "W").Dims[1] = -2;
        Refused(m.ToBytes(), "invalid dimension -2");

        m = ConvModel();
        var b = m.Graph.Initializer.First(t => t.Name == "B");
        b.RawData = ByteString.Empty;
        b.FloatData.Add(1f); // 1 value for shape [3]
        Refused(m.ToBytes(), "float_data holds 1 values", "needs 3");
    }

    [Fact]
    public void CycleIsReported()
    {
        var bytes = new OnnxModelBuilder().Input("x", 1, 4)
            .Node("Add", ["x", "b"], ["a"], "first")
            .Node("Relu", ["a"], ["b"], "second")
            .Output("b", 1, 4).ToBytes();
        Refused(bytes, "cycle", "first");
    }

    [Fact]
    public void DanglingNamesAndMissingInitializers()
    {
        Refused(new OnnxModelBuilder().Input("x", 1, 4).Node("Relu", ["nowhere"], ["y"], "r").Output("y").ToBytes(),
            "'r' (Relu) reads 'nowhere'", "no node, graph input or initializer");

        var m = ConvModel();
        m.Graph.Initializer.Remove(m.Graph.Initializer.First(t => t.Name == "W"));
        Refused(m.ToBytes(), "'conv' (Conv) reads 'W'");

        Refused(new OnnxModelBuilder().Input("x", 1, 4).Node("Relu", ["x"], ["y"]).Output("missing").ToBytes(), "Graph output 'missing' is never computed");
        Refused(new OnnxModelBuilder().Input("x", 1, 4).Node("Relu", ["x"], ["y"], "a").Node("Relu", ["x"], ["y"], "b").Output("y").ToBytes(), "produced by two nodes");
    }

    [Fact]
    public void UnsupportedOperatorNamesOpNodeAndOpset()
    {
        var bytes = new OnnxModelBuilder(15).Input("x", 1, 4).Node("FancyOp", ["x"], ["y"], "my_node").Output("y").ToBytes();
        Refused(bytes, "FancyOp", "my_node", "opset 15");

        var custom = new OnnxModelBuilder(13).Input("x", 1, 4).Node("Gelu", ["x"], ["y"], "g").Output("y");
        custom.Graph.Node[0].Domain = "com.microsoft";
        Refused(custom.ToBytes(), "com.microsoft.Gelu", "'g'", "opset 13");
    }

    [Fact]
    public void UnsupportedOpsets()
    {
        var m = ConvModel();
        m.Model.OpsetImport[0].Version = 99;
        Refused(m.ToBytes(), "Opset 99");
        m.Model.OpsetImport.Clear();
        Refused(m.ToBytes(), "no opset");
    }

    [Fact]
    public void UnsupportedElementTypes()
    {
        var m = ConvModel();
        m.Graph.Initializer.First(t => t.Name == "B").DataType = 11; // DOUBLE
        Refused(m.ToBytes(), "Initializer 'B'", "DOUBLE");

        Refused(new OnnxModelBuilder().TypedInput("x", 16, 1, 4).Node("Relu", ["x"], ["y"]).Output("y").ToBytes(), "Graph input 'x'", "BFLOAT16");
        Refused(new OnnxModelBuilder().Input("x", 1, 4).Node("Cast", ["x"], ["y"], "c", ("to", 11)).Output("y").ToBytes(), "DOUBLE");
    }

    [Fact]
    public void WrongAttributeTypesAndValues()
    {
        var m = ConvModel();
        m.Graph.Node[0].Attribute.Add(OnnxModelBuilder.Attribute("group", 2.5f));
        Refused(m.ToBytes(), "'conv'", "attribute 'group' should be INT");

        m = ConvModel();
        m.Graph.Node[0].Attribute[0] = OnnxModelBuilder.Attribute("pads", new[] { 1, 1, 1 });
        Refused(m.ToBytes(), "pads has 3 values");

        m = ConvModel();
        m.Graph.Node[0].Attribute.Add(OnnxModelBuilder.Attribute("strides", new[] { 0, 1 }));
        Refused(m.ToBytes(), "strides");

        m = ConvModel();
        m.Graph.Node[0].Attribute.Add(OnnxModelBuilder.Attribute("group", 5));
        Refused(m.ToBytes(), "'conv'", "groups");
    }

    [Fact]
    public void LoadTimeComputationsAreBounded()
    {
        var bytes = new OnnxModelBuilder().Input("x", 1)
            .Initializer("s", new Tensor([30000L, 30000L], 2))
            .Node("ConstantOfShape", ["s"], ["big"], "cos")
            .Node("Add", ["x", "big"], ["y"])
            .Output("y").ToBytes();
        Refused(bytes, "'cos'", "900000000 elements");

        var range = new OnnxModelBuilder().Input("x", 1)
            .Initializer("a", new Tensor([0L], [])).Initializer("b", new Tensor([long.MaxValue], [])).Initializer("d", new Tensor([1L], []))
            .Node("Range", ["a", "b", "d"], ["r"], "range").Node("Cast", ["r"], ["f"], "cast", ("to", 1)).Node("Add", ["x", "f"], ["y"]).Output("y").ToBytes();
        Refused(range, "'range'", "limit");
    }

    [Fact]
    public void LoadTimeBudgetIsForTheWholeModel()
    {
        // Five ConstantOfShape([1000]) each within a 4000-element limit, together beyond it.
        var options = new OnnxImportOptions { MaxFoldedElements = 4000 };
        var m = new OnnxModelBuilder().Input("x", 1).Initializer("shape", new Tensor([1000L], 1))
            .Initializer("zero", new Tensor([0L], 1)).Initializer("one", new Tensor([1L], 1));
        string acc = "x";
        for (int i = 0; i < 5; i++)
        {
            m.Node("ConstantOfShape", ["shape"], [$"c{i}"], $"cos{i}");
            m.Node("Slice", [$"c{i}", "zero", "one", "zero"], [$"s{i}"], $"slice{i}");
            m.Node("Add", [acc, $"s{i}"], [$"a{i}"], $"add{i}");
            acc = $"a{i}";
        }
        var bytes = m.Node("Relu", [acc], ["y"]).Output("y").ToBytes();
        var e = Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(bytes, options));
        Assert.Contains("'cos3'", e.Message);
        Assert.Contains("for the whole model", e.Message);
        OnnxImporter.Load(bytes, new OnnxImportOptions { MaxFoldedElements = 5005 }); // 5 x 1000 plus the 5 one-element slices

        // Casts and folded arithmetic count too: each Cast of a 3000-element constant copies it.
        var casts = new OnnxModelBuilder().Input("x", 1).Initializer("c", new Tensor(new long[3000], 3000))
            .Initializer("zero", new Tensor([0L], 1)).Initializer("one", new Tensor([1L], 1))
            .Node("Cast", ["c"], ["f1"], "cast1", ("to", 1)).Node("Cast", ["c"], ["i1"], "cast2", ("to", 6))
            .Node("Cast", ["i1"], ["f2"], "cast3", ("to", 1)).Node("Add", ["f1", "f2"], ["f"], "sum")
            .Node("Slice", ["f", "zero", "one", "zero"], ["s"]).Node("Add", ["x", "s"], ["y"]).Output("y").ToBytes();
        Assert.Contains("'cast2'", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(casts, new OnnxImportOptions { MaxFoldedElements = 5000 })).Message);
    }

    [Fact]
    public void NodesNoOutputDependsOnAreNotComputed()
    {
        // Twelve ConstantOfShape([2^26]) whose results nobody reads: within the default budget only if skipped.
        var g = OnnxImporter.Load(HostileCorpusTests.Amplifier(12, 26, live: false));
        Assert.Single(g.Nodes);
        // A thousand unused Gathers of 4096 indices on a runtime tensor: no expansion at all.
        Assert.Single(OnnxImporter.Load(HostileCorpusTests.Gathers(1000, live: false)).Nodes);
        // Dead nodes are still checked for support.
        var unsupported = new OnnxModelBuilder().Input("x", 1).Node("FancyOp", ["x"], ["dead"], "fancy").Node("Relu", ["x"], ["y"]).Output("y").ToBytes();
        Refused(unsupported, "FancyOp", "'fancy'");
    }

    [Fact]
    public void EmittedNodesAreBoundedPerModel()
    {
        // Gathers on runtime data expand into one Slice per index: 4096 for the whole model.
        Refused(HostileCorpusTests.Gathers(2, live: true), "'g1'", "4096 indices", "limit of 4096 per model");
        var one = OnnxImporter.Load(HostileCorpusTests.Gathers(1, live: true));
        Assert.Equal([4096], one.Outputs[0].Shape);

        // Max over 20001 inputs becomes 20000 binary nodes: more than 4 per file node plus 10000.
        var inputs = Enumerable.Repeat("x", 20_001).ToArray();
        Refused(new OnnxModelBuilder().Input("x", 1).Node("Max", inputs, ["y"], "max").Output("y").ToBytes(), "'max'", "graph nodes");
        Assert.Equal(999, OnnxImporter.Load(new OnnxModelBuilder().Input("x", 1).Node("Max", inputs[..1000], ["y"], "max").Output("y").ToBytes()).Nodes.Count);
    }

    [Fact]
    public void TileRepeatsAreBoundedBeforeAnythingIsAllocated()
    {
        var i64 = (long[] v) => new Tensor(v, v.Length);
        byte[] Tile(long[] repeats, params int[] shape) => new OnnxModelBuilder().Input("x", 1)
            .Initializer("c", Tensor.Zeros(shape)).Initializer("r", i64(repeats))
            .Node("Tile", ["c", "r"], ["t"], "tile").Node("Add", ["x", "t"], ["y"], "add").Output("y").ToBytes();
        Refused(Tile([long.MaxValue], 3), "'tile'", "are invalid");
        Refused(Tile([-1], 3), "'tile'", "are invalid");
        Refused(Tile([2], 2, 2), "'tile'", "1 repeats for an input of rank 2");
        Refused(Tile([int.MaxValue], 3), "'tile'", "gives dimension 6442450941 on axis 0");
        Refused(Tile([1 << 15, 1 << 15], 2, 2), "'tile'", "more than");
        var e = Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(Tile([4096], 1000), new OnnxImportOptions { MaxFoldedElements = 1_000_000 }));
        Assert.Contains("MaxFoldedElements", e.Message);
    }

    [Fact]
    public void RanksAboveTheKernelsMaximumAreRefused()
    {
        var i64 = (long[] v) => new Tensor(v, v.Length);
        // Unsqueeze by 3,000,000 axes (from a folded Range): refused before any rank-sized array is built.
        var bomb = new OnnxModelBuilder().Input("x", 2)
            .Initializer("s", new Tensor([1L], [])).Initializer("l", new Tensor([3_000_001L], [])).Initializer("d", new Tensor([1L], []))
            .Node("Range", ["s", "l", "d"], ["axes"], "range").Node("Unsqueeze", ["x", "axes"], ["y"], "unsq").Output("y").ToBytes();
        Refused(bomb, "'unsq'", "rank 3000001", $"at most {Shape.MaxRank}");

        Refused(new OnnxModelBuilder().Input("x", 2).Initializer("t", i64([1, 1, 1, 1, 1, 1, 1, 1, 2]))
            .Node("Reshape", ["x", "t"], ["y"], "reshape").Output("y").ToBytes(), "'reshape'", "rank 9");
        Refused(new OnnxModelBuilder().Input("x", 2).Initializer("c", new Tensor([1f], 1)).Initializer("t", i64([1, 1, 1, 1, 1, 1, 1, 1, 2]))
            .Node("Expand", ["c", "t"], ["e"], "expand").Node("Add", ["x", "e"], ["y"]).Output("y").ToBytes(), "'expand'", "rank 9");
        Refused(new OnnxModelBuilder().Input("x", 2).Initializer("t", i64([1, 1, 1, 1, 1, 1, 1, 1, 2]))
            .Node("ConstantOfShape", ["t"], ["e"], "cos").Node("Add", ["x", "e"], ["y"]).Output("y").ToBytes(), "'cos'", "rank 9");
        Refused(new OnnxModelBuilder().Input("x", 1, 1, 1, 1, 1, 1, 1, 1, 2).Node("Relu", ["x"], ["y"]).Output("y").ToBytes(), "Graph input 'x'", "rank 9");
        var rank9 = MobileNetSharp.Onnx.Export.TensorWriter.Write(Tensor.Zeros(2), "c");
        rank9.Dims.Clear();
        rank9.Dims.AddRange([1, 1, 1, 1, 1, 1, 1, 1, 2]);
        Refused(new OnnxModelBuilder().Input("x", 2).Initializer(rank9).Node("Add", ["x", "c"], ["y"]).Output("y").ToBytes(), "Initializer 'c'", "rank 9");
        // Rank 8 itself is fine.
        Assert.Equal(8, OnnxImporter.Load(new OnnxModelBuilder().Input("x", 2).Initializer("axes", i64([0, 1, 2, 3, 4, 5, 6]))
            .Node("Unsqueeze", ["x", "axes"], ["y"]).Output("y").ToBytes()).Outputs[0].Rank);
    }

    [Fact]
    public void LoadTimeEqualFollowsIeee()
    {
        // Where(Equal(NaN, NaN), 1, 2) + x: NaN equals nothing, so 2.
        using var session = new MobileNetSharp.Runtime.InferenceSession(OnnxImporter.Load(HostileCorpusTests.EqualNaN().ToBytes()));
        Assert.Equal([2f], session.Run(new Tensor([0f], 1))[0].Floats);

        // +0 equals -0; integers compare by value with broadcasting.
        var g = OnnxImporter.Load(new OnnxModelBuilder().Input("x", 3)
            .Initializer("a", new Tensor([0f, -0f, 1f], 3)).Initializer("b", new Tensor([-0f], 1))
            .Initializer("i", new Tensor([1L, 2L, 3L], 3)).Initializer("j", new Tensor([2L], []))
            .Initializer("one", new Tensor([1f], 1)).Initializer("zero", new Tensor([0f], 1))
            .Node("Equal", ["a", "b"], ["e1"]).Node("Where", ["e1", "one", "zero"], ["w1"])
            .Node("Equal", ["i", "j"], ["e2"]).Node("Where", ["e2", "one", "zero"], ["w2"])
            .Node("Mul", ["w1", "one"], ["m1"]).Node("Add", ["x", "m1"], ["y1"]).Node("Add", ["y1", "w2"], ["y"]).Output("y").ToBytes());
        using var s2 = new MobileNetSharp.Runtime.InferenceSession(g);
        Assert.Equal([1f, 2f, 0f], s2.Run(new Tensor(new float[3], 3))[0].Floats);
    }

    [Fact]
    public void ShapeInputThatDependsOnRuntimeData()
    {
        var bytes = new OnnxModelBuilder().Input("x", 1, 4).TypedInput("shape", 7, 2)
            .Node("Reshape", ["x", "shape"], ["y"], "reshape").Output("y").ToBytes();
        var e = Assert.Throws<ConstantInputRequiredException>(() => OnnxImporter.Load(bytes));
        Assert.Contains("'reshape'", e.Message);
        Assert.Equal(["shape"], e.RuntimeInputs);
        var g = OnnxImporter.Load(bytes, new OnnxImportOptions { Constants = { ["shape"] = new Tensor([2L, 2L], 2) } });
        Assert.Equal([2, 2], g.Outputs[0].Shape);
    }

    [Fact]
    public void NonTensorInputsAreRefused()
    {
        var m = new OnnxModelBuilder().Input("x", 1).Node("Identity", ["x"], ["y"]).Output("y");
        m.Graph.Input[0].Type = new TypeProto { SequenceType = new TypeProto.Types.Opaque() };
        Refused(m.ToBytes(), "Graph input 'x'", "only tensors");
    }
}
