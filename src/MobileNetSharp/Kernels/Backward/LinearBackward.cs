using MobileNetSharp.Kernels.Gemm;

namespace MobileNetSharp.Kernels;

/// <summary>
/// Gradients of y = x · Wᵀ + b (a fully connected layer, ONNX Gemm with transB, PyTorch's Linear), which is also a
/// 1x1 convolution on NHWC rows: x [rows, in], W [out, in], y [rows, out]. dX = dY · W and dW = dYᵀ · X run on the
/// engine's register-tiled GEMM micro-kernel; dB sums dY's columns. Gradients are written, not accumulated.
/// <para>
/// dW reduces over all rows (N·H·W: 50k for a batch of 64 at 28x28), so it is cache-blocked over rows: each block of
/// <see cref="RowBlock"/> rows of dY and X (both in L2) is reduced into a running [out, in] partial by
/// <see cref="OuterProductKernel"/>, which reads both row-major, so nothing is transposed. The rows are cut
/// into a fixed number of groups, independent of the thread count, each with its own partial, summed in group
/// order: 1 and N threads give bit-identical results.
/// </para>
/// </summary>
public static unsafe class LinearBackward
{
    /// <summary>dx [rows, in] = dy [rows, out] · w [out, in].</summary>
    public static void InputGradient(ReadOnlySpan<float> dy, ReadOnlySpan<float> w, Span<float> dx, int rows, int inFeatures, int outFeatures,
        Workers? workers = null, IsaLevel? isa = null)
    {
        Check(rows, inFeatures, outFeatures);
        MatMul.Run(dy, w, dx, rows, outFeatures, inFeatures, workers ?? Workers.Single, isa);
    }

    /// <summary>
    /// <see cref="InputGradient(ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, int, int, int, Workers?, IsaLevel?)"/>
    /// (the same bits) that also gathers the sums of the training-mode batch norm whose output gradient dx is: dx is made in
    /// blocks of <see cref="RowBlock"/> rows, each added to its group's partial while it is in L2, so the batch norm's
    /// backward reads neither dx nor its input for them. <see cref="RowGroupCount"/> groups, fixed by the rows. Needs w
    /// small enough to read in place (<see cref="GathersSums"/>).
    /// </summary>
    internal static void InputGradient(ReadOnlySpan<float> dy, ReadOnlySpan<float> w, Span<float> dx, int rows, int inFeatures, int outFeatures,
        Workers? workers, IsaLevel? isa, BatchNormGradSums* sums)
    {
        Check(rows, inFeatures, outFeatures);
        if (!GathersSums(inFeatures, outFeatures) || sums->Channels != inFeatures)
            throw new ArgumentException($"Batch-norm sums of {sums->Channels} channels are gathered by a 1x1 backward with a small w and {inFeatures} inputs, not [{outFeatures}, {inFeatures}].");
        if (dy.Length < (long)rows * outFeatures || w.Length < (long)outFeatures * inFeatures || dx.Length < (long)rows * inFeatures)
            throw new ArgumentException($"Buffers too small for dy [{rows}, {outFeatures}], w [{outFeatures}, {inFeatures}], dx [{rows}, {inFeatures}]: {dy.Length}, {w.Length}, {dx.Length}.");
        workers ??= Workers.Single;
        int blocks = (rows + RowBlock - 1) / RowBlock, groups = RowGroupCount(rows);
        new Span<double>(sums->Partials, groups * 2 * inFeatures).Clear();
        fixed (float* pdy = dy, pw = w, pdx = dx)
        {
            var args = new WeightArgs
            {
                Dy = pdy, W = pw, Dx = pdx, Rows = rows, In = inFeatures, Out = outFeatures, Blocks = blocks, Groups = groups, Isa = Isa.Resolve(isa), Sums = sums,
            };
            if (workers.Count == 1 || (long)rows * inFeatures < (1 << 16)) for (int gi = 0; gi < groups; gi++) InputSumsTask(&args, gi);
            else workers.For(groups, &InputSumsTask, &args);
        }
    }

    /// <summary>Whether <see cref="InputGradient(ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, int, int, int, Workers?, IsaLevel?, BatchNormGradSums*)"/>
    /// gathers batch-norm sums for this shape: w read in place, as <see cref="MatMul"/> reads it.</summary>
    internal static bool GathersSums(int inFeatures, int outFeatures) => (long)inFeatures * outFeatures < MatMul.MinFloatsToPack;

    /// <summary>The row groups (partials) of the gathered sums: fixed by the rows alone.</summary>
    internal static int RowGroupCount(int rows) => Math.Min(Groups, (rows + RowBlock - 1) / RowBlock);

    /// <summary>dx's rows [r0, r0 + kc) = dy's (at <paramref name="dy"/>) · w, by the unpacked GEMM as <see cref="MatMul"/> runs it
    /// for a small w, and with sums their share added into partial <paramref name="group"/> while the block is in L2.</summary>
    private static void InputBlock(WeightArgs* a, int r0, int kc, float* dy, float* dx, int group)
    {
        GemmDriver.RunUnpacked(a->Isa, kc, a->In, a->Out, dy, a->Out, a->W, a->In, dx, a->In, Workers.Single);
        if (a->Sums != null) a->Sums->Add(r0, kc, dx, group, a->Isa);
    }

    private static void InputSumsTask(void* context, int group)
    {
        var a = (WeightArgs*)context;
        var (b0, b1) = Workers.Split(a->Blocks, a->Groups, group);
        for (int b = b0; b < b1; b++)
        {
            int r0 = b * RowBlock, kc = Math.Min(RowBlock, a->Rows - r0);
            InputBlock(a, r0, kc, a->Dy + (long)r0 * a->Out, a->Dx + (long)r0 * a->In, group);
        }
    }

    /// <summary>Rows per cache block of the weight gradient: a [out, RowBlock] slice of dYᵀ stays in L2 with X's block.</summary>
    private const int RowBlock = 256;
    /// <summary>Row groups of the weight gradient, each with its own partial sum; fixed so results do not depend on threads.</summary>
    private const int Groups = 8;

    /// <summary>dw [out, in] = dyᵀ · x and db [out] = Σ_rows dy (db empty to skip).</summary>
    public static void WeightGradient(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dw, Span<float> db, int rows, int inFeatures, int outFeatures,
        Workers? workers = null, IsaLevel? isa = null) =>
        Gradients(x, dy, default, default, dw, db, rows, inFeatures, outFeatures, workers, isa);

    /// <summary>
    /// Whether <see cref="Gradients"/> computes dx in the same pass as dw, so each row block of dy is read from memory
    /// once, not twice: when dy is at least as wide as x (an expanding 1x1, where dy is the big operand) and W is small
    /// enough for the GEMM to read in place (as <see cref="MatMul"/> would). Measured at 1 thread on 50,176 rows:
    /// 16 -> 96 features 10.4 -> 8.8 ms; 96 -> 16 (a projection: its big operand x is read once anyway) level.
    /// </summary>
    public static bool SharesPass(int inFeatures, int outFeatures) =>
        outFeatures >= inFeatures && (long)inFeatures * outFeatures < MatMul.MinFloatsToPack;

    /// <summary>
    /// dx [rows, in] = dy · w (when <paramref name="dx"/> is not empty), dw [out, in] = dyᵀ · x and db [out] (empty to
    /// skip). When <see cref="SharesPass"/>, dx is computed block by block right after the block's dw contribution,
    /// while that block of dy (<see cref="RowBlock"/> rows) is still in L2; the bits are those of
    /// <see cref="InputGradient"/> and <see cref="WeightGradient"/> run apart.
    /// </summary>
    public static void Gradients(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, ReadOnlySpan<float> w, Span<float> dx, Span<float> dw, Span<float> db,
        int rows, int inFeatures, int outFeatures, Workers? workers = null, IsaLevel? isa = null)
    {
        Check(rows, inFeatures, outFeatures);
        if (!dx.IsEmpty)
        {
            if (w.Length < (long)outFeatures * inFeatures) throw new ArgumentException($"w has {w.Length} values, [{outFeatures}, {inFeatures}] needs more.");
            if (dx.Length < (long)rows * inFeatures) throw new ArgumentException($"dx has {dx.Length} values, [{rows}, {inFeatures}] needs more.");
            if (!SharesPass(inFeatures, outFeatures))
            {
                InputGradient(dy, w, dx, rows, inFeatures, outFeatures, workers, isa);
                dx = default;
            }
        }
        if (dy.Length < (long)rows * outFeatures) throw new ArgumentException($"dy has {dy.Length} values, [{rows}, {outFeatures}] needs more.");
        if (x.Length < (long)rows * inFeatures) throw new ArgumentException($"x has {x.Length} values, [{rows}, {inFeatures}] needs more.");
        if (dw.Length < (long)outFeatures * inFeatures) throw new ArgumentException($"dw has {dw.Length} values, [{outFeatures}, {inFeatures}] needs more.");
        fixed (float* px = x, pdy = dy, pw = w, pdx = dx)
        {
            var args = new WeightArgs { X = px, Dy = pdy, W = dx.IsEmpty ? null : pw, Dx = dx.IsEmpty ? null : pdx };
            Reduce(ref args, dw, rows, inFeatures, outFeatures, workers ?? Workers.Single, isa);
        }
        if (!db.IsEmpty) ColumnSums(dy, db, rows, outFeatures);
    }

    /// <summary>
    /// <see cref="WeightGradient(ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, Span{float}, int, int, int, Workers?, IsaLevel?)"/>
    /// of a 1x1 convolution whose input x is a training-mode batch norm's output that was never written: each block of x's
    /// rows is normalized into a per-group scratch (L2) from the batch norm's input. The same bits as with x written.
    /// </summary>
    internal static void WeightGradient(in BatchNormApplyRows x, ReadOnlySpan<float> dy, Span<float> dw, Span<float> db, int rows, int inFeatures,
        int outFeatures, Workers? workers = null, IsaLevel? isa = null) =>
        Gradients(x, dy, default, default, dw, db, rows, inFeatures, outFeatures, workers, isa, null);

    /// <summary>
    /// dw [out, in] and db of a 1x1 convolution whose input x is a training-mode batch norm's output never written, and
    /// (when <paramref name="dx"/> is not empty) dx [rows, in] = dy · w, in one pass over blocks of <see cref="RowBlock"/>
    /// rows: each block of x is normalized into a per-group scratch for dw, then dx's block is made from dy and w, and
    /// (with <paramref name="sums"/>) the sums of the batch norm whose output gradient dx is are gathered from it. In
    /// MobileNetV2's projections that batch norm is the one x comes from, so its input block is read from memory once, for
    /// all three, instead of once by the dw pass and again by the dx pass. Bits: dw as <see cref="WeightGradient(in BatchNormApplyRows, ReadOnlySpan{float}, Span{float}, Span{float}, int, int, int, Workers?, IsaLevel?)"/>,
    /// dx and the sums as <see cref="InputGradient(ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, int, int, int, Workers?, IsaLevel?, BatchNormGradSums*)"/>.
    /// dx needs w small enough to read in place (<see cref="GathersSums"/>). With sums and w but an empty dx, dx's blocks
    /// are made in scratch for the sums and never written: its reader computes them again (<see cref="BatchNormGradRows.DyLeft"/>).
    /// </summary>
    /// <exception cref="ArgumentException">A size not positive, a buffer shorter than its shape, channels that do not
    /// match, or a w too large for the shared pass.</exception>
    internal static void Gradients(in BatchNormApplyRows x, ReadOnlySpan<float> dy, ReadOnlySpan<float> w, Span<float> dx, Span<float> dw, Span<float> db,
        int rows, int inFeatures, int outFeatures, Workers? workers, IsaLevel? isa, BatchNormGradSums* sums)
    {
        Check(rows, inFeatures, outFeatures);
        if (x.Channels != inFeatures) throw new ArgumentException($"Normalized x has {x.Channels} channels for {inFeatures} input features.");
        if (dy.Length < (long)rows * outFeatures) throw new ArgumentException($"dy has {dy.Length} values, [{rows}, {outFeatures}] needs more.");
        bool makesDx = !dx.IsEmpty || sums != null;
        if (makesDx)
        {
            if (!GathersSums(inFeatures, outFeatures))
                throw new ArgumentException($"dx shares the normalized pass only for a w read in place, not [{outFeatures}, {inFeatures}].");
            if (w.Length < (long)outFeatures * inFeatures || (!dx.IsEmpty && dx.Length < (long)rows * inFeatures))
                throw new ArgumentException($"w ({w.Length}) or dx ({dx.Length}) is shorter than [{outFeatures}, {inFeatures}] or [{rows}, {inFeatures}].");
        }
        if (sums != null)
        {
            if (sums->Channels != inFeatures)
                throw new ArgumentException($"Batch-norm sums of {sums->Channels} channels are gathered from a dx of {inFeatures} channels.");
            new Span<double>(sums->Partials, RowGroupCount(rows) * 2 * inFeatures).Clear();
        }
        int groups = RowGroupCount(rows);
        var pool = System.Buffers.ArrayPool<float>.Shared;
        // Per group: a block of normalized x, and (dx unwritten) a block of dx.
        int perGroup = checked(RowBlock * inFeatures * (dx.IsEmpty && sums != null ? 2 : 1));
        var scratch = pool.Rent(checked(groups * perGroup));
        try
        {
            fixed (float* pdy = dy, ps = scratch, pw = w, pdx = dx)
            fixed (BatchNormApplyRows* px = &x)
            {
                var args = new WeightArgs
                {
                    Dy = pdy, XSource = px, XScratch = ps, W = makesDx ? pw : null, Dx = dx.IsEmpty ? null : pdx, Sums = sums,
                    DxScratch = dx.IsEmpty && sums != null ? ps + (long)groups * RowBlock * inFeatures : null,
                };
                Reduce(ref args, dw, rows, inFeatures, outFeatures, workers ?? Workers.Single, isa);
            }
        }
        finally
        {
            pool.Return(scratch);
        }
        if (!db.IsEmpty) ColumnSums(dy, db, rows, outFeatures);
    }

    /// <summary>
    /// <see cref="Gradients(ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, Span{float}, Span{float}, int, int, int, Workers?, IsaLevel?)"/>
    /// (dx and dw, no db) of a 1x1 convolution followed by a training-mode batch norm, whose dy is that batch norm's input
    /// gradient: each block of dy's rows is computed into a per-group scratch (L2) by <paramref name="dy"/> and used there,
    /// so the batch norm never writes dy and nothing reads it back. Needs <see cref="SharesPass"/>.
    /// </summary>
    internal static void Gradients(in BatchNormGradRows dy, ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> dx, Span<float> dw,
        int rows, int inFeatures, int outFeatures, Workers? workers = null, IsaLevel? isa = null)
    {
        Check(rows, inFeatures, outFeatures);
        if (dy.Channels != outFeatures || !SharesPass(inFeatures, outFeatures))
            throw new ArgumentException($"A batch norm's gradient feeds the 1x1 backward only where dx shares dy's pass; got {dy.Channels} channels, [{outFeatures}, {inFeatures}].");
        if (w.Length < (long)outFeatures * inFeatures || dx.Length < (long)rows * inFeatures || x.Length < (long)rows * inFeatures)
            throw new ArgumentException($"w ({w.Length}), x ({x.Length}) or dx ({dx.Length}) is shorter than [{outFeatures}, {inFeatures}] or [{rows}, {inFeatures}].");
        int groups = RowGroupCount(rows);
        var pool = System.Buffers.ArrayPool<float>.Shared;
        var scratch = pool.Rent(checked(groups * RowBlock * outFeatures));
        try
        {
            fixed (float* px = x, pw = w, pdx = dx, ps = scratch)
            {
                var args = new WeightArgs { X = px, W = pw, Dx = pdx, Source = dy, DyScratch = ps };
                Reduce(ref args, dw, rows, inFeatures, outFeatures, workers ?? Workers.Single, isa);
            }
        }
        finally
        {
            pool.Return(scratch);
        }
    }

    /// <summary>The row-blocked reduction behind both <c>Gradients</c>: fills the sizes of <paramref name="args"/>, runs the groups, sums their partials into dw.</summary>
    private static void Reduce(ref WeightArgs args, Span<float> dw, int rows, int inFeatures, int outFeatures, Workers workers, IsaLevel? isa)
    {
        if (dw.Length < (long)outFeatures * inFeatures) throw new ArgumentException($"dw has {dw.Length} values, [{outFeatures}, {inFeatures}] needs more.");
        int blocks = (rows + RowBlock - 1) / RowBlock, groups = RowGroupCount(rows);
        int size = outFeatures * inFeatures;
        var pool = System.Buffers.ArrayPool<float>.Shared;
        var partial = pool.Rent(checked(groups * size));
        try
        {
            fixed (float* pp = partial)
            {
                args.Partial = pp;
                (args.Rows, args.In, args.Out, args.Blocks, args.Groups, args.Isa) = (rows, inFeatures, outFeatures, blocks, groups, Isa.Resolve(isa));
                fixed (WeightArgs* pa = &args)
                {
                    if (workers.Count == 1 || (long)rows * size < (1 << 18)) for (int gi = 0; gi < groups; gi++) WeightTask(pa, gi);
                    else workers.For(groups, &WeightTask, pa);
                }
            }
            var sum = dw[..size];
            partial.AsSpan(0, size).CopyTo(sum);
            for (int gi = 1; gi < groups; gi++) System.Numerics.Tensors.TensorPrimitives.Add(sum, partial.AsSpan(gi * size, size), sum);
        }
        finally
        {
            pool.Return(partial);
        }
    }

    private struct WeightArgs
    {
        public float* X, Dy, Partial;
        /// <summary>Null, or w [out, in] and dx [rows, in]: dx's rows are computed block by block beside dw.</summary>
        public float* W, Dx;
        public int Rows, In, Out, Blocks, Groups;
        public IsaLevel Isa;
        /// <summary>With <see cref="DyScratch"/> set, dy's rows come from here, block by block (a batch norm's gradient), not from Dy.</summary>
        public BatchNormGradRows Source;
        /// <summary>Null, or [groups, RowBlock, out] floats: each group's block of dy.</summary>
        public float* DyScratch;
        /// <summary>Null, or the batch-norm sums dx's blocks are added into (<see cref="InputSumsTask"/>, <see cref="WeightTask"/>).</summary>
        public BatchNormGradSums* Sums;
        /// <summary>Null, or x's rows computed block by block into XScratch ([groups, RowBlock, in]) instead of read from X.</summary>
        public BatchNormApplyRows* XSource;
        public float* XScratch;
        /// <summary>Null, or [groups, RowBlock, in]: dx's blocks are made here for the sums and never written (Dx null, W set).</summary>
        public float* DxScratch;
    }

    private static void WeightTask(void* context, int group)
    {
        var a = (WeightArgs*)context;
        var (b0, b1) = Workers.Split(a->Blocks, a->Groups, group);
        float* partial = a->Partial + (long)group * a->Out * a->In;
        for (int b = b0; b < b1; b++)
        {
            int r0 = b * RowBlock, kc = Math.Min(RowBlock, a->Rows - r0);
            float* dy = a->Dy + (long)r0 * a->Out;
            if (a->DyScratch != null)
            {
                dy = a->DyScratch + (long)group * RowBlock * a->Out;
                a->Source.Write(r0, kc, dy, a->Isa);
            }
            float* x = a->X + (long)r0 * a->In;
            if (a->XSource != null)
            {
                x = a->XScratch + (long)group * RowBlock * a->In;
                a->XSource->Write(r0, kc, x, a->Isa);
            }
            OuterProductKernel.Run(a->Isa, dy, a->Out, x, a->In, kc, partial, a->Out, a->In, accumulate: b > b0);
            if (a->W != null) // the block of dy is in L2 now: dx's rows from it (the unpacked GEMM, as MatMul runs it for a small w)
            {
                InputBlock(a, r0, kc, dy, a->Dx != null ? a->Dx + (long)r0 * a->In : a->DxScratch + (long)group * RowBlock * a->In, group);
            }
        }
        if (b1 == b0) new Span<float>(partial, a->Out * a->In).Clear();
    }

    private static void Check(int rows, int inFeatures, int outFeatures)
    {
        if (rows < 1 || inFeatures < 1 || outFeatures < 1) throw new ArgumentException($"Linear backward: sizes must be positive, got rows {rows}, in {inFeatures}, out {outFeatures}.");
    }

    /// <summary>db [cols] = Σ_r a [r, cols], summed in row order.</summary>
    internal static void ColumnSums(ReadOnlySpan<float> a, Span<float> db, int rows, int cols)
    {
        if (db.Length < cols) throw new ArgumentException($"db has {db.Length} values, {cols} needed.");
        db[..cols].Clear();
        for (int r = 0; r < rows; r++)
            System.Numerics.Tensors.TensorPrimitives.Add(db[..cols], a.Slice(r * cols, cols), db[..cols]);
    }

    /// <summary>t [cols, rows] = aᵀ for a [rows, cols], in 32x32 tiles so both sides stay in cache.</summary>
    internal static void Transpose(ReadOnlySpan<float> a, Span<float> t, int rows, int cols)
    {
        const int B = 32;
        for (int r0 = 0; r0 < rows; r0 += B)
            for (int c0 = 0; c0 < cols; c0 += B)
            {
                int r1 = Math.Min(rows, r0 + B), c1 = Math.Min(cols, c0 + B);
                for (int r = r0; r < r1; r++)
                    for (int c = c0; c < c1; c++) t[c * rows + r] = a[r * cols + c];
            }
    }
}
