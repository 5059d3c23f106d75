using MobileNetSharp.Tensors;

namespace MobileNetSharp.Graph;

/// <summary>
/// Builds graphs layer by layer, PyTorch-style: each call adds a node, creates its weights with a
/// seeded initializer (so untrained models are reproducible) and infers its output shape at once,
/// so a bad configuration fails at the layer that cannot be built, with that layer named.
/// </summary>
public sealed class GraphBuilder
{
    private readonly Random _rng;
    private readonly Stack<string> _scopes = new();
    private readonly Dictionary<string, int> _counts = [];

    public ModelGraph Graph { get; }

    public GraphBuilder(string name, int seed = 0)
    {
        Graph = new ModelGraph(name);
        _rng = new Random(seed);
    }

    /// <summary>Prefixes the names of everything built until the returned handle is disposed.</summary>
    public IDisposable Scope(string name)
    {
        _scopes.Push(name);
        return new PopScope(_scopes);
    }

    private sealed class PopScope(Stack<string> s) : IDisposable
    {
        public void Dispose() => s.Pop();
    }

    private string Name(string kind)
    {
        string prefix = string.Join(".", _scopes.Reverse());
        string baseName = prefix.Length > 0 ? $"{prefix}.{kind}" : kind;
        int n = _counts.GetValueOrDefault(baseName);
        _counts[baseName] = n + 1;
        return n == 0 ? baseName : $"{baseName}_{n}";
    }

    public Value Input(string name, params int[] shape)
    {
        var v = new Value(name, DataType.Float32, shape);
        Graph.Inputs.Add(v);
        return v;
    }

    public void Output(Value v) => Graph.Outputs.Add(v);

    /// <summary>Adds a node and infers its output shape immediately.</summary>
    public Value Add(Op op, string kind, params Value?[] inputs) => AddNamed(op, Name(kind), inputs);

    public Value Constant(string kind, Tensor t) => Value.FromConstant(Name(kind), t);

    /// <summary>Convolution with "same"-style symmetric padding (k-1)/2, He-normal weights, optional bias.</summary>
    public Value Conv(Value x, int outChannels, int kernel, int stride = 1, int groups = 1, bool bias = false, string kind = "conv")
    {
        int inC = x.Shape[1];
        if (groups < 1 || inC % groups != 0 || outChannels % groups != 0)
            throw new ArgumentException($"groups={groups} must divide {inC} input and {outChannels} output channels.");
        int fanIn = inC / groups * kernel * kernel;
        var w = Normal([outChannels, inC / groups, kernel, kernel], MathF.Sqrt(2f / fanIn));
        string name = Name(kind);
        var wv = Value.FromConstant(name + ".weight", w);
        var bv = bias ? Value.FromConstant(name + ".bias", Uniform([outChannels], -0.1f, 0.1f)) : null;
        int p = (kernel - 1) / 2;
        var op = new Conv(kernel, kernel, stride, stride, p, p, p, p, Groups: groups);
        return AddNamed(op, name, x, wv, bv);
    }

    /// <summary>Batch norm with the statistics of a briefly trained layer (not identity), so folding is really exercised.</summary>
    public Value BatchNorm(Value x, float epsilon = 1e-5f)
    {
        int c = x.Shape[1];
        string name = Name("bn");
        return AddNamed(new BatchNorm(epsilon), name, x,
            Value.FromConstant(name + ".weight", Uniform([c], 0.8f, 1.2f)),
            Value.FromConstant(name + ".bias", Uniform([c], -0.1f, 0.1f)),
            Value.FromConstant(name + ".running_mean", Uniform([c], -0.1f, 0.1f)),
            Value.FromConstant(name + ".running_var", Uniform([c], 0.5f, 1.5f)));
    }

    public Value Activate(Value x, Activation a) =>
        a.IsNone ? x : Add(new ActivationOp(a), new ActivationOp(a).Type.ToLowerInvariant(), x);

    /// <summary>The ubiquitous conv -> batch norm -> activation triple.</summary>
    public Value ConvBnAct(Value x, int outChannels, int kernel, int stride, Activation act, int groups = 1, string kind = "conv")
        => Activate(BatchNorm(Conv(x, outChannels, kernel, stride, groups, bias: false, kind)), act);

    public Value Binary(BinaryKind kind, Value a, Value b) => Add(new BinaryOp(kind), kind.ToString().ToLowerInvariant(), a, b);

    public Value GlobalAveragePool(Value x) => Add(new GlobalPool(PoolKind.Average), "pool", x);

    public Value Flatten(Value x) => Add(new Flatten(1), "flatten", x);

    /// <summary>Dropout before a classifier (the identity at inference; see <see cref="Graph.Dropout"/>).</summary>
    public Value Dropout(Value x, float ratio) => ratio > 0 ? Add(new Dropout(ratio), "dropout", x) : x;

    /// <summary>Fully connected layer as ONNX Gemm with transB (weights [out, in]), torchvision's N(0, 0.01) init.</summary>
    public Value Linear(Value x, int outFeatures, bool bias = true, string kind = "fc")
    {
        int inF = x.Shape[1];
        string name = Name(kind);
        var w = Value.FromConstant(name + ".weight", Normal([outFeatures, inF], 0.01f));
        var b = bias ? Value.FromConstant(name + ".bias", Uniform([outFeatures], -0.01f, 0.01f)) : null;
        return AddNamed(new Gemm(TransB: true), name, x, w, b);
    }

    /// <summary>Squeeze-and-excite: pool -> 1x1 reduce -> ReLU -> 1x1 expand -> gate -> scale.</summary>
    public Value SqueezeExcite(Value x, int squeezeChannels, Activation gate)
    {
        using var _ = Scope("se");
        var s = GlobalAveragePool(x);
        s = Activate(Conv(s, squeezeChannels, 1, bias: true, kind: "fc1"), Activation.Relu);
        s = Activate(Conv(s, x.Shape[1], 1, bias: true, kind: "fc2"), gate);
        return Binary(BinaryKind.Mul, x, s);
    }

    private Value AddNamed(Op op, string name, params Value?[] inputs)
    {
        var output = new Value(name, DataType.Float32, []);
        var node = new Node(name, op, inputs, [output]);
        output.Shape = op.InferShapes(node)[0];
        try { Shape.Size(output.Shape); }
        catch (ArgumentException e) { throw new GraphException(node, e.Message, e); }
        Graph.Nodes.Add(node);
        return output;
    }

    private Tensor Normal(int[] shape, float std) => new(Initializers.Normal(_rng, Shape.Size(shape), std), shape);

    private Tensor Uniform(int[] shape, float lo, float hi) => new(Initializers.Uniform(_rng, Shape.Size(shape), lo, hi), shape);
}
