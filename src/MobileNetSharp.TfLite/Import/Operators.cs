using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.TfLite.Schema;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.TfLite.Import;

internal sealed partial class GraphConverter
{
    public static readonly IReadOnlyCollection<string> Supported = new[]
    {
        Builtin.Conv2D, Builtin.DepthwiseConv2D, Builtin.Add, Builtin.Sub, Builtin.Mul, Builtin.Div, Builtin.Pad, Builtin.PadV2,
        Builtin.MaxPool2D, Builtin.AveragePool2D, Builtin.Reshape, Builtin.Squeeze, Builtin.Concatenation, Builtin.FullyConnected,
        Builtin.Softmax, Builtin.Logistic, Builtin.Tanh, Builtin.Relu, Builtin.Relu6, Builtin.ReluN1To1, Builtin.HardSwish,
        Builtin.LeakyRelu, Builtin.PRelu, Builtin.Mean, Builtin.ResizeBilinear, Builtin.ResizeNearestNeighbor, Builtin.Dequantize,
        Builtin.TransposeConv, Builtin.StridedSlice, Builtin.DepthToSpace, Builtin.Quantize,
    }.Select(Builtin.Name).Append("CUSTOM Convolution2DTransposeBias").ToArray();

    private void ConvertOperator(TfOperatorCode code)
    {
        switch (code.Builtin)
        {
            case Builtin.Conv2D: Conv2D(); break;
            case Builtin.DepthwiseConv2D: DepthwiseConv2D(); break;
            case Builtin.Add: Binary(BinaryKind.Add, code.Builtin); break;
            case Builtin.Sub: Binary(BinaryKind.Sub, code.Builtin); break;
            case Builtin.Mul: Binary(BinaryKind.Mul, code.Builtin); break;
            case Builtin.Div: Binary(BinaryKind.Div, code.Builtin); break;
            case Builtin.Pad or Builtin.PadV2: PadOp(); break;
            case Builtin.MaxPool2D: Pool2D(PoolKind.Max, code.Builtin); break;
            case Builtin.AveragePool2D: Pool2D(PoolKind.Average, code.Builtin); break;
            case Builtin.Reshape: ReshapeOp(); break;
            case Builtin.Squeeze: SqueezeOp(); break;
            case Builtin.Concatenation: Concatenation(); break;
            case Builtin.FullyConnected: FullyConnected(); break;
            case Builtin.Softmax: SoftmaxOp(); break;
            case Builtin.Logistic: Unary(Activation.Sigmoid); break;
            case Builtin.Tanh: Unary(Activation.Tanh); break;
            case Builtin.Relu: Unary(Activation.Relu); break;
            case Builtin.Relu6: Unary(Activation.Relu6); break;
            case Builtin.ReluN1To1: Unary(Activation.Clip(-1f, 1f)); break;
            case Builtin.HardSwish: Unary(Activation.HardSwish); break;
            case Builtin.LeakyRelu: Unary(Activation.LeakyRelu(Options(code.Builtin)?.Float(0) ?? 0f)); break;
            case Builtin.PRelu: PReluOp(); break;
            case Builtin.Mean: MeanOp(); break;
            case Builtin.ResizeBilinear: ResizeOp(ResizeMode.Linear, code.Builtin); break;
            case Builtin.ResizeNearestNeighbor: ResizeOp(ResizeMode.Nearest, code.Builtin); break;
            case Builtin.Dequantize: DequantizeOp(); break;
            case Builtin.TransposeConv: TransposeConv(); break;
            case Builtin.StridedSlice: StridedSliceOp(); break;
            case Builtin.DepthToSpace: DepthToSpaceOp(); break;
            case Builtin.Quantize: QuantizeOp(); break;
            case Builtin.Custom when code.CustomCode == "Convolution2DTransposeBias": TransposeConvBias(); break;
            default:
                throw new ModelFormatException($"Unsupported TFLite operator {_opName} (operator #{_op.Index}, inputs {Listing(_op.Inputs)}, "
                    + $"outputs {Listing(_op.Outputs)}). Supported: {string.Join(", ", Supported)}.");
        }
    }

    /// <summary>True when tensor <paramref name="t"/> is read once, as the data input of a later CONV_2D or DEPTHWISE_CONV_2D with VALID padding.</summary>
    private bool ReadOnlyByValidConv(int t)
    {
        if (_readers[t] != 1 || _sg.Outputs.Contains(t)) return false;
        var reader = _sg.Operators.Skip(_op.Index + 1).FirstOrDefault(o => o.Inputs.Contains(t));
        if (reader is null || reader.Inputs.Length < 2 || reader.Inputs[0] != t) return false;
        int code = _model.OperatorCodes[reader.OpcodeIndex].Builtin;
        if (code is not (Builtin.Conv2D or Builtin.DepthwiseConv2D) || reader.OptionsType != Builtin.OptionsType(code)) return false;
        return reader.Options is { } o && o.Byte(0) == 1; // VALID
    }

    /// <summary>A convolution's data input in NCHW and the explicit pads a folded PAD left for it (or the padding mode).</summary>
    private (Value X, int Top, int Left, int Bottom, int Right, AutoPad Mode) ConvInput(AutoPad mode)
    {
        int t = In(0);
        if (_foldedPads.TryGetValue(t, out var p) && mode == AutoPad.Valid)
            return (NchwOf(p.Source), p.Top, p.Left, p.Bottom, p.Right, AutoPad.NotSet);
        return (NchwOf(t), 0, 0, 0, 0, mode);
    }

    private Value Weights(int i, int[] perm, string what)
    {
        var w = ConstIn(i, what);
        if (w.DataType != DataType.Float32) throw new GraphException($"{what} are {w.DataType}; float32 is expected.");
        if (w.Rank != 4) throw new GraphException($"{what} have shape {Shape.Format(w.Shape)}; 4-D is expected.");
        return Constant(TensorName(In(i)) + "/oihw", PermuteKeepingOrigin(w, perm));
    }

    private void Conv2D()
    {
        var o = Options(Builtin.Conv2D);
        var (x, pt, pl, pb, pr, mode) = ConvInput(Padding(o?.Byte(0) ?? 0));
        var w = Weights(1, [0, 3, 1, 2], "the weights"); // OHWI -> OIHW
        int cin = x.Shape[1], wi = w.Shape[1];
        if (wi < 1 || cin % wi != 0) throw new GraphException($"the input has {cin} channels but the weights {wi} per group.");
        var op = new Conv(w.Shape[2], w.Shape[3], o?.Int(2) ?? 0, o?.Int(1) ?? 0, pt, pl, pb, pr, DilationH: o?.Int(5, 1) ?? 1, DilationW: o?.Int(4, 1) ?? 1,
            Groups: cin / wi, AutoPad: mode, Activation: Fused(o?.Byte(3) ?? 0));
        SetOutput(0, AddNode(NodeName, op, [x, w, Bias(2, In(0), w)], OutName()), nchw: true);
    }

    private void DepthwiseConv2D()
    {
        var o = Options(Builtin.DepthwiseConv2D);
        var (x, pt, pl, pb, pr, mode) = ConvInput(Padding(o?.Byte(0) ?? 0));
        var w = Weights(1, [3, 0, 1, 2], "the depthwise weights"); // [1,H,W,C·M] -> [C·M,1,H,W]
        int cin = x.Shape[1];
        if (w.Shape[1] != 1) throw new GraphException($"depthwise weights must have a leading 1, got {Shape.Format(ConstIn(1, "weights").Shape)}.");
        if (cin < 1 || w.Shape[0] % cin != 0) throw new GraphException($"{w.Shape[0]} depthwise filters for {cin} input channels.");
        var op = new Conv(w.Shape[2], w.Shape[3], o?.Int(2) ?? 0, o?.Int(1) ?? 0, pt, pl, pb, pr, DilationH: o?.Int(6, 1) ?? 1, DilationW: o?.Int(5, 1) ?? 1,
            Groups: cin, AutoPad: mode, Activation: Fused(o?.Byte(4) ?? 0));
        SetOutput(0, AddNode(NodeName, op, [x, w, Bias(2, In(0), w)], OutName()), nchw: true);
    }

    private void Pool2D(PoolKind kind, int code)
    {
        var o = Options(code) ?? throw new GraphException("pooling needs its options (filter size and strides).");
        var x = NchwOf(In(0));
        int kh = o.Int(4), kw = o.Int(3);
        // A window larger than the input only re-reads the padding (SAME keeps the output size whatever the filter), and
        // the pooling kernels walk every cell of it: a hostile filter height of 2^27 would take minutes. No model needs it.
        if (kh > x.Shape[2] || kw > x.Shape[3])
            throw new GraphException($"the {kh}x{kw} pooling filter is larger than its {x.Shape[2]}x{x.Shape[3]} input.");
        var op = new Pool(kind, kh, kw, o.Int(2), o.Int(1), AutoPad: Padding(o.Byte(0)));
        var y = AddNode(NodeName, op, [x], OutName());
        SetOutput(0, FusedAfter(y, Fused(o.Byte(5))), nchw: true);
    }

    private Value FusedAfter(Value y, Activation a)
    {
        if (a.IsNone) return y;
        _names.Remove(y.Name);
        y.Name = Unique(y.Name + "/raw");
        return AddNode(Unique($"{_opName.ToLowerInvariant()}_{_op.Index}/act"), new ActivationOp(a), [y], OutName());
    }

    /// <summary>Element-wise ops run on NCHW when every computed operand is rank 4 (constants are aligned and transposed), else as the file has them.</summary>
    private void Binary(BinaryKind kind, int code)
    {
        var o = Options(code);
        var act = Fused(o?.Byte(0) ?? 0);
        int a = In(0), b = In(1);
        var (va, vb, nchw) = Operands(a, b);
        SetOutput(0, AddNode(NodeName, new BinaryOp(kind, act), [va, vb], OutName()), nchw);
    }

    private (Value A, Value B, bool Nchw) Operands(int a, int b)
    {
        bool ca = IsConstant(a), cb = IsConstant(b);
        bool nchw = !(ca && cb) && (ca || RankOf(a) == 4) && (cb || RankOf(b) == 4)
            && (!ca || RankOf(a) <= 4) && (!cb || RankOf(b) <= 4);
        return nchw
            ? (ca ? BroadcastNchw(a) : NchwOf(a), cb ? BroadcastNchw(b) : NchwOf(b), true)
            : (NativeOf(a), NativeOf(b), false);
    }

    private void Unary(Activation a)
    {
        int t = In(0);
        bool nchw = _nchw[t] is not null;
        var x = nchw ? _nchw[t]! : NativeOf(t);
        SetOutput(0, AddNode(NodeName, new ActivationOp(a), [x], OutName()), nchw);
    }

    /// <summary>max(x, 0) + slope · min(x, 0), from existing element-wise ops.</summary>
    private void PReluOp()
    {
        int x = In(0), s = In(1);
        var (vx, vs, nchw) = Operands(x, s);
        string name = NodeName;
        var zero = Constant(OutName() + "/zero", new Tensor([0f], []));
        var pos = AddNode(name + "/pos", new BinaryOp(BinaryKind.Max), [vx, zero], OutName() + "/pos");
        var neg = AddNode(name + "/neg", new BinaryOp(BinaryKind.Min), [vx, zero], OutName() + "/neg");
        var scaled = AddNode(name + "/scaled", new BinaryOp(BinaryKind.Mul), [neg, vs], OutName() + "/scaled");
        SetOutput(0, AddNode(name, new BinaryOp(BinaryKind.Add), [pos, scaled], OutName()), nchw);
    }

    private void PadOp()
    {
        int t = In(0);
        var p = IntsIn(1, "the paddings");
        int rank = RankOf(t);
        if (p.Length != 2 * rank) throw new GraphException($"{p.Length} padding values for rank {rank}; {2 * rank} are expected.");
        float value = 0f;
        if (OptionalIn(2) is { } vt)
        {
            var c = ConstantOf(vt) ?? throw new GraphException("the pad value must be a constant.");
            if (c.DataType != DataType.Float32 || c.Length != 1) throw new GraphException("the pad value must be one float.");
            value = c.Floats[0];
        }
        bool nchw = rank == 4;
        var pads = new long[2 * rank];
        for (int a = 0; a < rank; a++)
        {
            int src = nchw ? ToNchw[a] : a; // NCHW axis a is NHWC axis ToNchw[a]
            pads[a] = p[2 * src];
            pads[a + rank] = p[2 * src + 1];
        }
        if (nchw && value == 0f && pads[0] == 0 && pads[1] == 0 && pads[4] == 0 && pads[5] == 0 && pads.All(q => q >= 0 && q <= 1 << 16)
            && _op.Outputs.Length == 1 && ReadOnlyByValidConv(_op.Outputs[0]))
        {
            // Converters write SAME-like padding as PAD + VALID convolution; the convolution takes the pads itself.
            _foldedPads[_op.Outputs[0]] = (t, (int)pads[2], (int)pads[3], (int)pads[6], (int)pads[7]);
            return;
        }
        var x = nchw ? NchwOf(t) : NativeOf(t);
        SetOutput(0, AddNode(NodeName, new Pad(PadMode.Constant, pads, value), [x], OutName()), nchw);
    }

    private void ReshapeOp()
    {
        int[] target;
        if (OptionalIn(1) is { } s && IsConstant(s)) target = IntsIn(1, "the new shape");
        else if (Options(Builtin.Reshape) is { } o && o.Has(0)) target = o.Ints(0, "new_shape");
        else target = CheckedShape(_sg.Tensors[_op.Outputs.Length > 0 ? _op.Outputs[0] : throw new GraphException("no output.")]);
        SetOutput(0, AddNode(NodeName, new Reshape(target.Select(v => (long)v).ToArray()), [NativeOf(In(0))], OutName()), false);
    }

    private void SqueezeOp()
    {
        var dims = Options(Builtin.Squeeze)?.Ints(0, "squeeze_dims");
        SetOutput(0, AddNode(NodeName, new Squeeze(dims is { Length: > 0 } ? dims : null), [NativeOf(In(0))], OutName()), false);
    }

    private void Concatenation()
    {
        var o = Options(Builtin.Concatenation);
        var inputs = Enumerable.Range(0, _op.Inputs.Length).Select(In).ToArray();
        if (inputs.Length == 0) throw new GraphException("nothing to concatenate.");
        int rank = RankOf(inputs[0]);
        int axis = o?.Int(0) ?? 0;
        if (axis < -rank || axis >= rank) throw new GraphException($"axis {axis} is out of range for rank {rank}.");
        if (axis < 0) axis += rank;
        bool nchw = rank == 4 && inputs.All(t => RankOf(t) == 4);
        var values = inputs.Select(t => nchw ? NchwOf(t) : NativeOf(t)).ToArray();
        var y = AddNode(NodeName, new Concat(nchw ? AxisToNchw[axis] : axis), values, OutName());
        SetOutput(0, FusedAfter(y, Fused(o?.Byte(1) ?? 0)), nchw);
    }

    private void FullyConnected()
    {
        var o = Options(Builtin.FullyConnected);
        if ((o?.Byte(1) ?? 0) != 0) throw new GraphException("shuffled weights (weights_format) are not supported.");
        bool keepDims = o?.Bool(2) ?? false;
        var w = ConstIn(1, "the weights");
        if (w.Rank != 2 || w.DataType != DataType.Float32) throw new GraphException($"the weights have shape {Shape.Format(w.Shape)}; 2-D float32 [out, in] is expected.");
        var x = NativeOf(In(0));
        int k = w.Shape[1];
        string name = NodeName;
        var x2 = x.Rank == 2 && x.Shape[1] == k ? x
            : AddNode(name + "/flatten", new Reshape([-1, k]), [x], OutName() + "/2d");
        var wv = NativeOf(In(1));
        var y = AddNode(name, new Gemm(TransB: true, Activation: Fused(o?.Byte(0) ?? 0)), [x2, wv, Bias(2, In(0), wv)], OutName());
        if (keepDims && x.Rank != 2)
        {
            _names.Remove(y.Name);
            y.Name = Unique(y.Name + "/2d_out");
            y = AddNode(name + "/unflatten", new Reshape(x.Shape[..^1].Select(d => (long)d).Append(w.Shape[0]).ToArray(), AllowZero: true), [y], OutName());
        }
        SetOutput(0, y, false);
    }

    private void SoftmaxOp()
    {
        float beta = Options(Builtin.Softmax)?.Float(0) ?? 0f;
        var x = NativeOf(In(0));
        string name = NodeName;
        if (beta != 1f)
            x = AddNode(name + "/beta", new BinaryOp(BinaryKind.Mul), [x, Constant(OutName() + "/beta", new Tensor([beta], []))], OutName() + "/scaled");
        SetOutput(0, AddNode(name, new Softmax(-1), [x], OutName()), false);
    }

    private void MeanOp()
    {
        int t = In(0);
        bool keep = Options(Builtin.Mean)?.Bool(0) ?? false;
        int rank = RankOf(t);
        var axes = IntsIn(1, "the axes").Select(a => a < -rank || a >= rank ? throw new GraphException($"axis {a} is out of range for rank {rank}.") : (a + rank) % rank).Distinct().ToArray();
        bool nchw = rank == 4;
        if (nchw && !keep)
        {
            // Without keep_dims the NCHW result is in the file's order only if the axes kept stay in the same order.
            var kept = Enumerable.Range(0, 4).Where(a => !axes.Contains(ToNchw[a])).Select(a => ToNchw[a]).ToArray();
            nchw = kept.SequenceEqual(kept.Order());
        }
        var x = nchw ? NchwOf(t) : NativeOf(t);
        var mapped = nchw ? axes.Select(a => AxisToNchw[a]).Order().ToArray() : axes.Order().ToArray();
        SetOutput(0, AddNode(NodeName, new Reduce(ReduceKind.Mean, mapped, keep), [x], OutName()), nchw && keep);
    }

    private void ResizeOp(ResizeMode mode, int code)
    {
        var o = Options(code);
        bool align = mode == ResizeMode.Linear ? o?.Bool(2) ?? false : o?.Bool(0) ?? false;
        bool half = mode == ResizeMode.Linear ? o?.Bool(3) ?? false : o?.Bool(1) ?? false;
        if (align && half) throw new GraphException("align_corners and half_pixel_centers together are not supported.");
        var size = IntsIn(1, "the output size");
        if (size.Length != 2 || size.Any(s => s < 1)) throw new GraphException($"the output size [{string.Join(",", size)}] must be two positive lengths.");
        var transform = align ? CoordinateTransform.AlignCorners
            : half ? (mode == ResizeMode.Linear ? CoordinateTransform.HalfPixel : CoordinateTransform.TfHalfPixelForNn)
            : CoordinateTransform.Asymmetric;
        var rounding = mode == ResizeMode.Nearest && align ? NearestRounding.RoundPreferCeil : NearestRounding.Floor;
        var op = new Resize(mode, transform, rounding, Sizes: [-1, -1, size[0], size[1]]);
        SetOutput(0, AddNode(NodeName, op, [NchwOf(In(0))], OutName()), true);
    }

    /// <summary>
    /// fp16 and 8-bit constants become float32 constants at load (8-bit ones keeping their codes); nothing runs. A computed
    /// 8-bit tensor already is its real values (Quantized.cs), so its DEQUANTIZE is that value.
    /// </summary>
    private void DequantizeOp()
    {
        int t = In(0);
        if (!IsConstant(t))
        {
            if (ActivationParams(t) is null) throw new GraphException($"it dequantizes tensor '{TensorName(t)}', which is not an 8-bit quantized tensor.");
            bool nchw = _nchw[t] is not null;
            SetOutput(0, nchw ? _nchw[t]! : NativeOf(t), nchw);
            return;
        }
        var c = ConstantOf(t)!;
        if (c.DataType != DataType.Float32) throw new GraphException($"dequantizing {c.DataType} is not supported (fp16 and 8-bit constants are).");
        if (_op.Outputs.Length != 1) throw new GraphException("DEQUANTIZE has one output.");
        int y = _op.Outputs[0];
        if (_native[y] is not null || _nchw[y] is not null || _constants[y] is not null) throw new GraphException($"tensor '{TensorName(y)}' is written twice.");
        var declared = CheckedShape(_sg.Tensors[y]);
        if (!Shape.Equal(declared, c.Shape)) throw new GraphException($"the output is declared [{string.Join(",", declared)}], the input is {Shape.Format(c.Shape)}.");
        _constants[y] = c;
    }

    private void TransposeConv()
    {
        var o = Options(Builtin.TransposeConv);
        var outShape = IntsIn(0, "the output shape");
        if (outShape.Length != 4) throw new GraphException($"the output shape has {outShape.Length} values; 4 (NHWC) are expected.");
        TransposeConvCore(In(2), 1, OptionalIn(3) is not null ? 3 : -1, outShape[1], outShape[2],
            Padding(o?.Byte(0) ?? 0), o?.Int(2) ?? 1, o?.Int(1) ?? 1, Fused(o?.Byte(3) ?? 0));
    }

    /// <summary>MediaPipe's custom op: inputs x, weights [O,H,W,I], bias; options are TfLiteTransposeConvParams (padding, stride_w, stride_h as int32).</summary>
    private void TransposeConvBias()
    {
        var (start, count) = _op.CustomOptions;
        if (count < 12) throw new GraphException($"its custom options have {count} bytes; 12 (padding, stride_w, stride_h) are expected.");
        var fb = _model.File;
        int padding = fb.Int(start), sw = fb.Int(start + 4), sh = fb.Int(start + 8);
        var pad = padding switch { 1 => AutoPad.SameUpper, 2 => AutoPad.Valid, _ => throw new GraphException($"padding {padding} is neither SAME (1) nor VALID (2).") };
        if (_op.Outputs.Length < 1) throw new GraphException("no output.");
        var declared = CheckedShape(_sg.Tensors[_op.Outputs[0]]);
        if (declared.Length != 4) throw new GraphException("the output must be 4-D.");
        TransposeConvCore(In(0), 1, 2, declared[1], declared[2], pad, sh, sw, Activation.None);
    }

    private void TransposeConvCore(int xt, int wi, int bi, int outH, int outW, AutoPad pad, int sh, int sw, Activation act)
    {
        var x = NchwOf(xt);
        var w = Weights(wi, [3, 0, 1, 2], "the weights"); // [O,H,W,I] -> [I,O,H,W]
        if (w.Shape[0] != x.Shape[1]) throw new GraphException($"the weights take {w.Shape[0]} input channels, the input has {x.Shape[1]}.");
        if (sh < 1 || sw < 1) throw new GraphException($"strides {sh}x{sw} must be positive.");
        int kh = w.Shape[2], kw = w.Shape[3];
        var (top, bottom, opH) = Crop(x.Shape[2], kh, sh, outH, pad);
        var (left, right, opW) = Crop(x.Shape[3], kw, sw, outW, pad);
        var op = new ConvTranspose(kh, kw, sh, sw, top, left, bottom, right, OutputPadH: opH, OutputPadW: opW, Activation: act);
        SetOutput(0, AddNode(NodeName, op, [x, w, bi >= 0 ? Bias(bi) : null], OutName()), true);
    }

    /// <summary>Pads that crop the full transposed output ((in-1)·s + k) to the wanted length as TFLite does (SAME: the odd cell at the end).</summary>
    private static (int Begin, int End, int OutputPad) Crop(int inSize, int k, int s, int outSize, AutoPad pad)
    {
        long total = (long)(inSize - 1) * s + k - outSize;
        if (total > int.MaxValue || outSize < 1) throw new GraphException($"output length {outSize} does not fit input {inSize}, kernel {k}, stride {s}.");
        if (total < 0) return (0, 0, (int)-total);
        int begin = pad == AutoPad.Valid ? 0 : (int)(total / 2);
        return (begin, (int)total - begin, 0);
    }

    /// <summary>
    /// TFLite STRIDED_SLICE (inputs: data, begin, end, strides, all three constant int vectors of one length ≤ rank; axes beyond
    /// it are taken whole) onto the graph's Slice, which clamps out-of-range indices the Python way as TFLite does. begin_mask /
    /// end_mask bit i takes axis i from its first (last, for a negative stride) element / to its end; offset makes end relative
    /// to begin; shrink_axis_mask bit i takes the single element at begin and drops the axis (a Squeeze after the Slice).
    /// ellipsis_mask and new_axis_mask are refused. Rank-4 slices that keep every axis run on the NCHW form.
    /// </summary>
    private void StridedSliceOp()
    {
        var o = Options(Builtin.StridedSlice);
        int beginMask = o?.Int(0) ?? 0, endMask = o?.Int(1) ?? 0, ellipsisMask = o?.Int(2) ?? 0, newAxisMask = o?.Int(3) ?? 0, shrinkMask = o?.Int(4) ?? 0;
        bool offset = o?.Bool(5) ?? false;
        if (ellipsisMask != 0) throw new GraphException($"ellipsis_mask {ellipsisMask} is not supported (write the axes out: begin/end/strides per axis).");
        if (newAxisMask != 0) throw new GraphException($"new_axis_mask {newAxisMask} is not supported (insert axes with RESHAPE).");
        int t = In(0);
        var shape = NativeShape(t);
        int rank = shape.Length;
        int[] begin = IntsIn(1, "the begin indices"), end = IntsIn(2, "the end indices"), strides = IntsIn(3, "the strides");
        if (begin.Length != end.Length || begin.Length != strides.Length)
            throw new GraphException($"begin, end and strides have {begin.Length}, {end.Length} and {strides.Length} values; they must match.");
        if (begin.Length > rank) throw new GraphException($"{begin.Length} begin indices for a rank-{rank} input.");
        var starts = new long[begin.Length];
        var ends = new long[begin.Length];
        var steps = new long[begin.Length];
        var dropped = new List<int>();
        for (int a = 0; a < begin.Length; a++)
        {
            long s = begin[a], e = end[a], step = strides[a];
            if (step == 0) throw new GraphException($"the stride on axis {a} is 0.");
            if ((shrinkMask >> a & 1) != 0)
            {
                long at = s < 0 ? s + shape[a] : s;
                if (at < 0 || at >= shape[a]) throw new GraphException($"shrink_axis_mask takes index {s} of axis {a}, which has length {shape[a]}.");
                (starts[a], ends[a], steps[a]) = (at, at + 1, 1);
                dropped.Add(a);
                continue;
            }
            if (offset) e += s;
            if ((beginMask >> a & 1) != 0) s = step > 0 ? 0 : long.MaxValue;
            if ((endMask >> a & 1) != 0) e = step > 0 ? long.MaxValue : long.MinValue;
            (starts[a], ends[a], steps[a]) = (s, e, step);
        }
        bool nchw = rank == 4 && dropped.Count == 0 && (_nchw[t] is not null || IsConstant(t));
        var x = nchw ? NchwOf(t) : NativeOf(t);
        var axes = Enumerable.Range(0, begin.Length).Select(a => nchw ? AxisToNchw[a] : a).ToArray();
        string name = NodeName;
        var y = AddNode(name, new Slice(starts, ends, axes, steps), [x], dropped.Count > 0 ? OutName() + "/unsqueezed" : OutName());
        if (dropped.Count > 0) y = AddNode(name + "/shrink", new Squeeze(dropped.ToArray()), [y], OutName());
        SetOutput(0, y, nchw);
    }

    /// <summary>The file's (NHWC) shape of tensor <paramref name="t"/> as computed so far.</summary>
    private int[] NativeShape(int t)
    {
        if (ConstantOf(t) is { } c) return c.Shape;
        if (_native[t] is { } v) return v.Shape;
        if (_nchw[t] is { } n) return ToNhwc.Select(a => n.Shape[a]).ToArray();
        throw NotYet(t);
    }

    /// <summary>
    /// TFLite DEPTH_TO_SPACE (NHWC): y[n, h·b + i, w·b + j, c] = x[n, h, w, (i·b + j)·C' + c], C' = C / b². In NCHW that is
    /// ONNX DepthToSpace in DCR order, so it maps onto the graph's DepthToSpace op.
    /// </summary>
    private void DepthToSpaceOp()
    {
        int block = Options(Builtin.DepthToSpace)?.Int(0) ?? 0;
        if (block < 1) throw new GraphException($"block_size {block} must be positive.");
        SetOutput(0, AddNode(NodeName, new DepthToSpace(block, DepthToSpaceMode.Dcr), [NchwOf(In(0))], OutName()), true);
    }
}
