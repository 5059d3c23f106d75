using System.CommandLine;
using MobileNetSharp.Graph;
using MobileNetSharp.Onnx;

namespace MobileNetSharp.Cli.Commands;

/// <summary>
/// `mnet convert ARCH|MODEL.onnx [--width A] [--resolution R] [--classes N] [--channels C] [--small-input] [--dim NAME=VALUE] [--shape INPUT=DxD..] --to out.onnx`:
/// writes a built architecture, or a re-read ONNX model (load-time subgraphs folded), as standard ONNX.
/// A symbolic batch stays symbolic when the imported graph works at any batch; every other size is fixed.
/// </summary>
public static class ConvertCommand
{
    private const string Help =
        "Write an architecture or an ONNX model as a standard ONNX file. An .onnx model's symbolic dimensions are sized at import "
        + "(--dim, --shape) and written fixed; a symbolic batch left open stays symbolic when the model works at any batch as imported. "
        + "Shape computations (Shape/Gather/Concat -> Reshape chains) are folded at import for the sizes given, so a model that has "
        + "them keeps working at the exported size only, batch included (a note says when that fixed the batch).";

    public static Command Create()
    {
        var source = new Argument<string>("model") { Description = "Architecture name (see `mnet list`), a .onnx or a .tflite file" };
        var (width, res, classes) = (Cli.Width(), Cli.Resolution(), Cli.Classes());
        var to = new Option<string>("--to") { Description = "Output .onnx file", Required = true };
        var (channels, small) = (Cli.Channels(), Cli.SmallInput());
        var cmd = new Command("convert", Help) { source, width, res, classes, channels, small, to };
        var shapes = new ShapeOptions();
        shapes.AddTo(cmd);
        cmd.SetAction(r => Cli.Guard(() =>
        {
            string model = r.GetValue(source)!, target = r.GetValue(to)!;
            if (!target.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase)) throw new ArgumentException($"--to '{target}' must name a .onnx file.");
            ModelGraph graph;
            var options = shapes.ImportOptions(r);
            if (ModelSource.IsTfLite(model))
                graph = ModelSource.LoadTfLite(model, new Option[] { width, res, classes }.Any(o => r.GetResult(o) is { Implicit: false }),
                    options is { } t && (t.Dimensions.Count > 0 || t.InputShapes.Count > 0));
            else if (ModelSource.IsOnnx(model))
            {
                var builderOptions = new Option[] { width, res, classes, channels, small }.Where(o => r.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToList();
                if (builderOptions.Count > 0) throw new ArgumentException($"{string.Join(", ", builderOptions)} apply to architectures, not to .onnx files.");
                if (!File.Exists(model)) throw new FileNotFoundException($"No such model file: {model}");
                graph = OnnxImporter.Load(model, options);
                foreach (var note in FixedBatchNotes(OnnxImporter.ReadInputs(model), graph, options))
                    Console.Error.WriteLine($"mnet: note: {note}");
            }
            else graph = ModelSource.Load(model, r.GetValue(width), r.GetValue(res), r.GetValue(classes), options,
                channels: r.GetValue(channels), smallInput: r.GetValue(small));

            OnnxExporter.Save(graph, target);
            var cost = CostModel.Analyze(graph);
            Console.Out.WriteLine($"{graph.Name}: {graph.Nodes.Count} nodes, {Cli.Count(cost.Params)} params, {Cli.Millions(cost.Macs)} MACs, "
                + $"input {string.Join(", ", graph.Inputs.Select(i => $"{i.Name} {Format(i)}"))} -> {target}");
            return 0;
        }));
        return cmd;
    }

    /// <summary>A shape as written: [N,3,224,224] when N stays symbolic.</summary>
    internal static string Format(Value v) =>
        "[" + string.Join(",", v.Shape.Select((d, i) => v.DimParams is { } p && p.Length == v.Rank && p[i] is { } name ? (name.Length > 0 ? name : "?") : d.ToString())) + "]";

    /// <summary>
    /// The batch dimensions the file leaves symbolic, that the user did not fix, and that the written file
    /// still fixes: the graph folded them into constants at import.
    /// </summary>
    private static IEnumerable<string> FixedBatchNotes(IReadOnlyList<OnnxInputInfo> declared, ModelGraph graph, OnnxImportOptions options)
    {
        foreach (var d in declared)
        {
            if (d.Dims is not { Count: > 0 } dims || dims[0].IsFixed || options.InputShapes.ContainsKey(d.Name)) continue;
            if (dims[0].Param is { Length: > 0 } p && options.Dimensions.ContainsKey(p)) continue;
            var v = graph.Inputs.FirstOrDefault(i => i.Name == d.Name);
            if (v is null || v.DimParams?[0] is not null) continue;
            string name = string.IsNullOrEmpty(dims[0].Param) ? "the batch" : $"'{dims[0].Param}'";
            yield return $"input '{d.Name}' keeps {name} fixed at {v.Shape[0]} in {Format(v)}: the model computes shapes from it, and they were folded "
                + $"at import for that size, so the written file works at that size only. Choose the size with "
                + (string.IsNullOrEmpty(dims[0].Param) ? $"--shape {d.Name}=..." : $"--dim {dims[0].Param}=VALUE") + ".";
        }
    }
}
