using System.CommandLine;
using MobileNetSharp.Graph;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Cli.Commands;

/// <summary>
/// `mnet run MODEL.onnx --input NAME=FILE.npy [--input ...] [--output DIR] [--threads T] [--dim NAME=VALUE] [--shape INPUT=DxD..]`: runs an ONNX model
/// on tensors from .npy (or ONNX TensorProto .pb) files and writes each output as DIR/&lt;output name&gt;.npy.
/// </summary>
public static class RunCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "The .onnx or .tflite model to run, or `builtin`" };
        var inputs = new Option<string[]>("--input", "-i")
        {
            Description = "NAME=FILE for each model input (.npy, or .pb TensorProto); a single-input model also takes just FILE",
        };
        var outputDir = new Option<string>("--output", "-o") { Description = "Folder for the outputs, one <output name>.npy each", DefaultValueFactory = _ => "." };
        var threads = Cli.Threads();
        var cmd = new Command("run", "Run an ONNX or TFLite model on .npy/.pb inputs and save its outputs as .npy. The inputs' shapes fill the "
            + "model's symbolic dimensions; --dim and --shape, when given, take precedence.") { model, inputs, outputDir, threads };
        var shapes = new ShapeOptions();
        shapes.AddTo(cmd);
        cmd.SetAction(r => Cli.Guard(() =>
        {
            string path = r.GetValue(model)!;
            if (path == BuiltinModel.Name) path = BuiltinModel.Path;
            if (!File.Exists(path)) throw new FileNotFoundException(path == BuiltinModel.Path ? $"The built-in model is missing from {path}; reinstall mnet." : $"No such model file: {path}");
            var (dims, shapeOverrides) = shapes.Parse(r);
            var given = ParseInputs(r.GetValue(inputs) ?? []);
            var graph = Load(path, given, dims, shapeOverrides);
            var feeds = Bind(graph, given);
            string dir = r.GetValue(outputDir)!;
            Directory.CreateDirectory(dir);
            var written = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (name, tensor) in Execute(graph, feeds, r.GetValue(threads)))
            {
                // Two output names may sanitize to one file name; number the later ones instead of overwriting.
                string stem = FileName(name), file = Path.Combine(dir, stem + ".npy");
                for (int k = 2; !written.Add(file); k++) file = Path.Combine(dir, $"{stem}_{k}.npy");
                Npy.Write(file, tensor);
                Console.Out.WriteLine($"{name}: {Shape.Format(tensor.Shape)} -> {file}");
            }
            return 0;
        }));
        return cmd;
    }

    /// <summary>
    /// Imports with the files' shapes, which fill in symbolic dimensions (batch, height, ...) the way any ONNX
    /// runtime does; shape computations in the model are then folded for exactly those shapes. --shape replaces
    /// a file's shape and --dim the sizes of the axes it names, so the model is imported as asked (and a file
    /// that does not fit is then reported by the session). A bare FILE feeds the one input the model has.
    /// </summary>
    private static ModelGraph Load(string path, Dictionary<string, Tensor> given, Dictionary<string, int> dims, Dictionary<string, int[]> overrides)
    {
        if (ModelSource.IsTfLite(path))
        {
            var tflite = ModelSource.LoadTfLite(path, false, dims.Count > 0 || overrides.Count > 0);
            if (given.Remove("", out var single))
            {
                if (tflite.Inputs.Count != 1 || given.Count > 0)
                    throw new ArgumentException($"The model has inputs {string.Join(", ", tflite.Inputs)}; give each as --input NAME=FILE.");
                given[tflite.Inputs[0].Name] = single;
            }
            return tflite;
        }
        var declared = OnnxImporter.ReadInputs(path);
        if (given.Remove("", out var unnamed))
        {
            if (declared.Count != 1 || given.Count > 0)
                throw new ArgumentException($"The model has inputs {string.Join(", ", declared)}; give each as --input NAME=FILE.");
            given[declared[0].Name] = unnamed;
        }
        var inputShapes = new Dictionary<string, int[]>(overrides);
        foreach (var (name, tensor) in given)
        {
            if (inputShapes.ContainsKey(name)) continue;
            var shape = (int[])tensor.Shape.Clone();
            if (declared.FirstOrDefault(d => d.Name == name)?.Dims is { } declaredDims && declaredDims.Count == shape.Length)
                for (int i = 0; i < shape.Length; i++)
                    if (declaredDims[i].Param is { } p && dims.TryGetValue(p, out int size)) shape[i] = size;
            inputShapes[name] = shape;
        }
        // An input that decides a shape, axes or indices (a Reshape's target fed as an input, say) must be known
        // at load time; the file gives its value, so it is bound as a constant and the rest stay runtime inputs.
        var constants = new Dictionary<string, Tensor>();
        while (true)
        {
            try
            {
                var graph = OnnxImporter.Load(path, new OnnxImportOptions { Dimensions = dims, InputShapes = inputShapes, Constants = constants });
                foreach (var name in constants.Keys) given.Remove(name);
                if (constants.Count > 0)
                    Console.Error.WriteLine($"mnet: note: input(s) {string.Join(", ", constants.Keys.Select(k => $"'{k}'"))} must be known at load time (they decide shapes, axes or indices, or feed an operator computed only at load time); their files' values are bound.");
                return graph;
            }
            catch (ConstantInputRequiredException e) when (e.RuntimeInputs.Count > 0 && e.RuntimeInputs.All(i => given.ContainsKey(i) && !constants.ContainsKey(i)))
            {
                foreach (var name in e.RuntimeInputs)
                {
                    constants[name] = given[name];
                    inputShapes.Remove(name);
                }
            }
        }
    }

    /// <summary>NAME=FILE pairs (a bare FILE gets the empty name), each file read with its own element type.</summary>
    private static Dictionary<string, Tensor> ParseInputs(string[] specs)
    {
        var result = new Dictionary<string, Tensor>();
        foreach (var spec in specs)
        {
            int eq = spec.IndexOf('=');
            string name = eq < 0 ? "" : spec[..eq], file = eq < 0 ? spec : spec[(eq + 1)..];
            if (file.Length == 0) throw new ArgumentException($"--input '{spec}' names no file.");
            if (!result.TryAdd(name, ReadTensor(file)))
                throw new ArgumentException(name.Length == 0 ? "Only one --input may omit NAME=." : $"Input '{name}' is given twice.");
        }
        return result;
    }

    private static Tensor ReadTensor(string file)
    {
        if (!File.Exists(file)) throw new FileNotFoundException($"No such input file: {file}");
        var t = Path.GetExtension(file).ToLowerInvariant() switch
        {
            ".npy" => Npy.Read(file),
            ".pb" => TensorProtoFile.Read(file),
            _ => throw new ArgumentException($"Input file '{file}' must be .npy or .pb (ONNX TensorProto)."),
        };
        return t;
    }

    /// <summary>The given tensors, one for each graph input.</summary>
    private static Dictionary<string, Tensor> Bind(ModelGraph graph, Dictionary<string, Tensor> given)
    {
        string known = string.Join(", ", graph.Inputs.Select(i => $"{i.Name} {Shape.Format(i.Shape)}"));
        foreach (var name in given.Keys)
            if (!graph.Inputs.Any(i => i.Name == name)) throw new ArgumentException($"The model has no input '{name}'. Inputs: {known}.");
        foreach (var i in graph.Inputs)
            if (!given.ContainsKey(i.Name)) throw new ArgumentException($"Input '{i.Name}' {Shape.Format(i.Shape)} is missing. Inputs: {known}.");
        return given;
    }

    /// <summary>Outputs in graph order; those the importer computed at load time need no session.</summary>
    private static IEnumerable<(string Name, Tensor Tensor)> Execute(ModelGraph graph, Dictionary<string, Tensor> feeds, int threads)
    {
        var computed = graph.Clone();
        computed.Outputs.RemoveAll(o => o.IsConstant);
        IReadOnlyDictionary<string, Tensor> results = new Dictionary<string, Tensor>();
        if (computed.Outputs.Count > 0)
        {
            using var session = new InferenceSession(computed, new SessionOptions { Threads = threads });
            results = session.Run(feeds);
        }
        return graph.Outputs.Select(o => (o.Name, o.Constant ?? results[o.Name]));
    }

    /// <summary>ONNX output names may hold '/', ':' and the like; those become '_' in the file name.</summary>
    private static string FileName(string outputName)
    {
        var invalid = Path.GetInvalidFileNameChars().Concat(['/', '\\', ':']).ToHashSet();
        string s = new(outputName.Select(c => invalid.Contains(c) ? '_' : c).ToArray());
        return s is "" or "." or ".." ? "output" : s;
    }
}
