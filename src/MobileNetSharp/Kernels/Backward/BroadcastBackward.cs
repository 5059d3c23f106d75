using System.Numerics.Tensors;

namespace MobileNetSharp.Kernels;

/// <summary>
/// The gradient of an operand that was broadcast (NumPy / ONNX multidirectional broadcasting, PyTorch's
/// sum_to_size): the output gradient summed over every dimension the operand was stretched along.
/// </summary>
public static class BroadcastBackward
{
    /// <summary>
    /// dx (row-major <paramref name="targetShape"/>) = dy (row-major <paramref name="dyShape"/>) summed down to the
    /// target, where targetShape broadcasts to dyShape under NumPy rules: shapes are right-aligned, a shorter target is
    /// left-padded with 1s, and each target dimension is 1 or equal to dy's. dx is written, not accumulated.
    /// <para>
    /// Dimensions of size 1 are dropped and neighbours of the same kind (kept / summed) merged first, so
    /// [N, H, W, C] -> [N, 1, 1, C] (squeeze-excite) becomes [N, H·W, C] -> [N, C] and [rows, C] -> [C] (a bias) a
    /// column sum: those run SIMD over channels, split over the workers in blocks fixed by the shape and accumulated
    /// in double, so the result does not depend on the thread count. Equal shapes copy; other patterns take a
    /// generic (single-threaded, double-accumulating) path.
    /// </para>
    /// </summary>
    /// <exception cref="ArgumentException">A negative dimension, a target that does not broadcast to dyShape, or a buffer
    /// shorter than its shape.</exception>
    public static void SumTo(ReadOnlySpan<float> dy, int[] dyShape, Span<float> dx, int[] targetShape, Workers? workers = null) =>
        SumTo(dy, dyShape, dx, targetShape, workers, null);

    /// <summary><see cref="SumTo(ReadOnlySpan{float}, int[], Span{float}, int[], Workers?)"/> at a chosen ISA (tests sweep it).</summary>
    internal static void SumTo(ReadOnlySpan<float> dy, int[] dyShape, Span<float> dx, int[] targetShape, Workers? workers, IsaLevel? isa)
    {
        ArgumentNullException.ThrowIfNull(dyShape);
        ArgumentNullException.ThrowIfNull(targetShape);
        string Describe() => $"[{string.Join(", ", targetShape)}] -> [{string.Join(", ", dyShape)}]";
        int rank = dyShape.Length, lead = rank - targetShape.Length;
        if (lead < 0) throw new ArgumentException($"Broadcast backward: the target {Describe()} has a higher rank than dy.");
        long dyCount = 1, dxCount = 1;
        for (int i = 0; i < rank; i++)
        {
            int d = dyShape[i], t = i < lead ? 1 : targetShape[i - lead];
            if (d < 0 || t < 0) throw new ArgumentException($"Broadcast backward: negative dimension in {Describe()}.");
            if (t != 1 && t != d) throw new ArgumentException($"Broadcast backward: the target does not broadcast to dy: {Describe()} (dimension {i}: {t} vs {d}).");
            dyCount *= d;
            dxCount *= t;
        }
        if (dy.Length < dyCount || dx.Length < dxCount)
            throw new ArgumentException($"Broadcast backward: dy ({dy.Length}) and dx ({dx.Length}) need {dyCount} and {dxCount} values for {Describe()}.");
        if (dyCount > int.MaxValue) throw new ArgumentException($"Broadcast backward: {dyCount} elements exceed a span.");
        var output = dx[..(int)dxCount];
        if (dyCount == 0) { output.Clear(); return; } // nothing to sum (an empty target, or zeros)

        // Merged dimensions: (size, summed). Size-1 dy dimensions vanish.
        Span<int> sizes = stackalloc int[Math.Max(1, rank)];
        Span<bool> summed = stackalloc bool[Math.Max(1, rank)];
        int r = 0;
        for (int i = 0; i < rank; i++)
        {
            int d = dyShape[i];
            if (d == 1) continue;
            bool s = i < lead || targetShape[i - lead] == 1;
            if (r > 0 && summed[r - 1] == s) { sizes[r - 1] *= d; continue; }
            sizes[r] = d; summed[r] = s; r++;
        }
        var src = dy[..(int)dyCount];
        workers ??= Workers.Single;
        IsaLevel level = Isa.Resolve(isa);

        if (r == 0 || (r == 1 && !summed[0])) { src.CopyTo(output); return; } // equal shapes (up to 1s)
        if (r == 1) { output[0] = (float)Sum(src); return; }              // everything summed
        if (r == 2 && !summed[0])                                          // [K, R]: a sum per row
        {
            for (int o = 0; o < sizes[0]; o++) output[o] = (float)Sum(src.Slice(o * sizes[1], sizes[1]));
            return;
        }
        if ((r == 2 && summed[0]) || (r == 3 && !summed[0]))               // [R, K] or [K, R, K]: column sums per segment
        {
            int segments = r == 2 ? 1 : sizes[0], rows = sizes[r - 2], channels = sizes[r - 1];
            double[] sums = ChannelReduction.Run(ChannelReduction.Op.Sum, src, default, default, segments, rows, channels, workers, level);
            for (int i = 0; i < output.Length; i++) output[i] = (float)sums[i];
            return;
        }
        Generic(src, sizes[..r], summed[..r], output);
    }

    /// <summary>Σ a in double, over float chunks summed by TensorPrimitives (SIMD) and added in order.</summary>
    private static double Sum(ReadOnlySpan<float> a)
    {
        const int Chunk = 1024;
        double s = 0;
        for (int i = 0; i < a.Length; i += Chunk) s += TensorPrimitives.Sum(a.Slice(i, Math.Min(Chunk, a.Length - i)));
        return s;
    }

    /// <summary>Any pattern of kept and summed dimensions: an odometer over dy, accumulating in double.</summary>
    private static void Generic(ReadOnlySpan<float> dy, ReadOnlySpan<int> sizes, ReadOnlySpan<bool> summed, Span<float> dx)
    {
        int rank = sizes.Length;
        Span<long> stride = stackalloc long[rank]; // dx stride of each dimension; 0 where summed
        long step = 1;
        for (int i = rank - 1; i >= 0; i--)
        {
            stride[i] = summed[i] ? 0 : step;
            if (!summed[i]) step *= sizes[i];
        }
        var acc = new double[dx.Length];
        Span<int> index = stackalloc int[rank];
        index.Clear();
        int inner = sizes[rank - 1];
        long innerStride = stride[rank - 1], o = 0;
        for (int i = 0; i < dy.Length; i += inner)
        {
            var row = dy.Slice(i, inner);
            if (innerStride == 0) acc[o] += Sum(row);
            else for (int k = 0; k < inner; k++) acc[o + k] += row[k];
            for (int d = rank - 2; d >= 0; d--)
            {
                o += stride[d];
                if (++index[d] < sizes[d]) break;
                o -= stride[d] * sizes[d];
                index[d] = 0;
            }
        }
        for (int i = 0; i < dx.Length; i++) dx[i] = (float)acc[i];
    }
}
