using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tensors;

/// <summary>
/// Data movement on constant tensors for load-time evaluation. Every operation is expressed as an index
/// map (output element i = source element map[i]) so one typed copy serves every element type.
/// </summary>
internal static class TensorIndexing
{
    public static int[] Strides(int[] shape)
    {
        var s = new int[shape.Length];
        int acc = 1;
        for (int i = shape.Length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]; }
        return s;
    }

    /// <summary>
    /// out[i] = src[map[i]], in the source's element type. Dispatch is on DataType, not on the array's
    /// type: the CLR lets a byte[] pass for an sbyte[] and back.
    /// </summary>
    public static Tensor Take(Tensor src, int[] outShape, int[] map) => src.DataType switch
    {
        DataType.Float32 => new Tensor(src.DataType, outShape, Take((float[])src.Data, map)),
        DataType.Int64 => new Tensor(src.DataType, outShape, Take((long[])src.Data, map)),
        DataType.Int32 => new Tensor(src.DataType, outShape, Take((int[])src.Data, map)),
        DataType.Int8 => new Tensor(src.DataType, outShape, Take((sbyte[])src.Data, map)),
        DataType.UInt8 => new Tensor(src.DataType, outShape, Take((byte[])src.Data, map)),
        DataType.Bool => new Tensor(src.DataType, outShape, Take((bool[])src.Data, map)),
        _ => throw new ArgumentException($"Cannot move {src.DataType} data."),
    };

    private static T[] Take<T>(T[] src, int[] map)
    {
        var r = new T[map.Length];
        for (int i = 0; i < r.Length; i++) r[i] = src[map[i]];
        return r;
    }

    /// <summary>
    /// Visits every output coordinate in row-major order and records sum(coord[d] * strides[d]) + offset,
    /// where a stride of 0 repeats (broadcasts) a source axis.
    /// </summary>
    public static int[] StridedMap(int[] outShape, int[] strides, int offset = 0)
    {
        var map = new int[Shape.Size(outShape)];
        if (map.Length == 0) return map;
        var coord = new int[outShape.Length];
        int pos = offset;
        for (int i = 0; i < map.Length; i++)
        {
            map[i] = pos;
            for (int d = outShape.Length - 1; d >= 0; d--)
            {
                pos += strides[d];
                if (++coord[d] < outShape[d]) break;
                pos -= strides[d] * outShape[d];
                coord[d] = 0;
            }
        }
        return map;
    }

    public static Tensor Transpose(Tensor t, int[] perm)
    {
        var src = Strides(t.Shape);
        var outShape = perm.Select(p => t.Shape[p]).ToArray();
        return Take(t, outShape, StridedMap(outShape, perm.Select(p => src[p]).ToArray()));
    }

    /// <summary>Slicing with per-axis (start, step, count), as resolved by the graph's Slice op.</summary>
    public static Tensor Slice(Tensor t, (int Start, int Step, int Count)[] axes)
    {
        var src = Strides(t.Shape);
        int offset = 0;
        for (int d = 0; d < axes.Length; d++) offset += axes[d].Start * src[d];
        var outShape = axes.Select(a => a.Count).ToArray();
        var strides = axes.Select((a, d) => a.Step * src[d]).ToArray();
        return Take(t, outShape, StridedMap(outShape, strides, offset));
    }

    /// <summary>The index map that repeats size-1 axes (and missing leading axes) of <paramref name="shape"/> up to <paramref name="outShape"/>.</summary>
    public static int[] BroadcastMap(int[] shape, int[] outShape)
    {
        var src = Strides(shape);
        var strides = new int[outShape.Length];
        int lead = outShape.Length - shape.Length;
        for (int d = 0; d < shape.Length; d++) strides[lead + d] = shape[d] == 1 ? 0 : src[d];
        return StridedMap(outShape, strides);
    }

    /// <summary>ONNX Tile: the tensor repeated <paramref name="repeats"/>[d] times along each axis d.</summary>
    public static Tensor Tile(Tensor t, int[] repeats)
    {
        // As a view of shape [r0, d0, r1, d1, ...] that reads the source with stride 0 along each r axis:
        // its row-major order is the tiled tensor's.
        var src = Strides(t.Shape);
        var interleaved = new int[2 * t.Rank];
        var strides = new int[2 * t.Rank];
        for (int d = 0; d < t.Rank; d++)
        {
            interleaved[2 * d] = repeats[d];
            interleaved[2 * d + 1] = t.Shape[d];
            strides[2 * d + 1] = src[d];
        }
        return Take(t, t.Shape.Select((dim, d) => dim * repeats[d]).ToArray(), StridedMap(interleaved, strides));
    }

    /// <summary>ONNX Gather: picks entries along <paramref name="axis"/>; indices are already in range.</summary>
    public static Tensor Gather(Tensor t, int axis, int[] indices, int[] indexShape)
    {
        var outShape = t.Shape[..axis].Concat(indexShape).Concat(t.Shape[(axis + 1)..]).ToArray();
        int outer = (int)Shape.Size(t.Shape.AsSpan(0, axis)), inner = (int)Shape.Size(t.Shape.AsSpan(axis + 1));
        int dim = t.Shape[axis];
        var map = new int[Shape.Size(outShape)];
        int k = 0;
        for (int o = 0; o < outer; o++)
            foreach (int idx in indices)
                for (int i = 0; i < inner; i++) map[k++] = (o * dim + idx) * inner + i;
        return Take(t, outShape, map);
    }

    /// <summary>Concatenation along an axis; shapes were checked by the graph's Concat op.</summary>
    public static Tensor Concat(Tensor[] parts, int axis, int[] outShape)
    {
        var type = parts[0].DataType;
        var flat = Array.CreateInstance(type.ClrType(), parts.Sum(p => p.Length));
        int offset = 0;
        var bases = new int[parts.Length];
        for (int p = 0; p < parts.Length; p++)
        {
            Array.Copy(parts[p].Data, 0, flat, offset, parts[p].Length);
            bases[p] = offset;
            offset += parts[p].Length;
        }
        int outer = (int)Shape.Size(outShape.AsSpan(0, axis)), inner = (int)Shape.Size(outShape.AsSpan(axis + 1));
        var map = new int[Shape.Size(outShape)];
        int k = 0;
        for (int o = 0; o < outer; o++)
            for (int p = 0; p < parts.Length; p++)
            {
                int block = parts[p].Shape[axis] * inner;
                for (int i = 0; i < block; i++) map[k++] = bases[p] + o * block + i;
            }
        return Take(new Tensor(type, [flat.Length], flat), outShape, map);
    }
}
