using BenchmarkDotNet.Running;

namespace MobileNetSharp.Bench;

/// <summary>
/// Entry point. `kernels [BenchmarkDotNet args]` runs the micro-benchmarks of single kernels;
/// `models [...]` runs whole models side by side with ONNX Runtime (see ModelBench); `training [...]` measures
/// training images/s side by side with PyTorch (see TrainingBench); `dwbackward [...]` times the depthwise
/// backward kernels against the forward (see DwBackwardBench); `fusion [...]` times banded blocks against
/// layer-by-layer plans (see FusionBench); `int8gemm [...]` times the int8 GEMM against the float GEMM on
/// MobileNetV2's pointwise shapes (see Int8GemmBench); `int8dw [...]` times the int8 depthwise kernel against the
/// float one on MobileNetV2's depthwise layers (see Int8DepthwiseBench); `quantized [...]` times float and QDQ files
/// in ours and ORT (see QuantizedBench); `ortprofile --model FILE` prints ONNX Runtime's own per-node profile (see
/// OrtProfileBench). `models --cold-start R` also measures load and first run in fresh processes (see ColdStart).
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        string mode = args.Length > 0 ? args[0] : "models";
        string[] rest = args.Length > 0 ? args[1..] : [];
        try
        {
            return Dispatch(mode, rest);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or OverflowException or IndexOutOfRangeException or IOException or UnauthorizedAccessException)
        {
            // Bad options: one line, no stack trace (an index past the end is an option missing its value).
            Console.Error.WriteLine($"error: {(e is IndexOutOfRangeException ? "an option is missing its value" : e.Message)}");
            return 2;
        }
    }

    private static int Dispatch(string mode, string[] rest)
    {
        switch (mode)
        {
            case "kernels":
                BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(rest);
                return 0;
            case "models":
                return ModelBench.Run(rest);
            case "training":
                return TrainingBench.Run(rest);
            case "dwbackward":
                return DwBackwardBench.Run(rest);
            case "fusion":
                return FusionBench.Run(rest);
            case "int8gemm":
                return Int8GemmBench.Run(rest);
            case "quantized":
                return QuantizedBench.Run(rest);
            case "int8dw":
                return Int8DepthwiseBench.Run(rest);
            case "ortprofile":
                return OrtProfileBench.Run(rest);
            case "coldstart-one": // the child process of `models --cold-start R`
                return ColdStart.RunOne(rest);
            default:
                Console.Error.WriteLine("usage: MobileNetSharp.Bench (kernels [BenchmarkDotNet args] | models [--arch A,B] [--threads 1,2] [--runs N] [--batches 1,8,32] [--json FILE] [--width W] [--resolution R] [--ort-no-spin] [--pause MS] [--by-position] [--cold-start R] | training [--threads 1,2] [--networks mobilenet_v2,standard_conv_twin] [--rounds R] [--steps N] [--warmup N] [--batch B] [--no-pytorch] [--json FILE] | dwbackward [--threads 1,2] [--runs N] [--batch B] | fusion [--arch A,B] [--threads 1,2] [--batch B] [--runs N] | int8gemm [--threads 1,2] [--runs N] [--isa v128|v256|scalar] [--shape MxKxN] [--weight-bits 8|7] | int8dw [--threads 1,2] [--runs N] [--isa v128|v256|scalar] [--shape HxWxCkKsS] | quantized [--arch A,B] [--threads 1,2] [--runs N] [--samples N] | ortprofile --model FILE [--threads T] [--runs N] [--top K])");
                return 2;
        }
    }
}
