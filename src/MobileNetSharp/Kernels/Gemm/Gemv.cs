using MobileNetSharp.Graph;
using System.Runtime.CompilerServices;
using MobileNetSharp.Kernels.Simd;

namespace MobileNetSharp.Kernels.Gemm;

/// <summary>
/// C = act(A * B + bias) for a packed B and very few rows of A (a batch-1 classifier head). The GEMM tile
/// would compute six rows for every B load; here each packed panel is streamed once, every loaded B vector
/// feeds every row, and the k loop is unrolled by two with separate accumulators, so the kernel runs at the
/// speed the panels arrive from cache or memory. Panels are split across <see cref="Workers"/>.
/// </summary>
internal static unsafe class Gemv
{
    /// <summary>Rows handled by one pass over the panels.</summary>
    public const int MaxRows = 3;

    /// <summary>Below this many weights, waking other threads costs more than it saves.</summary>
    private const long ParallelThreshold = 1 << 16;

    private struct Args
    {
        public float* A, C;
        public nint Lda, Ldc;
        public float* B;
        public long PanelFloats;
        public int M, N, K, PanelCount, Chunks;
        public Activation Activation;
        public IsaLevel Isa;
    }

    public static void Run(IsaLevel isa, in Activation activation, int m, float* a, nint lda, PackedB b, float* c, nint ldc, Workers workers)
    {
        Args args = new()
        {
            A = a, Lda = lda, C = c, Ldc = ldc, B = b.Data, PanelFloats = b.PanelFloats,
            M = m, N = b.N, K = b.K, PanelCount = b.PanelCount, Activation = activation, Isa = isa,
        };
        args.Chunks = workers.Count == 1 || (long)b.K * b.N < ParallelThreshold ? 1 : Math.Min(b.PanelCount, workers.Count * 2);
        if (args.Chunks == 1) Task(&args, 0);
        else workers.For(args.Chunks, &Task, &args);
        GC.KeepAlive(b); // the tasks read its pinned buffer through a raw pointer
    }

    private static void Task(void* context, int index)
    {
        Args* args = (Args*)context;
        (int p0, int p1) = Workers.Split(args->PanelCount, args->Chunks, index);
        var body = new Body { Args = args, Panel0 = p0, Panel1 = p1 };
        KernelDispatch.Run(args->Isa, args->Activation.Kind, ref body);
    }

    private struct Body : IKernelBody
    {
        public Args* Args;
        public int Panel0, Panel1;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke<TS, TV, TA>() where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
        {
            Args* g = Args;
            int w = TS.Count;
            TV alpha = TS.Splat(g->Activation.Alpha), beta = TS.Splat(g->Activation.Beta);
            for (int i = 0; i < g->M; i += MaxRows)
            {
                int mr = Math.Min(MaxRows, g->M - i);
                float* a = g->A + i * g->Lda;
                float* c = g->C + i * g->Ldc;
                for (int p = Panel0; p < Panel1; p++)
                {
                    int j = p * 2 * w, nc = Math.Min(2 * w, g->N - j);
                    float* panel = g->B + p * g->PanelFloats;
                    if (nc <= w) Panel1Wide<TS, TV, TA>(mr, nc, g->K, a, g->Lda, panel, c + j, g->Ldc, alpha, beta);
                    else Panel2Wide<TS, TV, TA>(mr, nc, g->K, a, g->Lda, panel, c + j, g->Ldc, alpha, beta);
                }
            }
        }
    }

    /// <summary>A panel of 2W columns (row stride 2W, bias row first) for mr ≤ 3 rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Panel2Wide<TS, TV, TA>(int mr, int nc, int k, float* a, nint lda, float* panel, float* c, nint ldc, TV alpha, TV beta)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
    {
        nint w = TS.Count;
        float* a0 = a, a1 = mr > 1 ? a + lda : a, a2 = mr > 2 ? a + 2 * lda : a1;
        float* b = panel + 2 * w;
        TV bias0 = TS.Load(panel), bias1 = TS.Load(panel + w);
        // Row r, column half h, k parity e: c{r}{h}{e}.
        TV c000 = bias0, c010 = bias1, c001 = TS.Zero, c011 = TS.Zero;
        TV c100 = bias0, c110 = bias1, c101 = TS.Zero, c111 = TS.Zero;
        TV c200 = bias0, c210 = bias1, c201 = TS.Zero, c211 = TS.Zero;
        int p = 0;
        if (mr == 1)
        {
            for (; p + 2 <= k; p += 2, b += 4 * w)
            {
                TV x0 = TS.Splat(a0[p]), x1 = TS.Splat(a0[p + 1]);
                c000 = TS.Fma(x0, TS.Load(b), c000); c010 = TS.Fma(x0, TS.Load(b + w), c010);
                c001 = TS.Fma(x1, TS.Load(b + 2 * w), c001); c011 = TS.Fma(x1, TS.Load(b + 3 * w), c011);
            }
        }
        else
        {
            for (; p + 2 <= k; p += 2, b += 4 * w)
            {
                TV b00 = TS.Load(b), b01 = TS.Load(b + w), b10 = TS.Load(b + 2 * w), b11 = TS.Load(b + 3 * w);
                TV x0 = TS.Splat(a0[p]), x1 = TS.Splat(a0[p + 1]);
                c000 = TS.Fma(x0, b00, c000); c010 = TS.Fma(x0, b01, c010); c001 = TS.Fma(x1, b10, c001); c011 = TS.Fma(x1, b11, c011);
                x0 = TS.Splat(a1[p]); x1 = TS.Splat(a1[p + 1]);
                c100 = TS.Fma(x0, b00, c100); c110 = TS.Fma(x0, b01, c110); c101 = TS.Fma(x1, b10, c101); c111 = TS.Fma(x1, b11, c111);
                x0 = TS.Splat(a2[p]); x1 = TS.Splat(a2[p + 1]);
                c200 = TS.Fma(x0, b00, c200); c210 = TS.Fma(x0, b01, c210); c201 = TS.Fma(x1, b10, c201); c211 = TS.Fma(x1, b11, c211);
            }
        }
        if (p < k)
        {
            TV b00 = TS.Load(b), b01 = TS.Load(b + w);
            c000 = TS.Fma(TS.Splat(a0[p]), b00, c000); c010 = TS.Fma(TS.Splat(a0[p]), b01, c010);
            c100 = TS.Fma(TS.Splat(a1[p]), b00, c100); c110 = TS.Fma(TS.Splat(a1[p]), b01, c110);
            c200 = TS.Fma(TS.Splat(a2[p]), b00, c200); c210 = TS.Fma(TS.Splat(a2[p]), b01, c210);
        }
        int n1 = nc - (int)w;
        Store2<TS, TV, TA>(c, TS.Add(c000, c001), TS.Add(c010, c011), n1, alpha, beta);
        if (mr > 1) Store2<TS, TV, TA>(c + ldc, TS.Add(c100, c101), TS.Add(c110, c111), n1, alpha, beta);
        if (mr > 2) Store2<TS, TV, TA>(c + 2 * ldc, TS.Add(c200, c201), TS.Add(c210, c211), n1, alpha, beta);
    }

    /// <summary>A last panel of at most W columns (row stride W).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Panel1Wide<TS, TV, TA>(int mr, int nc, int k, float* a, nint lda, float* panel, float* c, nint ldc, TV alpha, TV beta)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
    {
        nint w = TS.Count;
        float* b = panel + w;
        TV bias = TS.Load(panel);
        for (int r = 0; r < mr; r++)
        {
            float* ar = a + r * lda;
            float* br = b;
            TV e = bias, o = TS.Zero;
            int p = 0;
            for (; p + 2 <= k; p += 2, br += 2 * w)
            {
                e = TS.Fma(TS.Splat(ar[p]), TS.Load(br), e);
                o = TS.Fma(TS.Splat(ar[p + 1]), TS.Load(br + w), o);
            }
            if (p < k) e = TS.Fma(TS.Splat(ar[p]), TS.Load(br), e);
            TV v = TA.Apply<TS, TV>(TS.Add(e, o), alpha, beta);
            if (nc == w) TS.Store(c + r * ldc, v);
            else TS.StorePartial(c + r * ldc, v, nc);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store2<TS, TV, TA>(float* c, TV v0, TV v1, int n1, TV alpha, TV beta)
        where TS : unmanaged, ISimd<TV> where TV : unmanaged where TA : unmanaged, IActivationOp
    {
        TS.Store(c, TA.Apply<TS, TV>(v0, alpha, beta));
        v1 = TA.Apply<TS, TV>(v1, alpha, beta);
        if (n1 == TS.Count) TS.Store(c + TS.Count, v1);
        else TS.StorePartial(c + TS.Count, v1, n1);
    }
}
