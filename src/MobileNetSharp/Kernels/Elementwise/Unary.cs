using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels;

/// <summary>The element-wise float operators of <see cref="Elementwise.Unary"/>, named after their ONNX operators.</summary>
public enum UnaryKind
{
    Abs, Neg, Sqrt, Exp, Log, Tanh, Reciprocal, Floor, Ceil,
    /// <summary>ONNX Round: half to even.</summary>
    Round,
    Sign, Sin, Cos,
    /// <summary>Error function, |error| ≤ ~2e-7 in float (see <see cref="Elementwise.Erf"/>).</summary>
    Erf,
    /// <summary>ONNX Gelu with approximate="none": 0.5 x (1 + erf(x / √2)).</summary>
    Gelu,
    /// <summary>log(1 + exp(x)), evaluated as max(x, 0) + log(1 + exp(-|x|)) so large |x| does not overflow.</summary>
    Softplus,
    /// <summary>x / (1 + |x|).</summary>
    Softsign,
    /// <summary>x ≥ 0 ? x : alpha x (ONNX default alpha 0.01).</summary>
    LeakyRelu,
    /// <summary>x &gt; 0 ? x : alpha (exp(x) - 1) (ONNX default alpha 1).</summary>
    Elu,
    /// <summary>gamma (x &gt; 0 ? x : alpha (exp(x) - 1)) (ONNX defaults alpha 1.67326319217681884765625,
    /// gamma 1.05070102214813232421875).</summary>
    Selu,
}

public static unsafe partial class Elementwise
{
    /// <summary>
    /// y = op(x) over flat float spans (any layout: the operators are element-wise). x and y may alias exactly.
    /// <paramref name="alpha"/> and <paramref name="gamma"/> are the ONNX attributes of LeakyRelu, Elu and Selu
    /// (the caller applies ONNX defaults; other operators ignore them). Operators TensorPrimitives has run
    /// through it; Erf, Gelu, LeakyRelu, Elu and Selu run through the engine's own vector loop at
    /// <paramref name="isa"/> (null = <see cref="Isa.Best"/>).
    /// Formulas from the ONNX operator specs of the same names (onnx/docs/Operators.md).
    /// </summary>
    public static void Unary(UnaryKind kind, ReadOnlySpan<float> x, Span<float> y, float alpha = 0f, float gamma = 0f, IsaLevel? isa = null)
    {
        if (y.Length < x.Length) throw new ArgumentException($"Unary {kind}: output has {y.Length} floats, input {x.Length}.", nameof(y));
        if (x.IsEmpty) return;
        y = y[..x.Length];
        switch (kind)
        {
            case UnaryKind.Abs: TensorPrimitives.Abs(x, y); return;
            case UnaryKind.Neg: TensorPrimitives.Negate(x, y); return;
            case UnaryKind.Sqrt: TensorPrimitives.Sqrt(x, y); return;
            case UnaryKind.Exp: TensorPrimitives.Exp(x, y); return;
            case UnaryKind.Log: TensorPrimitives.Log(x, y); return;
            case UnaryKind.Tanh: TensorPrimitives.Tanh(x, y); return;
            case UnaryKind.Reciprocal: TensorPrimitives.Reciprocal(x, y); return;
            case UnaryKind.Floor: TensorPrimitives.Floor(x, y); return;
            case UnaryKind.Ceil: TensorPrimitives.Ceiling(x, y); return;
            case UnaryKind.Round: TensorPrimitives.Round(x, MidpointRounding.ToEven, y); return;
            case UnaryKind.Sin: TensorPrimitives.Sin(x, y); return;
            case UnaryKind.Cos: TensorPrimitives.Cos(x, y); return;
            case UnaryKind.Sign:
                for (int i = 0; i < x.Length; i++) { float v = x[i]; y[i] = v > 0 ? 1f : v < 0 ? -1f : v; } // keeps ±0 and NaN
                return;
            case UnaryKind.Softplus: Chunked(kind, x, y); return;
            case UnaryKind.Softsign: Chunked(kind, x, y); return;
        }
        fixed (float* px = x, py = y)
        {
            var body = new UnaryBody { X = px, Y = py, Length = x.Length, Kind = kind, Alpha = alpha, Gamma = gamma };
            KernelDispatch.Run(Isa.Resolve(isa), ref body);
        }
    }

    /// <summary>y = erf(x), the rational approximation erf(x) ≈ x P(x²) / Q(x²) on x clamped to [-4, 4] (beyond it erf
    /// rounds to ±1 in float) with the coefficients of Eigen's <c>generic_fast_erf_float</c> (also XLA's
    /// <c>ErfImpl32</c>); measured |error| ≤ ~2e-7 against a float64 reference. NaN stays NaN.</summary>
    public static void Erf(ReadOnlySpan<float> x, Span<float> y, IsaLevel? isa = null) => Unary(UnaryKind.Erf, x, y, isa: isa);

    /// <summary>Operators composed from several TensorPrimitives calls, a stack chunk at a time so x may alias y.</summary>
    private static void Chunked(UnaryKind kind, ReadOnlySpan<float> x, Span<float> y)
    {
        const int Chunk = 512;
        Span<float> t = stackalloc float[Chunk];
        for (int start = 0; start < x.Length; start += Chunk)
        {
            int n = Math.Min(Chunk, x.Length - start);
            ReadOnlySpan<float> xs = x.Slice(start, n);
            Span<float> ys = y.Slice(start, n), ts = t[..n];
            TensorPrimitives.Abs(xs, ts);
            if (kind == UnaryKind.Softsign)
            {
                TensorPrimitives.Add(ts, 1f, ts);
                TensorPrimitives.Divide(xs, ts, ys);
                continue;
            }
            // Softplus: max(x, 0) + log(1 + exp(-|x|)).
            TensorPrimitives.Negate(ts, ts);
            TensorPrimitives.Exp(ts, ts);
            TensorPrimitives.Add(ts, 1f, ts);
            TensorPrimitives.Log(ts, ts);
            TensorPrimitives.Max(xs, 0f, ys);
            TensorPrimitives.Add(ys, ts, ys);
        }
    }

    private struct UnaryBody : IWidthBody
    {
        public float* X, Y;
        public int Length;
        public UnaryKind Kind;
        public float Alpha, Gamma;

        public readonly void Invoke<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            switch (Kind)
            {
                case UnaryKind.Erf: Loop<TS, TV, ErfOp>(); break;
                case UnaryKind.Gelu: Loop<TS, TV, GeluOp>(); break;
                case UnaryKind.LeakyRelu: Loop<TS, TV, LeakyReluOp>(); break;
                case UnaryKind.Elu: Loop<TS, TV, EluOp>(); break;
                case UnaryKind.Selu: Loop<TS, TV, EluOp>(); break;
                default: throw new ArgumentOutOfRangeException(nameof(Kind), Kind, "Unknown unary operator.");
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void Loop<TS, TV, TO>() where TS : unmanaged, ISimd<TV> where TV : unmanaged where TO : unmanaged, IUnaryOp
        {
            // Selu = gamma * Elu; every other operator has gamma 1 here.
            float gamma = Kind == UnaryKind.Selu ? Gamma : 1f;
            TV alpha = TS.Splat(Alpha), g = TS.Splat(gamma);
            int w = TS.Count, n = Length, i = 0;
            for (; i + 2 * w <= n; i += 2 * w)
            {
                TS.Store(Y + i, TO.Apply<TS, TV>(TS.Load(X + i), alpha, g));
                TS.Store(Y + i + w, TO.Apply<TS, TV>(TS.Load(X + i + w), alpha, g));
            }
            for (; i < n; i += w)
            {
                int lanes = Math.Min(w, n - i);
                TS.StorePartial(Y + i, TO.Apply<TS, TV>(TS.LoadPartial(X + i, lanes), alpha, g), lanes);
            }
        }
    }

    private interface IUnaryOp
    {
        static abstract TV Apply<TS, TV>(TV x, TV alpha, TV gamma) where TS : unmanaged, ISimd<TV> where TV : unmanaged;
    }

    private readonly struct ErfOp : IUnaryOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Apply<TS, TV>(TV x, TV alpha, TV gamma) where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            // Max(-4, x) then Min(4, .): with the constant first, the native (x86 maxps/minps) forms return the second
            // operand when either is NaN, so NaN propagates.
            TV c = TS.Min(TS.Splat(4f), TS.Max(TS.Splat(-4f), x));
            TV x2 = TS.Mul(c, c);
            TV p = TS.Fma(x2, TS.Splat(-2.72614225801306e-10f), TS.Splat(2.77068142495902e-08f));
            p = TS.Fma(x2, p, TS.Splat(-2.10102402082508e-06f));
            p = TS.Fma(x2, p, TS.Splat(-5.69250639462346e-05f));
            p = TS.Fma(x2, p, TS.Splat(-7.34990630326855e-04f));
            p = TS.Fma(x2, p, TS.Splat(-2.95459980854025e-03f));
            p = TS.Fma(x2, p, TS.Splat(-1.60960333262415e-02f));
            TV q = TS.Fma(x2, TS.Splat(-1.45660718464996e-05f), TS.Splat(-2.13374055278905e-04f));
            q = TS.Fma(x2, q, TS.Splat(-1.68282697438203e-03f));
            q = TS.Fma(x2, q, TS.Splat(-7.37332916720468e-03f));
            q = TS.Fma(x2, q, TS.Splat(-1.42647390514189e-02f));
            return TS.Div(TS.Mul(c, p), q);
        }
    }

    private readonly struct GeluOp : IUnaryOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Apply<TS, TV>(TV x, TV alpha, TV gamma) where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            TV half = TS.Splat(0.5f);
            TV e = ErfOp.Apply<TS, TV>(TS.Mul(x, TS.Splat(0.70710678118654752f)), alpha, gamma);
            return TS.Mul(TS.Mul(half, x), TS.Add(TS.Splat(1f), e));
        }
    }

    private readonly struct LeakyReluOp : IUnaryOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Apply<TS, TV>(TV x, TV alpha, TV gamma) where TS : unmanaged, ISimd<TV> where TV : unmanaged =>
            TS.Fma(alpha, TS.Min(TS.Zero, x), TS.Max(TS.Zero, x)); // zero first: NaN propagates through the native forms
    }

    private readonly struct EluOp : IUnaryOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Apply<TS, TV>(TV x, TV alpha, TV gamma) where TS : unmanaged, ISimd<TV> where TV : unmanaged =>
            // max(x, 0) + alpha (exp(min(x, 0)) - 1): the exp term is 0 for x > 0, so no select is needed.
            TS.Mul(gamma, TS.Fma(alpha, TS.Sub(TS.Exp(TS.Min(TS.Zero, x)), TS.Splat(1f)), TS.Max(TS.Zero, x)));
    }
}
