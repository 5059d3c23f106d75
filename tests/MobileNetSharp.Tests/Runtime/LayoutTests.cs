using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Runtime;

/// <summary>
/// Graphs that mix channels-last ops with axis ops (transpose, slice, split, concat, pad, reduce, softmax,
/// reshape), where the compiler's layout choices and conversions are most likely to go wrong.
/// </summary>
public class LayoutTests
{
    private static void Check(GraphBuilder b, int seed = 1)
    {
        var g = b.Graph;
        var inputs = g.Inputs.Select((v, i) => Tensor.Random(seed + i, v.Shape)).ToArray();
        var expected = ReferenceInterpreter.Run(g, inputs);
        foreach (bool optimize in new[] { false, true })
        {
            using var s = new InferenceSession(g, new SessionOptions { Threads = 2, Optimize = optimize });
            var actual = s.Run(inputs);
            for (int i = 0; i < expected.Length; i++) Compare.Close(expected[i], actual[i], 1e-4, $"output {i} (optimize={optimize})");
        }
    }

    [Fact]
    public void ChannelSplitShuffleAndConcat()
    {
        // ShuffleNet's unit: split channels, conv one half, concat, shuffle via reshape/transpose/reshape.
        var b = new GraphBuilder("shuffle", 1);
        var x = b.Conv(b.Input("x", 2, 3, 9, 9), 8, 3);
        var halves = b.Graph.Nodes.Count;
        var split = new Node("split", new Split(1, [4, 4]), [x], [new Value("a", DataType.Float32, []), new Value("c", DataType.Float32, [])]);
        foreach (var (o, s) in split.Outputs.Zip(split.Op.InferShapes(split))) o.Shape = s;
        b.Graph.Nodes.Add(split);
        var right = b.Activate(b.Conv(split.Outputs[1], 4, 3, groups: 4), Activation.Relu);
        var cat = b.Add(new Concat(1), "concat", split.Outputs[0], right);
        var r1 = b.Add(new Reshape([2, 2, 4, 9, 9]), "reshape", cat);
        var t = b.Add(new Graph.Transpose([0, 2, 1, 3, 4]), "transpose", r1);
        var r2 = b.Add(new Reshape([2, 8, 9, 9]), "reshape", t);
        b.Output(b.Conv(r2, 5, 1));
        Check(b);
    }

    [Fact]
    public void PadSliceAndTransposeAroundConvolutions()
    {
        var b = new GraphBuilder("pads", 2);
        var x = b.Conv(b.Input("x", 1, 4, 10, 12), 6, 3, stride: 2);
        x = b.Add(new Pad(PadMode.Constant, [0, 0, 1, 2, 0, 0, 2, 1], 0.5f), "pad", x);
        x = b.Conv(x, 6, 3);
        x = b.Add(new Pad(PadMode.Reflect, [0, 0, 1, 1, 0, 0, 1, 1]), "pad", x);
        x = b.Add(new Slice([1, 0], [100, -1], [2, 3], [2, 1]), "slice", x);
        var nhwc = b.Add(new Graph.Transpose([0, 2, 3, 1]), "transpose", x);
        b.Output(b.Add(new Softmax(-1), "softmax", nhwc));
        b.Output(b.Add(new Reduce(ReduceKind.Mean, [1, 3], KeepDims: false), "reduce", x));
        Check(b);
    }

    [Fact]
    public void BroadcastingAgainstChannelsLastValues()
    {
        var b = new GraphBuilder("bcast", 3);
        var x = b.Conv(b.Input("x", 2, 5, 7, 7), 6, 3);
        var bias = b.Constant("bias", Tensor.Random(9, [6, 1, 1]));
        var row = b.Constant("row", Tensor.Random(10, [7]));
        var y = b.Binary(BinaryKind.Add, x, bias);
        y = b.Binary(BinaryKind.Mul, y, row);
        var pooled = b.Add(new Reduce(ReduceKind.Mean, [2, 3], true), "se_pool", y);
        y = b.Binary(BinaryKind.Sub, y, pooled);
        y = b.Add(new Pool(PoolKind.Max, 3, 3, 2, 2, 1, 1, 1, 1, CeilMode: true), "maxpool", y);
        y = b.Add(new Pool(PoolKind.Average, 2, 2, 1, 1, 0, 0, 1, 1), "avgpool", y);
        y = b.Add(new Pool(PoolKind.Average, 3, 3, 2, 2, 1, 1, 1, 1, CeilMode: true, CountIncludePad: true), "avgpool_ceil", y);
        b.Output(b.Add(new Softmax(1), "softmax", y));
        Check(b);
    }

    [Fact]
    public void UnfoldableBatchNormAndStandaloneGemm()
    {
        var b = new GraphBuilder("misc", 4);
        var x = b.Input("x", 3, 4, 5, 5);
        var y = b.BatchNorm(b.Activate(x, Activation.Sigmoid)); // not after a conv: runs as an affine step
        y = b.Flatten(y);
        var w = b.Constant("w", Tensor.Random(2, [100, 7]));
        y = b.Add(new Gemm(Alpha: 0.5f, Beta: 2f), "gemm", y, w, b.Constant("c", Tensor.Random(3, [3, 7])));
        var z = b.Add(new Gemm(TransA: true), "gemm", y, b.Constant("m", Tensor.Random(4, [3, 2])));
        b.Output(b.Add(new Softmax(0, Log: true), "logsoftmax", z));
        Check(b);
    }
}
