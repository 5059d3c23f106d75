using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>ONNX spellings shared by several ops' <see cref="Op.ExportOnnx"/>: fused activations and padding attributes.</summary>
internal static class OnnxForms
{
    /// <summary>
    /// Writes <paramref name="a"/> from <paramref name="x"/> to <paramref name="y"/>; an Identity when there is
    /// none and the names differ. Activations ONNX lacks are composed (SiLU = x * Sigmoid(x)); HardSwish with
    /// other than ONNX's fixed 1/6, 1/2 is spelled as x * HardSigmoid(x).
    /// </summary>
    public static void Activation(IOnnxWriter w, string node, Activation a, string x, string y, DataType type = DataType.Float32)
    {
        string name = node + "/" + a.Kind.ToString().ToLowerInvariant();
        switch (a.Kind)
        {
            case ActivationKind.None:
                if (x != y) w.Node("Identity", node, [x], [y]);
                break;
            case ActivationKind.Relu: w.Node("Relu", name, [x], [y]); break;
            case ActivationKind.Sigmoid: w.Node("Sigmoid", name, [x], [y]); break;
            case ActivationKind.Tanh: w.Node("Tanh", name, [x], [y]); break;
            case ActivationKind.LeakyRelu: w.Node("LeakyRelu", name, [x], [y], OnnxAttribute.Of("alpha", a.Alpha)); break;
            case ActivationKind.Clip:
            {
                var (min, max) = w.ClipBounds(a.Alpha, a.Beta, type);
                w.Node("Clip", name, [x, min, max], [y]);
                break;
            }
            case ActivationKind.HardSigmoid:
                w.Node("HardSigmoid", name, [x], [y], OnnxAttribute.Of("alpha", a.Alpha), OnnxAttribute.Of("beta", a.Beta));
                break;
            case ActivationKind.HardSwish when a == Graph.Activation.HardSwish: w.Node("HardSwish", name, [x], [y]); break;
            case ActivationKind.HardSwish:
            {
                string gate = w.Fresh(y + "/gate");
                w.Node("HardSigmoid", name, [x], [gate], OnnxAttribute.Of("alpha", a.Alpha), OnnxAttribute.Of("beta", a.Beta));
                w.Node("Mul", name + "/mul", [x, gate], [y]);
                break;
            }
            case ActivationKind.Silu:
            {
                string gate = w.Fresh(y + "/sigmoid");
                w.Node("Sigmoid", name, [x], [gate]);
                w.Node("Mul", name + "/mul", [x, gate], [y]);
                break;
            }
            default: throw new ArgumentException($"Cannot export activation {a} of node '{node}'.");
        }
    }

    /// <summary>The raw output name before a fused epilogue: the node's output itself when nothing follows.</summary>
    public static string Raw(IOnnxWriter w, Node n, bool hasEpilogue, string suffix) =>
        hasEpilogue ? w.Fresh(n.Output.Name + "/" + suffix) : n.Output.Name;

    /// <summary>
    /// auto_pad as given, except SAME with dilations: ONNX Runtime refuses that pair, so those pads are
    /// written resolved for the graph's (static) input size.
    /// </summary>
    public static OnnxAttribute PadAttribute(Node n, AutoPad autoPad, int[] pads, int[] kernel, int[] strides, int[] dilations)
    {
        if (autoPad == AutoPad.NotSet) return OnnxAttribute.Of("pads", pads);
        if (autoPad is AutoPad.SameUpper or AutoPad.SameLower && dilations.Any(d => d != 1))
            return OnnxAttribute.Of("pads", NdWindow.ResolvePads(autoPad, pads, n.Input(0).Shape[2..], kernel, strides, dilations));
        return OnnxAttribute.Of("auto_pad", autoPad switch
        {
            AutoPad.SameUpper => "SAME_UPPER",
            AutoPad.SameLower => "SAME_LOWER",
            AutoPad.Valid => "VALID",
            _ => "NOTSET",
        });
    }

    /// <summary>
    /// Conv over any number of spatial axes, then the fused residual Add and activation. Pads are all
    /// begins, then all ends, as in ONNX.
    /// </summary>
    public static void Conv(IOnnxWriter w, Node n, int[] kernel, int[] strides, int[] pads, int[] dilations, int groups, AutoPad autoPad, Activation activation)
    {
        string y = n.Output.Name;
        var residual = n.OptionalInput(3);
        var inputs = new List<string> { w.Name(n.Input(0)), w.Name(n.Input(1)) };
        if (n.OptionalInput(2) is { } bias) inputs.Add(w.Name(bias));
        string raw = Raw(w, n, residual is not null || !activation.IsNone, "conv");
        w.Node("Conv", n.Name, [.. inputs], [raw],
            OnnxAttribute.Of("kernel_shape", kernel), OnnxAttribute.Of("strides", strides), OnnxAttribute.Of("dilations", dilations),
            OnnxAttribute.Of("group", (long)groups), PadAttribute(n, autoPad, pads, kernel, strides, dilations));
        if (residual is not null)
        {
            string sum = activation.IsNone ? y : w.Fresh(y + "/residual");
            w.Node("Add", n.Name + "/residual", [raw, w.Name(residual)], [sum]);
            raw = sum;
        }
        Activation(w, n.Name, activation, raw, y);
    }
}
