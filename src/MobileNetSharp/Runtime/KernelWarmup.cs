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
/// <see cref="InferenceSession"/>) calls <see cref="Start"/>, which runs tiny MobileNets (V2, V3-Small and
/// EfficientNet-Lite0 at width 0.25 and 64x64, which between them use the common activations, 3x3 and 5x5 depthwise
/// kernels at strides 1 and 2, the stem, squeeze-excite, pooling and GEMV) once each on a background thread, in
/// one-thread sessions, at the default ISA. The load itself goes on unhindered on the calling thread; a method both
/// threads need is compiled once (the runtime makes the later caller wait for it). Once any real run has begun, the
/// warm-up finishes the model in hand (still ahead of that run, so the two compile in parallel) and starts no other. Once per process; skipped on
/// a single core, where there is no spare core to use, and when <see cref="Enabled"/> is false.
/// </para>
/// </summary>
public static class KernelWarmup
{
    private static readonly Lock Gate = new();
    private static bool _started;
    private static volatile bool _runStarted;
    private static Task _completion = Task.CompletedTask;

    /// <summary>
    /// False stops later <see cref="Start"/> calls from doing anything (for processes that must not run work they did not
    /// ask for, or that measure a cold first run). Also set by the environment variable MNET_KERNEL_WARMUP=0.
    /// </summary>
    public static bool Enabled { get; set; } = Environment.GetEnvironmentVariable("MNET_KERNEL_WARMUP") != "0";

    /// <summary>The background warm-up (a completed task when it never started). It never faults.</summary>
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
            _completion = Task.Factory.StartNew(Run, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }
    }

    /// <summary>
    /// A real run has begun. The model being warmed up is finished (it is ahead of that run in the same kernels, so the
    /// two threads compile in parallel), but no further one is started: it would only take a core from the runs.
    /// </summary>
    internal static void NoteRun()
    {
        if (!_runStarted) _runStarted = true; // read first: concurrent runs then share the line instead of bouncing it
    }

    private static void Run()
    {
        // V2 first (ReLU6, 3x3 depthwise: also V1's and most imported MobileNets' kernels), then V3-Small (hard-swish,
        // ReLU, squeeze-excite, 5x5), then EfficientNet-Lite0 (ReLU6 with 5x5).
        foreach (var name in (string[])["mobilenet_v2", "mobilenet_v3_small", "efficientnet_lite0"])
        {
            if (_runStarted) return;
            // Best effort by design: the warm-up only exists to trigger compilation. A failure here (none is known)
            // must not surface in an unrelated caller; the user's own run reports its own errors.
            try
            {
                var graph = ModelZoo.Create(name, new ModelOptions(0.25f, 64, 10));
                using var session = new InferenceSession(graph, new SessionOptions { Threads = 1 });
                session.WarmUp();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
            }
        }
    }
}
