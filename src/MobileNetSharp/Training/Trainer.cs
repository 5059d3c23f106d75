using System.Diagnostics;
using System.Text.Json.Nodes;
using MobileNetSharp.Graph;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;
using MobileNetSharp.Training.Data;

namespace MobileNetSharp.Training;

/// <summary>
/// How a <see cref="Trainer"/> trains. Defaults are a standard MobileNet recipe scaled to small data: SGD with
/// Nesterov momentum 0.9, weight decay 4e-5 (the MobileNetV2 paper's) on weights only, a cosine learning-rate
/// schedule (Loshchilov &amp; Hutter 2017) after one epoch of linear warm-up.
/// </summary>
public sealed record TrainerOptions
{
    public int Epochs { get; init; } = 10;
    public int BatchSize { get; init; } = 64;
    /// <summary>"sgd" or "adamw".</summary>
    public string Optimizer { get; init; } = "sgd";
    /// <summary>Peak learning rate (after warm-up).</summary>
    public float LearningRate { get; init; } = 0.05f;
    public float Momentum { get; init; } = 0.9f;
    public bool Nesterov { get; init; } = true;
    /// <summary>L2 weight decay (SGD) or decoupled decay (AdamW); never applied to biases and batch-norm parameters.</summary>
    public float WeightDecay { get; init; } = 4e-5f;
    /// <summary>"cosine" (to zero at the end), or "step": the rate x0.1 after each third of the steps that follow warm-up (<see cref="StepSchedule"/>).</summary>
    public string Schedule { get; init; } = "cosine";
    public double WarmupEpochs { get; init; } = 1;
    public float LabelSmoothing { get; init; }
    /// <summary>Clip the gradients' global L2 norm to this (null: no clipping).</summary>
    public float? ClipNorm { get; init; }
    public Augmentation Augment { get; init; } = Augmentation.None;
    /// <summary>Seeds the shuffling, augmentation and dropout.</summary>
    public int Seed { get; init; }
    public int Threads { get; init; } = Math.Max(1, Environment.ProcessorCount);
    /// <summary>Stop after this many optimizer steps in total (the epoch in progress is cut short).</summary>
    public long? MaxSteps { get; init; }
    /// <summary>Fine-tuning: keep the nodes up to and including this one as they are (see <see cref="TrainingOptions.FreezeUntil"/>).</summary>
    public string? FreezeUntil { get; init; }
    /// <summary>Written after every epoch and on cancellation; null for none.</summary>
    public string? CheckpointPath { get; init; }
    /// <summary>Free-form description of where the model came from, stored in checkpoints so a resume can rebuild it.</summary>
    public JsonObject? Source { get; init; }

    internal void Validate()
    {
        if (Epochs < 1) throw new ArgumentException($"epochs must be >= 1, got {Epochs}.");
        if (BatchSize < 1 || BatchSize > 65536) throw new ArgumentException($"batch size must be 1..65536, got {BatchSize}.");
        if (!(LearningRate > 0) || float.IsInfinity(LearningRate)) throw new ArgumentException($"learning rate must be positive, got {LearningRate}.");
        if (Optimizer is not ("sgd" or "adamw")) throw new ArgumentException($"optimizer must be sgd or adamw, got '{Optimizer}'.");
        if (Schedule is not ("cosine" or "step")) throw new ArgumentException($"schedule must be cosine or step, got '{Schedule}'.");
        if (!(WarmupEpochs >= 0)) throw new ArgumentException($"warm-up epochs must be >= 0, got {WarmupEpochs}.");
        if (MaxSteps is < 1) throw new ArgumentException($"max steps must be >= 1, got {MaxSteps}.");
        if (Threads < 1) throw new ArgumentException($"threads must be >= 1, got {Threads}.");
    }
}

/// <summary>Live state during training, reported every step.</summary>
public sealed record TrainProgress(int Epoch, int Epochs, int Batch, int BatchesPerEpoch, long Step, float LearningRate,
    float Loss, float Accuracy, double ImagesPerSecond, TimeSpan Remaining);

/// <summary>One finished epoch: mean training loss and accuracy over its batches, validation accuracy if a set was given.</summary>
public sealed record EpochReport(int Epoch, long Steps, float TrainLoss, float TrainAccuracy, double? ValidationAccuracy, double Seconds, double ImagesPerSecond);

/// <summary>The outcome of <see cref="Trainer.Run"/>.</summary>
public sealed record TrainResult(int EpochsCompleted, long Steps, float TrainLoss, double? ValidationAccuracy, double Seconds,
    double ImagesPerSecond, bool Interrupted, IReadOnlyList<EpochReport> History);

/// <summary>
/// The training loop: batches (shuffled and augmented deterministically by seed, prepared on a background thread),
/// <see cref="TrainingSession.Step"/>, the optimizer and schedule, a validation pass per epoch, and checkpoints
/// after each epoch and on cancellation. A checkpoint records the exact position (epoch, batch, optimizer state),
/// so a resumed run continues where it stopped and sees the same data order.
/// </summary>
public sealed class Trainer : IDisposable
{
    private readonly TrainerOptions _o;
    private readonly ImageDataset _train;
    private readonly ImageDataset? _validation;
    private readonly BatchSource _batches;
    private readonly Optimizer _optimizer;
    private readonly LearningRateSchedule _schedule;
    private readonly List<EpochReport> _history = [];
    private int _epoch, _batch; // position: the next batch to run
    private double _elapsedBefore; // seconds trained before a resume

    public TrainingSession Session { get; }
    public TrainerOptions Options => _o;
    public Action<TrainProgress>? Progress { get; set; }
    public Action<EpochReport>? EpochCompleted { get; set; }
    public IReadOnlyList<EpochReport> History => _history;

    /// <param name="model">A classifier taking [N, C, R, R] pixels in [0, 1] (normalization inside the graph).</param>
    public Trainer(ModelGraph model, ImageDataset train, ImageDataset? validation, TrainerOptions options)
    {
        options.Validate();
        _o = options;
        _train = train;
        _validation = validation;
        Session = new TrainingSession(model, new TrainingOptions { Threads = options.Threads, LabelSmoothing = options.LabelSmoothing, FreezeUntil = options.FreezeUntil });
        var input = model.Inputs[0].Shape;
        if (input.Length != 4 || input[2] != input[3]) throw new ArgumentException($"The model's input {Shape.Format(input)} is not a square image batch [N, C, R, R].");
        if (Session.Classes < train.Classes) throw new ArgumentException($"The model has {Session.Classes} outputs but the data has {train.Classes} classes; give --classes {train.Classes}.");
        // Drop the last partial batch: a batch of 1 would make batch-norm statistics meaningless.
        _batches = new BatchSource(train, new BatchOptions(Math.Min(options.BatchSize, train.Count), input[2], input[1], Seed: options.Seed,
            Augment: options.Augment, DropLast: true));
        _optimizer = options.Optimizer == "adamw"
            ? new AdamW(Session.Parameters, weightDecay: options.WeightDecay)
            : new Sgd(Session.Parameters, options.Momentum, options.Nesterov, options.WeightDecay);
        long perEpoch = _batches.BatchesPerEpoch, total = Math.Min(perEpoch * options.Epochs, options.MaxSteps ?? long.MaxValue);
        long warmup = Math.Min(total - 1, (long)Math.Round(options.WarmupEpochs * perEpoch));
        _schedule = options.Schedule == "cosine"
            ? new CosineSchedule(options.LearningRate, total, warmup)
            : new StepSchedule(options.LearningRate, Math.Max(1, (total - warmup) / 3), 0.1f, warmup);
    }

    public int BatchesPerEpoch => _batches.BatchesPerEpoch;

    /// <summary>Trains until the epochs (or <see cref="TrainerOptions.MaxSteps"/>) are done or <paramref name="cancellation"/> fires.</summary>
    public TrainResult Run(CancellationToken cancellation = default)
    {
        var clock = Stopwatch.StartNew();
        long images = 0;
        bool interrupted = false;
        float lastLoss = float.NaN;
        long maxSteps = _o.MaxSteps ?? long.MaxValue;
        while (_epoch < _o.Epochs && _optimizer.Steps < maxSteps)
        {
            var epochClock = Stopwatch.StartNew();
            double lossSum = 0;
            long correct = 0, seen = 0;
            int batches = 0;
            // A resumed epoch starts at the batch it stopped at: the data order is the seed's, so nothing repeats.
            using var prefetch = _batches.Prefetch(_epoch, depth: 2, CancellationToken.None, _batch);
            int b = _batch - 1;
            foreach (var batch in prefetch)
            {
                b++;
                if (cancellation.IsCancellationRequested) { interrupted = true; break; }
                float lr = _schedule.At(_optimizer.Steps);
                var r = Session.Step(batch.Images, batch.Labels, (ulong)_o.Seed * 0x9E3779B97F4A7C15UL ^ (ulong)_optimizer.Steps);
                if (!float.IsFinite(r.Loss))
                    throw new InvalidOperationException($"The loss became {r.Loss} at epoch {_epoch + 1}, batch {b + 1}: lower the learning rate (now {lr:G3}) or set a clip norm.");
                if (_o.ClipNorm is { } clip) GradientClipping.ClipByGlobalNorm(Session.Parameters, clip);
                _optimizer.Step(lr);
                _batch = b + 1;
                lossSum += r.Loss * r.Count;
                correct += r.Correct;
                seen += r.Count;
                images += r.Count;
                batches++;
                lastLoss = r.Loss;
                double rate = images / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
                long remainingSteps = Math.Min((long)(_o.Epochs - _epoch) * _batches.BatchesPerEpoch - _batch, maxSteps - _optimizer.Steps);
                Progress?.Invoke(new TrainProgress(_epoch + 1, _o.Epochs, _batch, _batches.BatchesPerEpoch, _optimizer.Steps, lr, (float)(lossSum / seen),
                    (float)correct / seen, rate, TimeSpan.FromSeconds(remainingSteps * (double)_batches.Options.BatchSize / Math.Max(rate, 1e-9))));
                if (_optimizer.Steps >= maxSteps) break;
            }
            if (interrupted) break;
            double? val = _validation is null ? null : Validate(cancellation);
            var report = new EpochReport(_epoch + 1, _optimizer.Steps, seen == 0 ? float.NaN : (float)(lossSum / seen), seen == 0 ? float.NaN : (float)correct / seen,
                val, epochClock.Elapsed.TotalSeconds, seen / Math.Max(epochClock.Elapsed.TotalSeconds, 1e-9));
            _history.Add(report);
            bool finishedEpoch = _batch >= _batches.BatchesPerEpoch;
            if (finishedEpoch) { _epoch++; _batch = 0; }
            if (_o.CheckpointPath is { } path) SaveCheckpoint(path, _elapsedBefore + clock.Elapsed.TotalSeconds);
            EpochCompleted?.Invoke(report);
            if (!finishedEpoch) break; // MaxSteps cut the epoch short
        }
        if (interrupted && _o.CheckpointPath is { } p) SaveCheckpoint(p, _elapsedBefore + clock.Elapsed.TotalSeconds);
        var last = _history.LastOrDefault();
        return new TrainResult(_epoch, _optimizer.Steps, last?.TrainLoss ?? lastLoss, last?.ValidationAccuracy, clock.Elapsed.TotalSeconds,
            images / Math.Max(clock.Elapsed.TotalSeconds, 1e-9), interrupted, _history);
    }

    /// <summary>Top-1 accuracy of the current weights on the validation set (inference mode: running statistics, no dropout).</summary>
    public double Validate(CancellationToken cancellation = default)
    {
        if (_validation is null) throw new InvalidOperationException("No validation set was given.");
        using var session = new InferenceSession(Session.ToModel(), new SessionOptions { Threads = _o.Threads });
        return Evaluation.Run(session, _validation, 200, cancellation: cancellation).Accuracy;
    }

    /// <summary>The model with the current weights.</summary>
    public ModelGraph Model() => Session.ToModel();

    // ---- checkpoints ---------------------------------------------------------------------------------------

    /// <summary>Writes weights, running statistics, optimizer state and the position in training (atomically).</summary>
    public void SaveCheckpoint(string path, double secondsTrained)
    {
        var ck = new Checkpoint
        {
            Meta = new JsonObject
            {
                ["epoch"] = _epoch,
                ["batch"] = _batch,
                ["steps"] = _optimizer.Steps,
                ["seconds"] = secondsTrained,
                ["seed"] = _o.Seed,
                ["batchSize"] = _batches.Options.BatchSize,
                ["source"] = _o.Source?.DeepClone(),
                ["history"] = new JsonArray(_history.Select(h => (JsonNode)new JsonObject
                {
                    ["epoch"] = h.Epoch, ["steps"] = h.Steps, ["trainLoss"] = h.TrainLoss, ["trainAccuracy"] = h.TrainAccuracy,
                    ["validationAccuracy"] = h.ValidationAccuracy, ["seconds"] = h.Seconds, ["imagesPerSecond"] = h.ImagesPerSecond,
                }).ToArray()),
            },
        };
        foreach (var p in Session.Parameters) ck.Tensors["param:" + p.Name] = new Tensor(p.Value, p.Shape);
        foreach (var (name, t) in Session.States) ck.Tensors["state:" + name] = t;
        foreach (var (name, v) in _optimizer.State) ck.Tensors["optim:" + name] = new Tensor(v, v.Length);
        ck.Save(path);
    }

    /// <summary>Restores a checkpoint written by <see cref="SaveCheckpoint"/> for this model and data.</summary>
    /// <exception cref="InvalidDataException">The checkpoint does not match this model (names or shapes), or is corrupt.</exception>
    public void LoadCheckpoint(string path)
    {
        var ck = Checkpoint.Load(path);
        Tensor Get(string key, int length)
        {
            if (!ck.Tensors.TryGetValue(key, out var t)) throw new InvalidDataException($"Checkpoint '{path}' has no '{key}': it was written for another model.");
            if (t.Length != length || t.DataType != DataType.Float32) throw new InvalidDataException($"Checkpoint '{path}': '{key}' has {t.Length} values, the model needs {length}: it was written for another model.");
            return t;
        }
        if ((int?)ck.Meta["batchSize"] is { } bs && bs != _batches.Options.BatchSize)
            throw new InvalidDataException($"Checkpoint '{path}' was trained with batch size {bs}; resume with the same (now {_batches.Options.BatchSize}).");
        foreach (var p in Session.Parameters) Get("param:" + p.Name, p.Value.Length).Floats.CopyTo(p.Value, 0);
        foreach (var (name, t) in Session.States) Get("state:" + name, t.Length).Floats.CopyTo(t.Floats, 0);
        var state = _optimizer.State.ToDictionary(kv => kv.Key, kv => Get("optim:" + kv.Key, kv.Value.Length).Floats);
        long steps = (long?)ck.Meta["steps"] ?? 0;
        _optimizer.LoadState(state, steps);
        _epoch = (int?)ck.Meta["epoch"] ?? 0;
        _batch = (int?)ck.Meta["batch"] ?? 0;
        _elapsedBefore = (double?)ck.Meta["seconds"] ?? 0;
        _history.Clear();
        if (ck.Meta["history"] is JsonArray h)
            foreach (var e in h.OfType<JsonObject>())
                _history.Add(new EpochReport((int?)e["epoch"] ?? 0, (long?)e["steps"] ?? 0, (float?)e["trainLoss"] ?? float.NaN, (float?)e["trainAccuracy"] ?? float.NaN,
                    (double?)e["validationAccuracy"], (double?)e["seconds"] ?? 0, (double?)e["imagesPerSecond"] ?? 0));
    }

    public void Dispose() => Session.Dispose();
}
