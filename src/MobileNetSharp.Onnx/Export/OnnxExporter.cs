using System.Reflection;
using Google.Protobuf;
using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Onnx.Export;
using MobileNetSharp.Onnx.Proto;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Onnx;

/// <summary>
/// Writes a graph as a standard ONNX model that any ONNX runtime runs as it is: NCHW inputs and outputs,
/// default-domain operators only, weights as initializers. The opset is 14 (the first with HardSwish);
/// a graph that uses average pooling with dilations or wrap padding is written with opset 19, the first
/// that can express them.
/// </summary>
public static class OnnxExporter
{
    public const int DefaultOpset = 14;

    /// <summary>
    /// Writes the model atomically: to a temporary file beside <paramref name="path"/>, flushed, then renamed over it,
    /// so an existing file is never left half-written (a crash keeps the old one).
    /// </summary>
    public static void Save(ModelGraph graph, string path)
    {
        var bytes = ToBytes(graph);
        AtomicFile.Write(path, s => s.Write(bytes));
    }

    public static byte[] ToBytes(ModelGraph graph) => Build(graph).ToByteArray();

    internal static ModelProto Build(ModelGraph source)
    {
        var graph = source.Clone();
        graph.InferShapes();
        long bytes = graph.Constants.Sum(c => c.Length * c.DataType.SizeOf());
        if (bytes > int.MaxValue - (64 << 20))
            throw new ArgumentException($"The graph's {bytes} bytes of weights exceed what one ONNX file can hold (2 GiB).");

        int opset = RequiredOpset(graph);
        var writer = new GraphWriter(graph, opset);
        foreach (var v in graph.Inputs) writer.Proto.Input.Add(GraphWriter.Info(v));
        foreach (var n in graph.Nodes) n.Op.ExportOnnx(n, writer);
        foreach (var v in graph.Outputs)
        {
            // A constant output still has to be produced by a node under its own name.
            if (v.IsConstant) writer.Node("Identity", v.Name + "/output", [writer.Name(v)], [v.Name]);
            writer.Proto.Output.Add(GraphWriter.Info(v));
        }

        var model = new ModelProto
        {
            IrVersion = opset >= 19 ? 9 : 7,
            ProducerName = "MobileNetSharp",
            ProducerVersion = typeof(OnnxExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "",
            Graph = writer.Proto,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
        foreach (var kv in graph.Metadata) model.MetadataProps.Add(new StringStringEntryProto { Key = kv.Key, Value = kv.Value });
        return model;
    }

    private static int RequiredOpset(ModelGraph graph) => Math.Max(DefaultOpset, graph.Nodes.Select(n => n.Op.OnnxOpset(n)).DefaultIfEmpty(1).Max());
}
