using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Onnx;

/// <summary>
/// Resize/Upsample, ConvTranspose and DepthToSpace/SpaceToDepth as whole-model features: a small decoder against
/// ONNX Runtime at two input sizes, and hostile attribute values refused with the node and the attribute named
/// before anything large is allocated.
/// </summary>
public class DecoderOpsTests
{
    /// <summary>conv → ConvTranspose s2 (+Relu) → Resize ×2 linear → conv → DepthToSpace; weights seeded, so every size builds the same model.</summary>
    private static ModelGraph Decoder(int h, int w)
    {
        var b = new GraphBuilder("decoder", 11);
        var x = b.Input("image", 1, 3, h, w);
        x = b.Activate(b.Conv(x, 8, 3, bias: true), Activation.Relu);
        var wt = b.Constant("deconv_w", Tensor.Random(3, [8, 6, 4, 4], -0.3f, 0.3f));
        var bias = b.Constant("deconv_b", Tensor.Random(4, [6]));
        x = b.Activate(b.Add(new ConvTranspose(4, 4, 2, 2, 1, 1, 1, 1), "deconv", x, wt, bias), Activation.Relu);
        x = b.Add(new Graph.Resize(ResizeMode.Linear, Scales: [1f, 1f, 2f, 2f]), "resize", x);
        x = b.Conv(x, 12, 3, bias: true, kind: "head");
        x = b.Add(new Graph.DepthToSpace(2, DepthToSpaceMode.Crd), "d2s", x);
        b.Output(x);
        return b.Graph;
    }

    [Fact]
    public void DecoderMatchesOrtAtTwoInputSizes()
    {
        var graph = Decoder(10, 12);
        Assert.Equal([1, 3, 80, 96], graph.Outputs[0].Shape);
        using var session = new InferenceSession(graph, new SessionOptions { Threads = 2 });
        foreach (var (h, w) in new[] { (10, 12), (7, 9) })
        {
            var input = Tensor.Random(h * 100 + w, [1, 3, h, w]);
            var sized = Decoder(h, w);
            var expected = OrtRunner.Run(OnnxExporter.ToBytes(sized), [new("image", input)])[sized.Outputs[0].Name];
            Assert.Equal([1, 3, 8 * h, 8 * w], expected.Shape);
            Compare.Close(expected, session.Run(input)[0], 1e-4, $"decoder {h}x{w} vs ORT");
        }
        // The imported export runs the same in our session (import -> op records -> kernels).
        var back = OnnxImporter.Load(OnnxExporter.ToBytes(graph));
        using var imported = new InferenceSession(back, new SessionOptions { Threads = 2 });
        var x0 = Tensor.Random(5, [1, 3, 10, 12]);
        Compare.Close(session.Run(x0)[0], imported.Run(x0)[0], 1e-6, "decoder round trip");
    }

    [Fact]
    public void ConvTransposeCostCountsEveryInputTimesItsKernel()
    {
        var layer = CostModel.Analyze(Decoder(10, 12)).Layers.Single(l => l.Op.StartsWith("ConvTranspose"));
        Assert.Equal(8L * 10 * 12 * 6 * 16, layer.Macs);
        Assert.Equal(8L * 6 * 16 + 6, layer.Params);
        Assert.Equal(LayerKind.StandardConv, layer.Kind);
    }

    /// <summary>
    /// Spellings the backend data lacks (libonnx-testdata stops at opset 17): each file runs in ONNX Runtime as it is,
    /// in our session, and exported by us back into ONNX Runtime.
    /// </summary>
    public static TheoryData<string> Spellings() => new(SpellingModels.Keys);

    private static readonly Dictionary<string, Func<OnnxModelBuilder>> SpellingModels = new()
    {
        // Opset-18 axes with keep_aspect_ratio_policy: sizes for H, W only, fitted inside (outside) them.
        ["resize18_axes_not_larger"] = () => Single(18, [1, 2, 6, 10], "Resize", ["x", "", "", "sizes"], new Tensor([7L, 9L], 2),
            ("mode", "linear"), ("axes", new[] { 2, 3 }), ("keep_aspect_ratio_policy", "not_larger")),
        ["resize18_axes_not_smaller"] = () => Single(18, [1, 2, 6, 10], "Resize", ["x", "", "", "sizes"], new Tensor([7L, 9L], 2),
            ("mode", "nearest"), ("axes", new[] { 2, 3 }), ("keep_aspect_ratio_policy", "not_smaller")),
        ["resize18_axes_scales"] = () => Single(18, [1, 3, 5, 4], "Resize", ["x", "", "scales"], new Tensor([2.5f, 0.75f], 2),
            ("mode", "cubic"), ("axes", new[] { 3, 2 })),
        ["resize19_half_pixel_symmetric"] = () => Single(19, [1, 2, 5, 7], "Resize", ["x", "", "scales"], new Tensor([1f, 1f, 1.7f, 0.6f], 4),
            ("mode", "linear"), ("coordinate_transformation_mode", "half_pixel_symmetric")),
        ["resize13_rank3_linear"] = () => Single(13, [2, 5, 6], "Resize", ["x", "", "scales"], new Tensor([1f, 1.5f, 2f], 3), ("mode", "linear")),
        ["resize13_nchw_channels"] = () => Single(13, [1, 4, 3, 3], "Resize", ["x", "", "", "sizes"], new Tensor([1L, 8L, 3L, 5L], 4), ("mode", "nearest")),
        // Opset-10 Resize and Upsample: asymmetric, floor when upsampling, ceil when downsampling (one axis each way).
        ["resize10_nearest_mixed"] = () => Single(10, [1, 2, 7, 5], "Resize", ["x", "scales"], new Tensor([1f, 1f, 0.6f, 1.8f], 4), ("mode", "nearest")),
        ["resize10_linear"] = () => Single(10, [1, 2, 4, 5], "Resize", ["x", "scales"], new Tensor([1f, 1f, 2f, 1.5f], 4), ("mode", "linear")),
        ["upsample9_nearest"] = () => Single(9, [1, 3, 4, 3], "Upsample", ["x", "scales"], new Tensor([1f, 1f, 2f, 3f], 4), ("mode", "nearest")),
        ["upsample7_linear"] = () => Single(7, [1, 3, 4, 3], "Upsample", ["x"], null, ("mode", "linear"), ("scales", new[] { 1f, 1f, 2f, 2f })),
        ["convtranspose_groups_dilations"] = () => new OnnxModelBuilder(13).Input("x", 2, 4, 5, 4)
            .Initializer("W", Tensor.Random(3, [4, 3, 3, 2])).Initializer("B", Tensor.Random(4, [6]))
            .Node("ConvTranspose", ["x", "W", "B"], ["y"], "deconv", ("group", 2), ("strides", new[] { 2, 3 }), ("dilations", new[] { 2, 1 }),
                ("pads", new[] { 1, 0, 2, 1 }), ("output_padding", new[] { 1, 2 }))
            .Output("y"),
        ["convtranspose_same_lower"] = () => new OnnxModelBuilder(13).Input("x", 1, 3, 5, 6)
            .Initializer("W", Tensor.Random(5, [3, 4, 3, 4]))
            .Node("ConvTranspose", ["x", "W"], ["y"], "deconv", ("strides", new[] { 2, 2 }), ("auto_pad", "SAME_LOWER"))
            .Output("y"),
        ["space_to_depth_after_conv"] = () => new OnnxModelBuilder(13).Input("x", 1, 3, 6, 8)
            .Initializer("W", Tensor.Random(6, [4, 3, 3, 3]))
            .Node("Conv", ["x", "W"], ["c"], "conv", ("pads", new[] { 1, 1, 1, 1 }))
            .Node("SpaceToDepth", ["c"], ["s"], "s2d", ("blocksize", 2))
            .Node("DepthToSpace", ["s"], ["y"], "d2s", ("blocksize", 2), ("mode", "DCR"))
            .Output("y"),
    };

    private static OnnxModelBuilder Single(int opset, int[] shape, string op, string[] inputs, Tensor? parameter, params (string, object)[] attributes)
    {
        var m = new OnnxModelBuilder(opset).Input("x", shape.Cast<object>().ToArray());
        if (parameter is not null) m.Initializer(inputs[^1], parameter);
        return m.Node(op, inputs, ["y"], "node", attributes).Output("y");
    }

    [Theory]
    [MemberData(nameof(Spellings))]
    public void SpellingMatchesOrtAsWrittenAndAsExported(string name)
    {
        var bytes = SpellingModels[name]().ToBytes();
        var graph = OnnxImporter.Load(bytes);
        var input = Tensor.Random(17, graph.Inputs[0].Shape);
        var expected = OrtRunner.Run(bytes, [new("x", input)])["y"];
        using var session = new InferenceSession(graph, new SessionOptions { Threads = 2 });
        var ours = session.Run(input)[0];
        Assert.Equal(expected.Shape, ours.Shape);
        Compare.Close(expected, ours, 1e-5, $"{name}: ours vs ORT");
        Compare.Close(expected, OrtRunner.Run(OnnxExporter.ToBytes(graph), [new("x", input)])["y"], 1e-5, $"{name}: our export in ORT");
    }

    [Fact]
    public void NegativeResizeAxesCountFromTheBack()
    {
        // ONNX Runtime 1.31 leaves the input unresized for negative axes; the spec counts them from the back.
        var negative = Single(18, [1, 2, 6, 10], "Resize", ["x", "", "", "sizes"], new Tensor([7L, 9L], 2),
            ("mode", "nearest"), ("axes", new[] { -2, -1 }), ("keep_aspect_ratio_policy", "not_smaller"));
        var positive = Single(18, [1, 2, 6, 10], "Resize", ["x", "", "", "sizes"], new Tensor([7L, 9L], 2),
            ("mode", "nearest"), ("axes", new[] { 2, 3 }), ("keep_aspect_ratio_policy", "not_smaller"));
        var a = OnnxImporter.Load(negative.ToBytes());
        Assert.Equal([1, 2, 7, 12], a.Outputs[0].Shape);
        var x = Tensor.Random(3, [1, 2, 6, 10]);
        using var s1 = new InferenceSession(a);
        using var s2 = new InferenceSession(OnnxImporter.Load(positive.ToBytes()));
        Compare.Close(s2.Run(x)[0], s1.Run(x)[0], 0, "axes [-2,-1] vs [2,3]");
    }

    /// <summary>x[1,4,4,4] → ConvTranspose(W[4,8,3,3], B) s2 → Relu → Resize ×2 linear → DepthToSpace CRD → SpaceToDepth → y.</summary>
    internal static OnnxModelBuilder DecoderModel(int opset = 13) => new OnnxModelBuilder(opset)
        .Input("x", 1, 4, 4, 4)
        .Initializer("W", Tensor.Random(1, [4, 8, 3, 3]))
        .Initializer("B", Tensor.Random(2, [8]))
        .Initializer("scales", new Tensor([1f, 1f, 2f, 2f], 4))
        .Node("ConvTranspose", ["x", "W", "B"], ["t"], "deconv", ("strides", new[] { 2, 2 }), ("pads", new[] { 1, 1, 1, 1 }), ("output_padding", new[] { 1, 1 }))
        .Node("Relu", ["t"], ["r"], "relu")
        .Node("Resize", ["r", "", "scales"], ["u"], "resize", ("mode", "linear"))
        .Node("DepthToSpace", ["u"], ["d"], "d2s", ("blocksize", 2), ("mode", "CRD"))
        .Node("SpaceToDepth", ["d"], ["y"], "s2d", ("blocksize", 2))
        .Output("y", 1, 8, 16, 16);

    private static ModelFormatException Refused(OnnxModelBuilder m, params string[] fragments)
    {
        var e = Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(m.ToBytes()));
        foreach (var f in fragments) Assert.Contains(f, e.Message);
        return e;
    }

    private static OnnxModelBuilder WithScales(float[] scales)
    {
        var m = DecoderModel();
        m.Graph.Initializer.Remove(m.Graph.Initializer.Single(t => t.Name == "scales"));
        return m.Initializer("scales", new Tensor(scales, scales.Length));
    }

    private static OnnxModelBuilder WithAttribute(string node, string name, object value) => WithAttribute(DecoderModel(), node, name, value);

    private static OnnxModelBuilder WithAttribute(OnnxModelBuilder m, string node, string name, object value)
    {
        var n = m.Graph.Node.Single(n => n.Name == node);
        if (n.Attribute.FirstOrDefault(a => a.Name == name) is { } old) n.Attribute.Remove(old);
        n.Attribute.Add(OnnxModelBuilder.Attribute(name, value));
        return m;
    }

    [Fact]
    public void SeedModelLoadsAndRuns()
    {
        var (outcome, error) = ModelExercise.Run(DecoderModel().ToBytes());
        Assert.True(outcome == ModelExercise.Outcome.Ran, error?.Message);
    }

    [Fact]
    public void AbsurdResizeScalesAreRefused()
    {
        foreach (var s in new[] { float.NaN, -2f, 0f, float.PositiveInfinity })
            Refused(WithScales([1f, 1f, s, 2f]), "'resize'", "scales", "positive and finite");
        // Finite but far too large: one axis past int, or the whole output past the element limit.
        Refused(WithScales([1f, 1f, 1e9f, 1f]), "'resize'", "too large");
        Refused(WithScales([1f, 1f, 1e5f, 1e5f]), "'resize'", "elements");
        Refused(WithScales([1f, 2f, 2f]), "'resize'", "3 values for 4 axes");

        var sizes = DecoderModel().Initializer("sizes", new Tensor([1L, 8L, 1L << 20, 1L << 20], 4));
        sizes.Graph.Node.Single(n => n.Name == "resize").Input.Clear();
        sizes.Graph.Node.Single(n => n.Name == "resize").Input.AddRange(["r", "", "", "sizes"]);
        Refused(sizes, "'resize'", "elements");
    }

    [Fact]
    public void ResizeAttributesOutsideTheSpecAreNamed()
    {
        Refused(WithAttribute(WithScales([1f, 1f, 0.5f, 0.5f]), "resize", "antialias", 1), "'resize'", "antialias=1");
        // Upscaling never engages the filter, and nearest resizing has none: the flag changes nothing there.
        OnnxImporter.Load(WithAttribute("resize", "antialias", 1).ToBytes());
        Refused(WithAttribute("resize", "mode", "bicubic"), "mode 'bicubic'");
        Refused(WithAttribute("resize", "coordinate_transformation_mode", "sideways"), "coordinate_transformation_mode 'sideways'");
        Refused(WithAttribute("resize", "keep_aspect_ratio_policy", "not_larger"), "keep_aspect_ratio_policy");
        var nearest = WithAttribute(WithScales([1f, 1f, 0.5f, 0.5f]), "resize", "antialias", 1);
        nearest.Graph.Node.Single(n => n.Name == "resize").Attribute.Single(a => a.Name == "mode").S = Google.Protobuf.ByteString.CopyFromUtf8("nearest");
        OnnxImporter.Load(nearest.ToBytes());
    }

    [Fact]
    public void ResizeTablesAreBoundedByTheArenaLimitBeforeTheyAreBuilt()
    {
        // 2^28 output elements pass the shape check; the 64 MiB session refuses them before any table exists.
        var m = new OnnxModelBuilder(13).Input("x", 1, 1, 1, 16).Initializer("s", new Tensor([1f, 1f, 1f, 1 << 24], 4))
            .Node("Resize", ["x", "", "s"], ["y"], "resize", ("mode", "cubic")).Output("y");
        var graph = OnnxImporter.Load(m.ToBytes());
        var e = Assert.Throws<GraphException>(() => new InferenceSession(graph, ModelExercise.Session));
        Assert.Contains("MaxArenaBytes", e.Message);
    }

    [Fact]
    public void AbsurdConvTransposeGeometryIsRefused()
    {
        Refused(WithAttribute("deconv", "output_padding", new[] { 1 << 20, 1 }), "'deconv'", "output_padding");
        Refused(WithAttribute("deconv", "output_padding", new[] { 3, 1 }), "'deconv'", "output_padding", "less than the stride");
        Refused(WithAttribute("deconv", "strides", new[] { 65536, 65536 }), "'deconv'", "elements");
        Refused(WithAttribute("deconv", "strides", new[] { int.MaxValue, 1 }), "'deconv'", "strides");
        Refused(WithAttribute("deconv", "output_shape", new[] { 1 << 30, 1 << 30 }), "'deconv'", "elements");
        Refused(WithAttribute("deconv", "output_shape", new[] { 0, 4 }), "'deconv'", "output_shape");
        Refused(WithAttribute("deconv", "pads", new[] { 9, 9, 9, 9 }), "'deconv'", "crop more");
        Refused(WithAttribute("deconv", "group", 3), "'deconv'", "groups");

        var volumetric = new OnnxModelBuilder(13).Input("x", 1, 2, 3, 3, 3).Initializer("W", Tensor.Random(1, [2, 2, 2, 2, 2]))
            .Node("ConvTranspose", ["x", "W"], ["y"], "deconv3d").Output("y");
        Refused(volumetric, "'deconv3d'", "3 spatial axes", "rank 5");
    }

    [Fact]
    public void BadBlockSizesAreRefused()
    {
        Refused(WithAttribute("d2s", "blocksize", 0), "'d2s'", "blocksize must be positive");
        Refused(WithAttribute("d2s", "blocksize", -2), "'d2s'", "blocksize must be positive");
        Refused(WithAttribute("d2s", "blocksize", 3), "'d2s'", "not divisible by blocksize² = 9");
        Refused(WithAttribute("d2s", "blocksize", 1 << 20), "'d2s'", "not divisible");
        Refused(WithAttribute("s2d", "blocksize", 3), "'s2d'", "divisible by the blocksize 3");
        Refused(WithAttribute("s2d", "blocksize", 0), "'s2d'", "blocksize must be positive");
        var missing = DecoderModel();
        missing.Graph.Node.Single(n => n.Name == "d2s").Attribute.Clear();
        Refused(missing, "'d2s'", "blocksize attribute is required");
    }

    [Fact]
    public void DepthToSpaceFoldsOnConstantsOfAnyType()
    {
        var data = Enumerable.Range(0, 16).Select(i => (long)i).ToArray();
        var m = new OnnxModelBuilder(13).Input("x", 1, 1, 4, 4)
            .Initializer("c", new Tensor(data, 1, 4, 2, 2))
            .Node("DepthToSpace", ["c"], ["d"], "d2s", ("blocksize", 2))
            .Node("Cast", ["d"], ["f"], "cast", ("to", 1))
            .Node("Add", ["x", "f"], ["y"], "add").Output("y");
        var g = OnnxImporter.Load(m.ToBytes());
        Assert.DoesNotContain(g.Nodes, n => n.Op is Graph.DepthToSpace);
        using var session = new InferenceSession(g);
        // DCR: y[0, 0, h·2 + i, w·2 + j] = x[0, i·2 + j, h, w] → row 0 is x[0,0,0,0], x[0,1,0,0], x[0,0,0,1], x[0,1,0,1].
        Assert.Equal([0f, 4f, 1f, 5f, 8f, 12f, 9f, 13f, 2f, 6f, 3f, 7f, 10f, 14f, 11f, 15f], session.Run(Tensor.Zeros(1, 1, 4, 4))[0].Floats);
    }
}
