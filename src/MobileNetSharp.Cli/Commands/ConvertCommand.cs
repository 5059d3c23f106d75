using System.CommandLine;
using MobileNetSharp.Graph;
using MobileNetSharp.Onnx;

namespace MobileNetSharp.Cli.Commands;

/// <summary>
/// `mnet convert ARCH|MODEL.onnx [--width A] [--resolution R] [--classes N] --to out.onnx`: writes a built
/// architecture, or a re-read ONNX model (shapes made static, load-time subgraphs folded), as standard ONNX.
/// </summary>
public static class ConvertCommand
{
    public static Command Create()
    {
        var source = new Argument<string>("model") { Description = "Architecture name (see `mnet list`) or a .onnx file" };
        var (width, res, classes) = (Cli.Width(), Cli.Resolution(), Cli.Classes());
        var to = new Option<string>("--to") { Description = "Output .onnx file", Required = true };
        var cmd = new Command("convert", "Write an architecture or an ONNX model as a standard ONNX file") { source, width, res, classes, to };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            string model = r.GetValue(source)!, target = r.GetValue(to)!;
            if (!target.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase)) throw new ArgumentException($"--to '{target}' must name a .onnx file.");
            ModelGraph graph;
            if (model.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase))
            {
                var builderOptions = new Option[] { width, res, classes }.Where(o => r.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToList();
                if (builderOptions.Count > 0) throw new ArgumentException($"{string.Join(", ", builderOptions)} apply to architectures, not to .onnx files.");
                if (!File.Exists(model)) throw new FileNotFoundException($"No such model file: {model}");
                graph = OnnxImporter.Load(model);
            }
            else graph = Cli.Build(model, r.GetValue(width), r.GetValue(res), r.GetValue(classes));

            OnnxExporter.Save(graph, target);
            var cost = CostModel.Analyze(graph);
            Console.Out.WriteLine($"{graph.Name}: {graph.Nodes.Count} nodes, {Cli.Count(cost.Params)} params, {Cli.Millions(cost.Macs)} MACs, "
                + $"input {string.Join(", ", graph.Inputs.Select(i => $"{i.Name} {Tensors.Shape.Format(i.Shape)}"))} -> {target}");
            return 0;
        }));
        return cmd;
    }
}
