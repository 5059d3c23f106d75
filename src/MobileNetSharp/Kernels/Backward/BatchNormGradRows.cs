using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels;

/// <summary>
/// The input gradient of a training-mode batch norm, computed where it is read. The layer below the batch norm (in
/// MobileNetV2 the expanding 1x1 convolution) reads dx [rows, C] once, block by block; instead of the batch norm
/// writing dx to memory and that layer reading it back, the layer asks for each block of rows and gets it in its own
/// cache-resident scratch, computed from dy and x with the coefficients of
/// <see cref="BatchNormTraining.BackwardCoefficients"/>. A tensor's write and one of its reads are saved; the bits are
/// those <see cref="BatchNormTraining.Backward(ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, Span{float}, Span{float}, int, int, Workers?)"/>
/// would write (the same kernel body).
/// </summary>
internal unsafe struct BatchNormGradRows
{
    /// <summary>dy and x [rows, C] (channels-last), as the batch norm's backward reads them. Dy is null when dy is a product
    /// (<see cref="DyLeft"/>).</summary>
    public float* Dy, X;
    /// <summary>Null, or dy = DyLeft [rows, DyInner] · DyRight [DyInner, C], computed where it is read instead of read from
    /// memory: the input gradient of a 1x1 convolution with a small weight (MobileNetV2's projection: dz · W), so that
    /// convolution's backward never writes it. The bits are those of the convolution's dX (the same GEMM per row).</summary>
    public float* DyLeft, DyRight;
    public int DyInner;
    /// <summary>The batch mean [C] and the coefficients [3, C] (a, b, k) of dx = a·dy' + b·(x - mean) + k.</summary>
    public float* Mean, Coefficients;
    /// <summary>Null without a fused clamp; otherwise the forward's scale [C] and beta [C], to recompute the clamp's mask.</summary>
    public float* MaskScale, MaskShift;
    /// <summary>The fused clamp's bounds (its mask keeps dy where lo &lt; z &lt; hi).</summary>
    public float Lo, Hi;
    public int Channels;

    /// <summary>Code that runs with the rows bound to a run's buffers.</summary>
    public delegate void Body(in BatchNormGradRows rows);

    /// <summary>dx rows [row0, row0 + rows) into <paramref name="destination"/> [rows, C].</summary>
    public readonly void Write(long row0, int rows, float* destination, IsaLevel isa)
    {
        float* dy = Dy + row0 * Channels;
        if (DyLeft != null)
        {
            // dy's rows first, into the destination, where the affine map below reads them and writes dx over them.
            Gemm.GemmDriver.RunUnpacked(isa, rows, Channels, DyInner, DyLeft + row0 * DyInner, DyInner, DyRight, Channels, destination, Channels, Workers.Single);
            dy = destination;
        }
        BatchNormTraining.BackwardRows(this, dy, row0, rows, destination, isa);
    }
}

/// <summary>
/// The reductions of a training-mode batch norm's backward (Σ dy' and Σ dy'·(x - mean), dy' masked by the fused clamp),
/// gathered by the kernel that computes dy, piece by piece while each piece is in its cache: the batch norm's backward
/// then reads neither dy nor x for them. Each piece is added into one of a fixed number of double partials [groups][2][C]
/// (chosen by the producer from the shape alone), combined in group order by
/// <see cref="BatchNormTraining.BackwardCoefficients(ReadOnlySpan{double}, int, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, Span{float}, int, int, Span{float})"/>.
/// </summary>
internal unsafe struct BatchNormGradSums
{
    /// <summary>The batch norm's input x [rows, C] and batch mean [C].</summary>
    public float* X, Mean;
    /// <summary>Null without a fused clamp; otherwise the forward's scale [C] and beta [C].</summary>
    public float* MaskScale, MaskShift;
    public float Lo, Hi;
    public int Channels;
    /// <summary>[groups][2][C] doubles, zeroed before the producer runs.</summary>
    public double* Partials;

    /// <summary>Code that runs with the sums bound to a run's buffers.</summary>
    public delegate void Body(in BatchNormGradSums sums);

    /// <summary>Adds rows [row0, row0 + rows) of dy (at <paramref name="dy"/>, row row0 first) into partial <paramref name="group"/>.</summary>
    public readonly void Add(long row0, int rows, float* dy, int group, IsaLevel isa) =>
        ChannelReduction.AccumulateCentred(isa, X + row0 * Channels, dy, rows, Channels, Mean, MaskScale, MaskShift, Lo, Hi,
            Partials + (long)group * 2 * Channels);

    /// <summary>Whether <paramref name="y"/> is the output of this same batch norm (its input, mean, scale, beta and clamp),
    /// with a clamp: then <see cref="AddNormalizing"/> writes y while it gathers, from one read of x.</summary>
    public readonly bool Normalizes(in BatchNormApplyRows y) =>
        MaskScale != null && y.X == X && y.Mean == Mean && y.Scale == MaskScale && y.Beta == MaskShift && y.Lo == Lo && y.Hi == Hi && y.Channels == Channels;

    /// <summary><see cref="Add"/>, also writing the batch norm's output rows [row0, row0 + rows) to <paramref name="y"/>
    /// [rows, C] (the bits of <see cref="BatchNormApplyRows.Write"/>); needs <see cref="Normalizes"/>.</summary>
    public readonly void AddNormalizing(long row0, int rows, float* dy, int group, float* y, IsaLevel isa) =>
        ChannelReduction.AccumulateCentredNormalizing(isa, X + row0 * Channels, dy, rows, Channels, Mean, MaskScale, MaskShift, Lo, Hi,
            Partials + (long)group * 2 * Channels, y);
}

/// <summary>
/// A training-mode batch norm's output (y = clamp(scale·(x - mean) + beta)) computed where it is read: the depthwise
/// convolution after the batch norm normalizes each image of x into its own cache-resident scratch, in the forward and
/// again in the backward, so y is never written to memory. The bits are those the batch norm's forward writes (the same
/// kernel body).
/// </summary>
internal unsafe struct BatchNormApplyRows
{
    /// <summary>x [rows, C] (channels-last), the batch norm's input.</summary>
    public float* X;
    /// <summary>The batch mean [C], the forward's scale = gamma·invStd [C] and beta [C].</summary>
    public float* Mean, Scale, Beta;
    /// <summary>The fused clamp's bounds (±infinity without one).</summary>
    public float Lo, Hi;
    public int Channels;

    /// <summary>Code that runs with the rows bound to a run's buffers.</summary>
    public delegate void Body(in BatchNormApplyRows rows);

    /// <summary>y rows [row0, row0 + rows) into <paramref name="destination"/> [rows, C].</summary>
    public readonly void Write(long row0, int rows, float* destination, IsaLevel isa) => BatchNormTraining.ForwardRows(this, row0, rows, destination, isa);
}

public static unsafe partial class BatchNormTraining
{
    /// <summary>Rows of y from <see cref="BatchNormApplyRows"/> (one thread, the caller's).</summary>
    internal static void ForwardRows(in BatchNormApplyRows a, long row0, int rows, float* destination, IsaLevel isa)
    {
        int c = a.Channels;
        bool clamp = !float.IsNegativeInfinity(a.Lo) || !float.IsPositiveInfinity(a.Hi);
        var args = new AffineArgs
        {
            U = null, V = a.X + row0 * c, Out = destination, P = null, Q = a.Scale, M = a.Mean, R = a.Beta, Rows = rows, Channels = c, Blocks = 1,
            Isa = isa, Lo = a.Lo, Hi = a.Hi, Clamp = clamp,
        };
        var body = new AffineBody { A = &args, Row0 = 0, Row1 = rows };
        KernelDispatch.Run(isa, ref body);
    }

    /// <summary>Rows of dx from <see cref="BatchNormGradRows"/> and dy's rows at <paramref name="dy"/> (which may be the
    /// destination: each element is read before it is written), on the caller's thread.</summary>
    internal static void BackwardRows(in BatchNormGradRows g, float* dy, long row0, int rows, float* destination, IsaLevel isa)
    {
        int c = g.Channels;
        var args = new AffineArgs
        {
            U = dy, V = g.X + row0 * c, Out = destination, P = g.Coefficients, Q = g.Coefficients + c, M = g.Mean,
            R = g.Coefficients + 2 * c, Rows = rows, Channels = c, Blocks = 1, Isa = isa, Lo = g.Lo, Hi = g.Hi,
            MaskScale = g.MaskScale, MaskShift = g.MaskShift,
        };
        var body = new AffineBody { A = &args, Row0 = 0, Row1 = rows };
        KernelDispatch.Run(isa, ref body);
    }
}
