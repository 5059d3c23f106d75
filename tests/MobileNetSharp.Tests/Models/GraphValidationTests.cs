using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Models;

public class GraphValidationTests
{
    private static Value V(string name) => new(name, DataType.Float32, [1, 4]);

    [Fact]
    public void NodesAreSortedTopologicallyEvenWhenGivenBackwards()
    {
        var g = new ModelGraph("chain");
        var x = V("x");
        g.Inputs.Add(x);
        var values = Enumerable.Range(0, 20_000).Select(i => V($"v{i}")).ToArray();
        var nodes = values.Select((v, i) => new Node($"n{i}", new ActivationOp(Activation.Relu), [i == 0 ? x : values[i - 1]], [v])).ToList();
        nodes.Reverse(); // the quadratic sort took minutes on this; the linear one takes milliseconds
        g.Nodes.AddRange(nodes);
        g.Outputs.Add(values[^1]);
        g.Validate();
        Assert.Equal("n0", g.Nodes[0].Name);
        Assert.Equal("n19999", g.Nodes[^1].Name);
    }

    [Fact]
    public void CyclesAndDanglingValuesAreNamed()
    {
        var g = new ModelGraph("cycle");
        var (a, b) = (V("a"), V("b"));
        g.Nodes.Add(new Node("first", new ActivationOp(Activation.Relu), [b], [a]));
        g.Nodes.Add(new Node("second", new ActivationOp(Activation.Relu), [a], [b]));
        g.Outputs.Add(b);
        Assert.Contains("cycle through node 'first'", Assert.Throws<GraphException>(g.Validate).Message);

        var h = new ModelGraph("dangling");
        h.Nodes.Add(new Node("lonely", new ActivationOp(Activation.Relu), [V("ghost")], [V("y")]));
        Assert.Contains("reads 'ghost'", Assert.Throws<GraphException>(h.Validate).Message);
    }
}

/// <summary>Impossible op attributes give GraphException with the node named, never an arithmetic exception or a wrong shape.</summary>
public class ImpossibleAttributeTests
{
    private static GraphException Build(Op op, params int[] shape)
    {
        var b = new GraphBuilder("bad", 1);
        var x = b.Input("x", shape);
        var w = b.Constant("w", Tensor.Random(1, [2, shape[1], 3, 3]));
        return Assert.Throws<GraphException>(() => op is Conv ? b.Add(op, "conv", x, w) : b.Add(op, "op", x));
    }

    [Fact]
    public void OverflowingDilationIsTooSmallNotAWrongShape() =>
        Assert.Contains("too small", Build(new Conv(3, 3, DilationH: int.MaxValue), 1, 2, 8, 8).Message);

    [Fact]
    public void ZeroStridesAreNamed()
    {
        Assert.Contains("stride", Build(new Conv(3, 3, StrideH: 0), 1, 2, 8, 8).Message);
        Assert.Contains("stride", Build(new Conv(3, 3, StrideH: 0, AutoPad: AutoPad.SameUpper), 1, 2, 8, 8).Message);
        Assert.Contains("stride", Build(new Pool(PoolKind.Max, 2, 2, 0, 1), 1, 2, 8, 8).Message);
    }

    [Fact]
    public void PadsBeyondIntAreRefused() =>
        Assert.Contains("out of range", Build(new Pad(PadMode.Constant, [0, 0, 0, -(1L << 40), 0, 0, 0, 1L << 40]), 1, 2, 8, 8).Message);

    [Fact]
    public void WrongOutputCountsAndRepeatedOutputsAreRefused()
    {
        var g = new ModelGraph("outs");
        var x = new Value("x", DataType.Float32, [1, 4]);
        g.Inputs.Add(x);
        var (a, b) = (new Value("a", DataType.Float32, []), new Value("b", DataType.Float32, []));
        g.Nodes.Add(new Node("relu", new ActivationOp(Activation.Relu), [x], [a, b]));
        g.Outputs.Add(a);
        Assert.Contains("has 2 outputs", Assert.Throws<GraphException>(g.InferShapes).Message);

        var h = new ModelGraph("twice");
        var y = new Value("y", DataType.Float32, []);
        h.Inputs.Add(x);
        h.Nodes.Add(new Node("relu", new ActivationOp(Activation.Relu), [x], [y]));
        h.Outputs.AddRange([y, y]);
        Assert.Contains("output name twice", Assert.Throws<GraphException>(h.InferShapes).Message);
    }
}

public class HostileShapeTests
{
    [Fact]
    public void RanksAboveTheMaximumAreRefusedWithTheNodeNamed()
    {
        var b = new GraphBuilder("rank", 1);
        var x = b.Input("x", 2, 3);
        var e = Assert.Throws<GraphException>(() => b.Add(new Unsqueeze([2, 3, 4, 5, 6, 7, 8]), "unsqueeze", x));
        Assert.Contains("Rank 9 exceeds", e.Message);
        Assert.Throws<ArgumentException>(() => Tensor.Zeros(1, 1, 1, 1, 1, 1, 1, 1, 1));
    }

    [Fact]
    public void SlicingAnEmptyAxisBackwardsGivesAnEmptyTensor()
    {
        var b = new GraphBuilder("empty", 1);
        var x = b.Input("x", 2, 0);
        var y = b.Add(new Slice([-1], [long.MinValue], [1], [-1]), "slice", x);
        Assert.Equal([2, 0], y.Shape);
    }

    [Fact]
    public void AnIm2colScratchBeyondAnyBufferIsRefused()
    {
        // 64 channels, a 64x64 kernel over a 256x256 map: 257*257 rows of 262,144 taps = 1.7e10 floats.
        var b = new GraphBuilder("scratch", 1);
        var x = b.Input("x", 1, 64, 256, 256);
        var w = b.Constant("w", Tensor.Zeros(1, 64, 64, 64));
        b.Output(b.Add(new Conv(64, 64, PadTop: 32, PadLeft: 32, PadBottom: 32, PadRight: 32), "conv", x, w));
        var e = Assert.Throws<GraphException>(() => new MobileNetSharp.Runtime.InferenceSession(b.Graph, new() { Threads = 1 }));
        Assert.Contains("scratch", e.Message);
    }
}
