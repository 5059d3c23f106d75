namespace MobileNetSharp.Kernels.Conv;

/// <summary>
/// Unfolds one NHWC image into the GEMM left-hand side: one row per output pixel, laid out
/// [group][ky][kx][channel-in-group] so each group's K = KH*KW*InC/groups values are contiguous
/// (GEMM for group g reads at column offset g*K with row stride InC*KH*KW). Padding taps are zeros.
/// </summary>
internal static unsafe class Im2Col
{
    public struct Args
    {
        public float* Image, Columns;
        public Conv2dGeometry G;
        public int Chunks;
    }

    public static void Run(ref Args args, Workers workers)
    {
        args.Chunks = workers.Count == 1 ? 1 : Math.Min(args.G.OutH, workers.Count * 2);
        workers.For(args.Chunks, &Task, System.Runtime.CompilerServices.Unsafe.AsPointer(ref args));
    }

    private static void Task(void* context, int index)
    {
        Args* a = (Args*)context;
        Conv2dGeometry g = a->G;
        (int y0, int y1) = Workers.Split(g.OutH, a->Chunks, index);
        int icg = g.InCPerGroup, taps = g.KernelH * g.KernelW;
        long rowLength = (long)g.InC * taps;
        int bytes = icg * sizeof(float);
        for (int oy = y0; oy < y1; oy++)
        {
            for (int ox = 0; ox < g.OutW; ox++)
            {
                float* row = a->Columns + ((long)oy * g.OutW + ox) * rowLength;
                for (int ky = 0; ky < g.KernelH; ky++)
                {
                    int iy = oy * g.StrideH - g.PadTop + ky * g.DilationH;
                    for (int kx = 0; kx < g.KernelW; kx++)
                    {
                        int ix = ox * g.StrideW - g.PadLeft + kx * g.DilationW;
                        int tap = ky * g.KernelW + kx;
                        bool inside = (uint)iy < (uint)g.InH && (uint)ix < (uint)g.InW;
                        float* src = a->Image + ((long)iy * g.InW + ix) * g.InC;
                        for (int grp = 0; grp < g.Groups; grp++)
                        {
                            float* dst = row + ((long)grp * taps + tap) * icg;
                            if (inside) Buffer.MemoryCopy(src + grp * icg, dst, bytes, bytes);
                            else new Span<float>(dst, icg).Clear();
                        }
                    }
                }
            }
        }
    }
}
