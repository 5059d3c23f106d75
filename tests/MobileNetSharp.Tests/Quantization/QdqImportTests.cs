using MobileNetSharp.Graph;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Tests.Onnx;

namespace MobileNetSharp.Tests.Quantization;

/// <summary>QuantizeLinear/DequantizeLinear files: they run as ONNX Runtime runs them, and hostile parameters are named.</summary>
public class QdqImportTests
{
    /// <summary>x -> QuantizeLinear -> DequantizeLinear, the pair a QDQ model puts on every activation.</summary>
    private static byte[] RoundTrip(Tensor scale, Tensor? zeroPoint, long? axis = null, int opset = 13, int rank = 4)
    {
        object[] dims = rank == 4 ? [2, 3, 4, 5] : [7];
        var b = new OnnxModelBuilder(opset).Input("x", dims).Output("y", dims).Initializer("s", scale);
        string[] qInputs = zeroPoint is null ? ["x", "s"] : ["x", "s", "z"];
        string[] dqInputs = zeroPoint is null ? ["q", "s"] : ["q", "s", "z"];
        if (zeroPoint is not null) b.Initializer("z", zeroPoint);
        (string, object)[] attrs = axis is { } a ? [("axis", a)] : [];
        b.Node("QuantizeLinear", qInputs, ["q"], "quant", attrs);
        b.Node("DequantizeLinear", dqInputs, ["y"], "dequant", attrs);
        return b.ToBytes();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void QdqPairMatchesOnnxRuntime(bool perChannel)
    {
        var scale = perChannel ? new Tensor(new[] { 0.05f, 0.2f, 0.013f }, 3) : new Tensor(new[] { 0.07f }, []);
        var zp = perChannel ? new Tensor(DataType.UInt8, [3], new byte[] { 0, 128, 255 }) : new Tensor(DataType.UInt8, [], new byte[] { 100 });
        var model = RoundTrip(scale, zp, perChannel ? 1 : null);
        var x = Tensor.Random(5, [2, 3, 4, 5], -8, 8);
        var ours = new InferenceSession(OnnxImporter.Load(model)).Run(x)[0].Floats;
        var theirs = OrtRunner.Run(model, [new("x", x)])["y"].Floats;
        Assert.Equal(theirs, ours);
    }

    [Fact]
    public void Int8ZeroPointAndDefaultZeroPointImport()
    {
        var x = Tensor.Random(6, [7], -3, 3);
        foreach (var (zp, type) in new[] { (new Tensor(DataType.Int8, [], new sbyte[] { -5 }), DataType.Int8), ((Tensor?)null, DataType.UInt8) })
        {
            var model = RoundTrip(new Tensor(new[] { 0.02f }, []), zp, rank: 1);
            var g = OnnxImporter.Load(model);
            Assert.Equal(type, ((QuantizeLinear)g.Nodes[0].Op).Params.Type);
            Assert.Equal(OrtRunner.Run(model, [new("x", x)])["y"].Floats, new InferenceSession(g).Run(x)[0].Floats);
        }
    }

    [Theory]
    [InlineData(0f, "scale[0] is 0")]
    [InlineData(-0.5f, "scale[0] is -0.5")]
    [InlineData(float.NaN, "scale[0] is NaN")]
    public void HostileScalesAreNamed(float bad, string message)
    {
        var e = Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(RoundTrip(new Tensor(new[] { bad }, []), null, rank: 1)));
        Assert.Contains("quant", e.Message);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void MismatchedPerChannelLengthsAndBadAxesAreNamed()
    {
        var three = new Tensor(new[] { 0.1f, 0.1f, 0.1f }, 3);
        var e = Assert.ThrowsAny<Exception>(() => OnnxImporter.Load(RoundTrip(three, new Tensor(DataType.UInt8, [3], new byte[3]), axis: 2)));
        Assert.Contains("3 scales along axis 2, but that axis has length 4", e.Message);
        e = Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(RoundTrip(three, new Tensor(DataType.UInt8, [2], new byte[2]), axis: 1)));
        Assert.Contains("zero point shape [2] differs from scale shape [3]", e.Message);
        e = Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(RoundTrip(three, null, axis: 9)));
        Assert.Contains("axis", e.Message);
        e = Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(RoundTrip(three, null, axis: 1, opset: 10)));
        Assert.Contains("per-axis scales need opset 13", e.Message);
    }

    [Fact]
    public void UnsupportedTypesAreNamed()
    {
        var e = Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(RoundTrip(new Tensor(new[] { 0.1f }, []), new Tensor(DataType.Int32, [], new[] { 0 }), rank: 1)));
        Assert.Contains("quantizing to Int32 is not supported", e.Message);
        var blocked = new OnnxModelBuilder(21).Input("x", 4).Output("y", 4).Initializer("s", new Tensor(new[] { 0.1f }, []))
            .Node("QuantizeLinear", ["x", "s"], ["q"], "quant", ("block_size", 2L)).Node("DequantizeLinear", ["q", "s"], ["y"], "dq").ToBytes();
        Assert.Contains("block_size", Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(blocked)).Message);
    }
}

/// <summary>The operator form ONNX Runtime's quantizer writes (QLinearConv, com.microsoft QLinearAdd and QLinearGlobalAveragePool).</summary>
public class QOperatorImportTests
{
    private static byte[] Model()
    {
        var rng = new Random(3);
        var w = new sbyte[6 * 4 * 3 * 3];
        // 7-bit weights: with full-range ones ONNX Runtime's AVX2 uint8 x int8 kernel saturates (vpmaddubsw) and is off by up to 70 steps.
        for (int i = 0; i < w.Length; i++) w[i] = (sbyte)rng.Next(-63, 64);
        var b = new OnnxModelBuilder(13).Input("x", 1, 4, 5, 5).Output("y", 1, 6, 1, 1)
            .Initializer("xs", new Tensor([0.05f], [])).Initializer("xz", new Tensor(DataType.UInt8, [], new byte[] { 128 }))
            .Initializer("w", new Tensor(DataType.Int8, [6, 4, 3, 3], w))
            .Initializer("ws", new Tensor(Enumerable.Range(1, 6).Select(i => 0.002f * i).ToArray(), 6)).Initializer("wz", new Tensor(DataType.Int8, [6], new sbyte[6]))
            .Initializer("ys", new Tensor([0.1f], [])).Initializer("yz", new Tensor(DataType.UInt8, [], new byte[] { 100 }))
            .Initializer("bias", new Tensor(DataType.Int32, [6], new[] { 1000, -2000, 0, 37, 5000, -1 }))
            .Initializer("as", new Tensor([0.15f], [])).Initializer("az", new Tensor(DataType.UInt8, [], new byte[] { 90 }))
            .Initializer("gs", new Tensor([0.12f], [])).Initializer("gz", new Tensor(DataType.UInt8, [], new byte[] { 80 }))
            .Node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], "quant")
            .Node("QLinearConv", ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz", "bias"], ["yq"], "qconv", ("pads", new long[] { 1, 1, 1, 1 }))
            .Node("QLinearAdd", ["yq", "ys", "yz", "yq", "ys", "yz", "as", "az"], ["aq"], "qadd")
            .Node("QLinearGlobalAveragePool", ["aq", "as", "az", "gs", "gz"], ["gq"], "qgap")
            .Node("DequantizeLinear", ["gq", "gs", "gz"], ["y"], "dequant");
        b.Graph.Node[2].Domain = b.Graph.Node[3].Domain = "com.microsoft";
        b.Model.OpsetImport.Add(new MobileNetSharp.Onnx.Proto.OperatorSetIdProto { Domain = "com.microsoft", Version = 1 });
        return b.ToBytes();
    }

    [Fact]
    public void QOperatorChainMatchesOnnxRuntimeWithinOneStep()
    {
        var model = Model();
        var g = OnnxImporter.Load(model);
        Assert.Contains(g.Nodes, n => n.Op is Conv);
        Assert.Equal(4, g.Nodes.Count(n => n.Op is QuantizeLinear)); // input, conv, add, pool outputs
        int exact = 0, total = 0;
        for (int seed = 0; seed < 20; seed++)
        {
            var x = Tensor.Random(seed, [1, 4, 5, 5], -6, 6);
            var ours = new InferenceSession(g).Run(x)[0].Floats;
            var theirs = OrtRunner.Run(model, [new("x", x)])["y"].Floats;
            for (int i = 0; i < ours.Length; i++, total++)
            {
                float steps = Math.Abs(ours[i] - theirs[i]) / 0.12f;
                Assert.True(steps <= 1.001f, $"seed {seed} [{i}]: ours {ours[i]}, ORT {theirs[i]}");
                if (steps < 0.5f) exact++;
            }
        }
        Assert.True(exact >= 0.8 * total, $"only {exact} of {total} outputs equal ORT's");
    }

    [Fact]
    public void OtherDomainsAreNamed()
    {
        var b = new OnnxModelBuilder(13).Input("x", 4).Output("y", 4).Node("Gelu", ["x"], ["y"], "g");
        b.Graph.Node[0].Domain = "com.example";
        var e = Assert.ThrowsAny<ModelFormatException>(() => OnnxImporter.Load(b.ToBytes()));
        Assert.Contains("com.example.Gelu", e.Message);
    }
}
