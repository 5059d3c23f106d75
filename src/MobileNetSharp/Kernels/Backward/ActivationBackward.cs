using System.Runtime.CompilerServices;
using MobileNetSharp.Graph;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels;

/// <summary>
/// dx = dy · f'(x) for every <see cref="ActivationKind"/>, element-wise, written once per activation as an
/// operator struct and specialized per ISA like the forward epilogues (<see cref="IActivationOp"/>).
/// <para>
/// At the kinks (ReLU at 0, Clip at its bounds, the ends of HardSigmoid's and HardSwish's linear piece) the
/// derivative is that of the flat side, as PyTorch takes it for ReLU, ReLU6/Hardtanh and Hardsigmoid.
/// <see cref="FromInput"/> takes the forward input; <see cref="FromOutput"/> takes the forward output, which
/// determines the derivative for ReLU, Clip, HardSigmoid, Sigmoid and Tanh (so a training graph need not keep
/// the input alive), and throws for the others. Large tensors are split over the workers in
/// disjoint ranges; dx may alias dy.
/// </para>
/// </summary>
public static unsafe class ActivationBackward
{
    private const int ParallelThreshold = 1 << 16;
    private const int Chunk = 1 << 14;

    /// <summary>dx = dy · f'(x) from the forward input x.</summary>
    public static void FromInput(in Activation act, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx, Workers? workers = null, IsaLevel? isa = null)
        => Run(act, fromOutput: false, x, dy, dx, workers, isa);

    /// <summary>dx = dy · f'(·) from the forward output y = f(x), for ReLU, Clip, HardSigmoid, Sigmoid and Tanh.</summary>
    public static void FromOutput(in Activation act, ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, Workers? workers = null, IsaLevel? isa = null)
    {
        if (!OutputDetermines(act.Kind))
            throw new ArgumentException($"The derivative of {act} is not a function of its output; use FromInput.");
        Run(act, fromOutput: true, y, dy, dx, workers, isa);
    }

    /// <summary>Whether <see cref="FromOutput"/> serves this activation.</summary>
    public static bool OutputDetermines(ActivationKind kind) => kind is ActivationKind.None or ActivationKind.Relu or ActivationKind.Clip
        or ActivationKind.HardSigmoid or ActivationKind.Sigmoid or ActivationKind.Tanh;

    private struct Args
    {
        public float* X, Dy, Dx;
        public long Length;
        public float Alpha, Beta;
        public ActivationKind Kind;
        public bool FromOutput;
        public IsaLevel Isa;
    }

    private static void Run(in Activation act, bool fromOutput, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx, Workers? workers, IsaLevel? isa)
    {
        if (x.Length != dy.Length || dx.Length != dy.Length)
            throw new ArgumentException($"Activation backward: x ({x.Length}), dy ({dy.Length}) and dx ({dx.Length}) must have the same length.");
        if (dy.IsEmpty) return;
        workers ??= Workers.Single;
        fixed (float* px = x, pdy = dy, pdx = dx)
        {
            var args = new Args
            {
                X = px, Dy = pdy, Dx = pdx, Length = dy.Length, Alpha = act.Alpha, Beta = act.Beta, Kind = act.Kind,
                FromOutput = fromOutput, Isa = Isa.Resolve(isa),
            };
            int chunks = workers.Count == 1 || dy.Length < ParallelThreshold ? 1 : (int)((dy.Length + Chunk - 1) / Chunk);
            if (chunks == 1) Task(&args, -1);
            else workers.For(chunks, &Task, &args);
        }
    }

    private static void Task(void* context, int index)
    {
        var a = (Args*)context;
        long start = index < 0 ? 0 : (long)index * Chunk, end = index < 0 ? a->Length : Math.Min(a->Length, start + Chunk);
        var body = new Body { A = a, Start = start, End = end };
        KernelDispatch.Run(a->Isa, ref body);
    }

    private struct Body : IWidthBody
    {
        public Args* A;
        public long Start, End;

        public readonly void Invoke<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            switch (A->Kind)
            {
                case ActivationKind.None: Loop<TS, TV, IdentityGrad>(); break;
                case ActivationKind.Relu: Loop<TS, TV, ReluGrad>(); break;
                case ActivationKind.Clip: Loop<TS, TV, ClipGrad>(); break;
                case ActivationKind.HardSigmoid: if (A->FromOutput) Loop<TS, TV, HardSigmoidGradFromOutput>(); else Loop<TS, TV, HardSigmoidGrad>(); break;
                case ActivationKind.HardSwish: Loop<TS, TV, HardSwishGrad>(); break;
                case ActivationKind.Sigmoid: if (A->FromOutput) Loop<TS, TV, SigmoidGradFromOutput>(); else Loop<TS, TV, SigmoidGrad>(); break;
                case ActivationKind.Silu: Loop<TS, TV, SiluGrad>(); break;
                case ActivationKind.Tanh: if (A->FromOutput) Loop<TS, TV, TanhGradFromOutput>(); else Loop<TS, TV, TanhGrad>(); break;
                case ActivationKind.LeakyRelu: Loop<TS, TV, LeakyReluGrad>(); break;
                default: throw new ArgumentOutOfRangeException("activation", A->Kind, "Unknown activation.");
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void Loop<TS, TV, TG>() where TS : unmanaged, ISimd<TV> where TV : unmanaged where TG : unmanaged, IActivationGrad
        {
            TV alpha = TS.Splat(A->Alpha), beta = TS.Splat(A->Beta);
            float* x = A->X, dy = A->Dy, dx = A->Dx;
            long i = Start;
            for (; i + TS.Count <= End; i += TS.Count)
                TS.Store(dx + i, TG.Grad<TS, TV>(TS.Load(x + i), TS.Load(dy + i), alpha, beta));
            if (i < End)
            {
                int n = (int)(End - i);
                TS.StorePartial(dx + i, TG.Grad<TS, TV>(TS.LoadPartial(x + i, n), TS.LoadPartial(dy + i, n), alpha, beta), n);
            }
        }
    }
}

/// <summary>dy · f'(v), v the forward input (or output, for the *FromOutput ops).</summary>
internal interface IActivationGrad
{
    static abstract TV Grad<TS, TV>(TV v, TV dy, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged;
}

internal readonly struct IdentityGrad : IActivationGrad
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Grad<TS, TV>(TV v, TV dy, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged => dy;
}

/// <summary>x &gt; 0 (or y &gt; 0): dy, else 0.</summary>
internal readonly struct ReluGrad : IActivationGrad
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Grad<TS, TV>(TV v, TV dy, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged =>
        TS.GreaterSelect(v, TS.Zero, dy, TS.Zero);
}

/// <summary>min &lt; v &lt; max: dy, else 0 (the output lies strictly inside exactly when the input does).</summary>
internal readonly struct ClipGrad : IActivationGrad
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Grad<TS, TV>(TV v, TV dy, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged =>
        TS.GreaterSelect(v, alpha, TS.GreaterSelect(beta, v, dy, TS.Zero), TS.Zero);
}

/// <summary>0 &lt; αx+β &lt; 1: α·dy, else 0.</summary>
internal readonly struct HardSigmoidGrad : IActivationGrad
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Grad<TS, TV>(TV v, TV dy, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged
    {
        TV t = TS.Fma(alpha, v, beta);
        return TS.GreaterSelect(t, TS.Zero, TS.GreaterSelect(TS.Splat(1f), t, TS.Mul(alpha, dy), TS.Zero), TS.Zero);
    }
}

internal readonly struct HardSigmoidGradFromOutput : IActivationGrad
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Grad<TS, TV>(TV v, TV dy, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged =>
        TS.GreaterSelect(v, TS.Zero, TS.GreaterSelect(TS.Splat(1f), v, TS.Mul(alpha, dy), TS.Zero), TS.Zero);
}

/// <summary>d/dx x·hs(x) = hs(x) + x·α·[0 &lt; αx+β &lt; 1].</summary>
internal readonly struct HardSwishGrad : IActivationGrad
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Grad<TS, TV>(TV v, TV dy, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged
    {
        TV one = TS.Splat(1f);
        TV t = TS.Fma(alpha, v, beta);
        TV hs = TS.Min(TS.Max(t, TS.Zero), one);
        TV slope = TS.GreaterSelect(t, TS.Zero, TS.GreaterSelect(one, t, TS.Mul(alpha, v), TS.Zero), TS.Zero);
        return TS.Mul(dy, TS.Add(hs, slope));
    }
}

internal readonly struct SigmoidGrad : IActivationGrad
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Grad<TS, TV>(TV v, TV dy, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged =>
        SigmoidGradFromOutput.Grad<TS, TV>(SigmoidOp.Apply<TS, TV>(v, alpha, beta), dy, alpha, beta);
}

/// <summary>y(1 - y)·dy.</summary>
internal readonly struct SigmoidGradFromOutput : IActivationGrad
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Grad<TS, TV>(TV v, TV dy, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged =>
        TS.Mul(dy, TS.Mul(v, TS.Sub(TS.Splat(1f), v)));
}

/// <summary>d/dx x·σ(x) = σ(x)·(1 + x·(1 - σ(x))).</summary>
internal readonly struct SiluGrad : IActivationGrad
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Grad<TS, TV>(TV v, TV dy, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged
    {
        TV one = TS.Splat(1f);
        TV s = SigmoidOp.Apply<TS, TV>(v, alpha, beta);
        return TS.Mul(dy, TS.Mul(s, TS.Fma(v, TS.Sub(one, s), one)));
    }
}

internal readonly struct TanhGrad : IActivationGrad
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Grad<TS, TV>(TV v, TV dy, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged =>
        TanhGradFromOutput.Grad<TS, TV>(TanhOp.Apply<TS, TV>(v, alpha, beta), dy, alpha, beta);
}

/// <summary>(1 - y²)·dy.</summary>
internal readonly struct TanhGradFromOutput : IActivationGrad
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Grad<TS, TV>(TV v, TV dy, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged =>
        TS.Mul(dy, TS.Sub(TS.Splat(1f), TS.Mul(v, v)));
}

/// <summary>x ≥ 0: dy, else α·dy (the forward takes x ≥ 0 as the identity side).</summary>
internal readonly struct LeakyReluGrad : IActivationGrad
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Grad<TS, TV>(TV v, TV dy, TV alpha, TV beta) where TS : unmanaged, ISimd<TV> where TV : unmanaged =>
        TS.GreaterSelect(TS.Zero, v, TS.Mul(alpha, dy), dy);
}
