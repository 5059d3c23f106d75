using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Runtime;

/// <summary>
/// Turns an optimized graph into an <see cref="ExecutionPlan"/>. Its one real decision is layout: 2-D spatial
/// ops (conv, pooling, batch norm) run channels-last, element-wise and axis ops follow their input, and
/// everything else sees the logical (plain) order; a transpose is inserted only where a value is needed
/// in a layout it was not produced in and the two orders differ in memory (not when C == 1 or H*W == 1).
/// </summary>
internal sealed class PlanCompiler
{
    private readonly ModelGraph _g;
    private readonly IsaLevel? _isa;
    private readonly OperatorCache _cache;
    private readonly Kernels.Workers _workers;
    private readonly long _maxArenaBytes;
    private readonly List<Step> _steps = [];
    private readonly Dictionary<Value, (Slot Slot, MemoryLayout Layout)> _native = [];
    private readonly Dictionary<(Value, MemoryLayout), Slot> _views = [];

    private static readonly int[] ToNhwc = [0, 2, 3, 1], ToNchw = [0, 3, 1, 2];

    public PlanCompiler(ModelGraph g, IsaLevel? isa, OperatorCache cache, Kernels.Workers workers, long maxArenaBytes) =>
        (_g, _isa, _cache, _workers, _maxArenaBytes) = (g, isa, cache, workers, maxArenaBytes);

    public ExecutionPlan Compile()
    {
        var inputs = _g.Inputs.Select(v => Produce(v, MemoryLayout.Plain)).ToArray();
        foreach (var n in _g.Nodes)
        {
            foreach (var o in n.Outputs)
                if (o.DataType != DataType.Float32)
                    throw new GraphException($"Node '{n.Name}' ({n.Op.Type}) produces {o.DataType}; the runtime computes float32 only.");
            try { Emit(n); }
            catch (ArgumentException e) { throw new GraphException($"Node '{n.Name}' ({n.Op.Type}): {e.Message}", e); }
        }
        var outputs = new Slot[_g.Outputs.Count];
        for (int i = 0; i < outputs.Length; i++)
        {
            var v = _g.Outputs[i];
            var s = Get(v, MemoryLayout.Plain);
            // Graph outputs need buffers of their own: not a constant, an input, or another output's.
            if (s.Constant is not null || inputs.Contains(s) || outputs.Take(i).Contains(s))
            {
                var copy = new Slot(v.Name, v.Shape);
                _steps.Add(new CopyStep(v.Name + ".copy", s, copy));
                s = copy;
            }
            outputs[i] = s;
        }
        long arena = MemoryPlanner.Plan(_steps, inputs, outputs);
        if (arena * sizeof(float) > _maxArenaBytes || arena > Array.MaxLength - 64)
            throw new GraphException($"Graph '{_g.Name}' needs a {arena * sizeof(float) / (1 << 20):N0} MiB activation arena, " +
                $"more than the {_maxArenaBytes / (1 << 20):N0} MiB allowed (SessionOptions.MaxArenaBytes).");
        return new ExecutionPlan(_steps.ToArray(), inputs, _g.Inputs.Select(v => v.Shape).ToArray(),
            outputs, _g.Outputs.Select(v => v.Shape).ToArray(), (int)arena, _workers);
    }

    // ---- layouts -------------------------------------------------------------------------------

    private static int[] To4D(int[] s)
    {
        if (s.Length > 4) throw new ArgumentException($"Shape {Shape.Format(s)} cannot be viewed channels-last.");
        var r = new int[4];
        int pad = 4 - s.Length;
        for (int i = 0; i < 4; i++) r[i] = i < pad ? 1 : s[i - pad];
        return r;
    }

    private static int[] Physical(int[] logical, MemoryLayout layout)
    {
        if (layout == MemoryLayout.Plain) return logical;
        var s = To4D(logical);
        return [s[0], s[2], s[3], s[1]];
    }

    /// <summary>Channels-last and channels-first orders coincide in memory when C == 1 or H*W == 1.</summary>
    private static bool SameMemory(int[] logical)
    {
        var s = To4D(logical);
        return s[1] == 1 || s[2] * s[3] == 1;
    }

    private MemoryLayout NativeLayout(Value v) => v.IsConstant ? MemoryLayout.Plain : _native[v].Layout;

    private Slot Produce(Value v, MemoryLayout layout)
    {
        var s = new Slot(v.Name, Physical(v.Shape, layout));
        _native[v] = (s, layout);
        return s;
    }

    /// <summary>The slot holding <paramref name="v"/> in <paramref name="want"/> order, converting once if needed.</summary>
    private Slot Get(Value v, MemoryLayout want)
    {
        if (want == MemoryLayout.Nhwc && v.Rank > 4) throw new ArgumentException($"'{v.Name}' has rank {v.Rank}; channels-last needs rank <= 4.");
        if (_views.TryGetValue((v, want), out var cached)) return cached;
        Slot slot;
        if (v.IsConstant)
        {
            if (v.DataType != DataType.Float32) throw new ArgumentException($"constant '{v.Name}' is {v.DataType}; float32 expected.");
            var data = v.Constant!.Floats;
            if (want == MemoryLayout.Nhwc && !SameMemory(v.Shape))
            {
                var t = new float[data.Length];
                Kernels.Layout.Transpose<float>(data, To4D(v.Shape), ToNhwc, t);
                data = t;
            }
            slot = new Slot(v.Name, Physical(v.Shape, want), data);
        }
        else
        {
            var native = _native.TryGetValue(v, out var n) ? n
                : throw new GraphException($"Value '{v.Name}' is read before it is computed.");
            if (native.Layout == want || SameMemory(v.Shape)) return native.Slot;
            slot = new Slot(v.Name + (want == MemoryLayout.Nhwc ? ".nhwc" : ".nchw"), Physical(v.Shape, want));
            _steps.Add(want == MemoryLayout.Nhwc
                ? new TransposeStep(slot.Name, To4D(v.Shape), ToNhwc, native.Slot, slot)
                : new TransposeStep(slot.Name, Physical(v.Shape, MemoryLayout.Nhwc), ToNchw, native.Slot, slot));
        }
        _views[(v, want)] = slot;
        return slot;
    }

    private static float[] Floats(Node n, int i, string what) =>
        n.OptionalInput(i) is not { } v ? [] :
        v.IsConstant && v.DataType == DataType.Float32 ? v.Constant!.Floats :
        throw new ArgumentException($"{what} '{v.Name}' must be a float32 constant.");

    /// <summary>Logical axis -> physical axis in the given layout.</summary>
    private static int PhysicalAxis(int axis, MemoryLayout layout) => layout == MemoryLayout.Nhwc ? Array.IndexOf(ToNhwc, axis) : axis;

    // ---- emission ------------------------------------------------------------------------------

    private void Emit(Node n)
    {
        switch (n.Op)
        {
            case Conv c: EmitConv(n, c); break;
            case BatchNorm bn: EmitBatchNorm(n, bn); break;
            case Gemm gemm: EmitGemm(n, gemm); break;
            case Graph.MatMul: EmitMatMul(n); break;
            case ActivationOp a:
            {
                var layout = NativeLayout(n.Input(0));
                _steps.Add(new ActivationStep(n.Name, a.Activation, Get(n.Input(0), layout), Produce(n.Output, layout)));
                break;
            }
            case BinaryOp b: EmitBinary(n, b); break;
            case Softmax s: EmitSoftmax(n, s); break;
            case Pool p:
            {
                var g = p.Geometry(n.Input(0).Shape);
                _steps.Add(new PoolStep(n.Name, p, g, p.CeilExtra(n.Input(0).Shape), Get(n.Input(0), MemoryLayout.Nhwc), Produce(n.Output, MemoryLayout.Nhwc)));
                break;
            }
            case ConvNd c:
                // Off the MobileNet path: the plain layout, and ONNX's weight order as it is.
                _steps.Add(new ConvNdStep(n.Name, c.Geometry(n.Input(0).Shape, n.Input(1).Shape[0]), Floats(n, 1, "Conv weight"),
                    Floats(n, 2, "Conv bias"), c.Activation, Get(n.Input(0), MemoryLayout.Plain), Produce(n.Output, MemoryLayout.Plain)));
                break;
            case PoolNd p:
                _steps.Add(new PoolNdStep(n.Name, p, p.Geometry(n.Input(0).Shape), Get(n.Input(0), MemoryLayout.Plain), Produce(n.Output, MemoryLayout.Plain)));
                break;
            case GlobalPool gp: EmitGlobalPool(n, gp.Kind == PoolKind.Max ? ReduceKind.Max : ReduceKind.Mean,
                Enumerable.Range(2, n.Input(0).Rank - 2).ToArray()); break;
            case Reduce r: EmitGlobalPool(n, r.Kind, r.NormalizedAxes(n.Input(0).Rank)); break;
            case Flatten or Reshape or Squeeze or Unsqueeze or Identity:
                // Same elements in the same (plain) order: the output shares the input's buffer.
                _native[n.Output] = (Get(n.Input(0), MemoryLayout.Plain), MemoryLayout.Plain);
                break;
            case Graph.Transpose t: EmitTranspose(n, t); break;
            case Concat c: EmitConcat(n, c); break;
            case Split s: EmitSplit(n, s); break;
            case Slice s: EmitSlice(n, s); break;
            case Pad p: EmitPad(n, p); break;
            default:
                throw new GraphException($"Node '{n.Name}': operator {n.Op.Type} is not supported by the runtime.");
        }
    }

    private void EmitConv(Node n, Conv c)
    {
        var x = n.Input(0);
        var w = n.Input(1);
        var g = c.Geometry(x.Shape, w.Shape[0]);
        var op = _cache.Conv(g, Floats(n, 1, "Conv weight"), Floats(n, 2, "Conv bias"), c.Activation, _isa);
        var residual = n.OptionalInput(3) is { } r ? Get(r, MemoryLayout.Nhwc) : null;
        long scratchLength = op.ScratchLength(g.Batch);
        if (scratchLength > Shape.MaxElements)
            throw new GraphException($"Node '{n.Name}' (Conv) needs {scratchLength:N0} floats of scratch for im2col, more than a buffer may hold.");
        var scratch = scratchLength > 0 ? new Slot(n.Name + ".scratch", [(int)scratchLength]) : null;
        _steps.Add(new ConvStep(n.Name, op, g.Batch, Get(x, MemoryLayout.Nhwc), Produce(n.Output, MemoryLayout.Nhwc), residual, scratch));
    }

    private void EmitBatchNorm(Node n, BatchNorm bn)
    {
        var x = n.Input(0);
        float[] gamma = Floats(n, 1, "scale"), beta = Floats(n, 2, "bias"), mean = Floats(n, 3, "mean"), variance = Floats(n, 4, "var");
        var scale = new float[gamma.Length];
        var shift = new float[gamma.Length];
        for (int c = 0; c < scale.Length; c++)
        {
            double s = gamma[c] / Math.Sqrt((double)variance[c] + bn.Epsilon);
            scale[c] = (float)s;
            shift[c] = (float)(beta[c] - mean[c] * s);
        }
        var layout = x.Rank == 4 ? MemoryLayout.Nhwc : MemoryLayout.Plain;
        int inner = layout == MemoryLayout.Nhwc ? 1 : (int)Shape.Size(x.Shape.AsSpan(2));
        _steps.Add(new BatchNormStep(n.Name, scale, shift, inner, Get(x, layout), Produce(n.Output, layout)));
    }

    private void EmitGemm(Node n, Gemm op)
    {
        var a = n.Input(0);
        var b = n.Input(1);
        var c = n.OptionalInput(2);
        int k = op.TransA ? a.Shape[0] : a.Shape[1];
        int outF = n.Output.Shape[1];
        bool biasLike = c is null || (c.IsConstant && Shape.Size(c.Shape) is var len && (len == 1 || len == outF) && (c.Rank < 2 || c.Shape[0] == 1));
        if (b.IsConstant && !op.TransA && biasLike)
        {
            var bw = Floats(n, 1, "Gemm B");
            var cv = c is null ? null : Floats(n, 2, "Gemm C");
            var fc = _cache.FullyConnected((bw, cv, op, k, outF, _isa), () =>
            {
                // The FC kernel takes weights as [out, in]: that is B itself under transB, else B transposed.
                var weights = new float[bw.Length];
                if (op.TransB) bw.CopyTo(weights, 0);
                else Kernels.Layout.Transpose<float>(bw, b.Shape, [1, 0], weights);
                if (op.Alpha != 1f) System.Numerics.Tensors.TensorPrimitives.Multiply(weights, op.Alpha, weights);
                var bias = new float[cv is null ? 0 : outF];
                for (int i = 0; i < bias.Length; i++) bias[i] = op.Beta * cv![cv.Length == 1 ? 0 : i];
                return new FullyConnectedOperator(k, outF, weights, bias, op.Activation, _isa);
            });
            _steps.Add(new FullyConnectedStep(n.Name, fc, n.Output.Shape[0], Get(a, MemoryLayout.Plain), Produce(n.Output, MemoryLayout.Plain)));
            return;
        }
        var cSlot = c is null ? null : Get(c, MemoryLayout.Plain);
        var scratch = new Slot(n.Name + ".scratch", [Math.Max(GemmStep.ScratchLength(a.Shape, b.Shape), c is null ? 0 : (int)c.Length)]);
        _steps.Add(new GemmStep(n.Name, op, Get(a, MemoryLayout.Plain), a.Shape, Get(b, MemoryLayout.Plain), b.Shape, cSlot, c?.Shape ?? [],
            Produce(n.Output, MemoryLayout.Plain), scratch));
    }

    private void EmitMatMul(Node n)
    {
        var a = n.Input(0);
        var b = n.Input(1);
        if (b.IsConstant && b.Rank == 2)
        {
            // x @ W with constant W is a fully connected layer over all leading rows.
            var bw = Floats(n, 1, "MatMul B");
            var fc = _cache.FullyConnected((bw, b.Shape[0], b.Shape[1], _isa), () =>
            {
                var weights = new float[bw.Length];
                Kernels.Layout.Transpose<float>(bw, b.Shape, [1, 0], weights);
                return new FullyConnectedOperator(b.Shape[0], b.Shape[1], weights, [], Activation.None, _isa);
            });
            int rows = (int)(a.Length / b.Shape[0]);
            _steps.Add(new FullyConnectedStep(n.Name, fc, rows, Get(a, MemoryLayout.Plain), Produce(n.Output, MemoryLayout.Plain)));
            return;
        }
        _steps.Add(new MatMulStep(n.Name, Get(a, MemoryLayout.Plain), a.Shape, Get(b, MemoryLayout.Plain), b.Shape, Produce(n.Output, MemoryLayout.Plain), n.Output.Shape));
    }

    private void EmitBinary(Node n, BinaryOp b)
    {
        var x = n.Input(0);
        var y = n.Input(1);
        bool nhwc = n.Output.Rank == 4 && new[] { x, y }.Any(v => !v.IsConstant && NativeLayout(v) == MemoryLayout.Nhwc);
        var layout = nhwc ? MemoryLayout.Nhwc : MemoryLayout.Plain;
        _steps.Add(new BinaryStep(n.Name, b.Kind, b.Activation,
            Get(x, layout), Physical(x.Shape, layout), Get(y, layout), Physical(y.Shape, layout), Produce(n.Output, layout)));
    }

    private void EmitSoftmax(Node n, Softmax s)
    {
        var x = n.Input(0);
        var shape = x.Shape;
        int rank = Math.Max(1, shape.Length);
        int axis = Shape.Axis(s.Axis, rank);
        if (s.Legacy2D || axis == rank - 1 || shape.Length == 0)
        {
            // Legacy semantics flatten to [prod(before axis), prod(from axis)]; the modern last-axis case is the same view.
            int cols = shape.Length == 0 ? 1 : (int)Shape.Size(shape.AsSpan(axis));
            int rows = (int)(x.Length / Math.Max(1, cols));
            _steps.Add(new SoftmaxStep(n.Name, s.Log, rows, cols, Get(x, MemoryLayout.Plain), Produce(n.Output, MemoryLayout.Plain)));
            return;
        }
        if (x.Length == 0)
        {
            _steps.Add(new CopyStep(n.Name, Get(x, MemoryLayout.Plain), Produce(n.Output, MemoryLayout.Plain))); // nothing to normalize
            return;
        }
        // Move the axis last, normalize rows, move it back.
        var perm = Enumerable.Range(0, rank).Where(d => d != axis).Append(axis).ToArray();
        var inverse = new int[rank];
        for (int i = 0; i < rank; i++) inverse[perm[i]] = i;
        var moved = perm.Select(d => shape[d]).ToArray();
        var t1 = new Slot(n.Name + ".t", moved);
        var t2 = new Slot(n.Name + ".s", moved);
        _steps.Add(new TransposeStep(t1.Name, shape, perm, Get(x, MemoryLayout.Plain), t1));
        _steps.Add(new SoftmaxStep(n.Name, s.Log, (int)(x.Length / shape[axis]), shape[axis], t1, t2));
        _steps.Add(new TransposeStep(n.Name + ".back", moved, inverse, t2, Produce(n.Output, MemoryLayout.Plain)));
    }

    /// <summary>Global pooling, and reductions over exactly H and W of a rank-4 tensor, run channels-last.</summary>
    private void EmitGlobalPool(Node n, ReduceKind kind, int[] axes)
    {
        var x = n.Input(0);
        if (x.Rank == 4 && axes.SequenceEqual([2, 3]) && kind is ReduceKind.Mean or ReduceKind.Max)
        {
            // [N, C, 1, 1] (or [N, C]) is the same memory in every layout.
            var output = Produce(n.Output, MemoryLayout.Plain);
            _steps.Add(new GlobalPoolStep(n.Name, kind == ReduceKind.Max ? PoolKind.Max : PoolKind.Average,
                x.Shape[0], x.Shape[2] * x.Shape[3], x.Shape[1], Get(x, MemoryLayout.Nhwc), output));
            return;
        }
        _steps.Add(new ReduceStep(n.Name, kind, x.Shape, axes, Get(x, MemoryLayout.Plain), Produce(n.Output, MemoryLayout.Plain)));
    }

    private void EmitTranspose(Node n, Graph.Transpose t)
    {
        var x = n.Input(0);
        var perm = t.Permutation(x.Rank);
        // NCHW -> NHWC of a channels-last value is its buffer as it already is (TensorFlow-born models).
        if (x.Rank == 4 && !x.IsConstant && NativeLayout(x) == MemoryLayout.Nhwc && perm.SequenceEqual(ToNhwc))
        {
            _native[n.Output] = (_native[x].Slot, MemoryLayout.Plain);
            return;
        }
        _steps.Add(new TransposeStep(n.Name, x.Shape, perm, Get(x, MemoryLayout.Plain), Produce(n.Output, MemoryLayout.Plain)));
    }

    /// <summary>Axis ops keep a channels-last input channels-last by remapping the axis.</summary>
    private MemoryLayout FollowInput(Value x) => x.Rank == 4 && !x.IsConstant && NativeLayout(x) == MemoryLayout.Nhwc ? MemoryLayout.Nhwc : MemoryLayout.Plain;

    private void EmitConcat(Node n, Concat c)
    {
        var inputs = n.Inputs.Select((_, i) => n.Input(i)).ToArray();
        int axis = Shape.Axis(c.Axis, n.Output.Rank);
        var layout = n.Output.Rank == 4 && inputs.Any(v => !v.IsConstant && NativeLayout(v) == MemoryLayout.Nhwc) ? MemoryLayout.Nhwc : MemoryLayout.Plain;
        _steps.Add(new ConcatStep(n.Name, inputs.Select(v => Get(v, layout)).ToArray(),
            inputs.Select(v => Physical(v.Shape, layout)).ToArray(), PhysicalAxis(axis, layout), Produce(n.Output, layout)));
    }

    private void EmitSplit(Node n, Split s)
    {
        var x = n.Input(0);
        var layout = FollowInput(x);
        int axis = PhysicalAxis(Shape.Axis(s.Axis, x.Rank), layout);
        var shape = Physical(x.Shape, layout);
        var src = Get(x, layout);
        int start = 0;
        for (int i = 0; i < n.Outputs.Length; i++)
        {
            var ranges = shape.Select(d => (0, 1, d)).ToArray();
            ranges[axis] = (start, 1, s.Sizes[i]);
            start += s.Sizes[i];
            _steps.Add(new SliceStep(n.Outputs[i].Name, shape, ranges, src, Produce(n.Outputs[i], layout)));
        }
    }

    private void EmitSlice(Node n, Slice s)
    {
        var x = n.Input(0);
        var layout = FollowInput(x);
        var ranges = s.Resolve(x.Shape);
        if (layout == MemoryLayout.Nhwc) ranges = ToNhwc.Select(d => ranges[d]).ToArray();
        _steps.Add(new SliceStep(n.Name, Physical(x.Shape, layout), ranges, Get(x, layout), Produce(n.Output, layout)));
    }

    private void EmitPad(Node n, Pad p)
    {
        var x = n.Input(0);
        var layout = FollowInput(x);
        int rank = x.Rank;
        var pads = p.Pads.Select(v => checked((int)v)).ToArray();
        if (layout == MemoryLayout.Nhwc)
            pads = ToNhwc.Select(d => pads[d]).Concat(ToNhwc.Select(d => pads[rank + d])).ToArray();
        _steps.Add(new PadStep(n.Name, Physical(x.Shape, layout), pads, p.Mode, p.Value, Get(x, layout), Produce(n.Output, layout)));
    }
}
