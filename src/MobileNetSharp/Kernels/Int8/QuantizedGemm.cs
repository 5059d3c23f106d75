using System.Buffers;
using System.Runtime.CompilerServices;

namespace MobileNetSharp.Kernels.Int8;

/// <summary>Everything one int8 GEMM call needs, kept on the caller's stack and shared with the workers by pointer.</summary>
internal unsafe struct Int8GemmArgs
{
    public byte* A; public nint Lda;
    public int* B; public long PanelInts;
    public byte* Quads; public long QuadPanelBytes; public int KQuads; public bool UseQuads, RowsPadded;
    /// <summary>Per column (padded to whole panels): bias[j] - zpA · colsum(B)[j], the accumulator's start, wrapping as int32.</summary>
    public int* Init;
    public float* Multipliers; public float Lower, Upper; public int ZeroPointC;
    public byte MinByte, MaxByte; public bool ClampAfterRounding;
    public bool HardSwish; public float OutputScale, HardSwishAlpha, HardSwishBeta;
    /// <summary>Output rows Ldc bytes apart; elements are bytes, or floats when <see cref="FloatOutput"/> (ElementBytes 4).</summary>
    public byte* C; public nint Ldc; public bool FloatOutput; public int ElementBytes;
    public int M, N, K, KPairs;
    public Int8Path Path; public int RowsPerTile;
    public int RowTiles, RowChunks, PanelCount, PanelGroups;
}

/// <summary>Which micro-kernel family runs; <see cref="Portable128"/> is the non-x86 Vector128 code, reachable on x86 only from tests.</summary>
internal enum Int8Path { Scalar, Sse2, Portable128, Avx2 }

/// <summary>
/// The integer GEMM behind int8 pointwise (1x1) convolutions and fully connected layers, with the
/// requantization epilogue fused: uint8 activations A [M, K] times symmetric int8 weights B [K, N]
/// (packed by <see cref="PackedInt8Weights"/>) into uint8 C [M, N]. For each output element:
/// <code>
/// acc = sum_k (int)A[i,k] · (int)B[k,j]  -  zpA · colsum(B)[j]  +  bias[j]     int32, wrapping
/// f   = (float)acc · M[j]
/// f   = min(max(f, (float)(qmin - zpC)), (float)(qmax - zpC))
/// C   = (byte)(roundHalfToEven(f) + zpC)
/// </code>
/// which is ONNX QLinearConv / QLinearMatMul with a uint8 input, int8 weights (zero point 0) and a uint8 output,
/// requantized the way ONNX Runtime's MLAS does it (float multiplier, clamp in float, round to nearest even).
/// Accumulation is exact at every K a MobileNet has: each step multiplies 16-bit operands and adds pairs in
/// 32 bits (vpmaddwd), or, for weights that cannot saturate it (<see cref="PackedInt8Weights.HasByteQuads"/>, on
/// AVX2), multiplies bytes into exact int16 pair sums (vpmaddubsw) first; only K past ~65,000 can wrap int32,
/// which the contract defines as wrapping.
/// <para>
/// Work is split like the float GEMM (<c>GemmDriver</c>): row tiles across <see cref="Workers"/>, plus column
/// panels when there are few rows. Each output element is computed the same way whatever the split, so the
/// result does not depend on the thread count. A task zero-extends its rows of A to int16 pairs once per tile
/// (L1-resident, reused by every panel), then walks the panels of B; the byte-quad kernel reads rows of A in
/// place (a copy only when K is not a multiple of 4 and the caller did not pad the rows).
/// </para>
/// </summary>
public static unsafe class QuantizedGemm
{
    /// <summary>Below this many multiply-adds, waking other threads costs more than it saves.</summary>
    private const long ParallelThreshold = 1 << 16;

    /// <summary>Start values kept on the caller's stack (16 KB, N up to 4,096); wider layers rent from the array pool.</summary>
    private const int StackInitInts = 4096;

    /// <summary>Packed-A ints a task keeps on its stack (64 KB); longer rows rent from the array pool.</summary>
    private const int StackInts = 16 * 1024;

    /// <summary>
    /// C = requantize(A · B) for <paramref name="m"/> rows.
    /// </summary>
    /// <param name="m">Rows of A and C (pixels of an NHWC tensor, or batch rows); 0 does nothing.</param>
    /// <param name="a">uint8 activations: row i is a[i·lda .. i·lda + K).</param>
    /// <param name="lda">Row stride of A in bytes, at least K.</param>
    /// <param name="aZeroPoint">zpA, the activations' zero point.</param>
    /// <param name="b">The packed weights (K, N).</param>
    /// <param name="requantization">Per-channel multipliers, bias, output zero point and clamp for N channels.</param>
    /// <param name="c">uint8 output: row i is c[i·ldc .. i·ldc + N); bytes between N and ldc are not touched.</param>
    /// <param name="ldc">Row stride of C in bytes, at least N.</param>
    /// <param name="workers">The thread pool; <see cref="Workers.Single"/> runs on the caller.</param>
    /// <param name="isa">null for <see cref="Isa.Best"/>. Vector512 runs the 256-bit kernel (see <see cref="Int8MicroKernel"/>).</param>
    /// <exception cref="ArgumentException">A negative size, a stride below K or N, a span too short for the
    /// rows and strides, or requantization for another channel count than N.</exception>
    public static void Run(int m, ReadOnlySpan<byte> a, int lda, byte aZeroPoint, PackedInt8Weights b, Requantization requantization,
        Span<byte> c, int ldc, Workers workers, IsaLevel? isa = null)
    {
        if (!Validate(m, a.Length, lda, b, requantization, "requantization", c.Length, "bytes", ldc, workers)) return;
        fixed (byte* pa = a, pc = c)
            Run(Isa.Resolve(isa), m, pa, lda, aZeroPoint, b, requantization, pc, ldc, workers);
    }

    /// <summary>The public entries' argument checks; false when there is nothing to do (m = 0).</summary>
    private static bool Validate(int m, int aLength, int lda, PackedInt8Weights b, Requantization rq, string rqName, int cLength, string cUnit, int ldc, Workers workers)
    {
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(rq, rqName);
        ArgumentNullException.ThrowIfNull(workers);
        if (m < 0) throw new ArgumentException($"Int8 GEMM: row count must be non-negative, got {m}.", nameof(m));
        if (lda < b.K) throw new ArgumentException($"Int8 GEMM: lda {lda} is less than K {b.K}.", nameof(lda));
        if (ldc < b.N) throw new ArgumentException($"Int8 GEMM: ldc {ldc} is less than N {b.N}.", nameof(ldc));
        if (rq.Channels != b.N)
            throw new ArgumentException($"Int8 GEMM: {rqName} is for {rq.Channels} channels, the weights have N {b.N}.", rqName);
        if (m == 0) return false;
        long needA = (long)(m - 1) * lda + b.K, needC = (long)(m - 1) * ldc + b.N;
        if (aLength < needA) throw new ArgumentException($"Int8 GEMM: A has {aLength} bytes, {m} rows of K {b.K} at stride {lda} need {needA}.", "a");
        if (cLength < needC) throw new ArgumentException($"Int8 GEMM: C has {cLength} {cUnit}, {m} rows of N {b.N} at stride {ldc} need {needC}.", "c");
        return true;
    }

    /// <summary>The unchecked entry for compiled plans: sizes and strides already validated by the caller.</summary>
    internal static void Run(IsaLevel isa, int m, byte* a, nint lda, byte aZeroPoint, PackedInt8Weights b, Requantization requantization,
        byte* c, nint ldc, Workers workers) =>
        Run(PathFor(isa), m, a, lda, aZeroPoint, b, requantization, c, ldc, workers);

    /// <summary>The micro-kernel family an ISA level runs.</summary>
    internal static Int8Path PathFor(IsaLevel isa) => isa switch
    {
        // No 512-bit kernel: on AVX-512 machines the 256-bit one runs (see Int8MicroKernel for the VNNI seam).
        IsaLevel.Vector512 or IsaLevel.Vector256 when System.Runtime.Intrinsics.X86.Avx2.IsSupported => Int8Path.Avx2,
        IsaLevel.Vector512 or IsaLevel.Vector256 or IsaLevel.Vector128 =>
            System.Runtime.Intrinsics.X86.Sse2.IsSupported ? Int8Path.Sse2 : Int8Path.Portable128,
        _ => Int8Path.Scalar,
    };

    /// <summary>The row length, in bytes, the byte-quad kernel reads from each row of A: K rounded up to 4. A caller
    /// whose rows are that long (the bytes past K any value: their weights are 0) passes <c>rowsPadded</c>.</summary>
    internal static int QuadRowBytes(PackedInt8Weights b) => b.KQuads * 4;

    /// <summary>Whether <paramref name="path"/> runs <paramref name="b"/> with the byte-quad (vpmaddubsw) kernel.</summary>
    internal static bool UsesQuads(Int8Path path, PackedInt8Weights b) => path == Int8Path.Avx2 && b.HasByteQuads;

    /// <summary>
    /// The dequantizing form, for a fully connected layer whose output stays float (a classifier's logits): C[i, j] =
    /// (float)acc[i, j] · M[j] with acc as in <see cref="Run(int, ReadOnlySpan{byte}, int, byte, PackedInt8Weights, Requantization, Span{byte}, int, Workers, IsaLevel?)"/>
    /// (bias and zero-point correction included) and M[j] = x_scale · w_scale[j] the multipliers of
    /// <paramref name="dequantization"/>; its zero point and clamp are not used. One rounding, of an exact sum: as
    /// ONNX Runtime's QGemm with a float output (com.microsoft), and within float rounding of DequantizeLinear -> Gemm.
    /// </summary>
    /// <param name="c">float output: row i is c[i·ldc .. i·ldc + N).</param>
    /// <param name="ldc">Row stride of C in floats, at least N.</param>
    /// <exception cref="ArgumentException">As <see cref="Run(int, ReadOnlySpan{byte}, int, byte, PackedInt8Weights, Requantization, Span{byte}, int, Workers, IsaLevel?)"/>.</exception>
    public static void RunToFloat(int m, ReadOnlySpan<byte> a, int lda, byte aZeroPoint, PackedInt8Weights b, Requantization dequantization,
        Span<float> c, int ldc, Workers workers, IsaLevel? isa = null)
    {
        if (!Validate(m, a.Length, lda, b, dequantization, "dequantization", c.Length, "floats", ldc, workers)) return;
        fixed (byte* pa = a)
        fixed (float* pc = c)
            Run(PathFor(Isa.Resolve(isa)), m, pa, lda, aZeroPoint, b, dequantization, (byte*)pc, (nint)ldc * sizeof(float), workers, floatOutput: true);
    }

    internal static void Run(Int8Path path, int m, byte* a, nint lda, byte aZeroPoint, PackedInt8Weights b, Requantization requantization,
        byte* c, nint ldc, Workers workers, bool rowsPadded = false, bool floatOutput = false)
    {
        if (m <= 0) return;
        // The accumulators' start values once per call rather than per tile (a vpmulld each, at the head of every tile).
        int padded = b.PanelCount * PackedInt8Weights.PanelWidth;
        if (padded <= StackInitInts)
        {
            int* init = stackalloc int[padded];
            Dispatch(path, m, a, lda, aZeroPoint, b, requantization, c, ldc, workers, rowsPadded, floatOutput, init);
            return;
        }
        int[] rented = ArrayPool<int>.Shared.Rent(padded);
        try
        {
            fixed (int* init = rented) Dispatch(path, m, a, lda, aZeroPoint, b, requantization, c, ldc, workers, rowsPadded, floatOutput, init);
        }
        finally { ArrayPool<int>.Shared.Return(rented); }
    }

    private static void Dispatch(Int8Path path, int m, byte* a, nint lda, byte aZeroPoint, PackedInt8Weights b, Requantization requantization,
        byte* c, nint ldc, Workers workers, bool rowsPadded, bool floatOutput, int* init)
    {
        bool quads = UsesQuads(path, b);
        fixed (float* multipliers = requantization.PaddedMultipliers)
        fixed (int* bias = requantization.PaddedBias)
        {
            int* sums = b.ColumnSums;
            for (int j = 0; j < b.PanelCount * PackedInt8Weights.PanelWidth; j++) init[j] = unchecked(bias[j] - aZeroPoint * sums[j]);
            Int8GemmArgs args = new()
            {
                A = a, Lda = lda,
                B = quads ? null : b.Data, PanelInts = b.PanelInts,
                Quads = quads ? b.ByteQuads : null, QuadPanelBytes = b.QuadPanelBytes, KQuads = b.KQuads, UseQuads = quads,
                RowsPadded = rowsPadded || b.K % 4 == 0,
                Init = init, Multipliers = multipliers, Lower = requantization.LowerBound, Upper = requantization.UpperBound,
                ZeroPointC = requantization.OutputZeroPoint, MinByte = requantization.Min, MaxByte = requantization.Max,
                ClampAfterRounding = requantization.ClampAfterRounding,
                HardSwish = requantization.HardSwish, OutputScale = requantization.OutputScale,
                HardSwishAlpha = requantization.HardSwishAlpha, HardSwishBeta = requantization.HardSwishBeta,
                C = c, Ldc = ldc, FloatOutput = floatOutput, ElementBytes = floatOutput ? sizeof(float) : 1, M = m, N = b.N, K = b.K, KPairs = b.KPairs,
                Path = path, RowsPerTile = Int8MicroKernel.RowsPerTile(path), PanelCount = b.PanelCount,
            };
            args.RowTiles = (m + args.RowsPerTile - 1) / args.RowsPerTile;
            if (workers.Count == 1 || (long)m * b.N * b.K < ParallelThreshold)
            {
                args.RowChunks = 1;
                args.PanelGroups = 1;
                Task(&args, 0);
            }
            else
            {
                // As GemmDriver: a few tasks per thread so a thread slowed by the shared machine does not hold up the rest,
                // and column panels split too when there are too few row tiles for that.
                int target = workers.Count * 4;
                args.RowChunks = Math.Min(args.RowTiles, target);
                args.PanelGroups = args.RowChunks >= target ? 1 : Math.Min(args.PanelCount, (target + args.RowChunks - 1) / args.RowChunks);
                workers.For(args.RowChunks * args.PanelGroups, &Task, &args);
            }
        }
        GC.KeepAlive(b); // the tasks read its pinned buffer through a raw pointer
    }

    private static void Task(void* context, int index)
    {
        Int8GemmArgs* g = (Int8GemmArgs*)context;
        (int t0, int t1) = Workers.Split(g->RowTiles, g->RowChunks, index / g->PanelGroups);
        (int p0, int p1) = Workers.Split(g->PanelCount, g->PanelGroups, index % g->PanelGroups);
        int mrMax = g->RowsPerTile;
        int row0 = t0 * mrMax, row1 = Math.Min(g->M, t1 * mrMax);
        if (row0 >= row1 || p0 >= p1) return;
        if (g->UseQuads)
        {
            QuadTask(g, row0, row1, p0, p1);
            return;
        }

        // The tile's rows of A as zero-extended int16 pairs, row r at aPacked + r·KPairs.
        int packedInts = mrMax * g->KPairs;
        int[]? rented = null;
        int* stackBuffer = stackalloc int[packedInts <= StackInts ? packedInts : 0];
        if (packedInts > StackInts) rented = ArrayPool<int>.Shared.Rent(packedInts);
        try
        {
            fixed (int* heapBuffer = rented)
            {
                int* aPacked = rented == null ? stackBuffer : heapBuffer;
                for (int i = row0; i < row1; i += mrMax)
                {
                    int mr = Math.Min(mrMax, row1 - i);
                    for (int r = 0; r < mr; r++) Int8MicroKernel.PackRow(g->Path, g->A + (i + r) * g->Lda, g->K, aPacked + r * g->KPairs);
                    Int8MicroKernel.RunPanels(g, mr, aPacked, g->C + i * g->Ldc, p0, p1);
                }
            }
        }
        finally
        {
            if (rented != null) ArrayPool<int>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// Rows [row0, row1) x panels [p0, p1) with the byte-quad kernel. vpmaddubsw takes the activations as they are,
    /// so rows of A are read in place unless their last quad would run past K into memory that may not exist; then
    /// each tile's rows are copied, zero-padded, to the stack (StackInts · 4 bytes hold 6 rows of K up to ~10,900).
    /// </summary>
    private static void QuadTask(Int8GemmArgs* g, int row0, int row1, int p0, int p1)
    {
        int mrMax = g->RowsPerTile;
        if (g->RowsPadded)
        {
            for (int i = row0; i < row1; i += mrMax)
                Int8MicroKernel.RunQuadPanelsAvx2(g, Math.Min(mrMax, row1 - i), g->A + i * g->Lda, g->Lda, g->C + i * g->Ldc, p0, p1);
            return;
        }
        int rowBytes = g->KQuads * 4, packedBytes = mrMax * rowBytes;
        byte[]? rented = null;
        byte* stackBuffer = stackalloc byte[packedBytes <= StackInts * 4 ? packedBytes : 0];
        if (packedBytes > StackInts * 4) rented = ArrayPool<byte>.Shared.Rent(packedBytes);
        try
        {
            fixed (byte* heapBuffer = rented)
            {
                byte* aPacked = rented == null ? stackBuffer : heapBuffer;
                for (int i = row0; i < row1; i += mrMax)
                {
                    int mr = Math.Min(mrMax, row1 - i);
                    for (int r = 0; r < mr; r++)
                    {
                        byte* dst = aPacked + r * rowBytes;
                        Unsafe.CopyBlockUnaligned(dst, g->A + (i + r) * g->Lda, (uint)g->K);
                        Unsafe.InitBlockUnaligned(dst + g->K, 0, (uint)(rowBytes - g->K));
                    }
                    Int8MicroKernel.RunQuadPanelsAvx2(g, mr, aPacked, rowBytes, g->C + i * g->Ldc, p0, p1);
                }
            }
        }
        finally
        {
            if (rented != null) ArrayPool<byte>.Shared.Return(rented);
        }
    }
}
