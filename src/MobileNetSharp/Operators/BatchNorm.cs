namespace MobileNetSharp.Graph;

/// <summary>Inference batch normalization over axis 1. Inputs: X, scale (gamma), bias (beta), mean, var.</summary>
public sealed record BatchNorm(float Epsilon = 1e-5f) : Op
{
    public override string Type => "BatchNormalization";

    public override int[][] InferShapes(Node node)
    {
        var x = node.Input(0).Shape;
        if (x.Length < 2) throw Error(node, "expects an input of rank >= 2 with channels on axis 1.");
        for (int i = 1; i <= 4; i++)
        {
            var p = node.Input(i).Shape;
            if (p.Length != 1 || p[0] != x[1])
                throw Error(node, $"parameter #{i} has shape {Tensors.Shape.Format(p)}, expected [{x[1]}].");
        }
        return [x];
    }
}
