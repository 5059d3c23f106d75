namespace MobileNetSharp.Bench;

/// <summary>Whole-model latency side by side with ONNX Runtime (filled in with the ONNX exporter).</summary>
public static class ModelBench
{
    public static int Run(string[] args)
    {
        Console.Error.WriteLine("models: not yet wired");
        return 1;
    }
}
