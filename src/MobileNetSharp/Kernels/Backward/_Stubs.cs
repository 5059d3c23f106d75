// TEMPORARY naive versions of the training kernels, replaced by the real ones on merge of branch bwd.
namespace MobileNetSharp.Kernels;

public static class BatchNormTraining
{
    public static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, Span<float> y,
        Span<float> mean, Span<float> invStd, int rows, int channels, float epsilon, Workers? workers = null)
    {
        var s = new double[channels]; var q = new double[channels];
        for (int r = 0; r < rows; r++) for (int c = 0; c < channels; c++) s[c] += x[r * channels + c];
        for (int c = 0; c < channels; c++) s[c] /= rows;
        for (int r = 0; r < rows; r++) for (int c = 0; c < channels; c++) { double d = x[r * channels + c] - s[c]; q[c] += d * d; }
        for (int c = 0; c < channels; c++) { mean[c] = (float)s[c]; invStd[c] = (float)(1 / Math.Sqrt(q[c] / rows + epsilon)); }
        for (int r = 0; r < rows; r++) for (int c = 0; c < channels; c++)
            y[r * channels + c] = gamma[c] * (x[r * channels + c] - mean[c]) * invStd[c] + beta[c];
    }
    public static void Backward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, ReadOnlySpan<float> gamma, ReadOnlySpan<float> mean,
        ReadOnlySpan<float> invStd, Span<float> dx, Span<float> dgamma, Span<float> dbeta, int rows, int channels, Workers? workers = null)
    {
        var sdy = new double[channels]; var sdyx = new double[channels];
        for (int r = 0; r < rows; r++) for (int c = 0; c < channels; c++)
        { double xh = (x[r * channels + c] - mean[c]) * invStd[c]; sdy[c] += dy[r * channels + c]; sdyx[c] += dy[r * channels + c] * xh; }
        for (int c = 0; c < channels; c++) { dgamma[c] = (float)sdyx[c]; dbeta[c] = (float)sdy[c]; }
        for (int r = 0; r < rows; r++) for (int c = 0; c < channels; c++)
        {
            double xh = (x[r * channels + c] - mean[c]) * invStd[c];
            dx[r * channels + c] = (float)(gamma[c] * invStd[c] / rows * (rows * dy[r * channels + c] - sdy[c] - xh * sdyx[c]));
        }
    }
    public static void UpdateRunningStatistics(ReadOnlySpan<float> mean, ReadOnlySpan<float> invStd, float epsilon, int rows,
        float momentum, Span<float> runningMean, Span<float> runningVar)
    {
        for (int c = 0; c < mean.Length; c++)
        {
            double v = 1.0 / ((double)invStd[c] * invStd[c]) - epsilon;
            if (rows > 1) v *= rows / (rows - 1.0);
            runningMean[c] = (1 - momentum) * runningMean[c] + momentum * mean[c];
            runningVar[c] = (float)((1 - momentum) * runningVar[c] + momentum * v);
        }
    }
}

public static class PoolingBackward
{
    public static void MaxPool2d(in Conv2dGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx, Workers? workers = null)
    {
        dx[..(int)g.InputLength].Clear();
        int C = g.InC;
        for (int n = 0; n < g.Batch; n++) for (int oy = 0; oy < g.OutH; oy++) for (int ox = 0; ox < g.OutW; ox++) for (int c = 0; c < C; c++)
        {
            int best = -1; float bv = float.NegativeInfinity;
            for (int ky = 0; ky < g.KernelH; ky++) for (int kx = 0; kx < g.KernelW; kx++)
            {
                int iy = oy * g.StrideH - g.PadTop + ky * g.DilationH, ix = ox * g.StrideW - g.PadLeft + kx * g.DilationW;
                if ((uint)iy >= (uint)g.InH || (uint)ix >= (uint)g.InW) continue;
                int i = ((n * g.InH + iy) * g.InW + ix) * C + c;
                if (best < 0 || x[i] > bv) { best = i; bv = x[i]; }
            }
            if (best >= 0) dx[best] += dy[((n * g.OutH + oy) * g.OutW + ox) * C + c];
        }
    }
    public static void AveragePool2d(in Conv2dGeometry g, bool countIncludePad, ReadOnlySpan<float> dy, Span<float> dx, Workers? workers = null)
    {
        dx[..(int)g.InputLength].Clear();
        int C = g.InC;
        for (int n = 0; n < g.Batch; n++) for (int oy = 0; oy < g.OutH; oy++) for (int ox = 0; ox < g.OutW; ox++)
        {
            int count = 0;
            for (int ky = 0; ky < g.KernelH; ky++) for (int kx = 0; kx < g.KernelW; kx++)
            {
                int iy = oy * g.StrideH - g.PadTop + ky * g.DilationH, ix = ox * g.StrideW - g.PadLeft + kx * g.DilationW;
                bool inside = (uint)iy < (uint)g.InH && (uint)ix < (uint)g.InW;
                if (inside || countIncludePad) count++;
            }
            for (int ky = 0; ky < g.KernelH; ky++) for (int kx = 0; kx < g.KernelW; kx++)
            {
                int iy = oy * g.StrideH - g.PadTop + ky * g.DilationH, ix = ox * g.StrideW - g.PadLeft + kx * g.DilationW;
                if ((uint)iy >= (uint)g.InH || (uint)ix >= (uint)g.InW) continue;
                for (int c = 0; c < C; c++) dx[((n * g.InH + iy) * g.InW + ix) * C + c] += dy[((n * g.OutH + oy) * g.OutW + ox) * C + c] / count;
            }
        }
    }
    public static void GlobalAveragePool(int batch, int spatial, int channels, ReadOnlySpan<float> dy, Span<float> dx)
    {
        for (int n = 0; n < batch; n++) for (int s = 0; s < spatial; s++) for (int c = 0; c < channels; c++)
            dx[(n * spatial + s) * channels + c] = dy[n * channels + c] / spatial;
    }
    public static void GlobalMaxPool(int batch, int spatial, int channels, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx)
    {
        dx[..(batch * spatial * channels)].Clear();
        for (int n = 0; n < batch; n++) for (int c = 0; c < channels; c++)
        {
            int best = 0;
            for (int s = 1; s < spatial; s++) if (x[(n * spatial + s) * channels + c] > x[(n * spatial + best) * channels + c]) best = s;
            dx[(n * spatial + best) * channels + c] = dy[n * channels + c];
        }
    }
}

public static class SoftmaxCrossEntropy
{
    public static float Forward(ReadOnlySpan<float> logits, ReadOnlySpan<long> labels, Span<float> probabilities, int batch, int classes, float labelSmoothing = 0)
    {
        double loss = 0;
        for (int n = 0; n < batch; n++)
        {
            var row = logits.Slice(n * classes, classes);
            float m = float.NegativeInfinity; foreach (var v in row) m = MathF.Max(m, v);
            double z = 0; foreach (var v in row) z += Math.Exp(v - m);
            double lz = Math.Log(z) + m;
            long t = labels[n];
            if ((ulong)t >= (ulong)classes) throw new ArgumentException($"label {t} of sample {n} is outside [0, {classes}).");
            for (int k = 0; k < classes; k++)
            {
                probabilities[n * classes + k] = (float)Math.Exp(row[k] - lz);
                double target = (k == t ? 1 - labelSmoothing : 0) + labelSmoothing / classes;
                loss -= target * (row[k] - lz);
            }
        }
        return (float)(loss / batch);
    }
    public static void Backward(ReadOnlySpan<float> probabilities, ReadOnlySpan<long> labels, Span<float> dlogits, int batch, int classes, float labelSmoothing = 0, float lossScale = 1)
    {
        for (int n = 0; n < batch; n++) for (int k = 0; k < classes; k++)
        {
            double target = (k == labels[n] ? 1 - labelSmoothing : 0) + labelSmoothing / classes;
            dlogits[n * classes + k] = (float)((probabilities[n * classes + k] - target) * lossScale / batch);
        }
    }
}

public static class DropoutKernel
{
    private static ulong Mix(ulong z) { z += 0x9E3779B97F4A7C15; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB; return z ^ (z >> 31); }
    public static void Forward(ReadOnlySpan<float> x, Span<float> y, Span<byte> mask, float ratio, ulong seed)
    {
        float scale = 1 / (1 - ratio);
        for (int i = 0; i < x.Length; i++)
        {
            bool keep = (Mix(seed ^ (ulong)i * 0xD1B54A32D192ED03) >> 40) * (1.0 / (1 << 24)) >= ratio;
            mask[i] = keep ? (byte)1 : (byte)0; y[i] = keep ? x[i] * scale : 0;
        }
    }
    public static void Backward(ReadOnlySpan<float> dy, ReadOnlySpan<byte> mask, Span<float> dx, float ratio)
    {
        float scale = 1 / (1 - ratio);
        for (int i = 0; i < dy.Length; i++) dx[i] = mask[i] != 0 ? dy[i] * scale : 0;
    }
}

public static class BroadcastBackward
{
    public static void SumTo(ReadOnlySpan<float> dy, int[] dyShape, Span<float> dx, int[] targetShape, Workers? workers = null)
    {
        int r = dyShape.Length;
        var t = new int[r];
        for (int i = 0; i < r; i++) t[i] = i < r - targetShape.Length ? 1 : targetShape[i - (r - targetShape.Length)];
        long total = Tensors.Shape.Size(targetShape);
        dx[..(int)total].Clear();
        var idx = new int[r];
        for (long e = 0; e < dy.Length; e++)
        {
            long rem = e, off = 0;
            for (int d = r - 1; d >= 0; d--) { idx[d] = (int)(rem % dyShape[d]); rem /= dyShape[d]; }
            for (int d = 0; d < r; d++) off = off * t[d] + (t[d] == 1 ? 0 : idx[d]);
            dx[(int)off] += dy[(int)e];
        }
    }
}
