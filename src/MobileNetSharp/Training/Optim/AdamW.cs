using System.Numerics;

namespace MobileNetSharp.Training;

/// <summary>
/// Adam with decoupled weight decay (Loshchilov and Hutter 2019), exactly as PyTorch's torch.optim.AdamW
/// (amsgrad off). At step t = 1, 2, … with g the gradient, p the value and lr the learning rate:
/// <code>
/// p = p·(1 − lr·weightDecay)   (skipped for DecayExempt parameters)
/// m = β1·m + (1 − β1)·g
/// v = β2·v + (1 − β2)·g²
/// p = p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + ε)
/// </code>
/// The scalar factors are computed in double, as PyTorch computes them in Python, then rounded to float; per element
/// the operations round as PyTorch's CPU kernels do (m and v by fused multiply-adds, the update as (−step·m)/denom),
/// so results agree with PyTorch to the last bit or two.
/// t is <see cref="Optimizer.Steps"/> + 1, so a restored step count restores the bias correction.
/// State: "name/exp_avg" and "name/exp_avg_sq" per parameter (PyTorch's names).
/// </summary>
public sealed class AdamW : Optimizer
{
    private readonly float[][] _m, _v;
    private readonly Dictionary<string, float[]> _state = new(StringComparer.Ordinal);

    public AdamW(IReadOnlyList<Parameter> parameters, float beta1 = 0.9f, float beta2 = 0.999f, float epsilon = 1e-8f, float weightDecay = 0.01f)
        : base(parameters)
    {
        CheckUnitInterval(beta1, nameof(beta1));
        CheckUnitInterval(beta2, nameof(beta2));
        CheckNonNegative(epsilon, nameof(epsilon));
        CheckNonNegative(weightDecay, nameof(weightDecay));
        (Beta1, Beta2, Epsilon, WeightDecay) = (beta1, beta2, epsilon, weightDecay);
        _m = new float[Parameters.Count][];
        _v = new float[Parameters.Count][];
        for (int i = 0; i < Parameters.Count; i++)
        {
            string name = Parameters[i].Name;
            _state.Add(name + "/exp_avg", _m[i] = new float[Parameters[i].Length]);
            _state.Add(name + "/exp_avg_sq", _v[i] = new float[Parameters[i].Length]);
        }
    }

    public float Beta1 { get; }
    public float Beta2 { get; }
    public float Epsilon { get; }
    public float WeightDecay { get; }

    public override IReadOnlyDictionary<string, float[]> State => _state;

    public override void LoadState(IReadOnlyDictionary<string, float[]> state, long steps) => LoadBuffers(state, steps);

    public override void Step(float learningRate)
    {
        CheckLearningRate(learningRate);
        double t = Steps + 1, lr = learningRate;
        double correction1 = 1 - Math.Pow(Beta1, t), correction2 = 1 - Math.Pow(Beta2, t);
        var k = new Factors(
            Decay: (float)(1 - lr * WeightDecay),
            Beta1: Beta1, OneMinusBeta1: (float)(1 - (double)Beta1),
            Beta2: Beta2, OneMinusBeta2: (float)(1 - (double)Beta2),
            Correction2Sqrt: (float)Math.Sqrt(correction2),
            Epsilon: Epsilon,
            NegStepSize: (float)-(lr / correction1));
        for (int i = 0; i < Parameters.Count; i++)
        {
            var p = Parameters[i];
            Update(p.Value, p.Grad, _m[i], _v[i], k, applyDecay: !p.DecayExempt && WeightDecay != 0);
        }
        Steps++;
    }

    private readonly record struct Factors(float Decay, float Beta1, float OneMinusBeta1, float Beta2, float OneMinusBeta2,
        float Correction2Sqrt, float Epsilon, float NegStepSize);

    private static void Update(Span<float> value, ReadOnlySpan<float> grad, Span<float> m, Span<float> v, in Factors k, bool applyDecay)
    {
        int n = value.Length, i = 0;
        if (Vector.IsHardwareAccelerated && n >= Vector<float>.Count)
        {
            var decay = new Vector<float>(k.Decay);
            var b1 = new Vector<float>(k.Beta1);
            var c1 = new Vector<float>(k.OneMinusBeta1);
            var b2 = new Vector<float>(k.Beta2);
            var c2 = new Vector<float>(k.OneMinusBeta2);
            var sq = new Vector<float>(k.Correction2Sqrt);
            var eps = new Vector<float>(k.Epsilon);
            var step = new Vector<float>(k.NegStepSize);
            for (; i <= n - Vector<float>.Count; i += Vector<float>.Count)
            {
                var p = new Vector<float>(value[i..]);
                var g = new Vector<float>(grad[i..]);
                if (applyDecay) p *= decay;
                var mi = Vector.FusedMultiplyAdd(g, c1, b1 * new Vector<float>(m[i..]));
                var vi = Vector.FusedMultiplyAdd(c2 * g, g, b2 * new Vector<float>(v[i..]));
                mi.CopyTo(m[i..]);
                vi.CopyTo(v[i..]);
                var denom = Vector.SquareRoot(vi) / sq + eps;
                (p + step * mi / denom).CopyTo(value[i..]);
            }
        }
        for (; i < n; i++)
        {
            float p = value[i], g = grad[i];
            if (applyDecay) p *= k.Decay;
            float mi = m[i] = MathF.FusedMultiplyAdd(g, k.OneMinusBeta1, k.Beta1 * m[i]);
            float vi = v[i] = MathF.FusedMultiplyAdd(k.OneMinusBeta2 * g, g, k.Beta2 * v[i]);
            float denom = MathF.Sqrt(vi) / k.Correction2Sqrt + k.Epsilon;
            value[i] = p + k.NegStepSize * mi / denom;
        }
    }
}
