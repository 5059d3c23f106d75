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
