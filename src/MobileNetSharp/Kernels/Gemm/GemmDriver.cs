using MobileNetSharp.Graph;
using System.Runtime.CompilerServices;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels.Gemm;

/// <summary>Everything one GEMM call needs, kept on the caller's stack and shared with the workers by pointer.</summary>
internal unsafe struct GemmArgs
{
    public float* A; public nint Lda;
    /// <summary>Packed panels (see <see cref="PackedB"/>) or, when <see cref="Packed"/> is false, row-major B with row stride Ldb.</summary>
    public float* B; public nint Ldb; public long PanelFloats; public bool Packed;
    public float* C; public nint Ldc;
    public float* R; public nint Ldr;
    public int M, N, K;
    public Activation Activation;
    public IsaLevel Isa;
    public int RowTiles, RowChunks, PanelCount, PanelGroups;
    /// <summary>When not null, the output's <see cref="ChannelMoments"/> partials [blocks][2][N], gathered tile chunk by
    /// tile chunk while C is still in cache (C's row stride is N); tasks are then the moments' blocks.</summary>
    public double* Moments;
    /// <summary>When not null, A is a batch norm's output never written: each chunk of A's rows is normalized from the batch
    /// norm's input into a per-task scratch (<see cref="ANormalizedScratch"/>, [tasks][chunk rows][K]) and multiplied there.</summary>
    public BatchNormApplyRows* ANormalized;
    public float* ANormalizedScratch;
    public int NormalizedChunk, NormalizedTasks;
    /// <summary>When not null (with <see cref="Moments"/>), C is written around the caches: each task makes its chunks of C in
    /// its <see cref="StreamChunkFloats"/> of this scratch, merges their moments there and copies them out with
    /// <see cref="StreamingStore.Copy"/>.</summary>
    public float* StreamScratch;
    public long StreamChunkFloats;
}

/// <summary>
/// Splits C = act(A * B + bias + R) into tasks over row blocks (and column panels when there are few rows),
/// runs them on <see cref="Workers"/>, and walks the micro-kernel over each block: for each 6-row tile of A
/// (which stays in L1), every panel of B in turn (streamed from L2).
/// </summary>
internal static unsafe class GemmDriver
{
    /// <summary>Below this many multiply-adds, waking other threads costs more than it saves.</summary>
    private const long ParallelThreshold = 1 << 16;

    /// <param name="moments">Null, or where the per-channel moments of C go (<see cref="ChannelMoments"/> partials
    /// [blocks][2][N], blocks cut in <see cref="GemmMicroKernel.MR"/>-row tiles); needs ldc == N.</param>
    public static void RunPacked(IsaLevel isa, in Activation activation, int m, float* a, nint lda, PackedB b,
        float* c, nint ldc, float* r, nint ldr, Workers workers, double* moments = null)
    {
        if (moments != null && ldc != b.N) throw new ArgumentException($"GEMM moments need a dense C (ldc {ldc} != N {b.N}).");
        GemmArgs args = new()
        {
            A = a, Lda = lda, B = b.Data, PanelFloats = b.PanelFloats, Packed = true,
            C = c, Ldc = ldc, R = r, Ldr = ldr, M = m, N = b.N, K = b.K,
            Activation = activation, Isa = isa, PanelCount = b.PanelCount, Moments = moments,
        };
        float[]? stream = RentStream(ref args, m, b.N, MomentsChunkRows(b.N), moments != null ? ChannelMoments.Blocks(m, b.N) : 0);
        try
        {
            fixed (float* ps = stream)
            {
                if (stream != null) args.StreamScratch = ps;
                Run(ref args, workers);
            }
        }
        finally
        {
            if (stream != null) System.Buffers.ArrayPool<float>.Shared.Return(stream);
        }
        GC.KeepAlive(b); // the tasks read its pinned buffer through a raw pointer
    }

    /// <summary>Scratch for <see cref="GemmArgs.StreamScratch"/> when C (m x n, with moments: <paramref name="tasks"/> &gt; 0) is
    /// large enough to be streamed (<see cref="StreamingStore.Pays"/>), else null.</summary>
    private static float[]? RentStream(ref GemmArgs args, int m, int n, int chunkRows, int tasks)
    {
        if (tasks <= 0 || !StreamingStore.Pays((long)m * n)) return null;
        args.StreamChunkFloats = (long)chunkRows * n;
        return System.Buffers.ArrayPool<float>.Shared.Rent(checked((int)(tasks * args.StreamChunkFloats)));
    }

    /// <summary>Rows of C per moments chunk: whole tiles, about <see cref="ChannelMoments.ChunkRows"/>.</summary>
    private static int MomentsChunkRows(int n) => Math.Max(1, ChannelMoments.ChunkRows(n) / GemmMicroKernel.MR) * GemmMicroKernel.MR;

    /// <summary>
    /// <see cref="RunPacked(IsaLevel, in Activation, int, float*, nint, PackedB, float*, nint, float*, nint, Workers, double*)"/>
    /// (no residual; C dense) with A a training-mode batch norm's output that was never written: each chunk of about
    /// <see cref="ChannelMoments.ChunkRows"/> rows (whole tiles) is normalized from the batch norm's input into the task's
    /// scratch, multiplied across every panel, and, with <paramref name="moments"/>, merged into its block's moments while
    /// C's rows are in L1. Tasks are the moments' blocks, or without moments a fixed number of row ranges. The bits of C are those of
    /// the batch norm written and then multiplied.
    /// </summary>
    /// <param name="scratch">At least <see cref="NormalizedScratchLength"/> floats.</param>
    public static void RunPackedNormalized(IsaLevel isa, in Activation activation, int m, in BatchNormApplyRows a, PackedB b, float* c, Workers workers,
        float* scratch, double* moments)
    {
        GemmArgs args = new()
        {
            A = null, Lda = b.K, B = b.Data, PanelFloats = b.PanelFloats, Packed = true, C = c, Ldc = b.N, M = m, N = b.N, K = b.K,
            Activation = activation, Isa = isa, PanelCount = b.PanelCount, Moments = moments, ANormalizedScratch = scratch,
            NormalizedChunk = MomentsChunkRows(b.N), NormalizedTasks = NormalizedTasks(m, b.N, moments != null),
        };
        if (m <= 0) return;
        float[]? stream = RentStream(ref args, m, b.N, args.NormalizedChunk, moments != null ? args.NormalizedTasks : 0);
        try
        {
            fixed (BatchNormApplyRows* pa = &a)
            fixed (float* ps = stream)
            {
                args.ANormalized = pa;
                if (stream != null) args.StreamScratch = ps;
                args.RowTiles = (m + GemmMicroKernel.MR - 1) / GemmMicroKernel.MR;
                if (workers.Count == 1 || args.NormalizedTasks == 1)
                    for (int i = 0; i < args.NormalizedTasks; i++) NormalizedTask(Unsafe.AsPointer(ref args), i);
                else workers.For(args.NormalizedTasks, &NormalizedTask, Unsafe.AsPointer(ref args));
            }
        }
        finally
        {
            if (stream != null) System.Buffers.ArrayPool<float>.Shared.Return(stream);
        }
        GC.KeepAlive(b);
    }

    /// <summary>Floats of scratch <see cref="RunPackedNormalized"/> needs: one chunk of A's rows for each of at most
    /// <see cref="ChannelMoments.MaxBlocks"/> tasks.</summary>
    public static long NormalizedScratchLength(int n, int k) => (long)ChannelMoments.MaxBlocks * MomentsChunkRows(n) * k;

    /// <summary>The moments' blocks, or without moments a fixed count of row ranges (at most <see cref="ChannelMoments.MaxBlocks"/> either way).</summary>
    private static int NormalizedTasks(int m, int n, bool moments) =>
        moments ? ChannelMoments.Blocks(m, n) : Math.Min((m + GemmMicroKernel.MR - 1) / GemmMicroKernel.MR, ChannelMoments.MaxBlocks);

    private static void NormalizedTask(void* context, int index)
    {
        GemmArgs* args = (GemmArgs*)context;
        const int MR = GemmMicroKernel.MR;
        int n = args->N, k = args->K;
        int r0, r1;
        double* mean = null, m2 = null;
        if (args->Moments != null)
        {
            (r0, r1) = ChannelMoments.BlockRows(args->M, n, index, MR);
            mean = args->Moments + (long)index * 2 * n;
            m2 = mean + n;
        }
        else
        {
            var (t0, t1) = Workers.Split(args->RowTiles, args->NormalizedTasks, index);
            (r0, r1) = (t0 * MR, Math.Min(args->M, t1 * MR));
        }
        float* scratch = args->ANormalizedScratch + (long)index * args->NormalizedChunk * k;
        float* stream = mean != null && args->StreamScratch != null ? args->StreamScratch + index * args->StreamChunkFloats : null;
        GemmArgs local = *args;
        for (int c0 = r0; c0 < r1; c0 += args->NormalizedChunk)
        {
            int c1 = Math.Min(r1, c0 + args->NormalizedChunk);
            args->ANormalized->Write(c0, c1 - c0, scratch, args->Isa);
            local.A = scratch - (long)c0 * k; // row i of A at scratch + (i - c0)·K
            if (stream != null) local.C = stream - (long)c0 * n; // and row i of C at stream + (i - c0)·N
            var block = new Block { Args = &local, Row0 = c0, Row1 = c1, Panel0 = 0, Panel1 = args->PanelCount };
            KernelDispatch.Run(args->Isa, args->Activation.Kind, ref block);
            if (mean != null) ChannelMoments.AddChunk(args->Isa, local.C + (long)c0 * n, c1 - c0, n, mean, m2, c0 - r0);
            if (stream != null) StreamingStore.Copy(stream, args->C + (long)c0 * n, (long)(c1 - c0) * n);
        }
    }

    /// <summary>C = A * B for B packed by <see cref="PackedB.Pack"/> into caller-owned, pinned memory; no residual or activation.</summary>
    public static void RunPacked(IsaLevel isa, int m, int n, int k, float* a, nint lda, float* packedB, float* c, nint ldc, Workers workers)
    {
        int w = Isa.Width(isa);
        GemmArgs args = new()
        {
            A = a, Lda = lda, B = packedB, PanelFloats = PackedB.PanelFloatsFor(k, w), Packed = true,
            C = c, Ldc = ldc, M = m, N = n, K = k, Activation = Activation.None, Isa = isa, PanelCount = PackedB.PanelCountFor(n, w),
        };
        Run(ref args, workers);
    }

    /// <summary>C = A * B for row-major B with no bias, residual or activation.</summary>
    public static void RunUnpacked(IsaLevel isa, int m, int n, int k, float* a, nint lda, float* b, nint ldb,
        float* c, nint ldc, Workers workers)
    {
        int w = Isa.Width(isa);
        GemmArgs args = new()
        {
            A = a, Lda = lda, B = b, Ldb = ldb, Packed = false, C = c, Ldc = ldc, M = m, N = n, K = k,
            Activation = Activation.None, Isa = isa, PanelCount = (n + 2 * w - 1) / (2 * w),
        };
        Run(ref args, workers);
    }

    private static void Run(ref GemmArgs args, Workers workers)
    {
        if (args.M <= 0 || args.N <= 0) return;
        args.RowTiles = (args.M + GemmMicroKernel.MR - 1) / GemmMicroKernel.MR;
        if (args.Moments != null)
        {
            // One task per moments block (fixed by the shape, so the statistics do not depend on the thread count),
            // each computing every panel of its rows.
            int blocks = ChannelMoments.Blocks(args.M, args.N);
            args.RowChunks = blocks;
            args.PanelGroups = 1;
            if (workers.Count == 1 || blocks == 1 || (long)args.M * args.N * args.K < ParallelThreshold)
                for (int i = 0; i < blocks; i++) MomentsTask(Unsafe.AsPointer(ref args), i);
            else workers.For(blocks, &MomentsTask, Unsafe.AsPointer(ref args));
            return;
        }
        if (workers.Count == 1 || (long)args.M * args.N * args.K < ParallelThreshold)
        {
            args.RowChunks = 1;
            args.PanelGroups = 1;
            Task(Unsafe.AsPointer(ref args), 0);
            return;
        }
        // A few tasks per thread so a thread slowed by the shared machine does not hold up the rest.
        int target = workers.Count * 4;
        args.RowChunks = Math.Min(args.RowTiles, target);
        args.PanelGroups = args.RowChunks >= target ? 1 : Math.Min(args.PanelCount, (target + args.RowChunks - 1) / args.RowChunks);
        workers.For(args.RowChunks * args.PanelGroups, &Task, Unsafe.AsPointer(ref args));
    }

    private static void Task(void* context, int index)
    {
        GemmArgs* args = (GemmArgs*)context;
        (int t0, int t1) = Workers.Split(args->RowTiles, args->RowChunks, index / args->PanelGroups);
        (int p0, int p1) = Workers.Split(args->PanelCount, args->PanelGroups, index % args->PanelGroups);
        var block = new Block { Args = args, Row0 = t0 * GemmMicroKernel.MR, Row1 = Math.Min(args->M, t1 * GemmMicroKernel.MR), Panel0 = p0, Panel1 = p1 };
        KernelDispatch.Run(args->Isa, args->Activation.Kind, ref block);
    }

    /// <summary>
    /// One moments block: its rows in chunks of whole tiles (about <see cref="ChannelMoments.ChunkRows"/>), each chunk
    /// multiplied across every panel and then, while it is in L1, merged into the block's moments.
    /// </summary>
    private static void MomentsTask(void* context, int index)
    {
        GemmArgs* args = (GemmArgs*)context;
        const int MR = GemmMicroKernel.MR;
        int n = args->N;
        var (r0, r1) = ChannelMoments.BlockRows(args->M, n, index, MR);
        int chunk = MomentsChunkRows(n);
        double* mean = args->Moments + (long)index * 2 * n, m2 = mean + n;
        float* stream = args->StreamScratch == null ? null : args->StreamScratch + index * args->StreamChunkFloats;
        GemmArgs local = *args;
        for (int c0 = r0; c0 < r1; c0 += chunk)
        {
            int c1 = Math.Min(r1, c0 + chunk);
            if (stream != null) local.C = stream - (long)c0 * n; // row i of C at stream + (i - c0)·N
            var block = new Block { Args = &local, Row0 = c0, Row1 = c1, Panel0 = 0, Panel1 = args->PanelCount };
            KernelDispatch.Run(args->Isa, args->Activation.Kind, ref block);
            ChannelMoments.AddChunk(args->Isa, local.C + (long)c0 * n, c1 - c0, n, mean, m2, c0 - r0);
            if (stream != null) StreamingStore.Copy(stream, args->C + (long)c0 * n, (long)(c1 - c0) * n);
        }
    }

    private struct Block : IKernelBody
    {
        public GemmArgs* Args;
        public int Row0, Row1, Panel0, Panel1;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke<TS, TV, TA>() where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
        {
            GemmArgs* g = Args;
            int w = TS.Count;
            TV alpha = TS.Splat(g->Activation.Alpha), beta = TS.Splat(g->Activation.Beta);
            for (int i = Row0; i < Row1; i += GemmMicroKernel.MR)
            {
                int mr = Math.Min(GemmMicroKernel.MR, Row1 - i);
                float* a = g->A + i * g->Lda;
                float* c = g->C + i * g->Ldc;
                float* r = g->R == null ? null : g->R + i * g->Ldr;
                for (int p = Panel0; p < Panel1; p++)
                {
                    int j = p * 2 * w;
                    int nc = Math.Min(2 * w, g->N - j);
                    float* rj = r == null ? null : r + j;
                    if (g->Packed)
                    {
                        float* bias = g->B + p * g->PanelFloats;
                        if (nc <= w)
                            GemmMicroKernel.Tile1<TS, TV, TA, AllLanes>(mr, nc, g->K, a, g->Lda, bias + w, w, bias, c + j, g->Ldc, rj, g->Ldr, alpha, beta);
                        else
                            GemmMicroKernel.Tile2<TS, TV, TA>(mr, nc, g->K, a, g->Lda, bias + 2 * w, 2 * w, bias, c + j, g->Ldc, rj, g->Ldr, alpha, beta);
                    }
                    else if (nc == 2 * w)
                    {
                        GemmMicroKernel.Tile2<TS, TV, TA>(mr, nc, g->K, a, g->Lda, g->B + j, g->Ldb, null, c + j, g->Ldc, rj, g->Ldr, alpha, beta);
                    }
                    else
                    {
                        // Unpacked B cannot be over-read past its last column: split into a full and a masked vector.
                        int first = Math.Min(w, nc);
                        UnpackedTile1<TS, TV, TA>(mr, first, a, g->B + j, c + j, rj, g, alpha, beta);
                        if (nc > w) UnpackedTile1<TS, TV, TA>(mr, nc - w, a, g->B + j + w, c + j + w, rj == null ? null : rj + w, g, alpha, beta);
                    }
                }
            }
        }

        private static void UnpackedTile1<TS, TV, TA>(int mr, int nc, float* a, float* b, float* c, float* r, GemmArgs* g, TV alpha, TV beta)
            where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
        {
            if (nc == TS.Count)
                GemmMicroKernel.Tile1<TS, TV, TA, AllLanes>(mr, nc, g->K, a, g->Lda, b, g->Ldb, null, c, g->Ldc, r, g->Ldr, alpha, beta);
            else
                GemmMicroKernel.Tile1<TS, TV, TA, FirstLanes>(mr, nc, g->K, a, g->Lda, b, g->Ldb, null, c, g->Ldc, r, g->Ldr, alpha, beta);
        }
    }
}
