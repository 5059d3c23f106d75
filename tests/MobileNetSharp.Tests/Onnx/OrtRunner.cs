using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MobileNetSharp.Tensors;
using OrtSession = Microsoft.ML.OnnxRuntime.InferenceSession;
using Tensor = MobileNetSharp.Tensors.Tensor;

namespace MobileNetSharp.Tests.Onnx;

/// <summary>Runs an ONNX model in ONNX Runtime, the oracle, with our tensors in and out.</summary>
public static class OrtRunner
{
    public static Dictionary<string, Tensor> Run(byte[] model, IEnumerable<KeyValuePair<string, Tensor>> inputs, int threads = 2)
    {
        using var options = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1 };
        using var session = new OrtSession(model, options);
        var feeds = inputs.ToDictionary(kv => kv.Key, kv => ToOrt(kv.Value));
        try
        {
            using var runOptions = new RunOptions();
            using var results = session.Run(runOptions, feeds, session.OutputNames);
            return session.OutputNames.Zip(results).ToDictionary(p => p.First, p => FromOrt(p.Second));
        }
        finally
        {
            foreach (var v in feeds.Values) v.Dispose();
        }
    }

    private static OrtValue ToOrt(Tensor t)
    {
        long[] shape = t.Shape.Select(d => (long)d).ToArray();
        // On DataType, not the array type: the CLR lets a byte[] pass for an sbyte[] and back.
        return t.DataType switch
        {
            DataType.Float32 => OrtValue.CreateTensorValueFromMemory((float[])t.Data, shape),
            DataType.Int64 => OrtValue.CreateTensorValueFromMemory((long[])t.Data, shape),
            DataType.Int32 => OrtValue.CreateTensorValueFromMemory((int[])t.Data, shape),
            DataType.Bool => OrtValue.CreateTensorValueFromMemory((bool[])t.Data, shape),
            DataType.Int8 => OrtValue.CreateTensorValueFromMemory((sbyte[])t.Data, shape),
            DataType.UInt8 => OrtValue.CreateTensorValueFromMemory((byte[])t.Data, shape),
            DataType.Float16 => OrtValue.CreateTensorValueFromMemory(Array.ConvertAll((Half[])t.Data, h => new Float16(BitConverter.HalfToUInt16Bits(h))), shape),
            _ => throw new ArgumentException($"Unsupported input type {t.DataType}."),
        };
    }

    private static Tensor FromOrt(OrtValue v)
    {
        var info = v.GetTensorTypeAndShape();
        int[] shape = info.Shape.Select(d => (int)d).ToArray();
        return info.ElementDataType switch
        {
            TensorElementType.Float => new Tensor(DataType.Float32, shape, v.GetTensorDataAsSpan<float>().ToArray()),
            TensorElementType.Int64 => new Tensor(DataType.Int64, shape, v.GetTensorDataAsSpan<long>().ToArray()),
            TensorElementType.Int32 => new Tensor(DataType.Int32, shape, v.GetTensorDataAsSpan<int>().ToArray()),
            TensorElementType.Bool => new Tensor(DataType.Bool, shape, v.GetTensorDataAsSpan<bool>().ToArray()),
            TensorElementType.UInt8 => new Tensor(DataType.UInt8, shape, v.GetTensorDataAsSpan<byte>().ToArray()),
            TensorElementType.Int8 => new Tensor(DataType.Int8, shape, v.GetTensorDataAsSpan<sbyte>().ToArray()),
            TensorElementType.Float16 => new Tensor(DataType.Float16, shape, v.GetTensorDataAsSpan<Float16>().ToArray().Select(f => BitConverter.UInt16BitsToHalf(f.value)).ToArray()),
            var other => throw new ArgumentException($"Unsupported ORT output type {other}."),
        };
    }
}
