using System.Runtime.CompilerServices;
using System.Text.Json;
using MobileNetSharp.Training;

namespace MobileNetSharp.Tests.Training;

/// <summary>
/// SGD, AdamW, the schedules and gradient clipping against PyTorch 1.13's own numbers
/// (Fixtures/optimizers.json, written by tools/training/gen_optimizer_fixtures.py), state round trips and argument checks.
/// </summary>
public sealed class OptimizerTests
{
    private static string Here([CallerFilePath] string source = "") => Path.GetDirectoryName(source)!;

    private static readonly Lazy<JsonElement> Fixture = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(Here(), "Fixtures", "optimizers.json"))).RootElement);

    private static float[] Floats(JsonElement e) => e.EnumerateArray().Select(v => (float)v.GetDouble()).ToArray();
    private static int[] Ints(JsonElement e) => e.EnumerateArray().Select(v => v.GetInt32()).ToArray();

    /// <summary>1e-6 relative.</summary>
    private static void AssertClose(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double tol = 1e-6 * Math.Abs(expected[i]);
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tol, $"{what}[{i}]: expected {expected[i]:R}, got {actual[i]:R}");
        }
    }

    private static List<Parameter> Params(JsonElement c) =>
        c.GetProperty("params").EnumerateArray()
            .Select(p => new Parameter(p.GetProperty("name").GetString()!, Floats(p.GetProperty("value")), Ints(p.GetProperty("shape"))))
            .ToList();

    private static void SetGrads(List<Parameter> ps, JsonElement c, int step)
    {
        var g = c.GetProperty("grads")[step];
        foreach (var p in ps) Floats(g.GetProperty(p.Name)).CopyTo(p.Grad, 0);
    }

    private static void RunAgainstFixture(JsonElement c, Func<List<Parameter>, Optimizer> make)
    {
        var ps = Params(c);
        Assert.Equal([false, false, true, true], ps.Select(p => p.DecayExempt)); // the fixture puts 1-D params in a no-decay group
        var opt = make(ps);
        var lrs = Floats(c.GetProperty("lrs"));
        for (int s = 0; s < lrs.Length; s++)
        {
            SetGrads(ps, c, s);
            var before = ps.Select(p => (float[])p.Grad.Clone()).ToList();
            opt.Step(lrs[s]);
            Assert.Equal(s + 1, opt.Steps);
            for (int k = 0; k < ps.Count; k++) Assert.Equal(before[k], ps[k].Grad); // gradients untouched
            var after = c.GetProperty("after")[s];
            foreach (var p in ps) AssertClose(Floats(after.GetProperty(p.Name)), p.Value, $"step {s + 1} {p.Name}");
        }
        var state = c.GetProperty("state");
        Assert.Equal(state.EnumerateObject().Select(e => e.Name).Order(), opt.State.Keys.Order());
        foreach (var e in state.EnumerateObject()) AssertClose(Floats(e.Value), opt.State[e.Name], e.Name);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void SgdMatchesPyTorch(int index)
    {
        var c = Fixture.Value.GetProperty("sgd")[index];
        RunAgainstFixture(c, ps => new Sgd(ps, (float)c.GetProperty("momentum").GetDouble(), c.GetProperty("nesterov").GetBoolean(),
            (float)c.GetProperty("weight_decay").GetDouble()));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void AdamWMatchesPyTorch(int index)
    {
        var c = Fixture.Value.GetProperty("adamw")[index];
        float F(string name) => (float)c.GetProperty(name).GetDouble();
        RunAgainstFixture(c, ps => new AdamW(ps, F("beta1"), F("beta2"), F("epsilon"), F("weight_decay")));
    }

    [Fact]
    public void SchedulesMatchTheFixture()
    {
        foreach (var c in Fixture.Value.GetProperty("schedules").EnumerateArray())
        {
            float baseRate = (float)c.GetProperty("base").GetDouble();
            int warmup = c.GetProperty("warmup").GetInt32();
            LearningRateSchedule s = c.GetProperty("kind").GetString() == "cosine"
                ? new CosineSchedule(baseRate, c.GetProperty("total").GetInt32(), warmup, (float)c.GetProperty("min").GetDouble())
                : new StepSchedule(baseRate, c.GetProperty("step_size").GetInt32(), (float)c.GetProperty("gamma").GetDouble(), warmup);
            var steps = Ints(c.GetProperty("steps"));
            AssertClose(Floats(c.GetProperty("rates")), steps.Select(t => s.At(t)).ToArray(), s.ToString());
        }
    }

    [Fact]
    public void ScheduleShapes()
    {
        var cos = new CosineSchedule(0.4f, TotalSteps: 100, WarmupSteps: 10, MinRate: 0.01f);
        Assert.Equal(0.04f, cos.At(0), 1e-7f);
        Assert.Equal(0.4f, cos.At(9));
        Assert.Equal(0.4f, cos.At(10));
        Assert.Equal(0.205f, cos.At(55), 1e-6f);       // half-way through the cosine part: the mean of base and min
        Assert.Equal(0.01f, cos.At(100));
        Assert.Equal(0.01f, cos.At(1_000_000));
        for (int t = 10; t < 100; t++) Assert.True(cos.At(t + 1) <= cos.At(t));
        var step = new StepSchedule(1f, StepSize: 10, Gamma: 0.5f, WarmupSteps: 4);
        Assert.Equal([0.25f, 0.5f, 0.75f, 1f, 1f], Enumerable.Range(0, 5).Select(t => step.At(t)));
        Assert.Equal(1f, step.At(13));
        Assert.Equal(0.5f, step.At(14));
        Assert.Equal(0.25f, step.At(24));
    }

    [Fact]
    public void ClippingMatchesPyTorch()
    {
        foreach (var c in Fixture.Value.GetProperty("clipping").EnumerateArray())
        {
            var shapes = c.GetProperty("shapes").EnumerateArray().Select(Ints).ToList();
            var grads = c.GetProperty("grads").EnumerateArray().Select(Floats).ToList();
            var ps = shapes.Select((s, i) => new Parameter($"p{i}", new float[grads[i].Length], s)).ToList();
            for (int i = 0; i < ps.Count; i++) grads[i].CopyTo(ps[i].Grad, 0);
            float norm = GradientClipping.ClipByGlobalNorm(ps, (float)c.GetProperty("max_norm").GetDouble());
            AssertClose([(float)c.GetProperty("norm").GetDouble()], [norm], "norm");
            var clipped = c.GetProperty("clipped").EnumerateArray().Select(Floats).ToList();
            for (int i = 0; i < ps.Count; i++) AssertClose(clipped[i], ps[i].Grad, $"max_norm {c.GetProperty("max_norm")} grad {i}");
        }
    }

    [Fact]
    public void ClippingLeavesNonFiniteGradientsAlone()
    {
        var p = new Parameter("w", new float[3], [3]);
        p.Grad[0] = float.NaN; p.Grad[1] = 5;
        Assert.True(float.IsNaN(GradientClipping.ClipByGlobalNorm([p], 1f)));
        Assert.Equal(5f, p.Grad[1]);
        var big = new Parameter("w", new float[2], [2]);
        big.Grad[0] = 2e38f; big.Grad[1] = 2e38f; // the sum of squares overflows float but not double
        Assert.Equal(2.828427e38f, GradientClipping.ClipByGlobalNorm([big], 1f), 1e32f);
        Assert.Equal(0.70710677f, big.Grad[0], 1e-6f);
    }

    /// <summary>Random parameters of an awkward size (vector body and tail) over several steps.</summary>
    private static List<Parameter> RandomParams(int seed)
    {
        var rng = new Random(seed);
        float[] R(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        return [new Parameter("conv", R(3 * 5 * 7), [3, 5, 7]), new Parameter("bias", R(37), [37])];
    }

    private static void SetRandomGrads(List<Parameter> ps, int step)
    {
        var rng = new Random(1000 + step);
        foreach (var p in ps)
            for (int i = 0; i < p.Grad.Length; i++) p.Grad[i] = (float)(rng.NextDouble() - 0.5);
    }

    public static TheoryData<string> OptimizerKinds() => new(["sgd", "nesterov", "adamw"]);

    private static Optimizer Make(string kind, List<Parameter> ps) => kind switch
    {
        "sgd" => new Sgd(ps, 0.9f, weightDecay: 1e-3f),
        "nesterov" => new Sgd(ps, 0.8f, nesterov: true, weightDecay: 5e-4f),
        _ => new AdamW(ps, weightDecay: 0.05f),
    };

    [Theory]
    [MemberData(nameof(OptimizerKinds))]
    public void ContinuingAfterLoadStateIsIdenticalToNotStopping(string kind)
    {
        var schedule = new CosineSchedule(0.1f, 10, WarmupSteps: 2);
        var straight = RandomParams(7);
        var a = Make(kind, straight);
        for (int s = 0; s < 10; s++) { SetRandomGrads(straight, s); a.Step(schedule.At(a.Steps)); }

        var first = RandomParams(7);
        var b = Make(kind, first);
        for (int s = 0; s < 4; s++) { SetRandomGrads(first, s); b.Step(schedule.At(b.Steps)); }
        // A checkpoint: copies of the values and the state, then a fresh model and optimizer.
        var values = first.Select(p => (float[])p.Value.Clone()).ToList();
        var state = b.State.ToDictionary(e => e.Key, e => (float[])e.Value.Clone());
        long steps = b.Steps;

        var resumed = RandomParams(99);
        for (int i = 0; i < resumed.Count; i++) values[i].CopyTo(resumed[i].Value, 0);
        var c = Make(kind, resumed);
        c.LoadState(state, steps);
        Assert.Equal(4, c.Steps);
        for (int s = 4; s < 10; s++) { SetRandomGrads(resumed, s); c.Step(schedule.At(c.Steps)); }
        for (int i = 0; i < straight.Count; i++) Assert.Equal(straight[i].Value, resumed[i].Value);
        foreach (var key in a.State.Keys) Assert.Equal(a.State[key], c.State[key]);
    }

    [Fact]
    public void LoadStateValidatesNamesAndLengths()
    {
        var ps = RandomParams(1);
        var opt = new AdamW(ps);
        SetRandomGrads(ps, 0);
        opt.Step(0.01f);
        var good = opt.State.ToDictionary(e => e.Key, e => (float[])e.Value.Clone());
        Assert.Equal(["bias/exp_avg", "bias/exp_avg_sq", "conv/exp_avg", "conv/exp_avg_sq"], good.Keys.Order());
        var snapshot = opt.State.ToDictionary(e => e.Key, e => (float[])e.Value.Clone());

        var unknown = new Dictionary<string, float[]>(good) { ["conv/momentum"] = new float[105] };
        Assert.Contains("conv/momentum", Assert.Throws<ArgumentException>(() => opt.LoadState(unknown, 1)).Message);
        var missing = new Dictionary<string, float[]>(good);
        missing.Remove("bias/exp_avg_sq");
        Assert.Contains("bias/exp_avg_sq", Assert.Throws<ArgumentException>(() => opt.LoadState(missing, 1)).Message);
        var shortOne = new Dictionary<string, float[]>(good) { ["conv/exp_avg"] = new float[104] };
        Assert.Contains("104", Assert.Throws<ArgumentException>(() => opt.LoadState(shortOne, 1)).Message);
        Assert.ThrowsAny<ArgumentException>(() => opt.LoadState(good, -1));
        // A refused load changes nothing.
        Assert.Equal(1, opt.Steps);
        foreach (var (k, v) in snapshot) Assert.Equal(v, opt.State[k]);

        // SGD without momentum has no state; with momentum one buffer per parameter.
        Assert.Empty(new Sgd(ps, momentum: 0).State);
        Assert.Equal(["bias/momentum", "conv/momentum"], new Sgd(ps).State.Keys.Order());
        Assert.Throws<ArgumentException>(() => new Sgd(ps, momentum: 0).LoadState(good, 1));
    }

    [Fact]
    public void DecayExemptDefaultsToOneDimensional()
    {
        Assert.True(new Parameter("b", new float[4], [4]).DecayExempt);
        Assert.True(new Parameter("s", new float[1], []).DecayExempt);
        Assert.False(new Parameter("w", new float[6], [2, 3]).DecayExempt);
        var forced = new Parameter("w", new float[6], [2, 3]) { DecayExempt = true };
        Assert.True(forced.DecayExempt);
        Assert.Equal(6, forced.Grad.Length);
        var shared = new float[6];
        forced.Grad = shared; // a buffer the backward pass owns
        Assert.Same(shared, forced.Grad);
        Assert.Equal("Grad", Assert.Throws<ArgumentException>(() => forced.Grad = new float[5]).ParamName);
        Assert.Equal("Value", Assert.Throws<ArgumentException>(() => forced.Value = new float[7]).ParamName);

        // An exempt parameter with a zero gradient does not move; a decaying one shrinks.
        var w = new Parameter("w", [1f, -2f], [1, 2]);
        var b = new Parameter("b", [1f, -2f], [2]);
        new Sgd([w, b], momentum: 0, weightDecay: 0.5f).Step(0.1f);
        Assert.Equal([0.95f, -1.9f], w.Value);
        Assert.Equal([1f, -2f], b.Value);
        var w2 = new Parameter("w", [1f, -2f], [1, 2]);
        var b2 = new Parameter("b", [1f, -2f], [2]);
        new AdamW([w2, b2], weightDecay: 0.5f).Step(0.1f);
        Assert.Equal([0.95f, -1.9f], w2.Value); // zero gradient: m = v = 0, so only the decay moves it
        Assert.Equal([1f, -2f], b2.Value);
    }

    [Fact]
    public void BadArgumentsAreRefusedWithTheirNames()
    {
        var ps = RandomParams(3);
        void Bad(string name, Action a) => Assert.Equal(name, Assert.ThrowsAny<ArgumentException>(a).ParamName);

        Bad("momentum", () => new Sgd(ps, momentum: -0.1f));
        Bad("momentum", () => new Sgd(ps, momentum: 1f));
        Bad("momentum", () => new Sgd(ps, momentum: float.NaN));
        Bad("nesterov", () => new Sgd(ps, momentum: 0, nesterov: true));
        Bad("weightDecay", () => new Sgd(ps, weightDecay: -1e-4f));
        Bad("weightDecay", () => new Sgd(ps, weightDecay: float.PositiveInfinity));
        Bad("beta1", () => new AdamW(ps, beta1: 1f));
        Bad("beta2", () => new AdamW(ps, beta2: -0.5f));
        Bad("epsilon", () => new AdamW(ps, epsilon: -1e-8f));
        Bad("weightDecay", () => new AdamW(ps, weightDecay: float.NaN));
        Bad("parameters", () => new Sgd([]));
        Bad("parameters", () => new AdamW([ps[0], new Parameter("conv", new float[2], [2])]));
        foreach (var opt in new Optimizer[] { new Sgd(ps), new AdamW(ps) })
        {
            Bad("learningRate", () => opt.Step(-0.1f));
            Bad("learningRate", () => opt.Step(float.NaN));
            Bad("learningRate", () => opt.Step(float.PositiveInfinity));
            Assert.Equal(0, opt.Steps);
        }
        new Sgd(ps).Step(0f); // a zero rate is allowed (the first warm-up step of some schedules)

        Bad("value", () => new Parameter("w", new float[5], [2, 3]));
        Bad("name", () => new Parameter("", new float[1], [1]));

        Bad("BaseRate", () => new CosineSchedule(-0.1f, 10));
        Bad("TotalSteps", () => new CosineSchedule(0.1f, 0));
        Bad("WarmupSteps", () => new CosineSchedule(0.1f, 10, WarmupSteps: 11));
        Bad("MinRate", () => new CosineSchedule(0.1f, 10, MinRate: 0.2f));
        Bad("step", () => new CosineSchedule(0.1f, 10).At(-1));
        Bad("TotalSteps", () => (new CosineSchedule(0.1f, 10) with { TotalSteps = -5 }).At(0));
        Bad("StepSize", () => new StepSchedule(0.1f, 0));
        Bad("Gamma", () => new StepSchedule(0.1f, 5, Gamma: 0));
        Bad("Gamma", () => new StepSchedule(0.1f, 5, Gamma: 1.5f));
        Bad("WarmupSteps", () => new StepSchedule(0.1f, 5, WarmupSteps: -1));
        Bad("maxNorm", () => GradientClipping.ClipByGlobalNorm(ps, 0));
        Bad("maxNorm", () => GradientClipping.ClipByGlobalNorm(ps, float.NaN));
    }

    /// <summary>The vector body and the scalar tail compute the same thing: a parameter of 1,000,003 values against one of 3.</summary>
    [Theory]
    [MemberData(nameof(OptimizerKinds))]
    public void LargeParametersMatchElementwise(string kind)
    {
        const int n = 1_000_003;
        var rng = new Random(4);
        var big = new Parameter("big", Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray(), [n, 1]);
        for (int i = 0; i < n; i++) big.Grad[i] = (float)(rng.NextDouble() - 0.5);
        int[] probes = [0, 7, 8, 123_457, n - 3, n - 2, n - 1];
        var small = probes.Select(i => { var p = new Parameter($"p{i}", [big.Value[i]], [1, 1]); p.Grad[0] = big.Grad[i]; return p; }).ToList();
        var a = Make(kind, [big]);
        var others = small.Select(p => Make(kind, [p])).ToList();
        for (int s = 0; s < 3; s++)
        {
            a.Step(0.05f);
            foreach (var o in others) o.Step(0.05f);
        }
        for (int k = 0; k < probes.Length; k++) Assert.Equal(small[k].Value[0], big.Value[probes[k]]);
    }
}
