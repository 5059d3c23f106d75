using MobileNetSharp.Graph;
using MobileNetSharp.Kernels.Gemm;

namespace MobileNetSharp.Kernels;

/// <summary>
/// y = act(x * W^T + bias) for x [rows, inFeatures] and W [outFeatures, inFeatures] (ONNX Gemm with
/// transB=1, a classifier head). W is packed once into GEMM column panels; Run allocates nothing.
/// </summary>
public sealed unsafe class FullyConnectedOperator
{
    private readonly PackedB _weights;
    private readonly IsaLevel _isa;
    private readonly Activation _activation;

    public FullyConnectedOperator(int inFeatures, int outFeatures, ReadOnlySpan<float> weights, ReadOnlySpan<float> bias, Activation activation, IsaLevel? isa = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inFeatures, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(outFeatures, 1);
        if (weights.Length != (long)inFeatures * outFeatures)
            throw new ArgumentException($"Expected {(long)inFeatures * outFeatures} weights [out, in], got {weights.Length}.", nameof(weights));
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        _isa = Isa.Resolve(isa);
        _activation = activation.ForKernels();
        _weights = new PackedB(weights, inFeatures, outFeatures, 1, inFeatures, bias, Isa.Width(_isa));
    }

    public int InFeatures { get; }
    public int OutFeatures { get; }

    public void Run(int rows, ReadOnlySpan<float> input, Span<float> output, Workers workers)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 0);
        if (input.Length < (long)rows * InFeatures) throw new ArgumentException($"Input has {input.Length} floats, need {(long)rows * InFeatures}.", nameof(input));
        if (output.Length < (long)rows * OutFeatures) throw new ArgumentException($"Output has {output.Length} floats, need {(long)rows * OutFeatures}.", nameof(output));
        ArgumentNullException.ThrowIfNull(workers);
        if (rows == 0) return;
        fixed (float* x = input, y = output)
        {
            // A handful of rows: stream the weights once (GEMV) instead of a 6-row GEMM tile per panel.
            if (rows <= Gemv.MaxRows) Gemv.Run(_isa, _activation, rows, x, InFeatures, _weights, y, OutFeatures, workers);
            else GemmDriver.RunPacked(_isa, _activation, rows, x, InFeatures, _weights, y, OutFeatures, null, 0, workers);
        }
    }

    /// <summary>
    /// For the JIT warm-up (Runtime.KernelWarmup): a key naming the compiled code a run of <paramref name="rows"/> rows
    /// takes (GEMV or GEMM, activation, ISA), and an action that runs that code once on a miniature (zero weights, at
    /// most 24 input features and three vector widths of outputs).
    /// </summary>
    internal (string Key, Action Run) Miniature(int rows)
    {
        bool gemv = rows <= Gemv.MaxRows;
        int m = gemv ? Math.Max(rows, 1) : Gemv.MaxRows + 8, k = Math.Min(InFeatures, 24);
        int n = Math.Min(OutFeatures, Math.Max(24, 3 * Isa.Width(_isa))); // a full GEMM panel and a one-vector tail
        return ($"fc|{(gemv ? "gemv" : "gemm")}|{_activation.Kind}|{_isa}", () =>
            new FullyConnectedOperator(k, n, new float[k * n], [], _activation, _isa).Run(m, new float[m * k], new float[m * n], Workers.Single));
    }
}
