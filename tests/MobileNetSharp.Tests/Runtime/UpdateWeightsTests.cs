using MobileNetSharp.Graph;
using MobileNetSharp.Models;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Runtime;

public class UpdateWeightsTests
{
    /// <summary>
    /// New weights through UpdateWeights give exactly what a fresh session on a graph with those weights gives,
    /// at the declared shape and at another one (whose plan had been compiled before the update).
    /// </summary>
    [Fact]
    public void UpdatedWeightsMatchAFreshSessionOnTheUpdatedGraph()
    {
        var g = ModelZoo.Create("mobilenet_v2", new ModelOptions(0.35f, 48, Classes: 12));
        using var session = new InferenceSession(g, new SessionOptions { Threads = 2 });
        var x = Tensor.Random(1, [1, 3, 48, 48]);
        var other = Tensor.Random(2, [2, 3, 64, 32]);
        var before = session.Run(x)[0].Floats;
        session.Run(other);

        // Scale every conv weight and shift every BatchNorm mean (what a fine-tuning step changes).
        var updates = new Dictionary<string, Tensor>();
        var changed = g.Clone();
        foreach (var n in changed.Nodes)
            for (int i = 1; i < n.Inputs.Length; i++)
                if (n.Inputs[i] is { IsConstant: true } v && !updates.ContainsKey(v.Name) && (n.Op is Conv && i == 1 || n.Op is BatchNorm && i == 3))
                {
                    var t = new Tensor(v.Constant!.Floats.Select(f => n.Op is Conv ? f * 1.1f : f + 0.05f).ToArray(), v.Shape);
                    updates[v.Name] = t;
                    v.Constant = t;
                }
        Assert.True(updates.Count > 40);
        session.UpdateWeights(updates);

        using var fresh = new InferenceSession(changed, new SessionOptions { Threads = 2 });
        var after = session.Run(x)[0].Floats;
        Assert.Equal(fresh.Run(x)[0].Floats, after);
        Assert.NotEqual(before, after);
        Assert.Equal(fresh.Run(other)[0].Floats, session.Run(other)[0].Floats);
    }

    [Fact]
    public void UnknownNamesAndWrongShapesAreRefusedAndChangeNothing()
    {
        var g = ModelZoo.Create("mobilenet_v1", new ModelOptions(0.25f, 32, Classes: 4));
        using var session = new InferenceSession(g, new SessionOptions { Threads = 1 });
        var x = Tensor.Random(3, [1, 3, 32, 32]);
        var before = session.Run(x)[0].Floats;
        var weight = g.Constants.First(v => v.Rank == 4);
        Assert.Contains("no constant named 'nope'",
            Assert.Throws<ArgumentException>(() => session.UpdateWeights(new Dictionary<string, Tensor> { ["nope"] = Tensor.Zeros(1) })).Message);
        Assert.Contains($"must be Float32 {Shape.Format(weight.Shape)}",
            Assert.Throws<ArgumentException>(() => session.UpdateWeights(new Dictionary<string, Tensor> { [weight.Name] = Tensor.Zeros(1, 2) })).Message);
        Assert.Equal(before, session.Run(x)[0].Floats);
    }
}
