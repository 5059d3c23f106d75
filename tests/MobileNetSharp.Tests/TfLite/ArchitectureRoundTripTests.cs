using MobileNetSharp.Graph;
using MobileNetSharp.Models;
using MobileNetSharp.Passes;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.TfLite;
using Xunit.Abstractions;
using B = MobileNetSharp.Tests.TfLite.TfLiteModelBuilder;

namespace MobileNetSharp.Tests.TfLite;

/// <summary>
/// Our own architectures written as the TFLite graphs a converter would make (NHWC, OHWI weights, explicit PAD
/// before VALID convolutions, fused activations, MEAN + RESHAPE + FULLY_CONNECTED head), by a test-side writer
/// that shares nothing with the importer, then imported: the result must agree with the original graph.
/// </summary>
public class ArchitectureRoundTripTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("mobilenet_v1")]
    [InlineData("mobilenet_v2")]
    public void ImportedTfLiteAgreesWithTheOriginalGraph(string arch)
    {
        var original = ModelZoo.Create(arch, new ModelOptions(Width: 0.5f, Resolution: 96, Classes: 10));
        var tflite = Write(original);
        var imported = TfLiteImporter.Load(tflite);
        var x = Tensor.Random(3, [1, 3, 96, 96]);
        using var a = new InferenceSession(original);
        using var b = new InferenceSession(imported);
        var expected = a.Run(x)[0];
        var nhwc = new Tensor(Permute(x.Floats, [1, 3, 96, 96], [0, 2, 3, 1]), 1, 96, 96, 3);
        var actual = b.Run(nhwc)[0];
        Assert.Equal(expected.Shape, actual.Shape);
        float diff = expected.Floats.Zip(actual.Floats).Max(p => MathF.Abs(p.First - p.Second));
        float scale = expected.Floats.Max(MathF.Abs);
        output.WriteLine($"{arch}: {tflite.Length} bytes, {imported.Nodes.Count} nodes, max |diff| {diff:G3} of scale {scale:G3}");
        Assert.True(diff <= 1e-4f * Math.Max(1f, scale), $"differs by {diff}");
    }

    private static float[] Permute(float[] data, int[] shape, int[] perm)
    {
        var t = new Tensor(data, shape);
        var outShape = perm.Select(p => shape[p]).ToArray();
        var y = new float[data.Length];
        var strides = new int[shape.Length];
        for (int i = shape.Length - 1, s = 1; i >= 0; s *= shape[i], i--) strides[i] = s;
        var idx = new int[shape.Length];
        for (int o = 0; o < y.Length; o++)
        {
            int from = 0;
            for (int i = 0; i < idx.Length; i++) from += idx[i] * strides[perm[i]];
            y[o] = t.Floats[from];
            for (int i = idx.Length - 1; i >= 0 && ++idx[i] == outShape[i]; i--) idx[i] = 0;
        }
        return y;
    }

    private static int[] Nhwc(int[] s) => s.Length == 4 ? [s[0], s[2], s[3], s[1]] : s;

    /// <summary>Writes the graph (BN folded, activations fused) as TFLite; supports what MobileNetV1/V2 builders emit.</summary>
    private static byte[] Write(ModelGraph source)
    {
        var g = source.Clone();
        FoldBatchNorm.Run(g);
        FuseActivation.Run(g);
        g.InferShapes();
        var b = new B();
        var ids = new Dictionary<Value, int>();
        int Id(Value v) => ids.TryGetValue(v, out int i) ? i : ids[v] = b.Tensor(v.Name, Nhwc(v.Shape));
        foreach (var input in g.Inputs) Id(input);
        int n = 0;
        foreach (var node in g.Nodes)
        {
            int y = Id(node.Output);
            switch (node.Op)
            {
                case Conv c:
                {
                    var w = node.Input(1).Constant!;
                    int o = w.Shape[0], i = w.Shape[1], kh = w.Shape[2], kw = w.Shape[3];
                    bool depthwise = c.Groups > 1;
                    if (depthwise && (i != 1 || c.Groups != o)) throw new NotSupportedException("grouped conv");
                    var weights = depthwise ? Permute(w.Floats, w.Shape, [1, 2, 3, 0]) : Permute(w.Floats, w.Shape, [0, 2, 3, 1]);
                    int tw = b.Tensor($"w{n}", depthwise ? [1, kh, kw, o] : [o, kh, kw, i], weights);
                    int tb = node.OptionalInput(2) is { } bias ? b.Tensor($"b{n}", [o], bias.Constant!.Floats) : -1;
                    int x = Id(node.Input(0));
                    var (t, l, bo, r) = c.ResolvePads(node.Input(0).Shape[2], node.Input(0).Shape[3]);
                    if (t + l + bo + r > 0)
                    {
                        var s = Nhwc(node.Input(0).Shape);
                        int padded = b.Tensor($"pad{n}", [s[0], s[1] + t + bo, s[2] + l + r, s[3]]);
                        b.Op(34, [x, b.IntTensor($"pads{n}", [4, 2], [0, 0, t, bo, l, r, 0, 0])], [padded]);
                        x = padded;
                    }
                    byte act = c.Activation switch
                    {
                        { IsNone: true } => 0,
                        { Kind: ActivationKind.Relu } => 1,
                        { Kind: ActivationKind.Clip, Alpha: 0f, Beta: 6f } => 3,
                        _ => throw new NotSupportedException(c.Activation.ToString()),
                    };
                    if (depthwise)
                        b.Op(4, [x, tw, tb], [y], 2, B.Options(7, f => { f.AddByte(0, 1, 0); f.AddInt(1, c.StrideW, 0); f.AddInt(2, c.StrideH, 0); f.AddInt(3, 1, 0); f.AddByte(4, act, 0); }));
                    else
                        b.Op(3, [x, tw, tb], [y], 1, B.Options(6, f => { f.AddByte(0, 1, 0); f.AddInt(1, c.StrideW, 0); f.AddInt(2, c.StrideH, 0); f.AddByte(3, act, 0); }));
                    break;
                }
                case BinaryOp { Kind: BinaryKind.Add, Activation.IsNone: true }:
                    b.Op(0, [Id(node.Input(0)), Id(node.Input(1))], [y]);
                    break;
                case GlobalPool { Kind: PoolKind.Average }:
                    b.Op(40, [Id(node.Input(0)), b.IntTensor($"axes{n}", [2], [1, 2])], [y], 27, B.Options(1, f => f.AddBool(0, true, false)));
                    break;
                case Flatten:
                    b.Op(22, [Id(node.Input(0)), b.IntTensor($"shape{n}", [2], node.Output.Shape)], [y]);
                    break;
                case Gemm { TransB: true, Alpha: 1f, Beta: 1f, TransA: false } gemm when gemm.Activation.IsNone:
                {
                    var w = node.Input(1).Constant!;
                    int tw = b.Tensor($"fc_w{n}", w.Shape, w.Floats), tb = b.Tensor($"fc_b{n}", [w.Shape[0]], node.Input(2).Constant!.Floats);
                    b.Op(9, [Id(node.Input(0)), tw, tb], [y], 8, null);
                    break;
                }
                case Identity or Dropout: // Dropout: the identity at inference, a RESHAPE to the same shape in the file
                    b.Op(22, [Id(node.Input(0)), b.IntTensor($"shape{n}", [node.Output.Rank], Nhwc(node.Output.Shape))], [y]);
                    break;
                default: throw new NotSupportedException($"{node.Op.Describe()} in the test writer");
            }
            n++;
        }
        return b.Build(g.Inputs.Select(Id).ToArray(), g.Outputs.Select(Id).ToArray());
    }
}
