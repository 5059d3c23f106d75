using MobileNetSharp.Graph;

namespace MobileNetSharp.Onnx.Import;

/// <summary>
/// Conv, MaxPool and AveragePool. 2-D ones map to the graph's Conv and Pool, which the passes and the
/// channels-last kernels know; 1-D ones run as 2-D with a height of 1 (an Unsqueeze before and a Squeeze
/// after, weights reshaped once at load time) for the same reason; 3-D and higher map to ConvNd and PoolNd.
/// </summary>
internal static class ConvPoolConverters
{
    /// <summary>Kernel, stride, dilation and padding limits: far beyond any real network, small enough that geometry never overflows.</summary>
    private const int MaxWindow = 1 << 16;

    private sealed record Window(int[] Kernel, int[] Strides, int[] Dilations, int[] Pads, AutoPad AutoPad);

    /// <summary>
    /// What Conv and ConvTranspose read alike: float X, W and optional B, the spatial rank (at most
    /// <paramref name="maxSpatial"/>), and the window, whose kernel must be the weight's.
    /// </summary>
    private static (Value X, Value W, Value? Bias, int Spatial, Window Window) WeightedWindow(NodeContext n, int maxSpatial = int.MaxValue) =>
        WeightedWindow(n, n.Input(0), n.Input(1), n.OptionalInput(2), maxSpatial);

    private static (Value X, Value W, Value? Bias, int Spatial, Window Window) WeightedWindow(NodeContext n, Value x, Value w, Value? bias, int maxSpatial = int.MaxValue)
    {
        foreach (var (v, role) in new[] { (x, "X"), (w, "W"), (bias, "B") })
            if (v is not null && v.DataType != Tensors.DataType.Float32) throw n.Error($"{role} '{v.Name}' is {v.DataType}; only FLOAT is supported.");
        int spatial = SpatialRank(n, x);
        if (spatial > maxSpatial)
            throw n.Error($"{n.OpType} with {spatial} spatial axes (input rank {x.Rank}) is not supported; only 1-D and 2-D are.");
        if (w.Rank != x.Rank) throw n.Error($"weight rank {w.Rank} differs from input rank {x.Rank}.");
        var weightKernel = w.Shape[2..];
        var win = ReadWindow(n, spatial, n.Attr.Int32s("kernel_shape") ?? weightKernel, dilations: true);
        if (!win.Kernel.SequenceEqual(weightKernel))
            throw n.Error($"kernel_shape [{string.Join(",", win.Kernel)}] differs from the weight's [{string.Join(",", weightKernel)}].");
        return (x, w, bias, spatial, win);
    }

    public static void Conv(NodeContext n) => Convolution(n, n.Input(0), n.Input(1), n.OptionalInput(2), final: true);

    /// <summary>
    /// A convolution with Conv's attributes on the given operands (QLinearConv passes its dequantized ones).
    /// <paramref name="final"/>: the result is this ONNX node's output; otherwise a helper value.
    /// </summary>
    internal static Value Convolution(NodeContext n, Value x, Value w, Value? bias, bool final)
    {
        (x, w, bias, int spatial, var win) = WeightedWindow(n, x, w, bias);
        int group = n.Attr.Int32("group", 1);
        Value Out(Op op, string suffix, params Value?[] inputs) => final ? n.Emit(op, inputs) : n.EmitHelper(op, suffix, inputs);
        if (spatial == 2)
            return Out(new Graph.Conv(win.Kernel[0], win.Kernel[1], win.Strides[0], win.Strides[1],
                win.Pads[0], win.Pads[1], win.Pads[2], win.Pads[3], win.Dilations[0], win.Dilations[1], group, win.AutoPad), "conv", x, w, bias);
        if (spatial > 2)
            return Out(new ConvNd(win.Kernel, win.Strides, win.Pads, win.Dilations, group, win.AutoPad), "conv", x, w, bias);
        var w2 = w.Constant is { } wt
            ? n.NewConstant("weight2d", wt.Reshape(wt.Shape[0], wt.Shape[1], 1, wt.Shape[2]))
            : n.EmitHelper(new Unsqueeze([2]), "weight2d", w);
        var conv = new Graph.Conv(1, win.Kernel[0], 1, win.Strides[0], 0, win.Pads[0], 0, win.Pads[1],
            1, win.Dilations[0], group, win.AutoPad);
        var y = n.EmitHelper(conv, "conv2d", n.EmitHelper(new Unsqueeze([2]), "to2d", x), w2, bias);
        return Out(new Squeeze([2]), "conv1d", y);
    }

    /// <summary>
    /// ConvTranspose: 2-D maps to the graph's ConvTranspose; 1-D runs as 2-D with a height of 1 (weights reshaped
    /// once at load time). Three or more spatial axes are refused with the rank named.
    /// </summary>
    public static void ConvTranspose(NodeContext n)
    {
        var (x, w, bias, spatial, win) = WeightedWindow(n, maxSpatial: 2);
        int group = n.Attr.Int32("group", 1);
        var outPad = n.Attr.Int32s("output_padding") ?? new int[spatial];
        if (outPad.Length != spatial || outPad.Any(p => p < 0 || p > MaxWindow))
            throw n.Error($"output_padding [{string.Join(",", outPad)}] needs {spatial} values in [0, {MaxWindow}].");
        var outShape = n.Attr.Int32s("output_shape");
        if (outShape is not null)
        {
            if (outShape.Length == spatial + 2) outShape = outShape[2..]; // some exporters write N and C too
            if (outShape.Length != spatial || outShape.Any(d => d < 1))
                throw n.Error($"output_shape [{string.Join(",", n.Attr.Int32s("output_shape")!)}] needs {spatial} positive values.");
        }
        if (spatial == 2)
        {
            n.Emit(new Graph.ConvTranspose(win.Kernel[0], win.Kernel[1], win.Strides[0], win.Strides[1],
                win.Pads[0], win.Pads[1], win.Pads[2], win.Pads[3], win.Dilations[0], win.Dilations[1],
                outPad[0], outPad[1], group, win.AutoPad, outShape), x, w, bias);
            return;
        }
        var w2 = w.Constant is { } wt
            ? n.NewConstant("weight2d", wt.Reshape(wt.Shape[0], wt.Shape[1], 1, wt.Shape[2]))
            : n.EmitHelper(new Unsqueeze([2]), "weight2d", w);
        var op = new Graph.ConvTranspose(1, win.Kernel[0], 1, win.Strides[0], 0, win.Pads[0], 0, win.Pads[1], 1, win.Dilations[0],
            0, outPad[0], group, win.AutoPad, outShape is null ? null : [1, outShape[0]]);
        var y = n.EmitHelper(op, "convtranspose2d", n.EmitHelper(new Unsqueeze([2]), "to2d", x), w2, bias);
        n.Emit(new Squeeze([2]), y);
    }

    public static void MaxPool(NodeContext n)
    {
        if (n.OutputUsed(1)) throw n.Error("the Indices output is not supported.");
        Pool(n, PoolKind.Max, dilations: n.Opset >= 10);
    }

    public static void AveragePool(NodeContext n) => Pool(n, PoolKind.Average, dilations: n.Opset >= 19);

    private static void Pool(NodeContext n, PoolKind kind, bool dilations)
    {
        var x = n.Input(0);
        int spatial = SpatialRank(n, x);
        var kernel = n.Attr.Int32s("kernel_shape") ?? throw n.Error("kernel_shape is required.");
        var win = ReadWindow(n, spatial, kernel, dilations);
        bool ceil = n.Opset >= 10 && n.Attr.Int("ceil_mode", 0) != 0;
        bool includePad = kind == PoolKind.Average && n.Attr.Int("count_include_pad", 0) != 0;
        if (spatial == 2)
        {
            n.Emit(new Pool(kind, win.Kernel[0], win.Kernel[1], win.Strides[0], win.Strides[1],
                win.Pads[0], win.Pads[1], win.Pads[2], win.Pads[3], win.Dilations[0], win.Dilations[1], ceil, includePad, win.AutoPad), x);
            return;
        }
        if (spatial > 2)
        {
            n.Emit(new PoolNd(kind, win.Kernel, win.Strides, win.Pads, win.Dilations, ceil, includePad, win.AutoPad), x);
            return;
        }
        var pool = new Pool(kind, 1, win.Kernel[0], 1, win.Strides[0], 0, win.Pads[0], 0, win.Pads[1],
            1, win.Dilations[0], ceil, includePad, win.AutoPad);
        var y = n.EmitHelper(pool, "pool2d", n.EmitHelper(new Unsqueeze([2]), "to2d", x));
        n.Emit(new Squeeze([2]), y);
    }

    private static int SpatialRank(NodeContext n, Value x) => x.Rank >= 3 ? x.Rank - 2
        : throw n.Error($"{n.OpType} expects an N,C,spatial... input of rank 3 or more, got {Tensors.Shape.Format(x.Shape)}.");

    private static Window ReadWindow(NodeContext n, int spatial, int[] kernel, bool dilations)
    {
        int[] Read(string name, int[]? value, int count, int fallback, int min)
        {
            var v = value ?? Enumerable.Repeat(fallback, count).ToArray();
            if (v.Length != count) throw n.Error($"{name} has {v.Length} values, expected {count}.");
            if (v.Any(e => e < min || e > MaxWindow)) throw n.Error($"{name} [{string.Join(",", v)}] is outside [{min}, {MaxWindow}].");
            return v;
        }
        var k = Read("kernel_shape", kernel, spatial, 1, 1);
        var s = Read("strides", n.Attr.Int32s("strides"), spatial, 1, 1);
        var d = Read("dilations", dilations ? n.Attr.Int32s("dilations") : null, spatial, 1, 1);
        // All begins, then all ends: in 2-D the graph's (top, left, bottom, right).
        var p = Read("pads", n.Attr.Int32s("pads"), 2 * spatial, 0, 0);
        var autoPad = n.Attr.String("auto_pad", "NOTSET") switch
        {
            "NOTSET" or "" => AutoPad.NotSet,
            "SAME_UPPER" => AutoPad.SameUpper,
            "SAME_LOWER" => AutoPad.SameLower,
            "VALID" => AutoPad.Valid,
            var other => throw n.Error($"auto_pad '{other}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID."),
        };
        return new Window(k, s, d, p, autoPad);
    }
}
