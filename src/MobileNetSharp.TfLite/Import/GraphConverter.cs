using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.TfLite.Schema;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.TfLite.Import;

/// <summary>
/// Turns the first subgraph of a TFLite model into a graph, operator by operator in the file's order (TFLite
/// stores operators in execution order, so reading a tensor before it is written is an error, which also rules
/// out cycles). Each tensor may exist in two forms: as the file has it (NHWC for rank 4) and, for rank-4
/// tensors, transposed to NCHW; the other form is made on demand by one Transpose node, and constants are
/// rearranged at load instead. Shapes are inferred as nodes are added and checked against the file's.
/// </summary>
internal sealed partial class GraphConverter
{
    private static readonly int[] ToNchw = [0, 3, 1, 2], ToNhwc = [0, 2, 3, 1];
    /// <summary>NHWC axis → NCHW axis.</summary>
    private static readonly int[] AxisToNchw = [0, 2, 3, 1];

    private readonly TfLiteModel _model;
    private readonly TfSubGraph _sg;
    private readonly ModelGraph _graph;
    private readonly Value?[] _native, _nchw;
    private readonly Tensor?[] _constants;
    private readonly HashSet<string> _names = [];
    /// <summary>How many operators (and graph outputs) read each tensor.</summary>
    private readonly int[] _readers;
    /// <summary>Zero spatial PADs left out because the one VALID convolution reading them takes the pads instead.</summary>
    private readonly Dictionary<int, (int Source, int Top, int Left, int Bottom, int Right)> _foldedPads = [];
    private TfOperator _op = null!;
    private string _opName = "";

    public GraphConverter(TfLiteModel model, string name)
    {
        _model = model;
        _sg = model.SubGraphs[0];
        _graph = new ModelGraph(string.IsNullOrEmpty(_sg.Name) ? name : _sg.Name);
        _graph.Metadata["source"] = "tflite";
        if (!string.IsNullOrEmpty(model.Description)) _graph.Metadata["description"] = model.Description;
        _native = new Value?[_sg.Tensors.Length];
        _nchw = new Value?[_sg.Tensors.Length];
        _constants = new Tensor?[_sg.Tensors.Length];
        _readers = new int[_sg.Tensors.Length];
        foreach (var op in _sg.Operators)
            foreach (int t in op.Inputs) if (t >= 0) _readers[t]++;
        foreach (int t in _sg.Outputs) _readers[t]++;
    }

    public ModelGraph Convert()
    {
        CheckQuantization();
        foreach (int t in _sg.Inputs)
        {
            var tensor = _sg.Tensors[t];
            if (_native[t] is not null) throw Bad($"input tensor '{tensor.Name}' is listed twice");
            if (tensor.Type is TensorType.Int8 or TensorType.UInt8 && FileParams(t) is { } p)
            {
                QuantizedInput(t, p);
                continue;
            }
            if (tensor.Type != TensorType.Float32) throw Bad($"input tensor '{tensor.Name}' is {tensor.Type}; only float32 and 8-bit quantized inputs are supported");
            var v = new Value(Unique(TensorName(t)), DataType.Float32, CheckedShape(tensor));
            _native[t] = v;
            _graph.Inputs.Add(v);
        }
        foreach (var op in _sg.Operators)
        {
            _op = op;
            var code = _model.OperatorCodes[op.OpcodeIndex];
            _opName = code.Builtin == Builtin.Custom ? $"CUSTOM '{code.CustomCode}'" : Builtin.Name(code.Builtin);
            try { ConvertOperator(code); }
            catch (Exception e) when (e is GraphException or ArgumentException or InvalidOperationException)
            {
                string detail = e is GraphException g ? g.Message : e.Message;
                throw new ModelFormatException($"TFLite operator #{op.Index} ({_opName}, writing {Listing(op.Outputs)}): {detail}", e);
            }
        }
        foreach (int t in _sg.Outputs)
        {
            Value v;
            try { v = NativeOf(t, forOutput: true); }
            catch (GraphException e) { throw new ModelFormatException($"Not a valid TFLite model: output tensor '{TensorName(t)}': {e.Message}", e); }
            if (_graph.Outputs.Contains(v)) throw Bad($"output tensor '{TensorName(t)}' is listed twice");
            string name = TensorName(t);
            bool codes = false;
            if (!IsConstant(t) && ActivationParams(t) is { } p)
            {
                // An 8-bit output is given as the file's codes, like TFLite gives it.
                v = AddNode(Unique(name + "/quantize_output"), new QuantizeLinear(p), [v], name + "/output_codes");
                codes = true;
            }
            if (v.Name != name && !v.IsConstant && !_graph.Inputs.Contains(v))
            {
                // The value under the file's name is the NCHW form (or the float form of 8-bit codes): it takes a suffix,
                // the output the name.
                var holder = AllValues().FirstOrDefault(x => x.Name == name);
                if (holder is not null) holder.Name = Unique(name + (codes ? "/float" : "/nchw"));
                _names.Remove(v.Name);
                v.Name = name;
                _names.Add(name);
            }
            _graph.Outputs.Add(v);
        }
        if (_graph.Outputs.Count == 0) throw Bad("the subgraph has no outputs");
        RemoveDeadNodes();
        try { _graph.InferShapes(); }
        catch (Exception e) when (e is GraphException or ArgumentException)
        {
            throw new ModelFormatException($"The imported TFLite graph is inconsistent: {e.Message}", e);
        }
        return _graph;
    }

    private IEnumerable<Value> AllValues() => _graph.Inputs.Concat(_graph.Nodes.SelectMany(n => n.Outputs));

    // ---------- tensors and their two layouts ----------

    private string TensorName(int t) => _sg.Tensors[t].Name.Length > 0 ? _sg.Tensors[t].Name : $"tensor_{t}";

    private string Unique(string name)
    {
        if (_names.Add(name)) return name;
        for (int i = 1; ; i++)
            if (_names.Add($"{name}_{i}")) return $"{name}_{i}";
    }

    private static ModelFormatException Bad(string what) => new($"Not a valid TFLite model: {what}.");

    private int[] CheckedShape(TfTensor t)
    {
        foreach (int d in t.Shape)
            if (d < 0) throw Bad($"tensor '{t.Name}' has dimension {d} in shape [{string.Join(",", t.Shape)}]; dynamic shapes are not supported");
        try { Shape.Size(t.Shape); }
        catch (ArgumentException e) { throw Bad($"tensor '{t.Name}': {e.Message}"); }
        return (int[])t.Shape.Clone();
    }

    private string Listing(IEnumerable<int> tensors) =>
        string.Join(", ", tensors.Select(t => t < 0 ? "(none)" : $"'{TensorName(t)}'"));

    /// <summary>The constant held by tensor <paramref name="t"/> in the file's layout, or null when it has no data.</summary>
    private Tensor? ConstantOf(int t)
    {
        if (_constants[t] is { } c) return c;
        var tensor = _sg.Tensors[t];
        if (tensor.Buffer == 0 || _model.Buffers.Length == 0 || _model.Buffers[tensor.Buffer].Length == 0) return null;
        var shape = CheckedShape(tensor);
        long count = Shape.Size(shape);
        var bytes = _model.BufferBytes(tensor.Buffer);
        int size = tensor.Type switch
        {
            TensorType.Float32 or TensorType.Int32 => 4,
            TensorType.Float16 => 2,
            TensorType.Int64 => 8,
            TensorType.Bool or TensorType.Int8 or TensorType.UInt8 => 1,
            _ => throw new ModelFormatException($"Tensor '{tensor.Name}' holds {tensor.Type} data, which is not supported."),
        };
        if (bytes.Length != count * size)
            throw Bad($"tensor '{tensor.Name}' of shape [{string.Join(",", shape)}] and type {tensor.Type} needs {count * size} bytes, its buffer has {bytes.Length}");
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("TFLite import needs a little-endian machine.");
        // Quantized weights and biases: float values that keep the file's integers (Quantized.cs).
        if (FileParams(t) is { } quantized) return _constants[t] = DequantizedConstant(shape, bytes, quantized);
        Tensor result = tensor.Type switch
        {
            TensorType.Float32 => new Tensor(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray(), shape),
            TensorType.Float16 => new Tensor(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(bytes).ToArray().Select(h => (float)h).ToArray(), shape),
            TensorType.Int32 => new Tensor(DataType.Int32, shape, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(bytes).ToArray()),
            TensorType.Int64 => new Tensor(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(bytes).ToArray(), shape),
            _ => new Tensor(DataType.Bool, shape, bytes.ToArray().Select(b => b != 0).ToArray()),
        };
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("TFLite import needs a little-endian machine.");
        return _constants[t] = result;
    }

    private bool IsConstant(int t) => ConstantOf(t) is not null;

    /// <summary>The rank the tensor has now (its value's, or its constant's).</summary>
    private int RankOf(int t) => ConstantOf(t)?.Rank ?? (_nchw[t] ?? _native[t])?.Rank ?? throw NotYet(t);

    private GraphException NotYet(int t) =>
        new($"it reads tensor '{TensorName(t)}' before any operator writes it (tensors must be written in operator order).");

    /// <summary>Tensor <paramref name="t"/> in the file's layout (NHWC for rank 4).</summary>
    private Value NativeOf(int t, bool forOutput = false)
    {
        if (_native[t] is { } v) return v;
        if (ConstantOf(t) is { } c) return _native[t] = Value.FromConstant(Unique(TensorName(t)), c);
        if (_nchw[t] is { } n)
            return _native[t] = Transposed(n, ToNhwc, Unique(n.Name + "/nhwc"), forOutput ? TensorName(t) + "/nhwc" : n.Name + "/nhwc");
        throw NotYet(t);
    }

    /// <summary>Rank-4 tensor <paramref name="t"/> in NCHW.</summary>
    private Value NchwOf(int t)
    {
        if (_nchw[t] is { } v) return v;
        if (ConstantOf(t) is { } c)
        {
            if (c.Rank != 4) throw new GraphException($"tensor '{TensorName(t)}' has rank {c.Rank}; 4 (NHWC) is expected here.");
            return _nchw[t] = Value.FromConstant(Unique(TensorName(t) + "/nchw"), Layout.Permute(c, ToNchw));
        }
        var n = _native[t] ?? throw NotYet(t);
        if (n.Rank != 4) throw new GraphException($"tensor '{TensorName(t)}' has shape {Shape.Format(n.Shape)}; a 4-D NHWC tensor is expected here.");
        return _nchw[t] = Transposed(n, ToNchw, Unique(n.Name + "/to_nchw"), n.Name + "/nchw");
    }

    /// <summary>
    /// <paramref name="v"/> in the other layout. An 8-bit tensor's float form is DequantizeLinear of its codes: the codes are
    /// transposed and dequantized again (per-tensor parameters commute with a transpose), so the DequantizeLinear stays right
    /// before the op that reads it (where the integer kernels' fusion looks for it).
    /// </summary>
    private Value Transposed(Value v, int[] perm, string nodeName, string outputName)
    {
        if (v.Producer is { Op: DequantizeLinear { Params.PerTensor: true } dq } producer && !producer.Input(0).IsConstant)
        {
            var codes = AddNode(nodeName, new Transpose(perm), [producer.Input(0)], outputName + "_codes");
            return AddNode(Unique(nodeName + "/dequantize"), dq, [codes], outputName);
        }
        return AddNode(nodeName, new Transpose(perm), [v], outputName);
    }

    /// <summary>A constant operand of an element-wise op over NCHW tensors: NumPy-aligned to rank 4, then transposed.</summary>
    private Value BroadcastNchw(int t)
    {
        var c = ConstantOf(t)!;
        if (c.Rank == 4) return NchwOf(t);
        var shape4 = Enumerable.Repeat(1, 4 - c.Rank).Concat(c.Shape).ToArray();
        var reshaped = new Tensor(c.DataType, shape4, c.Data);
        return Value.FromConstant(Unique(TensorName(t) + "/nchw"), Layout.Permute(reshaped, ToNchw));
    }

    private Value Constant(string name, Tensor t) => Value.FromConstant(Unique(name), t);

    /// <summary>Adds a node with one output, infers its shape now, and returns the output.</summary>
    private Value AddNode(string nodeName, Op op, Value?[] inputs, string outputName)
    {
        var y = new Value(Unique(outputName), DataType.Float32, []);
        var node = new Node(nodeName, op, inputs, [y]);
        var shapes = op.InferShapes(node);
        var types = op.InferTypes(node);
        if (shapes.Length != 1) throw new GraphException(node, $"produces {shapes.Length} outputs; one is expected.");
        Shape.Size(shapes[0]);
        y.Shape = shapes[0];
        y.DataType = types[0];
        _graph.Nodes.Add(node);
        return y;
    }

    /// <summary>Records what operator output <paramref name="i"/> is, checking its shape against the file's.</summary>
    private void SetOutput(int i, Value v, bool nchw)
    {
        if (i >= _op.Outputs.Length) throw new GraphException($"the operator has {_op.Outputs.Length} outputs; output #{i} is expected.");
        int t = _op.Outputs[i];
        if (_native[t] is not null || _nchw[t] is not null || IsConstant(t) || _foldedPads.ContainsKey(t))
            throw new GraphException($"tensor '{TensorName(t)}' is written twice (or is a constant or input).");
        var declared = CheckedShape(_sg.Tensors[t]);
        var expected = nchw && declared.Length == 4 ? ToNchw.Select(a => declared[a]).ToArray() : declared;
        if (declared.Length > 0 && !Shape.Equal(expected, v.Shape))
            throw new GraphException($"tensor '{TensorName(t)}' is computed with shape {Shape.Format(nchw ? ToNhwc.Select(a => v.Shape[a]).ToArray() : v.Shape)}"
                + $" (NHWC), but the file declares [{string.Join(",", declared)}].");
        // An 8-bit tensor holds the float result put on its grid (Quantized.cs).
        if (ActivationParams(t) is { } p) v = OnGrid(v, p, t);
        if (nchw) _nchw[t] = v; else _native[t] = v;
    }

    private string OutName(int i = 0) => i < _op.Outputs.Length ? TensorName(_op.Outputs[i]) : $"op{_op.Index}";

    /// <summary>The node name for this operator's main node.</summary>
    private string NodeName => Unique($"{_opName.ToLowerInvariant()}_{_op.Index}");

    private int In(int i)
    {
        if (i >= _op.Inputs.Length || _op.Inputs[i] < 0)
            throw new GraphException($"input #{i} is missing ({_op.Inputs.Length} inputs given).");
        return _op.Inputs[i];
    }

    private int? OptionalIn(int i) => i < _op.Inputs.Length && _op.Inputs[i] >= 0 ? _op.Inputs[i] : null;

    private Tensor ConstIn(int i, string what) =>
        ConstantOf(In(i)) ?? throw new GraphException($"{what} ('{TensorName(In(i))}') must be a constant; computed {what} is not supported.");

    private int[] IntsIn(int i, string what)
    {
        var c = ConstIn(i, what);
        if (c.DataType is not (DataType.Int32 or DataType.Int64)) throw new GraphException($"{what} must be integers, got {c.DataType}.");
        return c.ToInt64Array().Select(v => v is < int.MinValue or > int.MaxValue ? throw new GraphException($"{what} value {v} is out of range.") : (int)v).ToArray();
    }

    private Value? Bias(int i)
    {
        if (OptionalIn(i) is not { } t) return null;
        var c = ConstantOf(t) ?? throw new GraphException($"the bias ('{TensorName(t)}') must be a constant.");
        if (c.DataType != DataType.Float32) throw new GraphException($"the bias is {c.DataType}; float32 is expected.");
        return NativeOf(t);
    }

    private Table? Options(int code)
    {
        byte expected = Builtin.OptionsType(code);
        if (_op.OptionsType == 0) return null;
        if (expected != 0 && _op.OptionsType != expected)
            throw new GraphException($"its options are union member {_op.OptionsType}; {expected} is expected.");
        return expected == 0 ? null : _op.Options;
    }

    private static Activation Fused(byte code) => code switch
    {
        0 => Activation.None,
        1 => Activation.Relu,
        2 => Activation.Clip(-1f, 1f),
        3 => Activation.Relu6,
        4 => Activation.Tanh,
        _ => throw new GraphException($"fused activation {code} is not supported (NONE, RELU, RELU_N1_TO_1, RELU6, TANH are)."),
    };

    private static AutoPad Padding(byte code) => code switch
    {
        0 => AutoPad.SameUpper, // TFLite SAME puts the odd pixel at the end
        1 => AutoPad.Valid,
        _ => throw new GraphException($"padding {code} is neither SAME (0) nor VALID (1)."),
    };

    private void RemoveDeadNodes()
    {
        var live = new HashSet<Value>(_graph.Outputs);
        for (int i = _graph.Nodes.Count - 1; i >= 0; i--)
        {
            var node = _graph.Nodes[i];
            if (!node.Outputs.Any(live.Contains)) { _graph.Nodes.RemoveAt(i); continue; }
            foreach (var input in node.Inputs) if (input is not null) live.Add(input);
        }
    }
}
