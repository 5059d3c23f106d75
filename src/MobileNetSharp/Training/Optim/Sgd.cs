using System.Numerics;

namespace MobileNetSharp.Training;

/// <summary>
/// Stochastic gradient descent with momentum, exactly as PyTorch's torch.optim.SGD (dampening 0, maximize off).
/// Per element, with g the gradient, p the value, b the momentum buffer and μ the momentum:
/// <code>
/// d = g + weightDecay·p        (skipped for DecayExempt parameters, or when weightDecay is 0)
/// b = μ·b + d                  (the first step sets b = d; b starts at zero, which gives the same)
/// d = nesterov ? d + μ·b : b   (when μ &gt; 0)
/// p = p − lr·d
/// </code>
/// The "x + α·y" steps are fused multiply-adds and the others separate roundings, as PyTorch's CPU kernels
/// compute them (its add-with-alpha is an FMA), so results agree with PyTorch to the last bit or two.
/// State: "name/momentum" per parameter when momentum &gt; 0, none otherwise.
/// </summary>
public sealed class Sgd : Optimizer
{
    private readonly float[][] _momentum;
    private readonly Dictionary<string, float[]> _state = new(StringComparer.Ordinal);

    public Sgd(IReadOnlyList<Parameter> parameters, float momentum = 0.9f, bool nesterov = false, float weightDecay = 0)
        : base(parameters)
    {
        CheckUnitInterval(momentum, nameof(momentum));
        CheckNonNegative(weightDecay, nameof(weightDecay));
        if (nesterov && momentum == 0)
            throw new ArgumentException("Nesterov momentum requires a momentum (as in PyTorch).", nameof(nesterov));
        (Momentum, Nesterov, WeightDecay) = (momentum, nesterov, weightDecay);
        _momentum = new float[Parameters.Count][];
        if (momentum > 0)
            for (int i = 0; i < Parameters.Count; i++)
                _state.Add(Parameters[i].Name + "/momentum", _momentum[i] = new float[Parameters[i].Length]);
    }

    public float Momentum { get; }
    public bool Nesterov { get; }
    public float WeightDecay { get; }

    public override IReadOnlyDictionary<string, float[]> State => _state;

    public override void LoadState(IReadOnlyDictionary<string, float[]> state, long steps) => LoadBuffers(state, steps);

    public override void Step(float learningRate)
    {
        CheckLearningRate(learningRate);
        for (int i = 0; i < Parameters.Count; i++)
        {
            var p = Parameters[i];
            float decay = p.DecayExempt ? 0f : WeightDecay;
            Update(p.Value, p.Grad, _momentum[i], -learningRate, decay, Momentum, Nesterov);
        }
        Steps++;
    }

    private static void Update(Span<float> value, ReadOnlySpan<float> grad, Span<float> buffer, float negLr, float decay, float mu, bool nesterov)
    {
        int n = value.Length, i = 0;
        if (Vector.IsHardwareAccelerated && n >= Vector<float>.Count)
        {
            var vLr = new Vector<float>(negLr);
            var vDecay = new Vector<float>(decay);
            var vMu = new Vector<float>(mu);
            for (; i <= n - Vector<float>.Count; i += Vector<float>.Count)
            {
                var p = new Vector<float>(value[i..]);
                var d = new Vector<float>(grad[i..]);
                if (decay != 0) d = Vector.FusedMultiplyAdd(p, vDecay, d);
                if (mu != 0)
                {
                    var b = vMu * new Vector<float>(buffer[i..]) + d;
                    b.CopyTo(buffer[i..]);
                    d = nesterov ? Vector.FusedMultiplyAdd(b, vMu, d) : b;
                }
                Vector.FusedMultiplyAdd(d, vLr, p).CopyTo(value[i..]);
            }
        }
        for (; i < n; i++)
        {
            float d = grad[i];
            if (decay != 0) d = MathF.FusedMultiplyAdd(value[i], decay, d);
            if (mu != 0)
            {
                float b = buffer[i] = mu * buffer[i] + d;
                d = nesterov ? MathF.FusedMultiplyAdd(b, mu, d) : b;
            }
            value[i] = MathF.FusedMultiplyAdd(d, negLr, value[i]);
        }
    }
}
