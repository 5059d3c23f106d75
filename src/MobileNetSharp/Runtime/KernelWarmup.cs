using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Models;

namespace MobileNetSharp.Runtime;

/// <summary>
/// Compiles the SIMD kernels on a spare core while a model loads, so the first run does not wait for the JIT.
/// <para>
/// Why: the kernels are generic over the vector width and the fused activation and marked AggressiveOptimization,
/// so each instantiation is compiled fully optimized on its first call. For MobileNetV2 that is about 100 methods and
/// 90-120 ms of JIT inside the first run (the stem and the depthwise row kernels take 10-28 ms each), against a first
/// run of 4-18 ms for ONNX Runtime's precompiled kernels. ReadyToRun cannot precompile them (see README, Start-up).
/// </para>
/// <para>
/// How: the first model load in the process (<see cref="ModelLoaders"/>, the ONNX and TFLite importers, or a new
/// <see cref="InferenceSession"/>) calls <see cref="Start"/>, which compiles on a background thread, most common first:
/// the input transpose, the stem, 1x1 (GEMM and GEMV) and 3x3 depthwise kernels with ReLU6 and linear outputs
/// (MobileNetV1/V2 and most imported MobileNets), then hard-swish, ReLU, hard-sigmoid and 5x5 (V3), then ReLU6 with
/// 5x5 (EfficientNet-Lite), each by running a small convolution at the default ISA; then tiny V2, V3-Small and
/// Lite0 networks (width 0.25, 64x64) for the rest (pooling, squeeze-excite, element-wise ops, the planner). The load
/// itself goes on unhindered on the calling thread; a method both threads need is compiled once (the runtime makes
/// the later caller wait for it). Once a real run has begun, the warm-up finishes the kernel group in hand (still
/// ahead of that run, so the two compile in parallel), leaves a tiny network at its next stage, and starts no other.
/// Once per process; skipped on a single core, where there is no spare core to use, and when <see cref="Enabled"/> is
/// false.
/// </para>
/// </summary>
public static class KernelWarmup
{
    private static readonly Lock Gate = new();
    private static bool _started;
    private static volatile bool _runStarted;
    private static Task _completion = Task.CompletedTask;

    /// <summary>
    /// False makes later <see cref="Start"/> calls do nothing and a warm-up under way stop after the group in hand (for
    /// processes that must not run work they did not ask for, or that measure a cold first run). Initially false when
    /// the environment variable MNET_KERNEL_WARMUP is 0, false or off (any case).
    /// </summary>
    public static bool Enabled { get; set; } = !(Environment.GetEnvironmentVariable("MNET_KERNEL_WARMUP")?.Trim().ToLowerInvariant() is "0" or "false" or "off");

    /// <summary>
    /// The background warm-up (a completed task when it never started). It runs on a background thread named
    /// "mnet-kernel-warmup", so it never holds up process exit, and it faults only on OutOfMemoryException.
    /// </summary>
    public static Task Completion { get { lock (Gate) return _completion; } }

    /// <summary>Starts the warm-up once per process (no-op afterwards, when disabled, or with one processor).</summary>
    public static void Start()
    {
        if (!Enabled || Environment.ProcessorCount < 2) return;
        // Under the lock, so a caller that finds it started also finds its task (not the placeholder).
        lock (Gate)
        {
            if (_started) return;
            _started = true;
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var thread = new Thread(() =>
            {
                try { Run(); done.SetResult(); }
                catch (Exception e) { done.SetException(e); } // only OutOfMemoryException gets here
            }) { IsBackground = true, Name = "mnet-kernel-warmup" };
            thread.Start();
            _completion = done.Task;
        }
    }

    /// <summary>
    /// A real run has begun. The group being warmed up is finished (it is ahead of that run in the same kernels, so the
    /// two threads compile in parallel), but no further one is started: it would only take a core from the runs.
    /// </summary>
    internal static void NoteRun()
    {
        if (!_runStarted) _runStarted = true; // read first: concurrent runs then share the line instead of bouncing it
    }

    private static void Run() => RunGroups(stopWhenARunStarts: true, rethrow: false);

    /// <summary>The warm-up's work, in order; tests call it with <paramref name="rethrow"/> so a broken group cannot hide.</summary>
    internal static void RunGroups(bool stopWhenARunStarts, bool rethrow)
    {
        // First the kernels themselves, straight through small convolutions (no graph, optimizer or planner to get
        // through first), most common first: what MobileNetV1/V2 and most imported MobileNets use, then V3's, then
        // EfficientNet-Lite's. Then tiny whole networks for the rest (pooling, squeeze-excite, element-wise ops) and
        // the load path's own code, which the caller's thread needs too.
        Action[] groups =
        [
            () => Kernels(Activation.Relu6, [3], Activation.None),
            () => Kernels(Activation.HardSwish, [3, 5], Activation.Relu),
            () => Kernels(Activation.Relu, [5], Activation.HardSigmoid(1f / 6f, 0.5f)),
            () => Kernels(Activation.Relu6, [5], null),
            () => Network("mobilenet_v2", stopWhenARunStarts),
            () => Network("mobilenet_v3_small", stopWhenARunStarts),
            () => Network("efficientnet_lite0", stopWhenARunStarts),
        ];
        foreach (var group in groups)
        {
            if (stopWhenARunStarts && (_runStarted || !Enabled)) return;
            // Best effort by design: the warm-up only exists to trigger compilation. A failure here (none is known;
            // KernelWarmupTests runs every group with rethrow) must not surface in an unrelated caller.
            try { group(); }
            catch (Exception e) when (!rethrow && e is not OutOfMemoryException) { }
        }
    }

    /// <summary>
    /// Runs, with activation <paramref name="act"/>: the 3x3 stride-2 stem, 1x1 convolutions (full and narrow panels,
    /// and the few-row GEMV), and depthwise convolutions of the given kernel sizes at strides 1 and 2; and the 1x1
    /// paths again with <paramref name="act2"/> (projections and classifiers are often linear).
    /// </summary>
    private static void Kernels(Activation act, int[] depthwiseSizes, Activation? act2)
    {
        var x = new float[16 * 16 * 24];
        var y = new float[16 * 16 * 24];
        // An image input's NCHW -> NHWC (data-movement steps move 32-bit elements as int), then the stem.
        Layout.Transpose<int>(new int[3 * 16 * 16], [1, 3, 16, 16], [0, 2, 3, 1], new int[3 * 16 * 16]);
        Conv(new Conv2dGeometry(1, 16, 16, 3, 16, 3, 3, 2, 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1), act);
        foreach (var a in act2 is { } second ? [act, second] : new[] { act })
        {
            Conv(new Conv2dGeometry(1, 8, 8, 16, 24, 1, 1), a);  // a 16-column panel and an 8-column one
            Conv(new Conv2dGeometry(1, 1, 1, 16, 24, 1, 1), a);  // GEMV
        }
        foreach (int k in depthwiseSizes)
            foreach (int stride in (int[])[1, 2])
                Conv(new Conv2dGeometry(1, 16, 16, 24, 24, k, k, stride, stride, PadTop: k / 2, PadLeft: k / 2, PadBottom: k / 2, PadRight: k / 2, Groups: 24), act);

        void Conv(Conv2dGeometry g, Activation a)
        {
            var op = new Conv2dOperator(g, new float[g.WeightLength], new float[g.OutC], a);
            op.Run(1, x, y, default, new float[op.ScratchLength(1)], Workers.Single);
        }
    }

    /// <param name="stopWhenARunStarts">Checked again before the session is built and before it runs: unlike a kernel
    /// group, a network spends most of its time in code a real run no longer needs.</param>
    private static void Network(string name, bool stopWhenARunStarts)
    {
        var graph = ModelZoo.Create(name, new ModelOptions(0.25f, 64, 10));
        if (stopWhenARunStarts && _runStarted) return;
        using var session = new InferenceSession(graph, new SessionOptions { Threads = 1 });
        if (stopWhenARunStarts && _runStarted) return;
        session.WarmUp();
    }
}
