using System.CommandLine;
using System.Globalization;
using MobileNetSharp.Onnx;

namespace MobileNetSharp.Cli.Commands;

/// <summary>
/// `--dim NAME=VALUE` and `--shape INPUT=1x3x224x224`: the sizes an .onnx model leaves symbolic, given on the
/// command line. They map to <see cref="OnnxImportOptions.Dimensions"/> and <see cref="OnnxImportOptions.InputShapes"/>;
/// the importer checks them against the file (unknown names, rank, fixed sizes, contradictions).
/// </summary>
internal sealed class ShapeOptions
{
    public Option<string[]> Dim { get; } = new("--dim")
    {
        Description = "Size of a symbolic dimension of an .onnx model's inputs, e.g. --dim H=160 (repeatable)",
        HelpName = "NAME=VALUE",
    };

    public Option<string[]> Shape { get; } = new("--shape")
    {
        Description = "Whole shape of one .onnx input, e.g. --shape x=1x3x160x160 (repeatable)",
        HelpName = "INPUT=DxDx..",
    };

    public void AddTo(Command command)
    {
        command.Options.Add(Dim);
        command.Options.Add(Shape);
    }

    /// <summary>The parsed values; throws ArgumentException with the offending option when one is malformed.</summary>
    public (Dictionary<string, int> Dims, Dictionary<string, int[]> Shapes) Parse(ParseResult r) =>
        (ParseDims(r.GetValue(Dim) ?? []), ParseShapes(r.GetValue(Shape) ?? []));

    /// <summary>Whether either option was given (they apply to .onnx files only).</summary>
    public bool Given(ParseResult r) => (r.GetValue(Dim)?.Length ?? 0) + (r.GetValue(Shape)?.Length ?? 0) > 0;

    /// <summary>The import options for these values, with the batch used where the file leaves it open.</summary>
    public OnnxImportOptions ImportOptions(ParseResult r, int defaultBatch = 1)
    {
        var (dims, shapes) = Parse(r);
        return new OnnxImportOptions { Dimensions = dims, InputShapes = shapes, DefaultBatch = defaultBatch };
    }

    public static Dictionary<string, int> ParseDims(IEnumerable<string> specs)
    {
        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var spec in specs)
        {
            var (name, value) = Split(spec, "--dim", "H=160");
            if (!result.TryAdd(name, Size(value, $"--dim {spec}")))
                throw new ArgumentException($"--dim {name} is given twice.");
        }
        return result;
    }

    public static Dictionary<string, int[]> ParseShapes(IEnumerable<string> specs)
    {
        var result = new Dictionary<string, int[]>(StringComparer.Ordinal);
        foreach (var spec in specs)
        {
            var (name, value) = Split(spec, "--shape", "x=1x3x224x224");
            var dims = value.Split('x', ',').Select(d => Size(d, $"--shape {spec}")).ToArray();
            if (dims.Length > Tensors.Shape.MaxRank)
                throw new ArgumentException($"--shape {spec} has rank {dims.Length}; at most {Tensors.Shape.MaxRank} is supported.");
            if (!result.TryAdd(name, dims)) throw new ArgumentException($"--shape {name} is given twice.");
        }
        return result;
    }

    /// <summary>NAME=VALUE at the last '=' (input names may hold one; sizes never do).</summary>
    private static (string Name, string Value) Split(string spec, string option, string example)
    {
        int eq = spec.LastIndexOf('=');
        if (eq <= 0 || eq == spec.Length - 1) throw new ArgumentException($"{option} '{spec}' must be NAME=VALUE, e.g. {option} {example}.");
        return (spec[..eq], spec[(eq + 1)..]);
    }

    private static int Size(string text, string what)
    {
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int v) || v < 1)
            throw new ArgumentException($"{what}: '{text}' is not a size; sizes are positive integers (at most {int.MaxValue}).");
        return v;
    }
}
