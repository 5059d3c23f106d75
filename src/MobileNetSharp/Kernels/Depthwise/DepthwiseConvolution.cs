namespace MobileNetSharp.Kernels.Depthwise;

/// <summary>
/// A depthwise convolution with its weights packed once as [tap][OutC padded to 16] plus a padded bias
/// row, so every weight and bias load is a whole vector whatever the ISA and channel count.
/// </summary>
internal sealed unsafe class DepthwiseConvolution
{
    private readonly Conv2dGeometry _g;
    private readonly float[] _packed;
    private readonly int _cPad;
    private readonly DepthwiseShape _shape;
    private readonly IsaLevel _isa;

    public DepthwiseConvolution(in Conv2dGeometry g, ReadOnlySpan<float> weightsOihw, ReadOnlySpan<float> bias, IsaLevel isa)
    {
        _g = g;
        _isa = isa;
        _cPad = (g.OutC + 15) & ~15;
        int taps = g.KernelH * g.KernelW;
        _packed = GC.AllocateArray<float>((taps + 1) * _cPad, pinned: true);
        for (int oc = 0; oc < g.OutC; oc++)
        {
            for (int t = 0; t < taps; t++) _packed[t * _cPad + oc] = weightsOihw[oc * taps + t];
            if (!bias.IsEmpty) _packed[taps * _cPad + oc] = bias[oc];
        }
        _shape = Choose(g);
    }

    public string Name => _shape switch
    {
        DepthwiseShape.K3S1 => "dw3x3s1",
        DepthwiseShape.K3S2 => "dw3x3s2",
        DepthwiseShape.K5S1 => "dw5x5s1",
        DepthwiseShape.K5S2 => "dw5x5s2",
        _ => "dw-generic",
    };

    private static DepthwiseShape Choose(in Conv2dGeometry g)
    {
        if (g.OutC != g.InC) return DepthwiseShape.Multiplier;
        bool square = g.KernelH == g.KernelW && g.StrideH == g.StrideW && g.DilationH == 1 && g.DilationW == 1;
        return (square, g.KernelW, g.StrideW) switch
        {
            (true, 3, 1) => DepthwiseShape.K3S1,
            (true, 3, 2) => DepthwiseShape.K3S2,
            (true, 5, 1) => DepthwiseShape.K5S1,
            (true, 5, 2) => DepthwiseShape.K5S2,
            _ => DepthwiseShape.Generic,
        };
    }

    public void Run(int batch, float* input, float* output, float* residual, in Activation activation, Workers workers)
    {
        fixed (float* w = _packed)
        {
            DepthwiseArgs args = new()
            {
                Input = input, Output = output, Residual = residual, Weights = w,
                Bias = w + _g.KernelH * _g.KernelW * _cPad,
                InH = _g.InH, InW = _g.InW, InC = _g.InC, OutC = _g.OutC, Multiplier = _g.OutC / _g.InC,
                OutH = _g.OutH, OutW = _g.OutW, KH = _g.KernelH, KW = _g.KernelW,
                SH = _g.StrideH, SW = _g.StrideW, DH = _g.DilationH, DW = _g.DilationW,
                PadTop = _g.PadTop, PadLeft = _g.PadLeft, CPad = _cPad, Activation = activation, Isa = _isa,
            };
            DepthwiseKernel.Run(ref args, _shape, batch, workers);
        }
    }
}
