using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Tensors;
using static MobileNetSharp.Onnx.Export.GraphWriter;

namespace MobileNetSharp.Onnx.Export;

/// <summary>
/// Writes each graph node as standard ONNX nodes. Fused epilogues (residual add, activation) are expanded
/// back into separate nodes; activations ONNX lacks are composed (SiLU = x * Sigmoid(x)).
/// </summary>
internal sealed class NodeExporter(GraphWriter w)
{
    public void Export(Node n)
    {
        string y = n.Output.Name;
        switch (n.Op)
        {
            case Conv c:
                Conv(n, [c.KernelH, c.KernelW], [c.StrideH, c.StrideW], [c.PadTop, c.PadLeft, c.PadBottom, c.PadRight],
                    [c.DilationH, c.DilationW], c.Groups, c.AutoPad, c.Activation);
                break;
            case ConvNd c: Conv(n, c.Kernel, c.Strides, c.Pads, c.Dilations, c.Groups, c.AutoPad, c.Activation); break;
            case Gemm g:
            {
                var inputs = new List<string> { In(n, 0), In(n, 1) };
                if (n.OptionalInput(2) is { } bias) inputs.Add(w.Name(bias));
                string raw = g.Activation.IsNone ? y : w.Fresh(y + "/gemm");
                w.Node("Gemm", n.Name, [.. inputs], [raw], Attr("alpha", g.Alpha), Attr("beta", g.Beta),
                    Attr("transA", g.TransA ? 1L : 0L), Attr("transB", g.TransB ? 1L : 0L));
                Activation(n.Name, g.Activation, raw, y);
                break;
            }
            case BinaryOp b:
            {
                string raw = b.Activation.IsNone ? y : w.Fresh(y + "/" + b.Kind.ToString().ToLowerInvariant());
                w.Node(b.Kind.ToString(), n.Name, [In(n, 0), In(n, 1)], [raw]);
                Activation(n.Name, b.Activation, raw, y);
                break;
            }
            case ActivationOp a: Activation(n.Name, a.Activation, In(n, 0), y, n.Input(0).DataType); break;
            case BatchNorm bn:
                w.Node("BatchNormalization", n.Name, [In(n, 0), In(n, 1), In(n, 2), In(n, 3), In(n, 4)], [y], Attr("epsilon", bn.Epsilon));
                break;
            case Graph.MatMul: w.Node("MatMul", n.Name, [In(n, 0), In(n, 1)], [y]); break;
            case Pool p:
                Pool(n, p.Type, p.Kind, [p.KernelH, p.KernelW], [p.StrideH, p.StrideW], [p.PadTop, p.PadLeft, p.PadBottom, p.PadRight],
                    [p.DilationH, p.DilationW], p.CeilMode, p.CountIncludePad, p.AutoPad);
                break;
            case PoolNd p: Pool(n, p.Type, p.Kind, p.Kernel, p.Strides, p.Pads, p.Dilations, p.CeilMode, p.CountIncludePad, p.AutoPad); break;
            case GlobalPool gp: w.Node(gp.Type, n.Name, [In(n, 0)], [y]); break;
            case Reduce r: Reduce(n, r); break;
            case Softmax s: Softmax(n, s); break;
            case Identity: w.Node("Identity", n.Name, [In(n, 0)], [y]); break;
            case Flatten f: w.Node("Flatten", n.Name, [In(n, 0)], [y], Attr("axis", (long)f.Axis)); break;
            case Reshape r:
                w.Node("Reshape", n.Name, [In(n, 0), w.Ints(y + "/shape", r.Target)], [y], r.AllowZero ? [Attr("allowzero", 1L)] : []);
                break;
            case Squeeze s:
                w.Node("Squeeze", n.Name, s.Axes is { Length: > 0 } sq ? [In(n, 0), w.Ints(y + "/axes", sq.Select(v => (long)v))] : [In(n, 0)], [y]);
                break;
            case Unsqueeze u: w.Node("Unsqueeze", n.Name, [In(n, 0), w.Ints(y + "/axes", u.Axes.Select(v => (long)v))], [y]); break;
            case Transpose t: w.Node("Transpose", n.Name, [In(n, 0)], [y], t.Perm is null ? [] : [Attr("perm", t.Perm)]); break;
            case Concat c: w.Node("Concat", n.Name, n.Inputs.Select(i => w.Name(i!)).ToArray(), [y], Attr("axis", (long)c.Axis)); break;
            case Pad p: Pad(n, p); break;
            case Split s:
                w.Node("Split", n.Name, [In(n, 0), w.Ints(y + "/split", s.Sizes.Select(v => (long)v))], n.Outputs.Select(o => o.Name).ToArray(),
                    Attr("axis", (long)s.Axis));
                break;
            case Slice s:
                w.Node("Slice", n.Name, [In(n, 0), w.Ints(y + "/starts", s.Starts), w.Ints(y + "/ends", s.Ends),
                    w.Ints(y + "/axes", s.Axes.Select(v => (long)v)), w.Ints(y + "/steps", s.Steps)], [y]);
                break;
            default:
                throw new ArgumentException($"Cannot export node '{n.Name}': {n.Op.Type} has no standard ONNX form.");
        }
    }

    private string In(Node n, int i) => w.Name(n.Input(i));

    /// <summary>Any number of spatial axes; pads are all begins, then all ends, as in ONNX.</summary>
    private void Conv(Node n, int[] kernel, int[] strides, int[] pads, int[] dilations, int groups, AutoPad autoPad, Activation activation)
    {
        string y = n.Output.Name;
        var residual = n.OptionalInput(3);
        var inputs = new List<string> { In(n, 0), In(n, 1) };
        if (n.OptionalInput(2) is { } bias) inputs.Add(w.Name(bias));
        string raw = residual is null && activation.IsNone ? y : w.Fresh(y + "/conv");
        var attrs = new List<Proto.AttributeProto>
        {
            Attr("kernel_shape", kernel),
            Attr("strides", strides),
            Attr("dilations", dilations),
            Attr("group", (long)groups),
        };
        attrs.Add(PadAttribute(n, autoPad, pads, kernel, strides, dilations));
        w.Node("Conv", n.Name, [.. inputs], [raw], [.. attrs]);
        if (residual is not null)
        {
            string sum = activation.IsNone ? y : w.Fresh(y + "/residual");
            w.Node("Add", n.Name + "/residual", [raw, w.Name(residual)], [sum]);
            raw = sum;
        }
        Activation(n.Name, activation, raw, y);
    }

    /// <summary>Writes <paramref name="a"/> from <paramref name="x"/> to <paramref name="y"/>; nothing when there is none and the names agree.</summary>
    private void Activation(string node, Activation a, string x, string y, DataType type = DataType.Float32)
    {
        string name = node + "/" + a.Kind.ToString().ToLowerInvariant();
        switch (a.Kind)
        {
            case ActivationKind.None:
                if (x != y) w.Node("Identity", node, [x], [y]);
                break;
            case ActivationKind.Relu: w.Node("Relu", name, [x], [y]); break;
            case ActivationKind.Sigmoid: w.Node("Sigmoid", name, [x], [y]); break;
            case ActivationKind.Clip:
            {
                var (min, max) = w.ClipBounds(a.Alpha, a.Beta, type);
                w.Node("Clip", name, [x, min, max], [y]);
                break;
            }
            case ActivationKind.HardSigmoid: w.Node("HardSigmoid", name, [x], [y], Attr("alpha", a.Alpha), Attr("beta", a.Beta)); break;
            // ONNX HardSwish fixes alpha = 1/6, beta = 1/2; other parameters are spelled out.
            case ActivationKind.HardSwish when a == Graph.Activation.HardSwish: w.Node("HardSwish", name, [x], [y]); break;
            case ActivationKind.HardSwish:
            {
                string gate = w.Fresh(y + "/gate");
                w.Node("HardSigmoid", name, [x], [gate], Attr("alpha", a.Alpha), Attr("beta", a.Beta));
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

    /// <summary>Any number of spatial axes. Dilations only when used: AveragePool takes them from opset 19 on.</summary>
    private void Pool(Node n, string type, PoolKind kind, int[] kernel, int[] strides, int[] pads, int[] dilations,
        bool ceilMode, bool countIncludePad, AutoPad autoPad)
    {
        var attrs = new List<Proto.AttributeProto>
        {
            Attr("kernel_shape", kernel),
            Attr("strides", strides),
            Attr("ceil_mode", ceilMode ? 1L : 0L),
        };
        attrs.Add(PadAttribute(n, autoPad, pads, kernel, strides, dilations));
        if (dilations.Any(d => d != 1)) attrs.Add(Attr("dilations", dilations));
        if (kind == PoolKind.Average) attrs.Add(Attr("count_include_pad", countIncludePad ? 1L : 0L));
        w.Node(type, n.Name, [In(n, 0)], [n.Output.Name], [.. attrs]);
    }

    /// <summary>Axes are an attribute until opset 18 (ReduceSum: 13), an input after.</summary>
    private void Reduce(Node n, Reduce r)
    {
        string y = n.Output.Name;
        int axesInputSince = r.Kind == ReduceKind.Sum ? 13 : 18;
        var inputs = new List<string> { In(n, 0) };
        var attrs = new List<Proto.AttributeProto> { Attr("keepdims", r.KeepDims ? 1L : 0L) };
        if (r.Axes is { Length: > 0 } axes)
        {
            if (w.Opset >= axesInputSince) inputs.Add(w.Ints(y + "/axes", axes.Select(a => (long)a)));
            else attrs.Add(Attr("axes", axes));
        }
        w.Node(r.Type, n.Name, [.. inputs], [y], [.. attrs]);
    }

    /// <summary>The pre-opset-13 form flattens at the axis; spelled out as Flatten, Softmax over the last axis, Reshape back.</summary>
    private void Softmax(Node n, Softmax s)
    {
        string y = n.Output.Name, op = s.Log ? "LogSoftmax" : "Softmax";
        var x = n.Input(0);
        if (!s.Legacy2D)
        {
            w.Node(op, n.Name, [In(n, 0)], [y], Attr("axis", (long)s.Axis));
            return;
        }
        string flat = w.Fresh(y + "/flat"), soft = w.Fresh(y + "/2d");
        w.Node("Flatten", n.Name + "/flatten", [In(n, 0)], [flat], Attr("axis", (long)(s.Axis < 0 ? s.Axis + x.Rank : s.Axis)));
        w.Node(op, n.Name, [flat], [soft], Attr("axis", 1L));
        w.Node("Reshape", n.Name + "/reshape", [soft, w.Ints(y + "/shape", x.Shape.Select(d => (long)d))], [y]);
    }

    private void Pad(Node n, Pad p)
    {
        string y = n.Output.Name;
        var inputs = new List<string> { In(n, 0), w.Ints(y + "/pads", p.Pads) };
        if (p.Mode == PadMode.Constant) inputs.Add(w.Scalar(y + "/value", p.Value));
        w.Node("Pad", n.Name, [.. inputs], [y], Attr("mode", p.Mode.ToString().ToLowerInvariant()));
    }

    /// <summary>
    /// auto_pad as given, except SAME with dilations: ONNX Runtime refuses that pair, so those pads are
    /// written resolved for the graph's (static) input size.
    /// </summary>
    private static Proto.AttributeProto PadAttribute(Node n, AutoPad autoPad, int[] pads, int[] kernel, int[] strides, int[] dilations)
    {
        if (autoPad == AutoPad.NotSet) return Attr("pads", pads);
        if (autoPad is AutoPad.SameUpper or AutoPad.SameLower && dilations.Any(d => d != 1))
            return Attr("pads", NdWindow.ResolvePads(autoPad, pads, n.Input(0).Shape[2..], kernel, strides, dilations));
        return Attr("auto_pad", AutoPadName(autoPad));
    }

    private static string AutoPadName(AutoPad a) => a switch
    {
        AutoPad.SameUpper => "SAME_UPPER",
        AutoPad.SameLower => "SAME_LOWER",
        AutoPad.Valid => "VALID",
        _ => "NOTSET",
    };
}
