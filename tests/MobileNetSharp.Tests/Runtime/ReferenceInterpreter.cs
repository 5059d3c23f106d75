using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Runtime;

/// <summary>
/// A deliberately naive interpreter of the graph IR: logical NCHW order, plain loops, double accumulation,
/// no layouts, no fusion, no arena. It is the whole-graph reference the compiled plans are checked against.
/// </summary>
public static class ReferenceInterpreter
{
    public static Tensor[] Run(ModelGraph g, params Tensor[] inputs)
    {
        var env = new Dictionary<Value, float[]>();
        for (int i = 0; i < inputs.Length; i++) env[g.Inputs[i]] = inputs[i].Floats;
        float[] Get(Value v) => v.IsConstant ? v.Constant!.Floats : env[v];
        foreach (var n in g.Nodes)
        {
            var outs = Eval(n, i => n.OptionalInput(i) is { } v ? Get(v) : null);
            for (int i = 0; i < outs.Length; i++) env[n.Outputs[i]] = outs[i];
        }
        return g.Outputs.Select(o => new Tensor((float[])Get(o).Clone(), o.Shape)).ToArray();
    }

    private static int[] Strides(int[] s)
    {
        var r = new int[s.Length];
        int acc = 1;
        for (int i = s.Length - 1; i >= 0; i--) { r[i] = acc; acc *= s[i]; }
        return r;
    }

    private static int[] Unravel(int flat, int[] shape)
    {
        var idx = new int[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--) { idx[d] = flat % shape[d]; flat /= shape[d]; }
        return idx;
    }

    private static float Act(Activation a, double v) => a.Apply((float)v);

    private static float[][] Eval(Node n, Func<int, float[]?> input)
    {
        var y = n.Output.Shape;
        int size = (int)Shape.Size(y);
        float[] X() => input(0)!;
        var xs = n.Inputs.Length > 0 && n.Inputs[0] is { } v0 ? v0.Shape : [];
        switch (n.Op)
        {
            case Conv c:
            {
                var x = X(); var w = input(1)!; var b = input(2); var res = input(3);
                var g = c.Geometry(xs, y[1]);
                var o = new float[size];
                int cpg = g.InCPerGroup, opg = g.OutCPerGroup;
                for (int nb = 0; nb < y[0]; nb++)
                for (int oc = 0; oc < y[1]; oc++)
                for (int oy = 0; oy < y[2]; oy++)
                for (int ox = 0; ox < y[3]; ox++)
                {
                    double acc = b?[oc] ?? 0;
                    int grp = oc / opg;
                    for (int ic = 0; ic < cpg; ic++)
                    for (int ky = 0; ky < g.KernelH; ky++)
                    for (int kx = 0; kx < g.KernelW; kx++)
                    {
                        int iy = oy * g.StrideH - g.PadTop + ky * g.DilationH, ix = ox * g.StrideW - g.PadLeft + kx * g.DilationW;
                        if (iy < 0 || iy >= g.InH || ix < 0 || ix >= g.InW) continue;
                        acc += (double)x[((nb * g.InC + grp * cpg + ic) * g.InH + iy) * g.InW + ix] * w[((oc * cpg + ic) * g.KernelH + ky) * g.KernelW + kx];
                    }
                    int at = ((nb * y[1] + oc) * y[2] + oy) * y[3] + ox;
                    if (res is not null) acc += res[at];
                    o[at] = Act(c.Activation, acc);
                }
                return [o];
            }
            case BatchNorm bn:
            {
                var x = X(); var o = new float[size];
                int inner = (int)Shape.Size(xs.AsSpan(2));
                for (int i = 0; i < size; i++)
                {
                    int ch = i / inner % xs[1];
                    o[i] = (float)((x[i] - input(3)![ch]) / Math.Sqrt(input(4)![ch] + (double)bn.Epsilon) * input(1)![ch] + input(2)![ch]);
                }
                return [o];
            }
            case Gemm gm:
            {
                var a = X(); var b = input(1)!; var c = input(2);
                var asx = xs; var bs = n.Input(1).Shape;
                int m = y[0], nn = y[1], k = gm.TransA ? asx[0] : asx[1];
                var o = new float[size];
                var cShape = n.OptionalInput(2)?.Shape;
                for (int i = 0; i < m; i++)
                for (int j = 0; j < nn; j++)
                {
                    double acc = 0;
                    for (int t = 0; t < k; t++)
                        acc += (double)(gm.TransA ? a[t * asx[1] + i] : a[i * asx[1] + t]) * (gm.TransB ? b[j * bs[1] + t] : b[t * bs[1] + j]);
                    acc *= gm.Alpha;
                    if (c is not null) acc += gm.Beta * c[BroadcastIndex([i, j], y, cShape!)];
                    o[i * nn + j] = Act(gm.Activation, acc);
                }
                return [o];
            }
            case Graph.MatMul:
            {
                var a = X(); var b = input(1)!;
                int[] a2 = xs.Length == 1 ? [1, xs[0]] : xs;
                var bs = n.Input(1).Shape;
                int[] b2 = bs.Length == 1 ? [bs[0], 1] : bs;
                int m = a2[^2], k = a2[^1], nn = b2[^1];
                var batch = Shape.Broadcast(a2.AsSpan(0, a2.Length - 2), b2.AsSpan(0, b2.Length - 2));
                var o = new float[size];
                int batches = (int)Shape.Size(batch);
                for (int bi = 0; bi < batches; bi++)
                {
                    var bidx = Unravel(bi, batch);
                    int aOff = BroadcastIndex(bidx, batch, a2[..^2]) * m * k, bOff = BroadcastIndex(bidx, batch, b2[..^2]) * k * nn;
                    for (int i = 0; i < m; i++)
                    for (int j = 0; j < nn; j++)
                    {
                        double acc = 0;
                        for (int t = 0; t < k; t++) acc += (double)a[aOff + i * k + t] * b[bOff + t * nn + j];
                        o[(bi * m + i) * nn + j] = (float)acc;
                    }
                }
                return [o];
            }
            case ActivationOp a: return [X().Select(v => a.Activation.Apply(v)).ToArray()];
            case BinaryOp bo:
            {
                var a = X(); var b = input(1)!; var sa = xs; var sb = n.Input(1).Shape;
                var o = new float[size];
                for (int i = 0; i < size; i++)
                {
                    var idx = Unravel(i, y);
                    double p = a[BroadcastIndex(idx, y, sa)], q = b[BroadcastIndex(idx, y, sb)];
                    double r = bo.Kind switch
                    {
                        BinaryKind.Add => p + q, BinaryKind.Sub => p - q, BinaryKind.Mul => p * q, BinaryKind.Div => p / q,
                        BinaryKind.Max => Math.Max(p, q), BinaryKind.Min => Math.Min(p, q), _ => Math.Pow(p, q),
                    };
                    o[i] = Act(bo.Activation, r);
                }
                return [o];
            }
            case Softmax s:
            {
                var x = X(); var o = new float[size];
                int axis = Shape.Axis(s.Axis, Math.Max(1, xs.Length));
                if (s.Legacy2D)
                {
                    int cols = (int)Shape.Size(xs.AsSpan(axis));
                    for (int r0 = 0; r0 < size; r0 += cols) SoftmaxRun(x, o, r0, 1, cols, s.Log);
                    return [o];
                }
                int inner = (int)Shape.Size(xs.AsSpan(axis + 1)), len = xs[axis];
                for (int outer = 0; outer < size / (len * inner); outer++)
                for (int i = 0; i < inner; i++) SoftmaxRun(x, o, outer * len * inner + i, inner, len, s.Log);
                return [o];
            }
            case Pool p:
            {
                var x = X(); var g = p.Geometry(xs); var o = new float[size];
                var (pt, pl, pb, pr) = p.DeclaredPads(xs[2], xs[3]);
                for (int i = 0; i < size; i++)
                {
                    var idx = Unravel(i, y);
                    double acc = p.Kind == PoolKind.Max ? double.NegativeInfinity : 0; int count = 0, padded = 0;
                    for (int ky = 0; ky < g.KernelH; ky++)
                    for (int kx = 0; kx < g.KernelW; kx++)
                    {
                        int iy = idx[2] * g.StrideH - g.PadTop + ky * g.DilationH, ix = idx[3] * g.StrideW - g.PadLeft + kx * g.DilationW;
                        bool inside = iy >= 0 && iy < g.InH && ix >= 0 && ix < g.InW;
                        if (iy >= -pt && iy < g.InH + pb && ix >= -pl && ix < g.InW + pr) padded++;
                        if (!inside) continue;
                        double v = x[((idx[0] * xs[1] + idx[1]) * g.InH + iy) * g.InW + ix];
                        acc = p.Kind == PoolKind.Max ? Math.Max(acc, v) : acc + v; count++;
                    }
                    o[i] = (float)(p.Kind == PoolKind.Max ? acc : acc / (p.CountIncludePad ? padded : count));
                }
                return [o];
            }
            case ConvNd c:
            {
                var x = X(); var w = input(1)!; var b = input(2);
                var g = c.Geometry(xs, y[1]);
                var o = new float[size];
                int rank = g.Rank, cpg = g.InCPerGroup, opg = g.OutCPerGroup;
                for (int i = 0; i < size; i++)
                {
                    var idx = Unravel(i, y);
                    int oc = idx[1], grp = oc / opg;
                    double acc = b?[oc] ?? 0;
                    for (int ic = 0; ic < cpg; ic++)
                    for (int t = 0; t < g.KernelVolume; t++)
                    {
                        var tap = Unravel(t, g.Kernel);
                        int src = idx[0] * g.InChannels + grp * cpg + ic;
                        bool inside = true;
                        for (int d = 0; d < rank && inside; d++)
                        {
                            int at = idx[2 + d] * g.Strides[d] - g.Pads[d] + tap[d] * g.Dilations[d];
                            inside = at >= 0 && at < g.InSize[d];
                            src = src * g.InSize[d] + at;
                        }
                        if (inside) acc += (double)x[src] * w[(oc * cpg + ic) * g.KernelVolume + t];
                    }
                    o[i] = Act(c.Activation, acc);
                }
                return [o];
            }
            case PoolNd p:
            {
                var x = X(); var g = p.Geometry(xs); var o = new float[size];
                int rank = g.Rank;
                for (int i = 0; i < size; i++)
                {
                    var idx = Unravel(i, y);
                    double acc = p.Kind == PoolKind.Max ? double.NegativeInfinity : 0; int count = 0, padded = 0;
                    for (int t = 0; t < g.KernelVolume; t++)
                    {
                        var tap = Unravel(t, g.Kernel);
                        int src = idx[0] * xs[1] + idx[1];
                        bool inside = true, inPads = true;
                        for (int d = 0; d < rank; d++)
                        {
                            int at = idx[2 + d] * g.Strides[d] - g.Pads[d] + tap[d] * g.Dilations[d];
                            inside &= at >= 0 && at < g.InSize[d];
                            inPads &= at >= -g.Pads[d] && at < g.InSize[d] + g.Pads[rank + d];
                            src = src * g.InSize[d] + at;
                        }
                        if (inPads) padded++;
                        if (!inside) continue;
                        acc = p.Kind == PoolKind.Max ? Math.Max(acc, x[src]) : acc + x[src]; count++;
                    }
                    o[i] = (float)(p.Kind == PoolKind.Max ? acc : acc / (p.CountIncludePad ? padded : count));
                }
                return [o];
            }
            case GlobalPool gp:
                return [ReduceAxes(X(), xs, Enumerable.Range(2, xs.Length - 2).ToArray(), gp.Kind == PoolKind.Max ? ReduceKind.Max : ReduceKind.Mean)];
            case Reduce r: return [ReduceAxes(X(), xs, r.NormalizedAxes(xs.Length), r.Kind)];
            case Flatten or Reshape or Squeeze or Unsqueeze or Identity or Dropout: return [(float[])X().Clone()]; // Dropout: inference is the identity
            case Graph.Transpose t:
            {
                var x = X(); var perm = t.Permutation(xs.Length); var o = new float[size]; var st = Strides(xs);
                for (int i = 0; i < size; i++) { var idx = Unravel(i, y); int src = 0; for (int d = 0; d < y.Length; d++) src += idx[d] * st[perm[d]]; o[i] = x[src]; }
                return [o];
            }
            case Concat c:
            {
                int axis = Shape.Axis(c.Axis, y.Length); var o = new float[size];
                for (int i = 0; i < size; i++)
                {
                    var idx = Unravel(i, y); int k = 0, pos = idx[axis];
                    while (pos >= n.Input(k).Shape[axis]) pos -= n.Input(k++).Shape[axis];
                    idx[axis] = pos;
                    var si = n.Input(k).Shape; int src = 0; var st = Strides(si);
                    for (int d = 0; d < idx.Length; d++) src += idx[d] * st[d];
                    o[i] = input(k)![src];
                }
                return [o];
            }
            case Split sp:
            {
                int axis = Shape.Axis(sp.Axis, xs.Length); int start = 0; var x = X(); var st = Strides(xs);
                var res = new float[sp.Sizes.Length][];
                for (int k = 0; k < sp.Sizes.Length; k++)
                {
                    var ys = n.Outputs[k].Shape; var o = new float[Shape.Size(ys)];
                    for (int i = 0; i < o.Length; i++) { var idx = Unravel(i, ys); idx[axis] += start; int src = 0; for (int d = 0; d < idx.Length; d++) src += idx[d] * st[d]; o[i] = x[src]; }
                    start += sp.Sizes[k]; res[k] = o;
                }
                return res;
            }
            case Slice sl:
            {
                var x = X(); var rs = sl.Resolve(xs); var st = Strides(xs); var o = new float[size];
                for (int i = 0; i < size; i++) { var idx = Unravel(i, y); int src = 0; for (int d = 0; d < idx.Length; d++) src += (rs[d].Start + idx[d] * rs[d].Step) * st[d]; o[i] = x[src]; }
                return [o];
            }
            case Pad pd:
            {
                var x = X(); var st = Strides(xs); var o = new float[size]; int r = xs.Length;
                for (int i = 0; i < size; i++)
                {
                    var idx = Unravel(i, y); int src = 0; bool outside = false;
                    for (int d = 0; d < r; d++)
                    {
                        int p = idx[d] - (int)pd.Pads[d];
                        if (p < 0 || p >= xs[d])
                        {
                            if (pd.Mode == PadMode.Constant) { outside = true; break; }
                            p = pd.Mode switch
                            {
                                PadMode.Edge => Math.Clamp(p, 0, xs[d] - 1),
                                PadMode.Wrap => ((p % xs[d]) + xs[d]) % xs[d],
                                _ => Reflect(p, xs[d]),
                            };
                        }
                        src += p * st[d];
                    }
                    o[i] = outside ? pd.Value : x[src];
                }
                return [o];
            }
            default: throw new NotSupportedException(n.Op.Type);
        }
    }

    private static int Reflect(int p, int n)
    {
        if (n == 1) return 0;
        int period = 2 * (n - 1);
        p = ((p % period) + period) % period;
        return p < n ? p : period - p;
    }

    private static void SoftmaxRun(float[] x, float[] o, int start, int stride, int len, bool log)
    {
        double max = double.NegativeInfinity;
        for (int i = 0; i < len; i++) max = Math.Max(max, x[start + i * stride]);
        double sum = 0;
        for (int i = 0; i < len; i++) sum += Math.Exp(x[start + i * stride] - max);
        for (int i = 0; i < len; i++)
        {
            double v = x[start + i * stride] - max;
            o[start + i * stride] = (float)(log ? v - Math.Log(sum) : Math.Exp(v) / sum);
        }
    }

    private static float[] ReduceAxes(float[] x, int[] xs, int[] axes, ReduceKind kind)
    {
        var kept = xs.Select((d, i) => axes.Contains(i) ? 1 : d).ToArray();
        var o = new double[Shape.Size(kept)];
        Array.Fill(o, kind == ReduceKind.Max ? double.NegativeInfinity : kind == ReduceKind.Min ? double.PositiveInfinity : 0);
        var st = Strides(kept);
        for (int i = 0; i < x.Length; i++)
        {
            var idx = Unravel(i, xs); int t = 0;
            for (int d = 0; d < xs.Length; d++) t += (axes.Contains(d) ? 0 : idx[d]) * st[d];
            o[t] = kind switch { ReduceKind.Max => Math.Max(o[t], x[i]), ReduceKind.Min => Math.Min(o[t], x[i]), _ => o[t] + x[i] };
        }
        int count = axes.Aggregate(1, (a, d) => a * xs[d]);
        return o.Select(v => (float)(kind == ReduceKind.Mean ? v / count : v)).ToArray();
    }

    /// <summary>Flat index into a broadcast operand of shape <paramref name="own"/> for an output index.</summary>
    private static int BroadcastIndex(int[] outIdx, int[] outShape, int[] own)
    {
        int flat = 0, offset = outShape.Length - own.Length;
        for (int d = 0; d < own.Length; d++) flat = flat * own[d] + (own[d] == 1 ? 0 : outIdx[d + offset]);
        return flat;
    }
}
