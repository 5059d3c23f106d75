using MobileNetSharp.Graph;
using MobileNetSharp.Models;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Models;

/// <summary>ModelOptions.InChannels and SmallInput: the small-image builders of issue 7.</summary>
public class SmallInputTests
{
    private static readonly ModelOptions Benchmark = new(Width: 0.5f, Resolution: 28, Classes: 10, InChannels: 1, SmallInput: true);

    /// <summary>
    /// The training benchmark network. Both numbers come from torchvision 0.14
    /// (tools/training/small_input_counts.py: mobilenet_v2(width_mult=0.5, num_classes=10) with a 1-channel
    /// stem and the stem and first stride-2 stage at stride 1), which also ends in a 1280x4x4 feature map.
    /// </summary>
    [Fact]
    public void MobileNetV2BenchmarkNetworkMatchesTorchvision()
    {
        var g = ModelZoo.Create("mobilenet_v2", Benchmark);
        var cost = CostModel.Analyze(g);
        Assert.Equal(700_202L, cost.Params);
        Assert.Equal(23_111_712L, cost.Macs);
        Assert.Equal([1, 1, 28, 28], g.Inputs[0].Shape);
        Assert.Equal([1, 10], g.Outputs[0].Shape);

        var convs = g.Nodes.Where(n => n.Op is Conv).ToList();
        var stem = (Conv)convs[0].Op;
        Assert.Equal([16, 1, 3, 3], convs[0].Input(1).Shape);
        Assert.Equal(1, stem.StrideH);
        // Depthwise strides, block by block: (1,8,1,1) (6,16,2,1) (6,16,3,2) (6,32,4,2) (6,48,3,1) (6,80,3,2) (6,160,1,1).
        var dw = convs.Where(n => ((Conv)n.Op).Groups > 1).ToList();
        Assert.Equal([1, 1, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1], dw.Select(n => ((Conv)n.Op).StrideH));
        var projections = convs.Where(n => n.Name.EndsWith(".project", StringComparison.Ordinal)).Select(n => n.Outputs[0].Shape[1]);
        Assert.Equal([8, 16, 16, 16, 16, 16, 32, 32, 32, 32, 48, 48, 48, 80, 80, 80, 160], projections);
        var head = g.Nodes.Single(n => n.Op is GlobalPool);
        Assert.Equal([1, 1280, 4, 4], head.Input(0).Shape);
        Assert.Equal(700_202L, CostModel.Analyze(ModelZoo.mobilenet_v2(0.5f, 28, 10, inChannels: 1, smallInput: true)).Params);
    }

    [Theory]
    [InlineData("mobilenet_v1")]
    [InlineData("conv_mobilenet_v1")]
    [InlineData("mobilenet_v2")]
    [InlineData("mobilenet_v3_large")]
    [InlineData("mobilenet_v3_small")]
    [InlineData("efficientnet_lite0")]
    [InlineData("efficientnet_lite2")]
    public void SmallInputDownsamplesBy8AndKeepsTheParameters(string arch)
    {
        var standard = ModelZoo.Create(arch, new ModelOptions(Resolution: 224));
        var small = ModelZoo.Create(arch, new ModelOptions(Resolution: 224, SmallInput: true));
        Assert.Equal(CostModel.Analyze(standard).Params, CostModel.Analyze(small).Params);
        Assert.Equal(7, FinalFeatureSize(standard));
        Assert.Equal(28, FinalFeatureSize(small));
        // Exactly two convolutions change stride: the stem and the first strided block.
        int changed = standard.Nodes.Zip(small.Nodes).Count(p => p.First.Op is Conv a && p.Second.Op is Conv b && a.StrideH != b.StrideH);
        Assert.Equal(2, changed);
        Assert.Equal("true", small.Metadata["small_input"]);
    }

    private static int FinalFeatureSize(ModelGraph g) => g.Nodes.Last(n => n.Op is GlobalPool).Input(0).Shape[2];

    [Theory]
    [InlineData("mobilenet_v1", 1)]
    [InlineData("mobilenet_v2", 1)]
    [InlineData("mobilenet_v3_small", 4)]
    [InlineData("efficientnet_lite0", 1)]
    public void InChannelsChangesOnlyTheStem(string arch, int channels)
    {
        var rgb = CostModel.Analyze(ModelZoo.Create(arch));
        var g = ModelZoo.Create(arch, new ModelOptions(InChannels: channels));
        var stemOut = g.Nodes.First(n => n.Op is Conv).Input(1).Shape[0];
        Assert.Equal(channels, g.Inputs[0].Shape[1]);
        Assert.Equal(rgb.Params + (long)(channels - 3) * stemOut * 9, CostModel.Analyze(g).Params);
    }

    [Fact]
    public void V3SmallFirstBlockGainsItsResidualAtStride1()
    {
        int Adds(ModelGraph g) => g.Nodes.Count(n => n.Op is BinaryOp { Kind: BinaryKind.Add });
        var standard = ModelZoo.Create("mobilenet_v3_small", new ModelOptions(Resolution: 64));
        var small = ModelZoo.Create("mobilenet_v3_small", new ModelOptions(Resolution: 64, SmallInput: true));
        Assert.Equal(Adds(standard) + 1, Adds(small));
        Assert.Contains(small.Nodes, n => n.Name.StartsWith("block1.", StringComparison.Ordinal) && n.Op is BinaryOp { Kind: BinaryKind.Add });
    }

    [Fact]
    public void SmallModelsRun()
    {
        var g = ModelZoo.Create("mobilenet_v2", Benchmark with { Batch = 2 });
        using var s = new InferenceSession(g, new SessionOptions { Threads = 1 });
        var y = s.Run(Tensor.Random(3, [2, 1, 28, 28]))[0];
        Assert.Equal([2, 10], y.Shape);
        Assert.All(y.Floats, v => Assert.True(float.IsFinite(v)));
    }

    [Theory]
    [InlineData("mobilenet_v2")]
    [InlineData("mobilenet_v1")]
    [InlineData("mobilenet_v3_large")]
    public void StandardTwinKeepsChannelsAndSmallInput(string arch)
    {
        var sep = ModelZoo.Create(arch, Benchmark);
        var twin = StandardTwin.Of(sep);
        Assert.Equal(sep.Inputs[0].Shape, twin.Inputs[0].Shape);
        Assert.Equal(sep.Outputs[0].Shape, twin.Outputs[0].Shape);
        Assert.Equal(FinalFeatureSize(sep), FinalFeatureSize(twin));
        Assert.True(CostModel.Analyze(twin).Macs > CostModel.Analyze(sep).Macs);
    }

    [Fact]
    public void ResolutionLimitsFollowTheMode()
    {
        Assert.Throws<ArgumentException>(() => ModelZoo.Create("mobilenet_v2", new ModelOptions(Resolution: 28)));
        Assert.Throws<ArgumentException>(() => ModelZoo.Create("mobilenet_v2", new ModelOptions(Resolution: 7, SmallInput: true)));
        Assert.Throws<ArgumentException>(() => ModelZoo.Create("mobilenet_v2", new ModelOptions(InChannels: 0)));
        Assert.Equal(8, ModelZoo.Create("mobilenet_v2", new ModelOptions(Resolution: 8, SmallInput: true)).Inputs[0].Shape[2]);
    }
}
