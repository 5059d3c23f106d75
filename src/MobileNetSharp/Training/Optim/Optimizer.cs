namespace MobileNetSharp.Training;

/// <summary>
/// Updates <see cref="Parameters"/> in place from their gradients. Every parameter is updated on every
/// <see cref="Step"/> (a parameter with a zero gradient still decays and still moves with its momentum, as
/// PyTorch does for a parameter whose .grad is a zero tensor). Not thread-safe: one trainer drives it.
/// </summary>
public abstract class Optimizer
{
    protected Optimizer(IReadOnlyList<Parameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (parameters.Count == 0) throw new ArgumentException("An optimizer needs at least one parameter.", nameof(parameters));
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < parameters.Count; i++)
        {
            var p = parameters[i] ?? throw new ArgumentException($"parameter {i} is null.", nameof(parameters));
            if (!names.Add(p.Name)) throw new ArgumentException($"Two parameters are named '{p.Name}'; names key the optimizer state.", nameof(parameters));
        }
        Parameters = parameters.ToArray();
    }

    public IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>The number of <see cref="Step"/> calls so far (or as restored by <see cref="LoadState"/>).</summary>
    public long Steps { get; protected set; }

    /// <summary>Applies each parameter's Grad to its Value; the gradients are left untouched.</summary>
    /// <param name="learningRate">Finite and ≥ 0 (usually from a <see cref="LearningRateSchedule"/>).</param>
    public abstract void Step(float learningRate);

    /// <summary>
    /// The per-parameter buffers, keyed "paramName/bufferName" (e.g. "conv1.weight/momentum"), for checkpoints.
    /// The arrays are the live buffers, not copies: serialize them before the next step.
    /// </summary>
    public abstract IReadOnlyDictionary<string, float[]> State { get; }

    /// <summary>
    /// Restores buffers saved from <see cref="State"/> and the step count: the same keys exactly, each with its
    /// parameter's length, else <see cref="ArgumentException"/> (and nothing is changed). Values are copied in.
    /// </summary>
    public abstract void LoadState(IReadOnlyDictionary<string, float[]> state, long steps);

    /// <summary>What <see cref="LoadState"/> does for an optimizer whose buffers are all in <see cref="State"/>.</summary>
    protected void LoadBuffers(IReadOnlyDictionary<string, float[]> state, long steps)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentOutOfRangeException.ThrowIfNegative(steps);
        var mine = State;
        foreach (var key in state.Keys)
            if (!mine.ContainsKey(key))
                throw new ArgumentException($"Optimizer state has an unknown entry '{key}' (expected {string.Join(", ", mine.Keys.Take(6))}{(mine.Count > 6 ? ", ..." : "")}).", nameof(state));
        foreach (var (key, buffer) in mine)
        {
            if (!state.TryGetValue(key, out var saved)) throw new ArgumentException($"Optimizer state lacks the entry '{key}'.", nameof(state));
            if (saved is null || saved.Length != buffer.Length)
                throw new ArgumentException($"Optimizer state entry '{key}' has {saved?.Length ?? 0} values; its parameter has {buffer.Length}.", nameof(state));
        }
        foreach (var (key, buffer) in mine) state[key].AsSpan().CopyTo(buffer);
        Steps = steps;
    }

    protected static void CheckLearningRate(float learningRate)
    {
        if (!(learningRate >= 0) || float.IsPositiveInfinity(learningRate))
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "The learning rate must be finite and ≥ 0.");
    }

    protected static void CheckNonNegative(float value, string name)
    {
        if (!(value >= 0) || float.IsPositiveInfinity(value)) throw new ArgumentOutOfRangeException(name, value, $"{name} must be finite and ≥ 0.");
    }

    protected static void CheckUnitInterval(float value, string name)
    {
        if (!(value >= 0 && value < 1)) throw new ArgumentOutOfRangeException(name, value, $"{name} must be in [0, 1).");
    }
}
