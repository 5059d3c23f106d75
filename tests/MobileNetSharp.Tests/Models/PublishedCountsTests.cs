using MobileNetSharp.Graph;
using MobileNetSharp.Models;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Models;

/// <summary>Every row of shared/reference/published-figures.md, reproduced by the builders and the cost model.</summary>
public class PublishedCountsTests
{
    private static GraphCost Cost(string arch, float width = 1f, int? res = null) =>
        CostModel.Analyze(ModelZoo.Create(arch, new ModelOptions(width, res)));

    [Theory]
    [InlineData("mobilenet_v1", 1.0f, 224, 4_231_976L, 568_740_352L)]
    [InlineData("conv_mobilenet_v1", 1.0f, 224, 29_294_088L, 4_867_293_184L)]
    [InlineData("mobilenet_v2", 1.0f, 224, 3_504_872L, 300_774_272L)]
    [InlineData("mobilenet_v3_large", 1.0f, 224, 5_483_032L, 216_589_760L)]
    [InlineData("mobilenet_v3_small", 1.0f, 224, 2_542_856L, 56_510_400L)]
    [InlineData("efficientnet_lite0", 1.0f, 224, 4_652_008L, 385_187_552L)]
    public void ExactCountsFromTheIssue(string arch, float width, int res, long parameters, long macs)
    {
        var c = Cost(arch, width, res);
        Assert.Equal(parameters, c.Params);
        Assert.Equal(macs, c.Macs);
    }

    // MACs in the table are given in millions to one decimal.
    [Theory]
    [InlineData("mobilenet_v1", 1.0f, 224, 4_231_976L, 568.7)]
    [InlineData("mobilenet_v1", 1.0f, 192, 4_231_976L, 418.1)]
    [InlineData("mobilenet_v1", 1.0f, 160, 4_231_976L, 290.7)]
    [InlineData("mobilenet_v1", 1.0f, 128, 4_231_976L, 186.4)]
    [InlineData("mobilenet_v1", 0.75f, 224, 2_585_560L, 325.4)]
    [InlineData("mobilenet_v1", 0.5f, 224, 1_331_592L, 149.5)]
    [InlineData("mobilenet_v1", 0.5f, 160, 1_331_592L, 76.5)]
    [InlineData("mobilenet_v1", 0.25f, 224, 470_072L, 41.0)]
    [InlineData("mobilenet_v1", 0.25f, 128, 470_072L, 13.6)]
    [InlineData("conv_mobilenet_v1", 1.0f, 224, 29_294_088L, 4867.3)]
    [InlineData("mobilenet_v2", 1.0f, 224, 3_504_872L, 300.8)]
    [InlineData("mobilenet_v2", 1.0f, 96, 3_504_872L, 56.3)]
    [InlineData("mobilenet_v2", 0.35f, 224, 1_677_128L, 59.3)]
    [InlineData("mobilenet_v2", 0.35f, 96, 1_677_128L, 11.9)]
    [InlineData("mobilenet_v2", 1.4f, 224, 6_108_776L, 582.2)]
    [InlineData("mobilenet_v3_large", 1.0f, 224, 5_483_032L, 216.6)]
    [InlineData("mobilenet_v3_small", 1.0f, 224, 2_542_856L, 56.5)]
    [InlineData("efficientnet_lite0", 1.0f, 224, 4_652_008L, 385.2)]
    [InlineData("efficientnet_lite1", 1.0f, 240, 5_416_680L, 600.2)]
    [InlineData("efficientnet_lite2", 1.0f, 260, 6_092_072L, 859.7)]
    [InlineData("efficientnet_lite3", 1.0f, 280, 8_197_096L, 1383.3)]
    [InlineData("efficientnet_lite4", 1.0f, 300, 13_006_568L, 2553.0)]
    public void PublishedTableRows(string arch, float width, int res, long parameters, double megaMacs)
    {
        var c = Cost(arch, width, res);
        Assert.Equal(parameters, c.Params);
        Assert.Equal(megaMacs, Math.Round(c.Macs / 1e6, 1));
    }

    /// <summary>The slim alpha x resolution grid for MobileNetV2 (MACs in millions, rounded as slim does).</summary>
    [Theory]
    [InlineData(1.0f, 224, 300), InlineData(1.0f, 192, 221), InlineData(1.0f, 160, 154), InlineData(1.0f, 128, 99), InlineData(1.0f, 96, 56)]
    [InlineData(0.75f, 224, 209), InlineData(0.75f, 192, 153), InlineData(0.75f, 160, 107), InlineData(0.75f, 128, 69), InlineData(0.75f, 96, 39)]
    [InlineData(0.5f, 224, 97), InlineData(0.5f, 192, 71), InlineData(0.5f, 160, 50), InlineData(0.5f, 128, 32), InlineData(0.5f, 96, 18)]
    [InlineData(0.35f, 224, 59), InlineData(0.35f, 192, 43), InlineData(0.35f, 160, 30), InlineData(0.35f, 128, 20), InlineData(0.35f, 96, 11)]
    public void MobileNetV2SlimGrid(float width, int res, int megaMacs)
    {
        // slim reports MACs truncated or rounded to whole millions; ours must be within one million.
        double ours = Cost("mobilenet_v2", width, res).Macs / 1e6;
        Assert.InRange(ours, megaMacs - 1.0, megaMacs + 1.0);
    }

    [Fact]
    public void V1WithoutBatchNormParamsMatchesTheFootnote()
    {
        var g = ModelZoo.Create("mobilenet_v1");
        long bn = CostModel.Analyze(g).Layers.Where(l => l.Op == "BatchNormalization").Sum(l => l.Params);
        Assert.Equal(4_210_088L, CostModel.Analyze(g).Params - bn);
    }

    /// <summary>Paper Table 2: where MobileNetV1 1.0-224 spends its MACs (percentages to two decimals).</summary>
    [Fact]
    public void V1ResourceBreakdownReproducesPaperTable2()
    {
        var c = Cost("mobilenet_v1");
        var k = c.ByKind;
        double Share(LayerKind kind) => Math.Round(100.0 * k[kind].Macs / c.Macs, 2);
        Assert.Equal(94.86, Share(LayerKind.Pointwise));
        Assert.Equal(3.06, Share(LayerKind.Depthwise));
        // The paper prints 1.19% here, but its own column then sums to 99.29%; the stem's
        // 112*112*3*3*3*32 = 10,838,016 MACs are 1.91% of the total (column sum 100.01%): a digit swap.
        Assert.Equal(1.91, Share(LayerKind.StandardConv));
        Assert.Equal(0.18, Share(LayerKind.FullyConnected));

        // Parameter shares, which the paper counts without batch-norm parameters (our LayerKind.Other).
        long weights = c.Params - k[LayerKind.Other].Params;
        double P(LayerKind kind) => Math.Round(100.0 * k[kind].Params / weights, 2);
        Assert.Equal(74.59, P(LayerKind.Pointwise), 0.05);
        Assert.Equal(1.06, P(LayerKind.Depthwise), 0.05);
        Assert.Equal(0.02, P(LayerKind.StandardConv), 0.05);
        Assert.Equal(24.33, P(LayerKind.FullyConnected), 0.05);
    }

    [Fact]
    public void SeparableNeedsAboutEightTimesFewerMacsThanItsStandardTwin()
    {
        double ratio = (double)Cost("conv_mobilenet_v1").Macs / Cost("mobilenet_v1").Macs;
        Assert.InRange(ratio, 8.0, 9.0); // 4867.3M / 568.7M = 8.56
    }
}

public class CostConventionTests
{
    [Fact]
    public void ADenseLayerWrittenAsMatMulPlusAddCountsItsBias()
    {
        var b = new GraphBuilder("dense", 1);
        var x = b.Input("x", 1, 8);
        var y = b.Add(new MatMul(), "matmul", x, b.Constant("w", Tensor.Zeros(8, 4)));
        b.Output(b.Binary(MobileNetSharp.Graph.BinaryKind.Add, y, b.Constant("bias", Tensor.Zeros(4))));
        var c = CostModel.Analyze(b.Graph);
        Assert.Equal(8 * 4 + 4, c.Params);
        Assert.Equal(8 * 4, c.Macs);
    }
}
