using MobileNetSharp.Graph;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels;

/// <summary>
/// Element-wise kernels over flat float spans. Where TensorPrimitives has the function (and the caller did
/// not pin a narrower ISA) it is used as is; the rest goes through one generic vector loop specialized per
/// activation type, the same <see cref="IActivationOp"/> the convolution epilogues use.
/// Inputs and outputs may alias exactly (same start), never partially.
/// </summary>
public static unsafe partial class Elementwise
{
    /// <summary>y = act(x).</summary>
    public static void Apply(Activation act, ReadOnlySpan<float> x, Span<float> y, IsaLevel? isa = null)
    {
        if (y.Length < x.Length) throw new ArgumentException($"Output has {y.Length} floats, input {x.Length}.", nameof(y));
        if (x.IsEmpty) return; // TensorPrimitives.Sigmoid rejects empty spans
        y = y[..x.Length];
        IsaLevel level = Isa.Resolve(isa);
        if (level == Isa.Best)
        {
            switch (act.Kind)
            {
                case ActivationKind.None: x.CopyTo(y); return;
                case ActivationKind.Relu: TensorPrimitives.Max(x, 0f, y); return;
                case ActivationKind.Clip: TensorPrimitives.Clamp(x, act.Alpha, act.Beta, y); return;
                case ActivationKind.Sigmoid: TensorPrimitives.Sigmoid(x, y); return;
                case ActivationKind.Tanh: TensorPrimitives.Tanh(x, y); return;
            }
        }
        fixed (float* px = x, py = y)
        {
            var body = new AffineBody { X = px, Y = py, Length = x.Length, Channels = x.Length, Activation = act };
            KernelDispatch.Run(level, act.Kind, ref body);
        }
    }

    /// <summary>
    /// y[i] = act(x[i] * scale[i % channels] + shift[i % channels]): an un-folded BatchNorm (or any per-channel
    /// affine) over an NHWC tensor whose last axis has <paramref name="channels"/> entries.
    /// </summary>
    public static void ChannelAffine(ReadOnlySpan<float> x, ReadOnlySpan<float> scale, ReadOnlySpan<float> shift, Span<float> y, int channels, Activation act)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        if (x.Length % channels != 0) throw new ArgumentException($"Length {x.Length} is not a multiple of {channels} channels.", nameof(x));
        if (scale.Length < channels || shift.Length < channels) throw new ArgumentException($"Scale and shift need {channels} values.");
        if (y.Length < x.Length) throw new ArgumentException($"Output has {y.Length} floats, input {x.Length}.", nameof(y));
        fixed (float* px = x, py = y, ps = scale, pb = shift)
        {
            var body = new AffineBody { X = px, Y = py, Scale = ps, Shift = pb, Length = x.Length, Channels = channels, Activation = act };
            KernelDispatch.Run(Isa.Best, act.Kind, ref body);
        }
    }

    /// <summary>y = act(x * scale + shift) row by row (rows of Channels); no scale/shift means identity.</summary>
    private struct AffineBody : IKernelBody
    {
        public float* X, Y, Scale, Shift;
        public int Length, Channels;
        public Activation Activation;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke<TS, TV, TA>() where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
        {
            TV alpha = TS.Splat(Activation.Alpha), beta = TS.Splat(Activation.Beta);
            int w = TS.Count;
            for (int start = 0; start < Length; start += Channels)
            {
                float* x = X + start, y = Y + start;
                int i = 0;
                for (; i + w <= Channels; i += w)
                    TS.Store(y + i, TA.Apply<TS, TV>(Affine<TS, TV>(TS.Load(x + i), i, w), alpha, beta));
                if (i < Channels)
                    TS.StorePartial(y + i, TA.Apply<TS, TV>(Affine<TS, TV>(TS.LoadPartial(x + i, Channels - i), i, Channels - i), alpha, beta), Channels - i);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly TV Affine<TS, TV>(TV v, int channel, int lanes) where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            if (Scale == null) return v;
            return lanes == TS.Count
                ? TS.Fma(v, TS.Load(Scale + channel), TS.Load(Shift + channel))
                : TS.Fma(v, TS.LoadPartial(Scale + channel, lanes), TS.LoadPartial(Shift + channel, lanes));
        }
    }
}
