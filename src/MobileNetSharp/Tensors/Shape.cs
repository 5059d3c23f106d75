namespace MobileNetSharp.Tensors;

/// <summary>Helpers on shapes, which are plain int arrays in logical (ONNX, NCHW) order.</summary>
public static class Shape
{
    /// <summary>Largest element count any tensor may have; keeps every index in an int and every allocation sane.</summary>
    public const long MaxElements = int.MaxValue / 2;

    /// <summary>
    /// Largest rank any tensor may have. The kernels' index loops are sized for it (on the stack), and no
    /// real model comes near it; a file declaring more is hostile, not ambitious.
    /// </summary>
    public const int MaxRank = 8;

    /// <summary>Element count; throws ArgumentException for negative dimensions, too many elements or rank above <see cref="MaxRank"/>.</summary>
    public static long Size(ReadOnlySpan<int> shape)
    {
        if (shape.Length > MaxRank) throw new ArgumentException($"Rank {shape.Length} exceeds the supported maximum of {MaxRank}.");
        long n = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"Negative dimension in shape {Format(shape)}.");
            n *= d;
            if (n > MaxElements) throw new ArgumentException($"Shape {Format(shape)} has more than {MaxElements} elements.");
        }
        return n;
    }

    public static string Format(ReadOnlySpan<int> shape) => "[" + string.Join(",", shape.ToArray()) + "]";

    public static bool Equal(ReadOnlySpan<int> a, ReadOnlySpan<int> b) => a.SequenceEqual(b);

    /// <summary>NumPy multidirectional broadcasting; throws with both shapes named when they do not broadcast.</summary>
    public static int[] Broadcast(ReadOnlySpan<int> a, ReadOnlySpan<int> b)
    {
        int rank = Math.Max(a.Length, b.Length);
        var r = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i < rank - a.Length ? 1 : a[i - (rank - a.Length)];
            int db = i < rank - b.Length ? 1 : b[i - (rank - b.Length)];
            if (da != db && da != 1 && db != 1)
                throw new ArgumentException($"Shapes {Format(a)} and {Format(b)} do not broadcast.");
            r[i] = da == 1 ? db : da;
        }
        return r;
    }

    /// <summary>Maps a possibly negative axis into [0, rank).</summary>
    public static int Axis(int axis, int rank)
    {
        int a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= rank) throw new ArgumentException($"Axis {axis} is out of range for rank {rank}.");
        return a;
    }
}
