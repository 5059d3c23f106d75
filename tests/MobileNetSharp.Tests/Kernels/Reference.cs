using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;

namespace MobileNetSharp.Tests.Kernels;

/// <summary>
/// Naive reference kernels: plain loops, explicit NHWC / row-major index math, double accumulation.
/// Written for obviousness, not speed; every fast kernel is compared against these.
/// </summary>
internal static class Reference
{
    /// <summary>NHWC conv with OIHW weights, groups, dilation, asymmetric pads; epilogue bias (+ residual) then act.</summary>
    public static float[] Conv2d(Conv2dGeometry g, int batch, float[] x, float[] w, float[] bias, float[]? residual, Activation act)
    {
        int oh = g.OutH, ow = g.OutW, icg = g.InCPerGroup, ocg = g.OutCPerGroup;
        var y = new float[batch * oh * ow * g.OutC];
        for (int n = 0; n < batch; n++)
        for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
        for (int oc = 0; oc < g.OutC; oc++)
        {
            int grp = oc / ocg;
            double acc = bias.Length > 0 ? bias[oc] : 0;
            for (int ic = 0; ic < icg; ic++)
            for (int ky = 0; ky < g.KernelH; ky++)
            for (int kx = 0; kx < g.KernelW; kx++)
            {
                int iy = oy * g.StrideH - g.PadTop + ky * g.DilationH;
                int ix = ox * g.StrideW - g.PadLeft + kx * g.DilationW;
                if (iy < 0 || iy >= g.InH || ix < 0 || ix >= g.InW) continue;
                double xv = x[((n * g.InH + iy) * g.InW + ix) * g.InC + grp * icg + ic];
                double wv = w[((oc * icg + ic) * g.KernelH + ky) * g.KernelW + kx];
                acc += xv * wv;
            }
            int o = ((n * oh + oy) * ow + ox) * g.OutC + oc;
            if (residual != null) acc += residual[o];
            y[o] = act.Apply((float)acc);
        }
        return y;
    }

    /// <summary>y[r, o] = act(sum_i x[r, i] * w[o, i] + bias[o]).</summary>
    public static float[] FullyConnected(int rows, int inF, int outF, float[] x, float[] w, float[] bias, Activation act)
    {
        var y = new float[rows * outF];
        for (int r = 0; r < rows; r++)
        for (int o = 0; o < outF; o++)
        {
            double acc = bias.Length > 0 ? bias[o] : 0;
            for (int i = 0; i < inF; i++) acc += (double)x[r * inF + i] * w[o * inF + i];
            y[r * outF + o] = act.Apply((float)acc);
        }
        return y;
    }

    public static float[] MatMul(float[] a, float[] b, int m, int k, int n)
    {
        var c = new float[m * n];
        for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
        {
            double acc = 0;
            for (int p = 0; p < k; p++) acc += (double)a[i * k + p] * b[p * n + j];
            c[i * n + j] = (float)acc;
        }
        return c;
    }

    /// <summary>NHWC pooling. Average divides by the cells inside the input, or with countIncludePad by the
    /// cells inside input + declared pads (declared = given pads minus the ceil-mode extra).</summary>
    public static float[] Pool(Conv2dGeometry g, int batch, float[] x, bool max, bool countIncludePad, int extraBottom = 0, int extraRight = 0)
    {
        int oh = g.OutH, ow = g.OutW, c = g.InC;
        var y = new float[batch * oh * ow * c];
        for (int n = 0; n < batch; n++)
        for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
        for (int ch = 0; ch < c; ch++)
        {
            double acc = max ? double.NegativeInfinity : 0;
            int count = 0;
            for (int ky = 0; ky < g.KernelH; ky++)
            for (int kx = 0; kx < g.KernelW; kx++)
            {
                int iy = oy * g.StrideH - g.PadTop + ky * g.DilationH;
                int ix = ox * g.StrideW - g.PadLeft + kx * g.DilationW;
                bool inInput = iy >= 0 && iy < g.InH && ix >= 0 && ix < g.InW;
                bool inDeclared = iy >= -g.PadTop && iy < g.InH + g.PadBottom - extraBottom && ix >= -g.PadLeft && ix < g.InW + g.PadRight - extraRight;
                if (countIncludePad ? inDeclared : inInput) count++;
                if (!inInput) continue;
                double v = x[((n * g.InH + iy) * g.InW + ix) * c + ch];
                acc = max ? Math.Max(acc, v) : acc + v;
            }
            y[((n * oh + oy) * ow + ox) * c + ch] = (float)(max ? acc : acc / Math.Max(1, count));
        }
        return y;
    }

    public static float Binary(BinaryKind kind, float a, float b) => kind switch
    {
        BinaryKind.Add => a + b,
        BinaryKind.Sub => a - b,
        BinaryKind.Mul => a * b,
        BinaryKind.Div => a / b,
        BinaryKind.Max => Math.Max(a, b),
        BinaryKind.Min => Math.Min(a, b),
        BinaryKind.Pow => (float)Math.Pow(a, b),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>NumPy broadcasting by explicit multi-index decomposition of every output element.</summary>
    public static float[] Broadcast(BinaryKind kind, float[] a, int[] aShape, float[] b, int[] bShape, int[] yShape)
    {
        int count = yShape.Aggregate(1, (p, d) => p * d);
        var y = new float[count];
        var index = new int[yShape.Length];
        for (int i = 0; i < count; i++)
        {
            int rest = i;
            for (int d = yShape.Length - 1; d >= 0; d--) { index[d] = rest % yShape[d]; rest /= yShape[d]; }
            y[i] = Binary(kind, a[Offset(index, aShape)], b[Offset(index, bShape)]);
        }
        return y;
    }

    private static int Offset(int[] yIndex, int[] shape)
    {
        int offset = 0, shift = yIndex.Length - shape.Length;
        for (int d = 0; d < shape.Length; d++) offset = offset * shape[d] + (shape[d] == 1 ? 0 : yIndex[d + shift]);
        return offset;
    }

    public static int[] Unravel(int flat, int[] shape)
    {
        var index = new int[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--) { index[d] = flat % shape[d]; flat /= shape[d]; }
        return index;
    }

    public static int Ravel(int[] index, int[] shape)
    {
        int flat = 0;
        for (int d = 0; d < shape.Length; d++) flat = flat * shape[d] + index[d];
        return flat;
    }

    public static T[] Transpose<T>(T[] x, int[] shape, int[] perm)
    {
        int[] outShape = perm.Select(p => shape[p]).ToArray();
        var y = new T[x.Length];
        for (int i = 0; i < y.Length; i++)
        {
            int[] o = Unravel(i, outShape);
            var src = new int[shape.Length];
            for (int d = 0; d < perm.Length; d++) src[perm[d]] = o[d];
            y[i] = x[Ravel(src, shape)];
        }
        return y;
    }

    /// <summary>numpy.pad semantics per axis (reflect = mirror excluding the edge; wrap = periodic); negative pads crop.</summary>
    public static T[] Pad<T>(T[] x, int[] shape, int[] pads, PadMode mode, T value)
    {
        int r = shape.Length;
        int[] outShape = Enumerable.Range(0, r).Select(i => shape[i] + pads[i] + pads[r + i]).ToArray();
        var y = new T[outShape.Aggregate(1, (p, d) => p * d)];
        for (int i = 0; i < y.Length; i++)
        {
            int[] o = Unravel(i, outShape);
            var src = new int[r];
            bool constant = false;
            for (int d = 0; d < r; d++)
            {
                int s = o[d] - pads[d], n = shape[d];
                if (s < 0 || s >= n)
                {
                    switch (mode)
                    {
                        case PadMode.Constant: constant = true; break;
                        case PadMode.Edge: s = Math.Clamp(s, 0, n - 1); break;
                        case PadMode.Wrap: s = ((s % n) + n) % n; break;
                        case PadMode.Reflect:
                            while (s < 0 || s >= n) s = s < 0 ? -s : 2 * (n - 1) - s;
                            break;
                    }
                }
                src[d] = s;
            }
            y[i] = constant ? value : x[Ravel(src, shape)];
        }
        return y;
    }

    public static float[] Reduce(float[] x, int[] shape, int[] axes, string op)
    {
        int r = shape.Length;
        var reduced = new bool[r];
        if (axes.Length == 0) Array.Fill(reduced, true);
        foreach (int a in axes) reduced[a < 0 ? a + r : a] = true;
        int[] outShape = Enumerable.Range(0, r).Select(i => reduced[i] ? 1 : shape[i]).ToArray();
        int outCount = outShape.Aggregate(1, (p, d) => p * d);
        var acc = new double[outCount];
        var count = new int[outCount];
        if (op == "max") Array.Fill(acc, double.NegativeInfinity);
        for (int i = 0; i < x.Length; i++)
        {
            int[] idx = Unravel(i, shape);
            for (int d = 0; d < r; d++) if (reduced[d]) idx[d] = 0;
            int o = Ravel(idx, outShape);
            acc[o] = op == "max" ? Math.Max(acc[o], x[i]) : acc[o] + x[i];
            count[o]++;
        }
        return acc.Select((v, i) => (float)(op == "mean" ? v / count[i] : v)).ToArray();
    }
}
