using MobileNetSharp.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Runtime;

/// <summary>
/// Steps that move elements without arithmetic, for every element type: each is generic over a
/// same-sized stand-in (byte, ushort, int, long), chosen once at compile time from the slot's type,
/// so int64 indices, bool masks and uint8 images move through the same code as float activations.
/// </summary>
internal static class DataMovement
{
    public static Step Copy(string name, Slot x, Slot y) => Sized(x, new CopyFactory(name, x, y));

    public static Step Transpose(string name, int[] shape, int[] perm, Slot x, Slot y) => Sized(x, new TransposeFactory(name, shape, perm, x, y));

    public static Step Slice(string name, int[] inShape, (int Start, int Step, int Count)[] axes, Slot x, Slot y) =>
        Sized(x, new SliceFactory(name, inShape, axes, x, y));

    public static Step Concat(string name, Slot[] inputs, int[][] shapes, int axis, Slot y) => Sized(y, new ConcatFactory(name, inputs, shapes, axis, y));

    /// <summary>Transposes a constant array of any element type at compile time.</summary>
    public static void Transpose(Array x, Array y, int[] shape, int[] perm)
    {
        switch (x)
        {
            case float[] f: Layout.Transpose<float>(f, shape, perm, (float[])y); break;
            case long[] l: Layout.Transpose<long>(l, shape, perm, (long[])y); break;
            case int[] i: Layout.Transpose<int>(i, shape, perm, (int[])y); break;
            case byte[] b: Layout.Transpose<byte>(b, shape, perm, (byte[])y); break;
            case sbyte[] s: Layout.Transpose<sbyte>(s, shape, perm, (sbyte[])y); break;
            case bool[] b: Layout.Transpose<bool>(b, shape, perm, (bool[])y); break;
            case Half[] h: Layout.Transpose<Half>(h, shape, perm, (Half[])y); break;
            default: throw new ArgumentException($"Cannot transpose a {x.GetType().Name} constant.");
        }
    }

    internal interface IFactory { Step Create<T>() where T : unmanaged; }

    /// <summary>Instantiates the step for a stand-in type of the slot's element size.</summary>
    internal static Step Sized<TF>(Slot s, TF factory) where TF : IFactory => s.DataType.SizeOf() switch
    {
        1 => factory.Create<byte>(),
        2 => factory.Create<ushort>(),
        4 => factory.Create<int>(),
        8 => factory.Create<long>(),
        var n => throw new ArgumentException($"No data movement for {n}-byte elements."),
    };

    private readonly record struct CopyFactory(string Name, Slot X, Slot Y) : IFactory
    {
        public Step Create<T>() where T : unmanaged => new CopyStep<T>(Name, X, Y);
    }

    private readonly record struct TransposeFactory(string Name, int[] Shape, int[] Perm, Slot X, Slot Y) : IFactory
    {
        public Step Create<T>() where T : unmanaged => new TransposeStep<T>(Name, Shape, Perm, X, Y);
    }

    private readonly record struct SliceFactory(string Name, int[] InShape, (int, int, int)[] Axes, Slot X, Slot Y) : IFactory
    {
        public Step Create<T>() where T : unmanaged => new SliceStep<T>(Name, InShape, Axes, X, Y);
    }

    private readonly record struct ConcatFactory(string Name, Slot[] Inputs, int[][] Shapes, int Axis, Slot Y) : IFactory
    {
        public Step Create<T>() where T : unmanaged => new ConcatStep<T>(Name, Inputs, Shapes, Axis, Y);
    }
}

/// <summary>Copies a buffer as is (reshape into a graph output that must not alias its input).</summary>
internal sealed class CopyStep<T>(string name, Slot x, Slot y) : Step(name, [x], [y]) where T : unmanaged
{
    public override string Kernel => "Copy";

    public override unsafe void Execute(RunContext ctx)
    {
        var src = ctx.Read<T>(x);
        var dst = ctx.Write<T>(y);
        if (src.Length > dst.Length) throw new InvalidOperationException($"Copy '{Name}': {src.Length} elements into {dst.Length}.");
        fixed (T* ps = src, pd = dst)
        {
            var body = new Bytes { Source = (byte*)ps, Destination = (byte*)pd };
            Kernels.Chunked.Run(ctx.Workers, (long)src.Length * sizeof(T), ref body, elementSize: 1);
        }
    }

    private unsafe struct Bytes : Kernels.IChunkBody
    {
        public byte* Source, Destination;

        public readonly void Invoke(long start, long count) => Buffer.MemoryCopy(Source + start, Destination + start, count, count);
    }
}

/// <summary>Permutes axes; also converts layouts (NCHW &lt;-&gt; NHWC).</summary>
internal sealed class TransposeStep<T>(string name, int[] shape, int[] perm, Slot x, Slot y) : Step(name, [x], [y]) where T : unmanaged
{
    public override string Kernel => perm.SequenceEqual([0, 2, 3, 1]) ? "ToNhwc" : perm.SequenceEqual([0, 3, 1, 2]) ? "ToNchw" : "Transpose";
    public override void Execute(RunContext ctx) => Layout.Transpose(ctx.Read<T>(x), shape, perm, ctx.Write<T>(y));
}

/// <summary>Concatenation along one physical axis: each input is `outer` blocks copied side by side.</summary>
internal sealed class ConcatStep<T> : Step where T : unmanaged
{
    private readonly (Slot Slot, int Block, int Offset)[] _parts;
    private readonly int _outer, _stride;
    private readonly Slot _y;

    public ConcatStep(string name, Slot[] inputs, int[][] shapes, int axis, Slot y) : base(name, inputs, [y])
    {
        _y = y;
        _outer = 1;
        for (int d = 0; d < axis; d++) _outer *= y.Shape[d];
        int inner = 1;
        for (int d = axis + 1; d < y.Shape.Length; d++) inner *= y.Shape[d];
        _stride = y.Shape[axis] * inner;
        _parts = new (Slot, int, int)[inputs.Length];
        int offset = 0;
        for (int i = 0; i < inputs.Length; i++)
        {
            int block = shapes[i][axis] * inner;
            _parts[i] = (inputs[i], block, offset);
            offset += block;
        }
    }

    public override string Kernel => "Concat";

    public override void Execute(RunContext ctx)
    {
        var y = ctx.Write<T>(_y);
        foreach (var (slot, block, offset) in _parts)
            if (block > 0) Layout.CopyBlocks(ctx.Read<T>(slot), y, _outer, block, _stride, offset);
    }
}

/// <summary>
/// Strided N-D copy: for each output element, the input element at start + index * step per axis.
/// Serves Slice and (with unit steps) each output of Split.
/// </summary>
internal sealed class SliceStep<T> : Step where T : unmanaged
{
    private readonly Slot _x, _y;
    private readonly int[] _outShape;
    private readonly int[] _inStrides; // input element stride per output axis step
    private readonly int _base;

    public SliceStep(string name, int[] inShape, (int Start, int Step, int Count)[] axes, Slot x, Slot y) : base(name, [x], [y])
    {
        (_x, _y) = (x, y);
        _outShape = axes.Select(a => a.Count).ToArray();
        _inStrides = new int[inShape.Length];
        int stride = 1;
        for (int d = inShape.Length - 1; d >= 0; d--)
        {
            _inStrides[d] = stride * axes[d].Step;
            _base += stride * axes[d].Start;
            stride *= inShape[d];
        }
    }

    public override string Kernel => "Slice";

    public override void Execute(RunContext ctx)
    {
        var input = ctx.Read<T>(_x);
        var output = ctx.Write<T>(_y);
        if (output.Length == 0) return;
        int rank = _outShape.Length;
        int inner = rank == 0 ? 1 : _outShape[^1];
        int innerStride = rank == 0 ? 0 : _inStrides[^1];
        Span<int> index = stackalloc int[Math.Max(rank, 1)];
        int src = _base;
        for (int o = 0; o < output.Length; o += inner)
        {
            if (innerStride == 1) input.Slice(src, inner).CopyTo(output.Slice(o, inner));
            else for (int i = 0; i < inner; i++) output[o + i] = input[src + i * innerStride];
            for (int d = rank - 2; d >= 0; d--)
            {
                src += _inStrides[d];
                if (++index[d] < _outShape[d]) break;
                src -= _inStrides[d] * _outShape[d];
                index[d] = 0;
            }
        }
    }
}
