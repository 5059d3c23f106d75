namespace MobileNetSharp.Training;

/// <summary>The learning rate for each optimizer step. Computed in double, returned as float.</summary>
public abstract record LearningRateSchedule
{
    /// <summary>The rate for 0-based optimizer step <paramref name="step"/> (≥ 0): pass it to the Step call that makes step number step + 1.</summary>
    public abstract float At(long step);

    /// <summary>Linear warm-up: step s &lt; warmup gives base·(s + 1)/warmup, so the first step is not at rate 0 and step warmup − 1 reaches base.</summary>
    private protected static double WarmupRate(double baseRate, long step, long warmup) => baseRate * (step + 1) / warmup;

    private protected static void CheckStep(long step)
    {
        if (step < 0) throw new ArgumentOutOfRangeException(nameof(step), step, "The step must be ≥ 0.");
    }

    private protected static void CheckRate(float rate, string name)
    {
        if (!(rate >= 0) || float.IsPositiveInfinity(rate)) throw new ArgumentOutOfRangeException(name, rate, $"{name} must be finite and ≥ 0.");
    }
}

/// <summary>
/// Linear warm-up then cosine decay (Loshchilov and Hutter's SGDR without restarts; Goyal et al.'s warm-up):
/// <list type="bullet">
/// <item>step &lt; WarmupSteps: BaseRate·(step + 1)/WarmupSteps;</item>
/// <item>WarmupSteps ≤ step &lt; TotalSteps: MinRate + (BaseRate − MinRate)·(1 + cos(π·(step − WarmupSteps)/(TotalSteps − WarmupSteps)))/2,
/// which is BaseRate at the end of the warm-up (as torch's CosineAnnealingLR with T_max = TotalSteps − WarmupSteps);</item>
/// <item>step ≥ TotalSteps: MinRate (clamped, for a trainer that runs past the plan).</item>
/// </list>
/// Requires TotalSteps ≥ 1, 0 ≤ WarmupSteps ≤ TotalSteps and 0 ≤ MinRate ≤ BaseRate; ArgumentException otherwise (at construction, and at At for a record made with `with`).
/// </summary>
public sealed record CosineSchedule(float BaseRate, long TotalSteps, long WarmupSteps = 0, float MinRate = 0) : LearningRateSchedule
{
    private readonly bool _checked = Check(BaseRate, TotalSteps, WarmupSteps, MinRate);

    private static bool Check(float baseRate, long totalSteps, long warmupSteps, float minRate)
    {
        CheckRate(baseRate, nameof(BaseRate));
        CheckRate(minRate, nameof(MinRate));
        if (minRate > baseRate) throw new ArgumentException($"{nameof(MinRate)} {minRate} exceeds {nameof(BaseRate)} {baseRate}.", nameof(MinRate));
        if (totalSteps < 1) throw new ArgumentOutOfRangeException(nameof(TotalSteps), totalSteps, "TotalSteps must be ≥ 1.");
        if (warmupSteps < 0 || warmupSteps > totalSteps)
            throw new ArgumentOutOfRangeException(nameof(WarmupSteps), warmupSteps, $"WarmupSteps must be in 0..TotalSteps ({totalSteps}).");
        return true;
    }

    public override float At(long step)
    {
        CheckStep(step);
        Check(BaseRate, TotalSteps, WarmupSteps, MinRate);
        if (step < WarmupSteps) return (float)WarmupRate(BaseRate, step, WarmupSteps);
        if (step >= TotalSteps) return MinRate;
        double t = (double)(step - WarmupSteps) / (TotalSteps - WarmupSteps);
        return (float)(MinRate + ((double)BaseRate - MinRate) * (1 + Math.Cos(Math.PI * t)) / 2);
    }
}

/// <summary>
/// Linear warm-up then step decay (torch's StepLR counted from the end of the warm-up):
/// step &lt; WarmupSteps gives BaseRate·(step + 1)/WarmupSteps; after it, BaseRate·Gamma^⌊(step − WarmupSteps)/StepSize⌋.
/// Requires BaseRate ≥ 0, StepSize ≥ 1, 0 &lt; Gamma ≤ 1 and WarmupSteps ≥ 0.
/// </summary>
public sealed record StepSchedule(float BaseRate, long StepSize, float Gamma = 0.1f, long WarmupSteps = 0) : LearningRateSchedule
{
    private readonly bool _checked = Check(BaseRate, StepSize, Gamma, WarmupSteps);

    private static bool Check(float baseRate, long stepSize, float gamma, long warmupSteps)
    {
        CheckRate(baseRate, nameof(BaseRate));
        if (stepSize < 1) throw new ArgumentOutOfRangeException(nameof(StepSize), stepSize, "StepSize must be ≥ 1.");
        if (!(gamma > 0 && gamma <= 1)) throw new ArgumentOutOfRangeException(nameof(Gamma), gamma, "Gamma must be in (0, 1].");
        if (warmupSteps < 0) throw new ArgumentOutOfRangeException(nameof(WarmupSteps), warmupSteps, "WarmupSteps must be ≥ 0.");
        return true;
    }

    public override float At(long step)
    {
        CheckStep(step);
        Check(BaseRate, StepSize, Gamma, WarmupSteps);
        if (step < WarmupSteps) return (float)WarmupRate(BaseRate, step, WarmupSteps);
        long decays = (step - WarmupSteps) / StepSize;
        return (float)(BaseRate * Math.Pow(Gamma, decays));
    }
}
