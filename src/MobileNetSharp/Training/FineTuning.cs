using MobileNetSharp.Graph;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Training;

/// <summary>Adapting a trained classifier to new classes (transfer learning, e.g. Yosinski et al. 2014).</summary>
public static class FineTuning
{
    /// <summary>
    /// Replaces the final fully connected layer (the last Gemm with constant weights on the path to the last output,
    /// through shape-only ops) with a new one for <paramref name="classes"/> outputs: weights N(0, 0.01) as torchvision
    /// initializes its classifiers, zero bias. A trailing Softmax/LogSoftmax is removed: training wants the scores.
    /// Returns the replaced node's name.
    /// </summary>
    /// <exception cref="GraphException">No such layer is found (the message says what the model ends with).</exception>
    public static string ReplaceClassifier(ModelGraph g, int classes, int seed = 0)
    {
        if (classes < 1) throw new ArgumentException($"classes must be >= 1, got {classes}.");
        var output = g.Outputs[^1];
        var n = output.Producer;
        if (n?.Op is Softmax)
        {
            g.Outputs[^1] = n.Input(0);
            g.Nodes.Remove(n);
            n = n.Input(0).Producer;
        }
        while (n is not null && n.Op is Flatten or Reshape or Squeeze or Identity or Dropout) n = n.Input(0).Producer;
        if (n is null || n.Op is not Gemm { TransA: false } gemm || !n.Input(1).IsConstant || n.Input(1).Rank != 2)
            throw new GraphException($"Cannot find the classifier of '{g.Name}': the last output comes from {(n is null ? "an input" : $"{n.Op.Type} '{n.Name}'")}, " +
                "not a fully connected layer (Gemm with constant weights).");
        var w = n.Input(1);
        int features = gemm.TransB ? w.Shape[1] : w.Shape[0];
        int[] shape = gemm.TransB ? [classes, features] : [features, classes];
        var rng = new Random(seed);
        n.Inputs[1] = Value.FromConstant(w.Name, new Tensor(Initializers.Normal(rng, (long)classes * features, 0.01f), shape));
        var bias = n.OptionalInput(2);
        var newBias = Value.FromConstant(bias?.Name ?? n.Name + ".bias", new Tensor(new float[classes], classes));
        if (n.Inputs.Length < 3) n.Inputs = [.. n.Inputs, newBias];
        else n.Inputs[2] = newBias;
        if (gemm.Beta == 0) n.Op = gemm with { Beta = 1 };
        // Downstream shapes (a Reshape with a fixed class count would now be wrong: refuse clearly rather than mis-shape).
        try { g.InferShapes(); }
        catch (GraphException e) { throw new GraphException($"After replacing the classifier '{n.Name}': {e.Message}", e); }
        return n.Name;
    }
}
