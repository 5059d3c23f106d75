using MobileNetSharp.Graph;
using MobileNetSharp.Models;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Training;
using MobileNetSharp.Training.Data;

namespace MobileNetSharp.Tests.Training;

/// <summary>
/// The training loop on real data (the first images of Fashion-MNIST, Debian's dataset-fashion-mnist, which CI
/// installs): a short deterministic run learns, results do not depend on the thread count, an interrupted run
/// resumed from its checkpoint ends bit-identical to an uninterrupted one, and the trained model exported to ONNX
/// gives ONNX Runtime's predictions.
/// </summary>
public sealed class TrainerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mnet-train-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly Lazy<ImageDataset> Train = new(() => FashionMnist.Load(train: true).Take(384));
    private static readonly Lazy<ImageDataset> Test = new(() => FashionMnist.Load(train: false).Take(128));

    private static ModelGraph Model()
    {
        var g = ModelZoo.Create("mobilenet_v2", new ModelOptions(0.35f, 28, 10, Seed: 3, InChannels: 1, SmallInput: true));
        InputNormalization.Prepend(g, [0.286f], [0.353f]);
        return g;
    }

    private static TrainerOptions Options(int threads, string? checkpoint = null) => new()
    {
        Epochs = 3, BatchSize = 32, LearningRate = 0.05f, WarmupEpochs = 0.5, Threads = threads, Seed = 1,
        Augment = Augmentation.Standard, CheckpointPath = checkpoint,
    };

    [Fact]
    public void EveryConvolutionGathersTheStatisticsOfTheBatchNormAfterIt()
    {
        // MobileNetV2: every batch norm follows a convolution, so each one's statistics come from its producer's
        // epilogue and no batch norm reads its input twice.
        using var session = new TrainingSession(Model());
        var steps = session.PlanSteps(8);
        var norms = steps.OfType<BatchNormTrainingStep>().ToList();
        var statisticsOnly = steps.OfType<BatchNormStatisticsStep>().ToList();
        Assert.NotEmpty(norms);
        Assert.All(norms, n => Assert.True(n.StatisticsFromProducer, $"{n.Name} computes its own statistics"));
        Assert.Equal(norms.Count + statisticsOnly.Count, steps.OfType<RuntimeWeightConvStep>().Count(c => c.Moments is not null));
    }

    [Fact]
    public void BatchNormOutputsReadOnlyByOneConvolutionAreNeverWritten()
    {
        // The stem's and every expansion's batch norm feed only a depthwise convolution, every depthwise's batch norm only
        // a projection, and the last projection's only the head: those outputs are normalized inside the convolution that
        // reads them (image by image, or row chunk by row chunk in the GEMM) and again in its backward, so no step writes them.
        using var session = new TrainingSession(Model());
        var steps = session.PlanSteps(8);
        var statisticsOnly = steps.OfType<BatchNormStatisticsStep>().ToList();
        var readers = steps.OfType<RuntimeWeightConvStep>().Where(c => c.NormalizesInput).ToList();
        Assert.NotEmpty(statisticsOnly);
        Assert.Equal(statisticsOnly.Count, readers.Count);
        int depthwise = steps.OfType<DepthwiseGradStep>().Count(d => d.NormalizesInput);
        // The projections (small w): dW, dX and the sums of the batch norm x comes from in one pass; the head (large w): dW alone.
        var projections = steps.OfType<PointwiseGradStep>().Where(d => d.NormalizesInput).ToList();
        int weightOnly = steps.OfType<ConvWeightGradStep>().Count(d => d.NormalizesInput);
        Assert.True(depthwise > 0 && projections.Count > 0 && weightOnly > 0, $"{depthwise} depthwise, {projections.Count} projection and {weightOnly} 1x1 dW steps normalize their input");
        Assert.All(projections, p => Assert.True(p.GathersSums, $"{p.Name} does not gather its batch norm's sums"));
        // ... and, where dX is large (not at batch 8), leaves it unwritten: the depthwise backward computes it again, image by
        // image, as dz · w. At batch 64 the 28x28 and 14x14 projections do; every one that can, does.
        Assert.All(projections, p => Assert.False(p.DxUnwritten, $"{p.Name}: dX of {p.DxFloats} floats unwritten at batch 8"));
        var large = session.PlanSteps(64).OfType<PointwiseGradStep>().Where(d => d.NormalizesInput).ToList();
        Assert.Contains(large, p => p.DxUnwritten);
        Assert.All(large, p => Assert.False(p.CanLeaveDxUnwritten && p.DxFloats >= PointwiseGradStep.DefaultMinUnwrittenDxFloats,
            $"{p.Name} could leave dX unwritten and does not"));
        Assert.Equal(readers.Count, depthwise + projections.Count + weightOnly);
        Assert.DoesNotContain(steps, s => s is BatchNormApplyStep);
    }

    [Fact]
    public void ProjectionGradientsLeftUnwrittenGiveTheSameStep()
    {
        // The projections' dX computed again by the depthwise backward (forced at every size) or written and read back
        // (never): the same loss, gradients and running statistics, bit for bit, at 1 and 2 threads.
        var x = Tensor.Random(4, [16, 1, 28, 28]);
        var labels = Enumerable.Range(0, 16).Select(i => i % 10).ToArray();
        foreach (int threads in new[] { 1, 2 })
        {
            float[][] Run(long min, out float loss, out int unwritten)
            {
                using var s = new TrainingSession(Model(), new TrainingOptions { Threads = threads, MinUnwrittenDxFloats = min });
                unwritten = s.PlanSteps(16).OfType<PointwiseGradStep>().Count(p => p.DxUnwritten);
                loss = s.Step(x, labels, 7).Loss;
                return s.Parameters.Select(p => p.Grad.ToArray()).Concat(s.States.Values.Select(v => v.Floats.ToArray())).ToArray();
            }
            var always = Run(0, out float lossAlways, out int some);
            var never = Run(long.MaxValue, out float lossNever, out int none);
            Assert.True(some > 0 && none == 0, $"{some} and {none} projections left dX unwritten");
            Assert.Equal(lossNever, lossAlways);
            Assert.Equal(never.Length, always.Length);
            for (int i = 0; i < never.Length; i++) Assert.True(never[i].AsSpan().SequenceEqual(always[i]), $"{threads}T: array {i} differs");
        }
    }

    [Fact]
    public void ShortRunLearnsAndIsIndependentOfThreads()
    {
        TrainResult one, two;
        float[] w1, w2;
        using (var t = new Trainer(Model(), Train.Value, null, Options(1))) { one = t.Run(); w1 = t.Session.Parameters[0].Value.ToArray(); }
        using (var t = new Trainer(Model(), Train.Value, null, Options(2))) { two = t.Run(); w2 = t.Session.Parameters[0].Value.ToArray(); }
        Assert.Equal(3, one.EpochsCompleted);
        Assert.Equal(36, one.Steps);
        // The stated loss: from ln(10) = 2.30 at the start to below 2.0 in 36 steps of an augmented 384-image subset.
        Assert.True(one.History[0].TrainLoss > one.History[^1].TrainLoss, $"loss did not fall: {string.Join(", ", one.History.Select(h => h.TrainLoss))}");
        Assert.True(one.TrainLoss < 2.0f, $"final training loss {one.TrainLoss}");
        // Every kernel partitions its reductions by shape, not by thread count.
        Assert.Equal(one.History.Select(h => h.TrainLoss), two.History.Select(h => h.TrainLoss));
        Assert.Equal(w1, w2);
    }

    [Fact]
    public void ResumedRunEndsBitIdenticalToUninterruptedOne()
    {
        string full = Path.Combine(_dir, "full.ckpt"), cut = Path.Combine(_dir, "cut.ckpt");
        float[][] expected;
        using (var t = new Trainer(Model(), Train.Value, null, Options(1, full)))
        {
            t.Run();
            expected = t.Session.Parameters.Select(p => p.Value.ToArray()).ToArray();
        }
        // Interrupt mid-epoch 2 (after 17 of 36 steps), as Ctrl-C does.
        using (var cts = new CancellationTokenSource())
        using (var t = new Trainer(Model(), Train.Value, null, Options(1, cut)))
        {
            t.Progress = p => { if (p.Step == 17) cts.Cancel(); };
            var r = t.Run(cts.Token);
            Assert.True(r.Interrupted);
            Assert.Equal(17, r.Steps);
        }
        Assert.True(File.Exists(cut));
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp-*")); // the temporary file was renamed, not left behind
        using (var t = new Trainer(Model(), Train.Value, null, Options(1, cut)))
        {
            t.LoadCheckpoint(cut);
            var r = t.Run();
            Assert.False(r.Interrupted);
            Assert.Equal(36, r.Steps);
            for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], t.Session.Parameters[i].Value);
        }
    }

    [Fact]
    public void CorruptOrForeignCheckpointsAreRefusedByName()
    {
        string bad = Path.Combine(_dir, "bad.ckpt");
        File.WriteAllBytes(bad, [1, 2, 3, 4, 5]);
        using var t = new Trainer(Model(), Train.Value, null, Options(1));
        var e = Assert.Throws<InvalidDataException>(() => t.LoadCheckpoint(bad));
        Assert.Contains(bad, e.Message);

        // A checkpoint of another architecture names the missing weight.
        string other = Path.Combine(_dir, "other.ckpt");
        var g = ModelZoo.Create("mobilenet_v1", new ModelOptions(0.25f, 28, 10, InChannels: 1, SmallInput: true));
        using (var o = new Trainer(g, Train.Value, null, Options(1) with { MaxSteps = 1, CheckpointPath = other })) o.Run();
        var e2 = Assert.Throws<InvalidDataException>(() => t.LoadCheckpoint(other));
        Assert.Contains("another model", e2.Message);
    }

    [Fact]
    public void TrainedModelExportsAndOnnxRuntimeAgrees()
    {
        using var t = new Trainer(Model(), Train.Value, Test.Value, Options(2) with { Epochs = 1 });
        var r = t.Run();
        Assert.NotNull(r.ValidationAccuracy);
        var model = t.Model();
        model.Inputs[0].DimParams = ["N", null, null, null];
        model.Outputs[0].DimParams = ["N", null];
        var bytes = OnnxExporter.ToBytes(model);
        var batch = new BatchSource(Test.Value, new BatchOptions(64, Shuffle: false)).Make(0, 0);
        using var ours = new InferenceSession(OnnxImporter.Load(bytes, new OnnxImportOptions { DefaultBatch = 64 }));
        var mine = ours.Run(batch.Images)[0].Floats;
        var theirs = Onnx.OrtRunner.Run(bytes, [new("input", batch.Images)])[model.Outputs[0].Name].Floats;
        Assert.Equal(mine.Length, theirs.Length);
        for (int i = 0; i < 64; i++)
            Assert.Equal(System.Numerics.Tensors.TensorPrimitives.IndexOfMax<float>(theirs.AsSpan(i * 10, 10)),
                System.Numerics.Tensors.TensorPrimitives.IndexOfMax<float>(mine.AsSpan(i * 10, 10)));
        float scale = theirs.Max(Math.Abs);
        for (int i = 0; i < mine.Length; i++) Assert.True(Math.Abs(mine[i] - theirs[i]) <= 1e-4f * scale, $"logit {i}: ours {mine[i]}, ORT {theirs[i]}");
    }

    /// <summary>Fine-tuning with FreezeUntil: the layers up to the named node keep their weights and running statistics.</summary>
    [Fact]
    public void FrozenLayersKeepTheirWeights()
    {
        var g = Model();
        var cut = g.Nodes[g.Nodes.Count / 2].Name;
        var frozenWeights = g.Nodes.Take(g.Nodes.Count / 2 + 1).SelectMany(n => n.Inputs).OfType<Value>().Where(v => v.IsConstant)
            .ToDictionary(v => v.Name, v => v.Constant!.Floats.ToArray());
        using var t = new Trainer(g, Train.Value, null, Options(1) with { FreezeUntil = cut, MaxSteps = 3 });
        Assert.DoesNotContain(t.Session.Parameters, p => frozenWeights.ContainsKey(p.Name));
        Assert.DoesNotContain(t.Session.States.Keys, frozenWeights.ContainsKey);
        Assert.NotEmpty(t.Session.Parameters);
        var before = t.Session.Parameters.Select(p => p.Value.ToArray()).ToArray();
        t.Run();
        Assert.Contains(t.Session.Parameters.Select((p, i) => (p, i)), x => !x.p.Value.SequenceEqual(before[x.i])); // the rest trained
        foreach (var v in t.Model().Constants.Where(v => frozenWeights.ContainsKey(v.Name)))
            Assert.Equal(frozenWeights[v.Name], v.Constant!.Floats);
        Assert.Throws<GraphException>(() => new TrainingSession(Model(), new TrainingOptions { FreezeUntil = "no-such-node" }));
    }

    [Fact]
    public void BadOptionsAndMismatchedDataAreClearErrors()
    {
        Assert.Throws<ArgumentException>(() => new Trainer(Model(), Train.Value, null, Options(1) with { LearningRate = -1 }));
        Assert.Throws<ArgumentException>(() => new Trainer(Model(), Train.Value, null, Options(1) with { Optimizer = "lbfgs" }));
        var three = ModelZoo.Create("mobilenet_v2", new ModelOptions(0.35f, 28, 3, InChannels: 1, SmallInput: true));
        var e = Assert.Throws<ArgumentException>(() => new Trainer(three, Train.Value, null, Options(1)));
        Assert.Contains("--classes 10", e.Message);
    }
}

/// <summary>
/// Whole-graph gradients against central finite differences of the training loss, for the plan's shortcuts: an Add
/// whose first operand's gradient is the output's gradient buffer itself, an Add of a value to itself, a Sub, and a
/// batch norm that writes its input gradient over its output gradient and takes its statistics from the convolution.
/// </summary>
public sealed class GraphGradientTests
{
    [Fact]
    public void ResidualAddsSubAndBatchNormMatchFiniteDifferences()
    {
        var b = new GraphBuilder("fd", seed: 5);
        var x = b.Input("x", 4, 3, 6, 6);
        var y = b.Conv(x, 8, 1, bias: true, kind: "a");
        var twice = b.Binary(BinaryKind.Add, y, y);                              // d/dy = 2
        var diff = b.Binary(BinaryKind.Sub, twice, b.Conv(y, 8, 1, kind: "b"));  // a Sub of two distinct values
        var block = b.ConvBnAct(diff, 8, 3, 1, Activation.Relu6, kind: "c");     // statistics from the conv, dx over dy
        var residual = b.Binary(BinaryKind.Add, block, diff);                    // the residual: da is dY's own buffer
        var logits = b.Linear(b.Flatten(b.GlobalAveragePool(residual)), 3);
        b.Output(logits);

        AssertMatchesFiniteDifferences(b.Graph);
    }

    /// <summary>
    /// Batch norms whose output only a depthwise convolution reads are never written: the convolution normalizes each image
    /// itself. With a batch norm after the depthwise convolution its backward is fused and normalizes x again; without one
    /// (here) the weight gradient asks for x in memory, and the plan computes it there. Both against finite differences.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void DepthwiseReadingAnUnwrittenBatchNormOutputMatchesFiniteDifferences(bool batchNormAfter)
    {
        var b = new GraphBuilder("fd-dw", seed: 3);
        var x = b.Input("x", 4, 3, 7, 7);
        var e = b.ConvBnAct(x, 6, 1, 1, Activation.Relu6, kind: "expand");
        var d = batchNormAfter ? b.ConvBnAct(e, 6, 3, 1, Activation.Relu6, groups: 6, kind: "dw") : b.Conv(e, 6, 3, 1, groups: 6, bias: true, kind: "dw");
        b.Output(b.Linear(b.Flatten(b.GlobalAveragePool(d)), 3));
        using (var session = new TrainingSession(b.Graph))
        {
            var steps = session.PlanSteps(4);
            Assert.Contains(steps, st => st is RuntimeWeightConvStep { NormalizesInput: true });
            Assert.Equal(!batchNormAfter, steps.Any(st => st is BatchNormApplyStep));
        }
        AssertMatchesFiniteDifferences(b.Graph, [4, 3, 7, 7]);
    }

    private static void AssertMatchesFiniteDifferences(ModelGraph graph, int[]? shape = null)
    {
        shape ??= [4, 3, 6, 6];
        var rng = new Random(7);
        var images = Tensor.Random(11, shape);
        int[] labels = [0, 2, 1, 2];
        using var session = new TrainingSession(graph);
        float Loss() => session.Step(images, labels).Loss;
        Loss();
        var grads = session.Parameters.Select(p => (float[])p.Grad.Clone()).ToArray();
        int checkedCount = 0;
        for (int pi = 0; pi < session.Parameters.Count; pi++)
        {
            var p = session.Parameters[pi];
            // The two largest gradients of each parameter, and one random element.
            var order = Enumerable.Range(0, p.Value.Length).OrderByDescending(i => Math.Abs(grads[pi][i])).Take(2).Append(rng.Next(p.Value.Length));
            foreach (int i in order.Distinct())
            {
                float v = p.Value[i], h = 1e-2f * Math.Max(1f, Math.Abs(v));
                p.Value[i] = v + h; double up = Loss();
                p.Value[i] = v - h; double down = Loss();
                p.Value[i] = v;
                double fd = (up - down) / (2 * h), g = grads[pi][i];
                Assert.True(Math.Abs(fd - g) <= 0.05 * Math.Abs(fd) + 2e-3, $"{p.Name}[{i}]: gradient {g}, finite differences {fd}");
                checkedCount++;
            }
        }
        Assert.True(checkedCount >= 20, $"only {checkedCount} elements checked");
    }
}
