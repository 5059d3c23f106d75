namespace MobileNetSharp.Kernels;

/// <summary>
/// Gradients of y = x · Wᵀ + b (a fully connected layer, ONNX Gemm with transB, PyTorch's Linear), which is also a
/// 1x1 convolution on NHWC rows: x [rows, in], W [out, in], y [rows, out]. dX = dY · W and dW = dYᵀ · X run on the
/// engine's register-tiled GEMM (<see cref="MatMul"/>, threaded over output blocks); dB sums dY's columns.
/// Gradients are written, not accumulated.
/// </summary>
public static class LinearBackward
{
    /// <summary>dx [rows, in] = dy [rows, out] · w [out, in].</summary>
    public static void InputGradient(ReadOnlySpan<float> dy, ReadOnlySpan<float> w, Span<float> dx, int rows, int inFeatures, int outFeatures,
        Workers? workers = null, IsaLevel? isa = null)
    {
        Check(rows, inFeatures, outFeatures);
        MatMul.Run(dy, w, dx, rows, outFeatures, inFeatures, workers ?? Workers.Single, isa);
    }

    /// <summary>dw [out, in] = dyᵀ · x and db [out] = Σ_rows dy (db empty to skip).</summary>
    public static void WeightGradient(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dw, Span<float> db, int rows, int inFeatures, int outFeatures,
        Workers? workers = null, IsaLevel? isa = null)
    {
        Check(rows, inFeatures, outFeatures);
        if (dy.Length < (long)rows * outFeatures) throw new ArgumentException($"dy has {dy.Length} values, [{rows}, {outFeatures}] needs more.");
        var dyT = new float[(long)rows * outFeatures];
        Transpose(dy, dyT, rows, outFeatures);
        MatMul.Run(dyT, x, dw, outFeatures, rows, inFeatures, workers ?? Workers.Single, isa);
        if (!db.IsEmpty) ColumnSums(dy, db, rows, outFeatures);
    }

    private static void Check(int rows, int inFeatures, int outFeatures)
    {
        if (rows < 1 || inFeatures < 1 || outFeatures < 1) throw new ArgumentException($"Linear backward: sizes must be positive, got rows {rows}, in {inFeatures}, out {outFeatures}.");
    }

    /// <summary>db [cols] = Σ_r a [r, cols], summed in row order.</summary>
    internal static void ColumnSums(ReadOnlySpan<float> a, Span<float> db, int rows, int cols)
    {
        if (db.Length < cols) throw new ArgumentException($"db has {db.Length} values, {cols} needed.");
        db[..cols].Clear();
        for (int r = 0; r < rows; r++)
            System.Numerics.Tensors.TensorPrimitives.Add(db[..cols], a.Slice(r * cols, cols), db[..cols]);
    }

    /// <summary>t [cols, rows] = aᵀ for a [rows, cols], in 32x32 tiles so both sides stay in cache.</summary>
    internal static void Transpose(ReadOnlySpan<float> a, Span<float> t, int rows, int cols)
    {
        const int B = 32;
        for (int r0 = 0; r0 < rows; r0 += B)
            for (int c0 = 0; c0 < cols; c0 += B)
            {
                int r1 = Math.Min(rows, r0 + B), c1 = Math.Min(cols, c0 + B);
                for (int r = r0; r < r1; r++)
                    for (int c = c0; c < c1; c++) t[c * rows + r] = a[r * cols + c];
            }
    }
}
