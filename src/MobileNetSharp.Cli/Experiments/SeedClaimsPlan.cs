using System.Globalization;

namespace MobileNetSharp.Cli.Experiments;

/// <summary>
/// How big the seed-claims experiment is: the full run, or --quick (a few minutes; CI runs it). The full run's
/// defaults (2 epochs over the first 5,000 training images, 3 seeds) are sized so that its ~23-27 distinct networks
/// (fewer when claim 2's pairs coincide with other groups), the standard twin at ~33-40 images/s among them, train in
/// about an hour on a 2-core machine, the issue's budget (the committed run: 23 networks in 41 min).
/// </summary>
internal sealed record SeedClaimsSettings(bool Quick, int Epochs, int TrainImages, int TestImages, int Seeds, int Threads, int LatencyRuns,
    float[] Widths, int[] Resolutions, float[] V2Widths)
{
    /// <summary>Every network trains in small-input mode on 28x28 Fashion-MNIST; this width and resolution unless swept.</summary>
    public const float BaseWidth = 0.5f;
    public const int BaseResolution = 28;

    public static SeedClaimsSettings Create(bool quick, int? epochs, int? trainImages, int? seeds, int threads) => quick
        ? new(true, epochs ?? 1, trainImages ?? 320, 200, seeds ?? 2, threads, 10, [0.25f, 0.5f, 0.75f, 1.0f], [16, 20, 24, 28], [0.35f, 0.5f, 0.75f, 1.0f])
        : new(false, epochs ?? 2, trainImages ?? 5000, 10000, seeds ?? 3, threads, 50, [0.25f, 0.5f, 0.75f, 1.0f], [16, 20, 24, 28], [0.35f, 0.5f, 0.75f, 1.0f]);
}

/// <summary>One network to train and measure.</summary>
/// <param name="Arch">mobilenet_v1, conv_mobilenet_v1 (its standard-convolution twin) or mobilenet_v2.</param>
/// <param name="NonLinear">MobileNetV2 with ReLU6 after the projection (the V2 paper's ablation).</param>
internal sealed record RunSpec(string Arch, float Width, int Resolution, int Seed, bool NonLinear = false)
{
    public string Id => string.Create(CultureInfo.InvariantCulture, $"{Arch}{(NonLinear ? "-relu6" : "")}-w{Width:0.##}-r{Resolution}-s{Seed}");
    public string Label => string.Create(CultureInfo.InvariantCulture, $"{Arch}{(NonLinear ? " (ReLU6 bottleneck)" : "")} x{Width:0.##} @{Resolution}");
}

/// <summary>What one run measured.</summary>
internal sealed record RunResult(RunSpec Spec, long Params, long Macs, double TestAccuracy, double LatencyMs, double TrainImagesPerSecond,
    double TrainSeconds, float FinalLoss);
