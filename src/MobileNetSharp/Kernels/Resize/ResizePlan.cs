using System.Runtime.CompilerServices;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels;

/// <summary>
/// ONNX Resize (opset 10-19) and Upsample over a row-major float tensor of any rank ≤ 8, compiled once from one
/// <see cref="ResizeAxis"/> table per axis and run many times without allocating.
/// <para>
/// Layouts: the plan works on physical axes, so NCHW x [N, C, H, W] with tables (identity, identity, H, W) and the
/// engine's NHWC [N, H, W, C] with tables (identity, H, W, identity) are both plain cases; pass the physical shape
/// and the tables in physical order. Interpolation is separable (the ONNX reference interpolates axis by axis), so
/// each output value is Σ over the tap combinations of the product of the per-axis weights.
/// </para>
/// <para>
/// Execution: trailing identity axes form a contiguous run of <c>Inner</c> elements (NHWC: the channels); the last
/// resized axis is the "column" axis and every other axis is a "line" axis. Per output line the tap combinations of
/// the line axes (offset, weight product; zero weights dropped) are enumerated once, then each column is either a
/// channel run computed with whole vectors (Σ weight · input run, FMA at the chosen ISA; nearest copies the run), or
/// — when nothing trails the column axis (NCHW) — one scalar per column gathered from the input rows. Lines are
/// split over <see cref="Workers"/>. Samples outside the input (tf_crop_and_resize) take the extrapolation value.
/// </para>
/// </summary>
public sealed unsafe class ResizePlan
{
    private const int MaxRank = 8;
    /// <summary>Most tap combinations a line may have (4 cubic line axes: 4³ = 64 is far below it).</summary>
    private const int MaxCombinations = 256;

    private readonly int _rank, _k, _inner, _lines, _columns;
    private readonly int[] _outDims;
    // Per axis d < _k, packed: taps, start into the tables, whether any index is outside.
    private readonly int[] _taps, _start;
    // Pinned tables: input offsets (index · stride), weights, outside flags (one per output index of each axis).
    private readonly int[] _offset;
    private readonly float[] _weight;
    private readonly byte[] _outside;
    private readonly int[] _outsideStart;
    private readonly bool _nearest;

    public ResizePlan(ReadOnlySpan<int> inputShape, IReadOnlyList<ResizeAxis> axes, float extrapolationValue = 0f)
    {
        _rank = inputShape.Length;
        if (_rank > MaxRank || axes.Count != _rank) throw new ArgumentException($"Resize: rank {_rank} (≤ {MaxRank}) needs one table per axis, got {axes.Count}.");
        InputShape = inputShape.ToArray();
        OutputShape = new int[_rank];
        long inCount = 1, outCount = 1;
        for (int d = 0; d < _rank; d++)
        {
            if (axes[d].InSize != inputShape[d]) throw new ArgumentException($"Resize: table {d} is for length {axes[d].InSize}, the input has {inputShape[d]}.");
            OutputShape[d] = axes[d].OutSize;
            inCount *= inputShape[d];
            outCount *= OutputShape[d];
        }
        if (inCount > int.MaxValue || outCount > int.MaxValue) throw new ArgumentException($"Resize: {inCount} → {outCount} elements exceed a span.");
        ExtrapolationValue = extrapolationValue;
        _outDims = OutputShape;
        InputLength = inCount;
        OutputLength = outCount;

        // Trailing identity axes become the contiguous inner run.
        _k = _rank;
        _inner = 1;
        while (_k > 0 && axes[_k - 1].IsIdentity) _inner *= inputShape[--_k];
        _columns = _k > 0 ? OutputShape[_k - 1] : 1;
        long lines = 1;
        for (int d = 0; d < _k - 1; d++) lines *= OutputShape[d];
        _lines = (int)lines;

        _taps = new int[_k];
        _start = new int[_k];
        _outsideStart = new int[_k];
        long combos = 1, table = 0, outsideTotal = 0;
        _nearest = true;
        for (int d = 0; d < _k; d++)
        {
            _taps[d] = axes[d].Taps;
            _start[d] = (int)table;
            table += (long)axes[d].OutSize * axes[d].Taps;
            _outsideStart[d] = (int)outsideTotal;
            outsideTotal += axes[d].OutSize;
            if (d < _k - 1) combos *= axes[d].Taps;
            _nearest &= axes[d].Taps == 1;
        }
        if (combos > MaxCombinations) throw new ArgumentException($"Resize: {combos} tap combinations per line (more than {MaxCombinations}); resize fewer axes at once.");
        _offset = GC.AllocateArray<int>((int)Math.Max(1, table), pinned: true);
        _weight = GC.AllocateArray<float>((int)Math.Max(1, table), pinned: true);
        _outside = GC.AllocateArray<byte>((int)Math.Max(1, outsideTotal), pinned: true);
        long stride = _inner;
        for (int d = _k - 1; d >= 0; d--)
        {
            ResizeAxis a = axes[d];
            for (int i = 0; i < a.Index.Length; i++)
            {
                _offset[_start[d] + i] = (int)(a.Index[i] * stride);
                _weight[_start[d] + i] = a.Weight[i];
                if (a.Weight[i] != 1f) _nearest = false;
            }
            for (int o = 0; o < a.OutSize; o++) _outside[_outsideStart[d] + o] = a.IsOutside(o) ? (byte)1 : (byte)0;
            stride *= inputShape[d];
        }
    }

    /// <summary>
    /// Builds the tables from ONNX Resize inputs. <paramref name="scales"/> are the model's scales (one per axis) or
    /// empty when it gives sizes; <paramref name="outputShape"/> is the output shape either way (from sizes, or
    /// floor(in · scale), see <see cref="ResizeAxis.OutputSize"/>). <paramref name="roi"/> is [starts..., ends...]
    /// (tf_crop_and_resize only; empty = whole input). Axes whose table is the identity are copied.
    /// </summary>
    public static ResizePlan Create(ReadOnlySpan<int> inputShape, ReadOnlySpan<int> outputShape, ReadOnlySpan<double> scales,
        ResizeMode mode, CoordinateTransform transform, NearestRounding rounding = NearestRounding.RoundPreferFloor,
        float cubicCoeffA = -0.75f, bool excludeOutside = false, ReadOnlySpan<double> roi = default, float extrapolationValue = 0f)
    {
        int rank = inputShape.Length;
        if (outputShape.Length != rank || (!scales.IsEmpty && scales.Length != rank) || (!roi.IsEmpty && roi.Length != 2 * rank))
            throw new ArgumentException($"Resize: rank {rank} needs {rank} output sizes (got {outputShape.Length}), {rank} scales or none (got {scales.Length}), {2 * rank} roi values or none (got {roi.Length}).");
        long outCount = 1;
        foreach (int d in outputShape)
        {
            if (d < 0) throw new ArgumentException("Resize: negative output size.");
            outCount *= d;
            if (outCount > int.MaxValue) throw new ArgumentException($"Resize: output shape [{string.Join(",", outputShape.ToArray())}] is too large.");
        }
        var axes = new ResizeAxis[rank];
        for (int d = 0; d < rank; d++)
        {
            double? scale = scales.IsEmpty ? null : scales[d];
            // No shortcut for unscaled axes: their table is detected as the identity when it is one (every transform but
            // tf_half_pixel_for_nn with ceil rounding, which the ONNX reference shifts by one).
            axes[d] = ResizeAxis.Create(inputShape[d], outputShape[d], scale, mode, transform, rounding, cubicCoeffA, excludeOutside,
                roi.IsEmpty ? 0 : roi[d], roi.IsEmpty ? 1 : roi[rank + d]);
        }
        return new ResizePlan(inputShape, axes, extrapolationValue);
    }

    public int[] InputShape { get; }
    public int[] OutputShape { get; }
    public long InputLength { get; }
    public long OutputLength { get; }
    public float ExtrapolationValue { get; }

    /// <summary>y = resize(x). x must not overlap y. Allocates nothing.</summary>
    public void Run(ReadOnlySpan<float> x, Span<float> y, Workers workers, IsaLevel? isa = null)
    {
        if (x.Length < InputLength || y.Length < OutputLength) throw new ArgumentException($"Resize: buffers ({x.Length}, {y.Length}) smaller than ({InputLength}, {OutputLength}).");
        if (OutputLength == 0) return;
        if (_k == 0) { x[..(int)InputLength].CopyTo(y); return; }
        fixed (float* px = x, py = y, pw = _weight)
        fixed (int* po = _offset, pt = _taps, ps = _start, pos = _outsideStart, pd = _outDims)
        fixed (byte* pout = _outside)
        {
            Args args = new()
            {
                X = px, Y = py, Weight = pw, Offset = po, Taps = pt, Start = ps, OutsideStart = pos, Outside = pout, OutDims = pd,
                K = _k, Inner = _inner, Columns = _columns, Lines = _lines, Nearest = _nearest, Extrapolation = ExtrapolationValue,
                Isa = Isa.Resolve(isa),
            };
            args.Chunks = workers.Count == 1 || OutputLength < (1 << 14) ? 1 : Math.Min(_lines, workers.Count * 4);
            workers.For(args.Chunks, &Task, &args);
        }
    }

    private struct Args
    {
        public float* X, Y, Weight;
        public int* Offset, Taps, Start, OutsideStart, OutDims;
        public byte* Outside;
        public int K, Inner, Columns, Lines, Chunks;
        public bool Nearest;
        public float Extrapolation;
        public IsaLevel Isa;
    }

    private static void Task(void* context, int index)
    {
        Args* a = (Args*)context;
        var body = new Body { A = a };
        (body.Line0, body.Line1) = Workers.Split(a->Lines, a->Chunks, index);
        KernelDispatch.Run(a->Isa, ref body);
    }

    private struct Body : IWidthBody
    {
        public Args* A;
        public int Line0, Line1;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke<TS, TV>() where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            Args* a = A;
            int k = a->K, inner = a->Inner, columns = a->Columns, last = k - 1;
            int* index = stackalloc int[MaxRank];
            int* comboOffset = stackalloc int[MaxCombinations];
            float* comboWeight = stackalloc float[MaxCombinations];
            // Multi-index of the first line over the line axes 0..k-2.
            int rest = Line0;
            for (int d = last - 1; d >= 0; d--) { index[d] = rest % a->OutDims[d]; rest /= a->OutDims[d]; }

            int lastTaps = a->Taps[last];
            int* colOffset = a->Offset + a->Start[last];
            float* colWeight = a->Weight + a->Start[last];
            byte* colOutside = a->Outside + a->OutsideStart[last];
            for (int line = Line0; line < Line1; line++)
            {
                float* y = a->Y + (long)line * columns * inner;
                // Tap combinations of the line axes; any sample outside the input fills the line.
                int combos = 1;
                comboOffset[0] = 0;
                comboWeight[0] = 1f;
                bool outside = false;
                for (int d = 0; d < last; d++)
                {
                    int o = index[d], taps = a->Taps[d];
                    if (a->Outside[a->OutsideStart[d] + o] != 0) { outside = true; break; }
                    int* offs = a->Offset + a->Start[d] + o * taps;
                    float* ws = a->Weight + a->Start[d] + o * taps;
                    if (taps == 1)
                    {
                        for (int c = 0; c < combos; c++) { comboOffset[c] += offs[0]; comboWeight[c] *= ws[0]; }
                        continue;
                    }
                    int n = 0;
                    for (int c = 0; c < combos; c++)
                        for (int t = 0; t < taps; t++)
                            if (ws[t] != 0f) n++;
                    // Expand in place from the back so sources are read before they are overwritten.
                    int dst = n;
                    for (int c = combos - 1; c >= 0; c--)
                    {
                        int baseOffset = comboOffset[c];
                        float baseWeight = comboWeight[c];
                        for (int t = taps - 1; t >= 0; t--)
                        {
                            if (ws[t] == 0f) continue;
                            dst--;
                            comboOffset[dst] = baseOffset + offs[t];
                            comboWeight[dst] = baseWeight * ws[t];
                        }
                    }
                    combos = n;
                }

                if (outside || combos == 0)
                {
                    new Span<float>(y, columns * inner).Fill(outside ? a->Extrapolation : 0f);
                }
                else if (inner == 1)
                {
                    Gather(a, y, comboOffset, comboWeight, combos, colOffset, colWeight, colOutside, lastTaps, columns);
                }
                else
                {
                    for (int col = 0; col < columns; col++)
                    {
                        float* yc = y + (long)col * inner;
                        if (colOutside[col] != 0) { new Span<float>(yc, inner).Fill(a->Extrapolation); continue; }
                        int* co = colOffset + col * lastTaps;
                        float* cw = colWeight + col * lastTaps;
                        if (a->Nearest && combos == 1)
                        {
                            new ReadOnlySpan<float>(a->X + comboOffset[0] + co[0], inner).CopyTo(new Span<float>(yc, inner));
                            continue;
                        }
                        Run<TS, TV>(a->X, yc, inner, comboOffset, comboWeight, combos, co, cw, lastTaps);
                    }
                }

                for (int d = last - 1; d >= 0; d--)
                {
                    if (++index[d] < a->OutDims[d]) break;
                    index[d] = 0;
                }
            }
        }

        /// <summary>One channel run: Σ over combinations and column taps of weight · input run, a vector at a time.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Run<TS, TV>(float* x, float* y, int inner, int* comboOffset, float* comboWeight, int combos, int* co, float* cw, int taps)
            where TS : unmanaged, ISimd<TV> where TV : unmanaged
        {
            int w = TS.Count;
            for (int c0 = 0; c0 < inner; c0 += w)
            {
                int lanes = Math.Min(w, inner - c0);
                TV acc = TS.Zero;
                for (int c = 0; c < combos; c++)
                {
                    float* src = x + comboOffset[c] + c0;
                    for (int t = 0; t < taps; t++)
                    {
                        float weight = comboWeight[c] * cw[t];
                        if (weight == 0f) continue;
                        TV v = lanes == w ? TS.Load(src + co[t]) : TS.LoadPartial(src + co[t], lanes);
                        acc = TS.Fma(TS.Splat(weight), v, acc);
                    }
                }
                if (lanes == w) TS.Store(y + c0, acc);
                else TS.StorePartial(y + c0, acc, lanes);
            }
        }

        /// <summary>Nothing trails the column axis (NCHW): each column is a scalar gathered from the combination rows.</summary>
        private static void Gather(Args* a, float* y, int* comboOffset, float* comboWeight, int combos, int* co, float* cw, byte* outside, int taps, int columns)
        {
            float* x = a->X;
            if (a->Nearest && combos == 1)
            {
                float* row = x + comboOffset[0];
                for (int col = 0; col < columns; col++) y[col] = outside[col] != 0 ? a->Extrapolation : row[co[col]];
                return;
            }
            for (int col = 0; col < columns; col++)
            {
                if (outside[col] != 0) { y[col] = a->Extrapolation; continue; }
                int* o = co + col * taps;
                float* wt = cw + col * taps;
                float acc = 0f;
                for (int c = 0; c < combos; c++)
                {
                    float* row = x + comboOffset[c];
                    float s = 0f;
                    for (int t = 0; t < taps; t++) s += wt[t] * row[o[t]];
                    acc += comboWeight[c] * s;
                }
                y[col] = acc;
            }
        }
    }
}
