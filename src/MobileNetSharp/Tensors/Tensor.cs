namespace MobileNetSharp.Tensors;

/// <summary>
/// A dense, row-major tensor in logical order (NCHW for images, as in ONNX and PyTorch).
/// Storage is a plain array of the element type so users can read results without copies.
/// </summary>
public sealed class Tensor
{
    public DataType DataType { get; }
    public int[] Shape { get; }
    public Array Data { get; }
    public int Length => Data.Length;
    public int Rank => Shape.Length;

    public Tensor(DataType type, int[] shape, Array data)
    {
        long size = Tensors.Shape.Size(shape);
        if (data.GetType().GetElementType() != type.ClrType())
            throw new ArgumentException($"Data of type {data.GetType().Name} does not hold {type}.");
        if (data.Length != size)
            throw new ArgumentException($"Shape {Tensors.Shape.Format(shape)} needs {size} elements, got {data.Length}.");
        DataType = type;
        Shape = (int[])shape.Clone();
        Data = data;
    }

    public Tensor(float[] data, params int[] shape) : this(DataType.Float32, shape, data) { }
    public Tensor(long[] data, params int[] shape) : this(DataType.Int64, shape, data) { }

    public static Tensor Zeros(params int[] shape) => new(new float[Tensors.Shape.Size(shape)], shape);

    public static Tensor Create(DataType type, int[] shape) =>
        new(type, shape, Array.CreateInstance(type.ClrType(), Tensors.Shape.Size(shape)));

    /// <summary>Uniform random values in [lo, hi), from a seeded generator (deterministic).</summary>
    public static Tensor Random(int seed, int[] shape, float lo = -1f, float hi = 1f)
    {
        var rng = new Random(seed);
        var d = new float[Tensors.Shape.Size(shape)];
        for (int i = 0; i < d.Length; i++) d[i] = lo + (hi - lo) * rng.NextSingle();
        return new Tensor(d, shape);
    }

    public float[] Floats => Data as float[] ?? throw new InvalidOperationException($"Tensor holds {DataType}, not Float32.");
    public long[] Int64s => Data as long[] ?? throw new InvalidOperationException($"Tensor holds {DataType}, not Int64.");

    /// <summary>Values as int64 whatever the integer type (for shape-like tensors).</summary>
    public long[] ToInt64Array() => Data switch
    {
        long[] l => l,
        int[] i => Array.ConvertAll(i, v => (long)v),
        float[] f => Array.ConvertAll(f, v => (long)v),
        byte[] b => Array.ConvertAll(b, v => (long)v),
        sbyte[] s => Array.ConvertAll(s, v => (long)v),
        bool[] z => Array.ConvertAll(z, v => v ? 1L : 0L),
        _ => throw new InvalidOperationException($"Cannot read {DataType} as integers."),
    };

    public Tensor Reshape(params int[] shape) => new(DataType, shape, Data);

    public override string ToString() => $"Tensor<{DataType}>{Tensors.Shape.Format(Shape)}";
}
