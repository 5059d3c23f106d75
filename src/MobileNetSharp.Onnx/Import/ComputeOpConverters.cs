using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Onnx.Import;

/// <summary>
/// Point-wise math (Sqrt, Exp, Erf, ..., PRelu), ArgMax/ArgMin, comparisons and logic (Equal, Less, ..., Not,
/// And, Where), Cast and CastLike, Expand and Tile: ops that run on runtime tensors of any of our element types,
/// and fold at load time (through the same op) when their inputs are constants.
/// </summary>
internal static class ComputeOpConverters
{
    public static void Unary(NodeContext n, UnaryKind kind, float alpha = 0f, float gamma = 0f) => n.Emit(new UnaryOp(kind, alpha, gamma), n.Input(0));

    public static void Elu(NodeContext n) => Unary(n, UnaryKind.Elu, n.Attr.Float("alpha", 1f));

    public static void Selu(NodeContext n) =>
        Unary(n, UnaryKind.Selu, n.Attr.Float("alpha", UnaryOp.SeluAlpha), n.Attr.Float("gamma", UnaryOp.SeluGamma));

    /// <summary>Gelu (opset 20): the exact erf form; the tanh approximation has no kernel.</summary>
    public static void Gelu(NodeContext n)
    {
        string approximate = n.Attr.String("approximate", "none");
        if (approximate != "none") throw n.Error($"approximate='{approximate}' is not supported (only 'none', the erf form).");
        Unary(n, UnaryKind.Gelu);
    }

    public static void LeakyRelu(NodeContext n) => ElementwiseConverters.Activation(n, Activation.LeakyRelu(n.Attr.Float("alpha", 0.01f)));

    /// <summary>
    /// PRelu. Before opset 7 a 1-D slope with one value per channel applies along axis 1 (the pytorch-converted
    /// tests: X [N,C,...], slope [C]); it is reshaped to [C,1,...] so that NumPy broadcasting says the same.
    /// </summary>
    public static void PRelu(NodeContext n)
    {
        Value x = n.Input(0), slope = n.Input(1);
        if (n.Opset < 7 && slope.Rank == 1 && slope.Shape[0] != 1 && x.Rank >= 2 && slope.Shape[0] == x.Shape[1] && x.Rank > 2)
        {
            var target = new long[x.Rank - 1];
            Array.Fill(target, 1L);
            target[0] = slope.Shape[0];
            slope = n.EmitHelper(new Reshape(target), "per_channel", slope);
        }
        n.Emit(new PReluOp(), x, slope);
    }

    public static void ArgReduce(NodeContext n, bool max)
    {
        var x = n.Input(0);
        if (x.Rank == 0) throw n.Error("the input must have rank >= 1.");
        int axis = n.Axis(n.Attr.Int("axis", 0), x.Rank);
        bool last = n.Opset >= 12 && n.Attr.Int("select_last_index", 0) != 0;
        n.Emit(new ArgReduceOp(max, axis, n.Attr.Int("keepdims", 1) != 0, last), x);
    }

    public static void Compare(NodeContext n, CompareKind kind)
    {
        Value a = n.Input(0), b = n.Input(1);
        if (n.Opset < 7 && n.Attr.Int("broadcast", 0) != 0 && !Shape.Equal(a.Shape, b.Shape))
            throw n.Error("the opset < 7 broadcast/axis form with different shapes is not supported.");
        n.Emit(new CompareOp(kind), a, b);
    }

    public static void Logical(NodeContext n, LogicalKind kind)
    {
        Value a = n.Input(0), b = n.Input(1);
        if (n.Opset < 7 && n.Attr.Int("broadcast", 0) != 0 && !Shape.Equal(a.Shape, b.Shape))
            throw n.Error("the opset < 7 broadcast/axis form with different shapes is not supported.");
        n.Emit(new LogicalOp(kind), a, b);
    }

    public static void Not(NodeContext n) => n.Emit(new NotOp(), n.Input(0));

    public static void Where(NodeContext n) => n.Emit(new WhereOp(), n.Input(0), n.Input(1), n.Input(2));

    /// <summary>Cast: "to" is an element type code (a type name string before opset 6). A cast to the input's own type is an Identity.</summary>
    public static void Cast(NodeContext n)
    {
        var x = n.Input(0);
        DataType to;
        if (n.Opset < 6 && n.Attr.String("to", "") is { Length: > 0 } name)
            to = name.ToUpperInvariant() switch
            {
                "FLOAT" => DataType.Float32, "UINT8" => DataType.UInt8, "INT8" => DataType.Int8,
                "INT32" => DataType.Int32, "INT64" => DataType.Int64, "BOOL" => DataType.Bool,
                _ => throw n.Error($"cast to '{name}' is not supported (supported: FLOAT, UINT8, INT8, INT32, INT64, BOOL)."),
            };
        else
        {
            if (!n.Attr.Has("to")) throw n.Error("the 'to' attribute is required.");
            to = OnnxDataTypes.ToDataType(n.Attr.Int32("to", 0), $"Node '{n.DisplayName}' (Cast) target");
        }
        CastTo(n, x, to);
    }

    /// <summary>CastLike (opset 15): to the element type of input 1.</summary>
    public static void CastLike(NodeContext n) => CastTo(n, n.Input(0), n.Input(1).DataType);

    private static void CastTo(NodeContext n, Value x, DataType to)
    {
        if (to == x.DataType) n.Emit(new Identity(), x);
        else n.Emit(new CastOp(to), x);
    }

    /// <summary>Expand with a target shape known at load time (a shape computed from a runtime tensor's static shape folds to one).</summary>
    public static void Expand(NodeContext n)
    {
        var x = n.Input(0);
        var dims = n.OptionalInts(1, "shape") ?? throw n.Error("requires a shape input.");
        ImportContext.CheckRank(dims.Length, "the expanded tensor", n.Error);
        if (dims.Any(d => d < 0 || d > int.MaxValue)) throw n.Error($"shape [{string.Join(",", dims)}] has an invalid dimension.");
        n.Emit(new ExpandOp(dims.Select(d => (int)d).ToArray()), x);
    }

    /// <summary>Tile (opset 6 on): repeats as a constant int64 input, one per axis.</summary>
    public static void Tile(NodeContext n)
    {
        if (n.Opset < 6) throw n.Error("the opset < 6 form (tiles and axis inputs) is not supported.");
        var x = n.Input(0);
        var repeats = n.OptionalInts(1, "repeats") ?? throw n.Error("requires a repeats input.");
        if (repeats.Length != x.Rank) throw n.Error($"{repeats.Length} repeats for an input of rank {x.Rank}.");
        if (repeats.Any(r => r < 0 || r > int.MaxValue)) throw n.Error($"repeats [{string.Join(",", repeats)}] are invalid.");
        n.Emit(new TileOp(repeats.Select(r => (int)r).ToArray()), x);
    }
}
