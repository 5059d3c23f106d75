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

    /// <summary>For float weights a quantized model's DequantizeLinear produced at load time: the integers they came from.</summary>
    public QuantizedOrigin? Origin { get; init; }

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
    /// <remarks>
    /// Dispatches on <see cref="DataType"/>, not on the array's runtime type: the CLR lets an sbyte[]
    /// pass as a byte[], which would read int8 -1 as 255.
    /// </remarks>
    public long[] ToInt64Array() => DataType switch
    {
        DataType.Int64 => (long[])Data,
        DataType.Int32 => Array.ConvertAll((int[])Data, v => (long)v),
        DataType.Float32 => Array.ConvertAll((float[])Data, v => (long)v),
        DataType.UInt8 => Array.ConvertAll((byte[])Data, v => (long)v),
        DataType.Int8 => Array.ConvertAll((sbyte[])Data, v => (long)v),
        DataType.Bool => Array.ConvertAll((bool[])Data, v => v ? 1L : 0L),
        _ => throw new InvalidOperationException($"Cannot read {DataType} as integers."),
    };

    public Tensor Reshape(params int[] shape) => new(DataType, shape, Data);

    public override string ToString() => $"Tensor<{DataType}>{Tensors.Shape.Format(Shape)}";
}
