using System.Reflection;
using System.Runtime.CompilerServices;
using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Models;

namespace MobileNetSharp.Runtime;

/// <summary>
/// Compiles the SIMD kernels on a spare core while a model loads, so the first run does not wait for the JIT.
/// <para>
/// Why: the kernels are generic over the vector width and the fused activation and marked AggressiveOptimization,
/// so each instantiation is compiled fully optimized on its first call. For MobileNetV2 that is about 100 methods and
/// 90-120 ms of JIT inside the first run (the stem and the depthwise row kernels take 8-14 ms each), against a first
/// run of 4-18 ms for ONNX Runtime's precompiled kernels. ReadyToRun cannot precompile them (see README, Start-up).
/// </para>
/// <para>
/// How, in three parts sharing one background thread ("mnet-kernel-warmup"):
/// <list type="number">
/// <item>The plan's own kernels. As a plan is compiled, every step that has one hands over its
/// <see cref="KernelWarmer"/> (<see cref="Queue"/>): a miniature of the step (zero weights, a few pixels and channels)
/// that takes the same kernel path, ISA, activation and kernel shape. The thread runs them newest first, so while
/// the load goes on it keeps up with the compiler, and once the plan is done it works back from the last layer
/// while the first run works forward from the first: the two compile different kernels in parallel instead of one
/// waiting for the other (the runtime makes a second caller of a method being compiled wait for it). A kernel
/// key is warmed once per process. These go on after runs have begun: they are code this session's runs need.</item>
/// <item>Common kernels, before any plan exists. The first model load in the process (<see cref="ModelLoaders"/>,
/// the ONNX and TFLite importers, or a new <see cref="InferenceSession"/>) calls <see cref="Start"/>, which queues
/// groups most common first: the input transpose, the stem, 1x1 (GEMM and GEMV) and 3x3 depthwise kernels with ReLU6
/// and linear outputs (MobileNetV1/V2 and most imported MobileNets), then hard-swish, ReLU, hard-sigmoid and 5x5
/// (V3), then ReLU6 with 5x5 (EfficientNet-Lite), each by running a small convolution at the default ISA, with the
/// global average pool (every head) and the squeeze-excite product (V3) run through their steps' warmers; then tiny
/// V3-Small, V2 and Lite0 networks (width 0.25, 64x64) for the rest (pooling, squeeze-excite, element-wise ops, the
/// planner). These are a guess made before any plan exists: once a plan of the process's own (not one of the tiny
/// networks) has handed over its warmers, or a real run has begun, no further group is started; the group in hand
/// is finished (a tiny network stops at its next stage, and starts no further once a session of the process's own is
/// being built), then only plan warmers run.</item>
/// <item>The run loop. After the V1/V2 kernels, a group compiles the code every run goes through (the plan, its run
/// context, the workers, banded blocks, the session's Run, the convolution operators' run paths, the common steps'
/// Execute) with
/// <see cref="RuntimeHelpers.PrepareMethod(RuntimeMethodHandle, RuntimeTypeHandle[])"/>, and every finished plan queues
/// the same for whatever of it and of its own step types is not done yet (<see cref="QueueRunLoop"/>; a graph built in
/// code reaches its plan before that group). Tier-0 code, quick to compile, but without it the first run compiles it
/// method by method from its first step on.</item>
/// </list>
/// Skipped on a single core, where there is no spare core to use, and when <see cref="Enabled"/> is false.
/// </para>
/// </summary>
public static class KernelWarmup
{
    private static readonly Lock Gate = new();
    private static bool _started, _threadRunning;
    private static volatile bool _runStarted, _planQueued, _sessionStarted;
    [ThreadStatic] private static bool _onWarmupThread;
    private static int _nextGroup;
    private static Task _completion = Task.CompletedTask;
    private static readonly Stack<KernelWarmer> Pending = new();
    private static readonly HashSet<string> Seen = new(StringComparer.Ordinal);

    /// <summary>
    /// False makes later <see cref="Start"/> and <see cref="Queue"/> calls do nothing and a warm-up under way stop
    /// after the item in hand (for processes that must not run work they did not ask for, or that measure a cold first
    /// run). Initially false when the environment variable MNET_KERNEL_WARMUP is 0, false or off (any case).
    /// </summary>
    public static bool Enabled { get; set; } = !(Environment.GetEnvironmentVariable("MNET_KERNEL_WARMUP")?.Trim().ToLowerInvariant() is "0" or "false" or "off");

    /// <summary>
    /// The warm-up under way, or the last one (a completed task when none ever started). It runs on a background
    /// thread, so it never holds up process exit, and it faults only on OutOfMemoryException. A later load may start
    /// another, so wait for this again after loading a model.
    /// </summary>
    public static Task Completion { get { lock (Gate) return _completion; } }

    /// <summary>Whether <see cref="Queue"/> does anything (enabled, and a spare core), so callers can skip building warmers.</summary>
    internal static bool Active => Enabled && Environment.ProcessorCount > 1;

    /// <summary>The kernel keys queued or warmed so far in this process (for tests and diagnostics).</summary>
    internal static IReadOnlyCollection<string> WarmedKeys { get { lock (Gate) return Seen.ToArray(); } }

    /// <summary>Starts the common-kernel groups once per process (no-op afterwards, when disabled, or with one processor).</summary>
    public static void Start()
    {
        if (!Enabled || Environment.ProcessorCount < 2) return;
        lock (Gate)
        {
            if (_started) return;
            _started = true;
            EnsureThread();
        }
    }

    /// <summary>
    /// Hands a plan step's miniature to the warm-up thread (once per <see cref="KernelWarmer.Key"/> per process);
    /// a no-op when disabled or with one processor. Called by the plan compiler for each step it adds.
    /// </summary>
    internal static void Queue(KernelWarmer? warmer)
    {
        if (warmer is null || !Active) return;
        lock (Gate)
        {
            // A plan compiled by the warm-up itself (its tiny networks) is not one the process asked for.
            if (!_onWarmupThread) _planQueued = true;
            if (!Seen.Add(warmer.Key)) return;
            Pending.Push(warmer);
            EnsureThread();
        }
    }

    /// <summary>
    /// Hands the code that drives a run of a finished plan to the warm-up thread (<see cref="RunLoopTypesFor"/>, those not
    /// prepared yet). Pushed last, so compiled first (<see cref="Pending"/> is a stack): the first run needs it from its
    /// first step, the kernels layer by layer. It does not count as the plan's warmers for the common groups, and it
    /// has no key of its own: <see cref="PrepareTypes"/> skips what is done, per type.
    /// </summary>
    internal static void QueueRunLoop(IEnumerable<Step> steps)
    {
        if (!Active) return;
        var types = RunLoopTypesFor(steps);
        lock (Gate)
        {
            if (types.All(t => Seen.Contains(RunLoopKey(t)))) return;
            Pending.Push(new KernelWarmer("run-loop", () => PrepareTypes(types)));
            EnsureThread();
        }
    }

    /// <summary>The types whose code a run of a plan of <paramref name="steps"/> goes through: the run loop's
    /// (<see cref="RunLoopTypes"/>) and each step's.</summary>
    internal static Type[] RunLoopTypesFor(IEnumerable<Step> steps) => RunLoopTypes.Concat(steps.Select(s => s.GetType())).Distinct().ToArray();

    /// <summary>
    /// The types whose methods every run goes through, whatever its steps, and the steps of most MobileNets (a
    /// convolution, a banded inverted-residual block, global pooling, the classifier, the input's transpose).
    /// </summary>
    private static readonly Type[] RunLoopTypes =
    [
        typeof(ExecutionPlan), typeof(RunContext), typeof(Workers), typeof(Workers.BurstScope), typeof(InferenceSession), typeof(Kernels.Fused.BandedBlock),
        typeof(Conv2dOperator), typeof(Kernels.Depthwise.DepthwiseConvolution),
        typeof(ConvStep), typeof(BandedBlockStep), typeof(GlobalPoolStep), typeof(FullyConnectedStep), typeof(TransposeStep<int>), typeof(BinaryStep),
    ];

    private static string RunLoopKey(Type type) => "run-loop|" + type.FullName;

    /// <summary>Element types the run loop's generic methods are compiled for (RunContext.Read&lt;T&gt; and friends):
    /// float tensors, int for data movement (32-bit elements move as int), bytes for int8 models.</summary>
    private static readonly Type[] ElementTypes = [typeof(float), typeof(int), typeof(byte)];

    /// <summary>
    /// Compiles, with <see cref="RuntimeHelpers.PrepareMethod(RuntimeMethodHandle, RuntimeTypeHandle[])"/> and at the
    /// tier their first call would take, what a run calls of each of <paramref name="types"/>: for a step its
    /// <see cref="Step.Execute"/>, for the session its Run overloads and PlanFor, for the convolution operators their run
    /// paths (Run*, *Task, Pad*; the SIMD kernels under them are the kernel warmers' work), for the run loop's other types every
    /// method and constructor they declare (generic ones for <see cref="ElementTypes"/>). A type is marked done only once
    /// all of it is compiled, and skipped when done before. Without this the first run compiles that code on its own
    /// threads as it reaches it (the runtime's JIT events showed about 50 such methods in a MobileNetV2 first run).
    /// Measured with <c>mnet bench FILE --json</c> in fresh processes, 8-16 alternating pairs, this and the session rule
    /// of <see cref="NoteSession"/> against neither, median first run at 2 threads: MobileNetV2 21.1 -> 14.9 ms, V1 28.2
    /// -> 20.9, V3-Large 23.9 -> 18.5, V3-Small 18.4 -> 15.1, EfficientNet-Lite0 27.8 -> 20.0; MobileNetV2 at 1 thread
    /// 26.2 -> 20.0.
    /// </summary>
    /// <param name="always">Prepare even types done before, and whether or not the warm-up is enabled (tests: errors rethrown).</param>
    internal static void PrepareTypes(IEnumerable<Type> types, bool always = false)
    {
        const BindingFlags Declared = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        foreach (var type in types)
        {
            lock (Gate)
                if (Seen.Contains(RunLoopKey(type)) && !always) continue;
            var instantiation = type.IsGenericType ? type.GetGenericArguments().Select(t => t.TypeHandle).ToArray() : null;
            Func<string, bool>? only = typeof(Step).IsAssignableFrom(type) ? name => name == nameof(Step.Execute)
                : type == typeof(InferenceSession) ? name => name is nameof(InferenceSession.Run) or "PlanFor"
                // The convolution operators' run paths (Run*, their tasks, the depthwise padded copies), not their packing.
                : type == typeof(Conv2dOperator) || type == typeof(Kernels.Depthwise.DepthwiseConvolution)
                    ? name => name.StartsWith("Run", StringComparison.Ordinal) || name.EndsWith("Task", StringComparison.Ordinal) || name.StartsWith("Pad", StringComparison.Ordinal)
                : null;
            foreach (var method in type.GetMethods(Declared).Concat<MethodBase>(type.GetConstructors(Declared)))
            {
                if (!Enabled && !always) return; // not marked done: a later plan prepares it
                if (method.IsAbstract || (only is not null && !only(method.Name))) continue;
                if (!method.ContainsGenericParameters)
                    RuntimeHelpers.PrepareMethod(method.MethodHandle, instantiation);
                else if (method is MethodInfo { IsGenericMethodDefinition: true } generic && generic.GetGenericArguments().Length == 1 && !type.IsGenericTypeDefinition)
                    foreach (var element in ElementTypes)
                        if (TryInstantiate(generic, element) is { } closed) RuntimeHelpers.PrepareMethod(closed.MethodHandle, instantiation);
            }
            lock (Gate) Seen.Add(RunLoopKey(type));
        }
    }

    /// <summary><paramref name="method"/>&lt;<paramref name="element"/>&gt;, or null where its constraints refuse that type.</summary>
    private static MethodInfo? TryInstantiate(MethodInfo method, Type element)
    {
        try { return method.MakeGenericMethod(element); }
        catch (ArgumentException) { return null; }
    }

    /// <summary>Under <see cref="Gate"/>: starts the thread unless it is running (it exits when it runs out of work).
    /// A thread that cannot be started leaves the warm-up as it was: it is best effort, never a reason for a load to fail.</summary>
    private static void EnsureThread()
    {
        if (_threadRunning) return;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        try { new Thread(() => Drain(done)) { IsBackground = true, Name = "mnet-kernel-warmup" }.Start(); }
        catch (Exception e) when (e is OutOfMemoryException or ThreadStartException) { return; }
        _threadRunning = true; // the new thread waits for Gate before it reads this
        _completion = done.Task;
    }

    private static void Drain(TaskCompletionSource done)
    {
        _onWarmupThread = true;
        try
        {
            while (true)
            {
                Action next;
                lock (Gate)
                {
                    if (!Enabled)
                        while (Pending.TryPop(out var dropped)) Seen.Remove(dropped.Key); // warmed if enabled again
                    if (Pending.TryPop(out var warmer)) next = warmer.Run;
                    else if (!_runStarted && !_planQueued && Enabled && _nextGroup < Groups.Length) next = Groups[_nextGroup++];
                    else
                    {
                        _threadRunning = false;
                        break;
                    }
                }
                // Best effort by design: the warm-up only exists to trigger compilation. A failure here (none is known;
                // KernelWarmupTests runs every group and warmer with errors rethrown) must not surface in an unrelated caller.
                try { next(); }
                catch (Exception e) when (e is not OutOfMemoryException) { }
            }
            done.SetResult();
        }
        catch (Exception e) // only OutOfMemoryException gets here
        {
            lock (Gate) _threadRunning = false;
            done.SetException(e);
        }
    }

    /// <summary>
    /// A session of the process's own is being built (not one of the warm-up's tiny networks): no tiny network starts
    /// or goes on to its next stage after this, so the warm-up thread is free when the session's plan hands over its
    /// warmers instead of building a tiny network's plan the real one does not need. (A graph built in code reaches the
    /// session first, so its load never runs the tiny networks: its own plan follows within milliseconds.)
    /// </summary>
    internal static void NoteSession()
    {
        if (!_onWarmupThread && !_sessionStarted) _sessionStarted = true;
    }

    /// <summary>
    /// A real run has begun. The group being warmed up is finished (it is ahead of that run in the same kernels, so the
    /// two threads compile in parallel), but no further group is started: it would only take a core from the runs.
    /// Plan warmers go on.
    /// </summary>
    internal static void NoteRun()
    {
        if (!_runStarted) _runStarted = true; // read first: concurrent runs then share the line instead of bouncing it
    }

    // First the kernels themselves, straight through small convolutions (no graph, optimizer or planner to get
    // through first), one kernel per item so a plan's warmers never wait long behind them, most common first: what
    // MobileNetV1/V2 and most imported MobileNets use, then V3's and EfficientNet-Lite's. Then tiny whole networks
    // for the rest (pooling, squeeze-excite, element-wise ops) and the load path's own code, which the caller's
    // thread needs too.
    private static readonly Action[] Groups = GroupList(stopWhenARunStarts: true);

    private static Action[] GroupList(bool stopWhenARunStarts)
    {
        var relu6 = Activation.Relu6;
        var hardSwish = Activation.HardSwish;
        var items = new List<Action>
        {
            // An image input's NCHW -> NHWC (data-movement steps move 32-bit elements as int).
            () => Layout.Transpose<int>(new int[3 * 16 * 16], [1, 3, 16, 16], [0, 2, 3, 1], new int[3 * 16 * 16]),
        };
        void Conv(Conv2dGeometry g, Activation act) => items.Add(() => WarmConv(g, act, always: !stopWhenARunStarts));
        // MobileNetV1/V2: ReLU6 (ReLU runs the same kernels, Activation.ForKernels) and linear projections.
        Conv(Stem, relu6);
        foreach (var act in (Activation[])[relu6, Activation.None])
        {
            Conv(Pointwise, act);
            Conv(Gemv, act);
        }
        Conv(Depthwise(3, 1), relu6);
        Conv(Depthwise(3, 2), relu6);
        // Every MobileNet's head pools (and V3's squeeze-excite blocks): about 5 ms of JIT a first run otherwise waits for.
        items.Add(() => WarmKeyed(GlobalPoolStep.WarmerFor(PoolKind.Average, 9, 24), always: !stopWhenARunStarts));
        // The run loop and the common steps: tier-0 code, quick to compile, but a first run needs it from its first step.
        items.Add(() => PrepareTypes(RunLoopTypes, always: !stopWhenARunStarts));
        // MobileNetV3: hard-swish, 5x5, the squeeze-excite gate; EfficientNet-Lite: ReLU6 5x5.
        Conv(Stem, hardSwish);
        Conv(Pointwise, hardSwish);
        Conv(Gemv, hardSwish);
        foreach (int k in (int[])[3, 5])
            foreach (int stride in (int[])[1, 2])
                Conv(Depthwise(k, stride), hardSwish);
        Conv(Depthwise(5, 1), relu6);
        Conv(Depthwise(5, 2), relu6);
        Conv(Gemv, Activation.HardSigmoid(1f / 6f, 0.5f));
        // The squeeze-excite gate's channel-wise product (NHWC: [1, H, W, C] x [1, 1, 1, C]).
        items.Add(() => WarmKeyed(BinaryStep.WarmerFor(BinaryKind.Mul, Activation.None, [1, 7, 7, 24], [1, 1, 1, 24]), always: !stopWhenARunStarts));
        // V3-Small's tiny network first: it reaches more kernels (global pooling and the squeeze-excite gate's product,
        // hard-swish, the classifier, residual adds) than V2's, whose convolutions the groups above already cover.
        items.Add(() => Network("mobilenet_v3_small", stopWhenARunStarts));
        items.Add(() => Network("mobilenet_v2", stopWhenARunStarts));
        items.Add(() => Network("efficientnet_lite0", stopWhenARunStarts));
        return items.ToArray();
    }

    private static Conv2dGeometry Stem => new(1, 16, 16, 3, 16, 3, 3, 2, 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1);
    // Three vector widths of outputs: a full two-vector GEMM panel and a one-vector tail (Tile2 and Tile1).
    private static Conv2dGeometry Pointwise => new(1, 8, 8, 16, Math.Max(24, 3 * Isa.Width(Isa.Best)), 1, 1);
    private static Conv2dGeometry Gemv => new(1, 1, 1, 16, 24, 1, 1);

    private static Conv2dGeometry Depthwise(int k, int stride) =>
        new(1, 16, 16, 24, 24, k, k, stride, stride, PadTop: k / 2, PadLeft: k / 2, PadBottom: k / 2, PadRight: k / 2, Groups: 24);

    /// <summary>One common convolution's kernels, through the same miniature and key as a plan step's, so a kernel a
    /// plan has already warmed is skipped here and the other way round (unless <paramref name="always"/>, for tests).</summary>
    private static void WarmConv(Conv2dGeometry g, Activation act, bool always)
    {
        var (key, run) = new Conv2dOperator(g, new float[g.WeightLength], new float[g.OutC], act).Miniature(1, residual: false);
        lock (Gate)
            if (!Seen.Add(key) && !always) return;
        run();
    }

    /// <summary>A step's warmer run as a common group, under its own key, so the plan's copy of it is skipped and the
    /// other way round (unless <paramref name="always"/>, for tests).</summary>
    private static void WarmKeyed(KernelWarmer warmer, bool always)
    {
        lock (Gate)
            if (!Seen.Add(warmer.Key) && !always) return;
        warmer.Run();
    }

    /// <summary>Every common-kernel group, on the caller's thread, errors rethrown (tests: no group may be silently broken).</summary>
    internal static void RunGroups()
    {
        foreach (var group in GroupList(stopWhenARunStarts: false)) group();
    }

    /// <param name="stopWhenARunStarts">Also stops once a session of the process's own is being built, and is checked
    /// again before the session is built and before it runs: unlike a kernel group, a network spends most of its time in
    /// code a real run no longer needs, and it would hold up the plan's own warmers behind it.</param>
    private static void Network(string name, bool stopWhenARunStarts)
    {
        bool Stop() => stopWhenARunStarts && (_runStarted || _planQueued || _sessionStarted);
        if (Stop()) return;
        var graph = ModelZoo.Create(name, new ModelOptions(0.25f, 64, 10));
        if (Stop()) return;
        using var session = new InferenceSession(graph, new SessionOptions { Threads = 1 });
        if (Stop()) return;
        session.WarmUp();
    }
}

/// <summary>
/// A plan step's kernels at a miniature size, for <see cref="KernelWarmup"/>: <see cref="Run"/> runs them once on the
/// calling thread (zero weights, a few pixels and channels, the same kernel path, ISA, activation and kernel shape as
/// the step), so the JIT compiles the code the step's real runs take. Steps whose <see cref="Key"/>s are equal run
/// the same compiled code, so one of them is enough.
/// </summary>
internal sealed record KernelWarmer(string Key, Action Run);
