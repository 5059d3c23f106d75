using System.Diagnostics;
using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Kernels.Depthwise;

namespace MobileNetSharp.Bench;

/// <summary>
/// `dwbackward [--threads 1,2] [--runs N] [--batch B] [--stat median|min] [--kernel 3|5]`: times the depthwise forward kernel against the
/// depthwise InputGradient and WeightGradient on the 3x3 layer shapes of the width-0.5 MobileNetV2
/// --small-input (28x28 Fashion-MNIST) training step. Every kernel of one shape is timed in the same
/// process, interleaved run by run, and reported as the median (ms) with the bytes each must touch over
/// that time (GB/s); "x fwd" is the median over runs of the kernel's time over the forward's in the same run. Forward reads x, writes y; InputGradient reads dy, writes dx; WeightGradient reads x and dy.
/// </summary>
public static unsafe class DwBackwardBench
{
    private static readonly (int Hw, int C, int S)[] Shapes =
        [(28, 48, 1), (28, 96, 1), (28, 96, 2), (14, 96, 1), (14, 192, 1), (14, 192, 2), (7, 288, 1), (7, 480, 1)];

    public static int Run(string[] args)
    {
        int[] threads = [1, 2];
        int runs = 15, batch = 64;
        int kernel = 3; // --kernel 5: the same shapes with 5x5 kernels (pad 2), the other depthwise size MobileNets use
        bool useMin = false; // --stat min: the fastest run, less sensitive to other processes on a shared machine
        if (args.Length > 0 && args[0] == "--step") return Step(args[1..]);
        for (int i = 0; i + 1 < args.Length; i += 2)
            switch (args[i])
            {
                case "--threads": threads = args[i + 1].Split(',').Select(int.Parse).ToArray(); break;
                case "--runs": runs = int.Parse(args[i + 1]); break;
                case "--batch": batch = int.Parse(args[i + 1]); break;
                case "--stat": useMin = args[i + 1] == "min"; break;
                case "--kernel": kernel = int.Parse(args[i + 1]); break;
            }
        Console.WriteLine($"isa {Isa.Best}, {kernel}x{kernel} kernels, batch {batch}, {runs} runs, {(useMin ? "minimum" : "medians")}");
        Console.WriteLine($"{"shape",-18} {"T",2} {"fwd ms",8} {"GB/s",6} {"dX ms",8} {"GB/s",6} {"x fwd",6} {"dW ms",8} {"GB/s",6} {"x fwd",6}");
        double[] totals = new double[threads.Length * 3];
        var rng = new Random(1);
        foreach (var (hw, c, s) in Shapes)
        {
            int pad = kernel / 2;
            var g = new Conv2dGeometry(batch, hw, hw, c, c, kernel, kernel, s, s, 1, 1, pad, pad, pad, pad, c);
            float[] x = Fill(rng, g.InputLength), dy = Fill(rng, g.OutputLength), w = Fill(rng, g.WeightLength), b = Fill(rng, c);
            float[] y = new float[g.OutputLength], dx = new float[g.InputLength], dw = new float[g.WeightLength], db = new float[c];
            var conv = new DepthwiseConvolution(g, w, b, Isa.Best);
            float[] scratch = new float[Math.Max(1, conv.ScratchLength(batch))];
            double inBytes = g.InputLength * 4.0, outBytes = g.OutputLength * 4.0;
            for (int ti = 0; ti < threads.Length; ti++)
            {
                using var workers = new Workers(threads[ti]);
                using var burst = workers.Burst();
                var tf = new List<double>(); var ti_ = new List<double>(); var tw = new List<double>(); var ri = new List<double>(); var rw = new List<double>();
                for (int r = 0; r < runs + 2; r++)
                {
                    double f = Time(() => { fixed (float* px = x, py = y, ps = scratch) conv.Run(batch, px, py, null, Activation.None, workers, ps); });
                    double d = Time(() => DepthwiseBackward.InputGradient(g, dy, w, dx, workers));
                    double e = Time(() => DepthwiseBackward.WeightGradient(g, x, dy, dw, db, workers));
                    if (r < 2) continue; // warm-up (JIT tiers)
                    tf.Add(f); ti_.Add(d); tw.Add(e); ri.Add(d / f); rw.Add(e / f);
                }
                Func<List<double>, double> stat = useMin ? v => v.Min() : Median;
                double mf = stat(tf), mi = stat(ti_), mw = stat(tw);
                totals[ti * 3] += mf; totals[ti * 3 + 1] += mi; totals[ti * 3 + 2] += mw;
                Console.WriteLine($"{$"{hw}x{hw}x{c} s{s}",-18} {threads[ti],2} {mf,8:F3} {(inBytes + outBytes) / mf / 1e6,6:F1} {mi,8:F3} {(inBytes + outBytes) / mi / 1e6,6:F1} {(useMin ? mi / mf : Median(ri)),6:F2} {mw,8:F3} {(inBytes + outBytes) / mw / 1e6,6:F1} {(useMin ? mw / mf : Median(rw)),6:F2}");
            }
        }
        for (int ti = 0; ti < threads.Length; ti++)
            Console.WriteLine($"{"sum of shapes",-18} {threads[ti],2} {totals[ti * 3],8:F3} {"",6} {totals[ti * 3 + 1],8:F3} {"",6} {totals[ti * 3 + 1] / totals[ti * 3],6:F2} {totals[ti * 3 + 2],8:F3} {"",6} {totals[ti * 3 + 2] / totals[ti * 3],6:F2}");
        return 0;
    }

    /// <summary>`dwbackward --step [--threads T] [--runs N]`: the per-kernel profile of a whole training step of that model
    /// (batch 64, 1x28x28 NCHW images, 10 classes), milliseconds per step, largest first.</summary>
    private static int Step(string[] args)
    {
        int threads = 1, runs = 5;
        bool bySteps = args.Contains("--by-step");
        args = [.. args.Where(a => a != "--by-step")];
        for (int i = 0; i + 1 < args.Length; i += 2)
            switch (args[i])
            {
                case "--threads": threads = int.Parse(args[i + 1]); break;
                case "--runs": runs = int.Parse(args[i + 1]); break;
            }
        var model = MobileNetSharp.Models.MobileNetV2.Build(new MobileNetSharp.Models.ModelOptions(Width: 0.5f, Resolution: 28, Classes: 10, Batch: 64, InChannels: 1, SmallInput: true));
        using var session = new MobileNetSharp.Training.TrainingSession(model, new MobileNetSharp.Training.TrainingOptions { Threads = threads });
        var images = MobileNetSharp.Tensors.Tensor.Random(1, [64, 1, 28, 28]);
        var labels = Enumerable.Range(0, 64).Select(i => i % 10).ToArray();
        var profile = session.Profile(images, labels, runs);
        Console.WriteLine($"training step, {threads} thread(s), {runs} steps: {profile.Sum(p => p.Milliseconds):F1} ms per step");
        foreach (var (kernel, ms, count) in profile) Console.WriteLine($"{kernel,-40} {count,4} {ms,9:F2} ms");
        if (bySteps)
            foreach (var (name, kernel, shape, ms) in session.ProfileSteps(images, labels, runs))
                Console.WriteLine($"{name,-36} {kernel,-36} {MobileNetSharp.Tensors.Shape.Format(shape),-18} {ms,8:F2} ms");
        return 0;
    }

    private static float[] Fill(Random rng, long n)
    {
        var a = new float[n];
        for (long i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        return a;
    }

    private static double Time(Action a)
    {
        long t0 = Stopwatch.GetTimestamp();
        a();
        return Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
    }

    private static double Median(List<double> v)
    {
        v.Sort();
        return v.Count % 2 == 1 ? v[v.Count / 2] : (v[v.Count / 2 - 1] + v[v.Count / 2]) / 2;
    }
}
