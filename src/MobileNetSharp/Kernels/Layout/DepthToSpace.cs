namespace MobileNetSharp.Kernels;

/// <summary>How DepthToSpace orders the channels it spreads: ONNX mode "DCR" (depth-column-row, the default) or "CRD".</summary>
public enum DepthToSpaceMode { Dcr, Crd }

/// <summary>Where the channel axis of a 4-D image tensor sits in memory.</summary>
public enum ChannelLayout { Nchw, Nhwc }

public static partial class Layout
{
    /// <summary>
    /// ONNX DepthToSpace (operator spec "DepthToSpace", opset 13), any element type. Logical semantics on NCHW
    /// x [N, C, H, W] → y [N, C/b², H·b, W·b]:
    /// DCR: y[n, c, h·b + i, w·b + j] = x[n, (i·b + j)·C/b² + c, h, w];
    /// CRD: y[n, c, h·b + i, w·b + j] = x[n, c·b² + i·b + j, h, w].
    /// With <see cref="ChannelLayout.Nhwc"/>, <paramref name="shape"/> is the physical [N, H, W, C] and y is
    /// [N, H·b, W·b, C/b²] with the same index mapping. Implemented as the 6-D transpose of the spec's
    /// reshape–transpose–reshape, which <see cref="Transpose{T}"/> collapses and tiles.
    /// </summary>
    public static void DepthToSpace<T>(ReadOnlySpan<T> x, ReadOnlySpan<int> shape, int blockSize, DepthToSpaceMode mode, ChannelLayout layout, Span<T> y)
        where T : unmanaged
    {
        (int n, int c, int h, int w) = Image(shape, layout, "DepthToSpace");
        if (blockSize < 1) throw new ArgumentException($"DepthToSpace: blocksize must be positive, got {blockSize}.", nameof(blockSize));
        long b2 = (long)blockSize * blockSize;
        if (c % b2 != 0) throw new ArgumentException($"DepthToSpace: {c} channels are not divisible by blocksize² = {b2}.", nameof(blockSize));
        if ((long)h * blockSize > int.MaxValue || (long)w * blockSize > int.MaxValue) throw new ArgumentException("DepthToSpace: output too large.");
        int b = blockSize, cc = (int)(c / b2);
        Span<int> view = stackalloc int[6];
        Span<int> perm = stackalloc int[6];
        if (layout == ChannelLayout.Nchw)
        {
            if (mode == DepthToSpaceMode.Dcr) { Set(view, n, b, b, cc, h, w); Set(perm, 0, 3, 4, 1, 5, 2); }
            else { Set(view, n, cc, b, b, h, w); Set(perm, 0, 1, 4, 2, 5, 3); }
        }
        else
        {
            // x[n, h, w, ch] with ch = (i·b + j)·C' + c (DCR) or c·b² + i·b + j (CRD) → y[n, h, i, w, j, c].
            if (mode == DepthToSpaceMode.Dcr) { Set(view, n, h, w, b, b, cc); Set(perm, 0, 1, 3, 2, 4, 5); }
            else { Set(view, n, h, w, cc, b, b); Set(perm, 0, 1, 4, 2, 5, 3); }
        }
        Transpose(x, view, perm, y);
    }

    /// <summary>
    /// ONNX SpaceToDepth (operator spec "SpaceToDepth", opset 13), the inverse of DepthToSpace in DCR order, any
    /// element type. NCHW x [N, C, H, W] → y [N, C·b², H/b, W/b] with y[n, (i·b + j)·C + c, h, w] =
    /// x[n, c, h·b + i, w·b + j]; with <see cref="ChannelLayout.Nhwc"/> the physical [N, H, W, C] → [N, H/b, W/b, C·b²].
    /// </summary>
    public static void SpaceToDepth<T>(ReadOnlySpan<T> x, ReadOnlySpan<int> shape, int blockSize, ChannelLayout layout, Span<T> y) where T : unmanaged
    {
        (int n, int c, int h, int w) = Image(shape, layout, "SpaceToDepth");
        if (blockSize < 1) throw new ArgumentException($"SpaceToDepth: blocksize must be positive, got {blockSize}.", nameof(blockSize));
        if (h % blockSize != 0 || w % blockSize != 0)
            throw new ArgumentException($"SpaceToDepth: height {h} and width {w} must be divisible by the blocksize {blockSize}.", nameof(blockSize));
        if ((long)c * blockSize * blockSize > int.MaxValue) throw new ArgumentException("SpaceToDepth: output too large.");
        int b = blockSize;
        Span<int> view = stackalloc int[6];
        Span<int> perm = stackalloc int[6];
        if (layout == ChannelLayout.Nchw) { Set(view, n, c, h / b, b, w / b, b); Set(perm, 0, 3, 5, 1, 2, 4); }
        else { Set(view, n, h / b, b, w / b, b, c); Set(perm, 0, 1, 3, 2, 4, 5); }
        Transpose(x, view, perm, y);
    }

    private static (int N, int C, int H, int W) Image(ReadOnlySpan<int> shape, ChannelLayout layout, string op)
    {
        if (shape.Length != 4) throw new ArgumentException($"{op}: expected a 4-D tensor, got rank {shape.Length}.");
        foreach (int d in shape) if (d < 0) throw new ArgumentException($"{op}: negative dimension.");
        return layout == ChannelLayout.Nchw ? (shape[0], shape[1], shape[2], shape[3]) : (shape[0], shape[3], shape[1], shape[2]);
    }

    private static void Set(Span<int> s, int a, int b, int c, int d, int e, int f)
    {
        s[0] = a; s[1] = b; s[2] = c; s[3] = d; s[4] = e; s[5] = f;
    }
}
