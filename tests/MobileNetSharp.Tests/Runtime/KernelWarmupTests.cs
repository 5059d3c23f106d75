using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Models;
using MobileNetSharp.Onnx;
using MobileNetSharp.Quantization;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Runtime;

/// <summary>
/// The background kernel warm-up: it finishes without fault, every common group and every plan step's miniature
/// works, a session hands its kernels over as it compiles, and a miniature takes the same kernel path as its step.
/// </summary>
public class KernelWarmupTests
{
    [Fact]
    public async Task FinishesWithoutFault()
    {
        KernelWarmup.Start();
        // A later load may start another drain; each must end, none may fault.
        for (int i = 0; i < 3; i++) await KernelWarmup.Completion.WaitAsync(TimeSpan.FromMinutes(5));
    }

    /// <summary>The background warm-up swallows errors; here every group runs with errors rethrown, so none is silently broken.</summary>
    [Fact]
    public void EveryGroupRunsWithoutError() => KernelWarmup.RunGroups();

    public static TheoryData<string> Architectures => new("mobilenet_v1", "conv_mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_lite0");

    /// <summary>Every step's miniature of every architecture, float and quantized (QDQ with 7- and 8-bit weights, fused
    /// into integer steps), at every ISA level, runs without error: the background thread would swallow one.</summary>
    [Theory]
    [MemberData(nameof(Architectures))]
    public void EveryStepWarmerRunsWithoutError(string architecture)
    {
        var model = ModelZoo.Create(architecture, new ModelOptions(Resolution: 64, Classes: 10));
        var calibration = new List<Tensor> { Tensor.Random(3, [1, 3, 64, 64], -2f, 2f) };
        var quantized = OnnxImporter.Load(OnnxExporter.ToBytes(PostTrainingQuantizer.Quantize(model, () => calibration, new QuantizationOptions { ReduceRange = true }).Model));
        var quantizedFullRange = OnnxImporter.Load(OnnxExporter.ToBytes(PostTrainingQuantizer.Quantize(model, () => calibration).Model));
        int warmers = 0;
        foreach (var graph in new[] { model, quantized, quantizedFullRange })
            foreach (var isa in Isa.Supported)
            {
                using var session = new InferenceSession(graph, new SessionOptions { Isa = isa });
                foreach (var step in session.PlanSteps)
                {
                    if (step.Warmer is not { } w) continue;
                    w.Run();
                    warmers++;
                }
            }
        Assert.True(warmers > 0);
    }

    /// <summary>Compiling a plan hands its steps' kernels to the warm-up (when it runs at all in this process).</summary>
    [Fact]
    public void ASessionQueuesItsKernels()
    {
        if (!KernelWarmup.Enabled || Environment.ProcessorCount < 2) return;
        var model = ModelZoo.Create("mobilenet_v3_small", new ModelOptions(0.5f, 48, 7));
        using var session = new InferenceSession(model);
        var keys = KernelWarmup.WarmedKeys;
        var expected = session.PlanSteps.Select(s => s.Warmer?.Key).OfType<string>().Distinct().ToList();
        Assert.NotEmpty(expected);
        Assert.All(expected, k => Assert.Contains(k, keys));
    }

    /// <summary>The run loop's code for every architecture's plan, float and quantized, compiles ahead without error
    /// (the warm-up thread would swallow one), and covers the run loop's own types as well as the plan's steps.</summary>
    [Theory]
    [MemberData(nameof(Architectures))]
    public void EveryPlanStepTypeCanBePreparedAhead(string architecture)
    {
        var model = ModelZoo.Create(architecture, new ModelOptions(Resolution: 64, Classes: 10));
        var calibration = new List<Tensor> { Tensor.Random(3, [1, 3, 64, 64], -2f, 2f) };
        var quantized = OnnxImporter.Load(OnnxExporter.ToBytes(PostTrainingQuantizer.Quantize(model, () => calibration).Model));
        foreach (var graph in new[] { model, quantized })
        {
            using var session = new InferenceSession(graph);
            var types = KernelWarmup.RunLoopTypesFor(session.PlanSteps);
            Assert.All(session.PlanSteps, s => Assert.Contains(s.GetType(), types));
            Assert.Contains(typeof(ExecutionPlan), types);
            Assert.Contains(typeof(RunContext), types);
            Assert.Contains(typeof(Workers), types);
            KernelWarmup.PrepareTypes(types, always: true); // errors rethrown here, warm-up enabled or not
        }
    }

    /// <summary>A session of a graph built in code (whose plan arrives before the common run-loop group could run)
    /// still ends up with the run loop's own types and its steps' prepared.</summary>
    [Fact]
    public async Task ACodeBuiltSessionGetsItsRunLoopPrepared()
    {
        if (!KernelWarmup.Enabled || Environment.ProcessorCount < 2) return;
        using var session = new InferenceSession(ModelZoo.Create("mobilenet_v2", new ModelOptions(0.35f, 48, 5)));
        await KernelWarmup.Completion.WaitAsync(TimeSpan.FromMinutes(5));
        var keys = KernelWarmup.WarmedKeys;
        Assert.All(KernelWarmup.RunLoopTypesFor(session.PlanSteps), t => Assert.Contains("run-loop|" + t.FullName, keys));
    }
}
