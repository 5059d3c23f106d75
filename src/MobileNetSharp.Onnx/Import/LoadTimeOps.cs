using MobileNetSharp.Tensors;

namespace MobileNetSharp.Onnx.Import;

/// <summary>
/// Operators that exist in ONNX files only to compute shapes and constants (Shape, Gather,
/// ConstantOfShape, Range, ... as exporters emit them for dynamic reshapes). They are evaluated at load
/// time: Shape and Size need only the input's static shape, the others need constant inputs.
/// </summary>
internal static class LoadTimeOps
{
    private static readonly Dictionary<string, Func<NodeContext, Tensor[]>> Ops = new()
    {
        ["Constant"] = n => [Constant(n)],
        ["Shape"] = n => [ShapeOf(n)],
        ["Size"] = n => [SizeOf(n)],
        ["Gather"] = n => [Gather(n)],
        ["ConstantOfShape"] = n => [ConstantOfShape(n)],
        ["Range"] = n => [Range(n)],
    };

    public static IEnumerable<string> Names => Ops.Keys;

    public static bool Handles(string opType) => Ops.ContainsKey(opType);

    /// <summary>Evaluates and binds the node's outputs when its inputs allow it; false when some input is a runtime value.</summary>
    public static bool TryEvaluate(NodeContext n)
    {
        var op = Ops[n.OpType];
        bool shapeOnly = n.OpType is "Shape" or "Size";
        for (int i = 0; i < n.InputCount && !shapeOnly; i++)
            if (n.OptionalInput(i) is { IsConstant: false }) return false;
        Tensor[] results;
        try { results = op(n); }
        catch (ArgumentException e) { throw n.Error(e.Message); }
        for (int i = 0; i < results.Length; i++) n.BindConstant(i, results[i]);
        return true;
    }

    private static Tensor Constant(NodeContext n)
    {
        if (n.Attr.Tensor("value") is { } t) return n.Import.ReadTensor(t, $"Node '{n.DisplayName}' (Constant) value");
        if (n.Attr.Has("value_float")) return new Tensor([n.Attr.Float("value_float", 0f)], []);
        if (n.Attr.Floats("value_floats") is { } fs) return new Tensor(fs, fs.Length);
        if (n.Attr.Has("value_int")) return new Tensor([n.Attr.Int("value_int", 0)], []);
        if (n.Attr.Ints("value_ints") is { } ls) return new Tensor(ls, ls.Length);
        throw n.Error("has no supported value attribute (value, value_float(s), value_int(s)); sparse and string constants are not supported.");
    }

    private static Tensor ShapeOf(NodeContext n)
    {
        var shape = n.Input(0).Shape;
        int rank = shape.Length;
        int Clamp(long v) => (int)Math.Clamp(v < 0 ? v + rank : v, 0, rank);
        int start = Clamp(n.Attr.Int("start", 0)), end = Clamp(n.Attr.Int("end", rank));
        var dims = shape[start..Math.Max(start, end)].Select(d => (long)d).ToArray();
        n.Import.NoteShapeRead(n.Input(0), leadingAxis: start == 0 && end > 0);
        return new Tensor(dims, dims.Length);
    }

    private static Tensor SizeOf(NodeContext n)
    {
        n.Import.NoteShapeRead(n.Input(0), leadingAxis: true);
        return new Tensor([n.Input(0).Length], []);
    }

    private static Tensor Gather(NodeContext n)
    {
        var data = n.Input(0).Constant!;
        int axis = n.Axis(n.Attr.Int("axis", 0), Math.Max(1, data.Rank));
        if (data.Rank == 0) throw n.Error("data must have rank >= 1.");
        var (indices, indexShape) = GatherIndices(n, data.Shape[axis]);
        long size = Shape.Size(data.Shape) / Math.Max(1, data.Shape[axis]) * indices.Length;
        CheckSize(n, size);
        return TensorIndexing.Gather(data, axis, indices, indexShape);
    }

    /// <summary>Gather's indices, made non-negative and checked against the axis length.</summary>
    internal static (int[] Indices, int[] Shape) GatherIndices(NodeContext n, int dim)
    {
        var t = n.Constant(1, "indices");
        if (t.DataType is not (DataType.Int64 or DataType.Int32)) throw n.Error($"indices must be INT64 or INT32, got {t.DataType}.");
        var idx = TensorArithmetic.Int64s(t).Select(v =>
        {
            long k = v < 0 ? v + dim : v;
            return k >= 0 && k < dim ? (int)k : throw n.Error($"index {v} is out of range for an axis of size {dim}.");
        }).ToArray();
        return (idx, t.Shape);
    }

    private static Tensor ConstantOfShape(NodeContext n)
    {
        var dims = n.OptionalInts(0, "shape") ?? throw n.Error("requires a shape input.");
        ImportContext.CheckRank(dims.Length, "the output", n.Error);
        if (dims.Any(d => d < 0 || d > int.MaxValue)) throw n.Error($"shape [{string.Join(",", dims)}] has an invalid dimension.");
        var shape = dims.Select(d => (int)d).ToArray();
        CheckSize(n, Shape.Size(shape));
        var value = n.Attr.Tensor("value") is { } v ? n.Import.ReadTensor(v, $"Node '{n.DisplayName}' (ConstantOfShape) value") : new Tensor([0f], 1);
        if (value.Length != 1) throw n.Error($"value must hold one element, got shape {Shape.Format(value.Shape)}.");
        return Filled(value, shape);
    }

    /// <summary>A tensor of <paramref name="shape"/> holding the one element of <paramref name="value"/> everywhere (no index map).</summary>
    private static Tensor Filled(Tensor value, int[] shape)
    {
        int size = (int)Shape.Size(shape);
        Array data = value.DataType switch
        {
            DataType.Float32 => Fill(((float[])value.Data)[0], size),
            DataType.Int64 => Fill(((long[])value.Data)[0], size),
            DataType.Int32 => Fill(((int[])value.Data)[0], size),
            DataType.Int8 => Fill(((sbyte[])value.Data)[0], size),
            DataType.UInt8 => Fill(((byte[])value.Data)[0], size),
            DataType.Bool => Fill(((bool[])value.Data)[0], size),
            _ => throw new ArgumentException($"ConstantOfShape of {value.DataType} is not supported."),
        };
        return new Tensor(value.DataType, shape, data);
    }

    private static T[] Fill<T>(T v, int size)
    {
        var a = new T[size];
        if (!EqualityComparer<T>.Default.Equals(v, default)) Array.Fill(a, v);
        return a;
    }

    private static Tensor Range(NodeContext n)
    {
        var start = n.Constant(0, "start");
        var limit = n.Constant(1, "limit");
        var delta = n.Constant(2, "delta");
        if (start.Length != 1 || limit.Length != 1 || delta.Length != 1) throw n.Error("start, limit and delta must be scalars.");
        if (start.DataType != limit.DataType || start.DataType != delta.DataType) throw n.Error("start, limit and delta must have one type.");
        double s = Scalar(start), l = Scalar(limit), d = Scalar(delta);
        if (d == 0 || double.IsNaN(s) || double.IsNaN(l) || double.IsNaN(d)) throw n.Error("delta must be non-zero and all bounds numbers.");
        double count = Math.Max(Math.Ceiling((l - s) / d), 0);
        CheckSize(n, count > long.MaxValue ? long.MaxValue : (long)count);
        int c = (int)count;
        // Accumulate in the element type, as ONNX's reference and ORT do.
        return start.Data switch
        {
            float[] f => new Tensor(Accumulate(c, f[0], ((float[])delta.Data)[0], (a, b) => a + b), c),
            long[] i => new Tensor(Accumulate(c, i[0], ((long[])delta.Data)[0], (a, b) => unchecked(a + b)), c),
            int[] i => new Tensor(DataType.Int32, [c], Accumulate(c, i[0], ((int[])delta.Data)[0], (a, b) => unchecked(a + b))),
            _ => throw n.Error($"type {start.DataType} is not supported."),
        };
    }

    private static double Scalar(Tensor t) => t.Data is float[] f ? f[0] : TensorArithmetic.Int64s(t)[0];

    private static T[] Accumulate<T>(int count, T start, T delta, Func<T, T, T> add)
    {
        var r = new T[count];
        T v = start;
        for (int i = 0; i < count; i++) { r[i] = v; v = add(v, delta); }
        return r;
    }

    /// <summary>Counts the elements about to be computed against the model's load-time budget.</summary>
    private static void CheckSize(NodeContext n, long elements) => n.Import.ChargeFolded(elements, n.Error);
}
