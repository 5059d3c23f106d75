using MobileNetSharp.Graph;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Models;

/// <summary>
/// The standard-convolution twin of any separable network: every depthwise KxK convolution becomes a
/// full KxK convolution over all its input channels (same output shape, seeded He-normal weights).
/// For MobileNetV1 the paper's own twin (<see cref="MobileNetV1.BuildStandard"/>, which also merges
/// the pointwise conv) is used instead; this one serves the other architectures. Either way the twin keeps
/// the separable network's options: input channels, small-input strides, classes and batch.
/// </summary>
public static class StandardTwin
{
    public static ModelGraph Of(ModelGraph separable, int seed = 1)
    {
        if (separable.Metadata.GetValueOrDefault("architecture") == "mobilenet_v1")
        {
            var input = separable.Inputs[0];
            var o = new ModelOptions(
                float.Parse(separable.Metadata["width"], System.Globalization.CultureInfo.InvariantCulture),
                input.Shape[2], separable.Outputs[0].Shape[1], input.Shape[0], seed,
                InChannels: input.Shape[1], SmallInput: separable.Metadata.GetValueOrDefault("small_input") == "true");
            return MobileNetV1.BuildStandard(o);
        }
        var g = separable.Clone();
        g.Name = "standard_" + separable.Name;
        var rng = new Random(seed);
        foreach (var n in g.Nodes)
        {
            if (n.Op is not Conv c || c.Groups <= 1 || c.Groups != n.Input(0).Shape[1]) continue;
            int ch = n.Input(0).Shape[1], outC = n.Input(1).Shape[0];
            int fanIn = ch * c.KernelH * c.KernelW;
            var w = Initializers.HeNormal(rng, (long)outC * fanIn, fanIn);
            n.Inputs[1] = Value.FromConstant(n.Input(1).Name + ".standard", new Tensor(w, outC, ch, c.KernelH, c.KernelW));
            n.Op = c with { Groups = 1 };
        }
        g.InferShapes();
        g.Metadata["architecture"] = g.Name;
        return g;
    }
}
