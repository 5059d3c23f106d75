// TEMPORARY: replaced by the real optimizers on merge of branch optim.
namespace MobileNetSharp.Training;

public abstract class Optimizer(IReadOnlyList<Parameter> parameters)
{
    public IReadOnlyList<Parameter> Parameters { get; } = parameters;
    public long Steps { get; protected set; }
    public abstract void Step(float learningRate);
    public abstract IReadOnlyDictionary<string, float[]> State { get; }
    public abstract void LoadState(IReadOnlyDictionary<string, float[]> state, long steps);
}

public sealed class Sgd(IReadOnlyList<Parameter> parameters, float momentum = 0.9f, bool nesterov = false, float weightDecay = 0) : Optimizer(parameters)
{
    private readonly Dictionary<string, float[]> _m = parameters.ToDictionary(p => p.Name + "/momentum", p => new float[p.Value.Length]);
    public override IReadOnlyDictionary<string, float[]> State => _m;
    public override void LoadState(IReadOnlyDictionary<string, float[]> state, long steps) { foreach (var (k, v) in state) v.CopyTo(_m[k], 0); Steps = steps; }
    public override void Step(float lr)
    {
        foreach (var p in Parameters)
        {
            var m = _m[p.Name + "/momentum"];
            float wd = p.DecayExempt ? 0 : weightDecay;
            for (int i = 0; i < m.Length; i++)
            {
                float g = p.Grad[i] + wd * p.Value[i];
                m[i] = Steps == 0 ? g : momentum * m[i] + g;
                p.Value[i] -= lr * (nesterov ? g + momentum * m[i] : m[i]);
            }
        }
        Steps++;
    }
}

public sealed class AdamW(IReadOnlyList<Parameter> parameters, float beta1 = 0.9f, float beta2 = 0.999f, float epsilon = 1e-8f, float weightDecay = 0.01f) : Optimizer(parameters)
{
    public override IReadOnlyDictionary<string, float[]> State => new Dictionary<string, float[]>();
    public override void LoadState(IReadOnlyDictionary<string, float[]> state, long steps) { }
    public override void Step(float lr) => throw new NotImplementedException();
}

public abstract record LearningRateSchedule { public abstract float At(long step); }
public sealed record CosineSchedule(float BaseRate, long TotalSteps, long WarmupSteps = 0, float MinRate = 0) : LearningRateSchedule
{
    public override float At(long step) => step < WarmupSteps ? BaseRate * (step + 1) / WarmupSteps
        : MinRate + (BaseRate - MinRate) * 0.5f * (1 + MathF.Cos(MathF.PI * Math.Min(1f, (step - WarmupSteps) / (float)Math.Max(1, TotalSteps - WarmupSteps))));
}
public sealed record StepSchedule(float BaseRate, long StepSize, float Gamma = 0.1f, long WarmupSteps = 0) : LearningRateSchedule
{
    public override float At(long step) => BaseRate * MathF.Pow(Gamma, step / StepSize);
}
public static class GradientClipping
{
    public static float ClipByGlobalNorm(IReadOnlyList<Parameter> parameters, float maxNorm)
    {
        double s = 0; foreach (var p in parameters) foreach (var g in p.Grad) s += g * g;
        float n = (float)Math.Sqrt(s);
        if (n > maxNorm) foreach (var p in parameters) System.Numerics.Tensors.TensorPrimitives.Multiply(p.Grad, maxNorm / (n + 1e-6f), p.Grad);
        return n;
    }
}
