using MobileNetSharp.Graph;
using MobileNetSharp.Onnx;
using MobileNetSharp.Onnx.Proto;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Onnx;

/// <summary>One test_data_set_N folder: inputs in graph-input order, expected outputs in graph-output order.</summary>
public sealed record DataSet(string Folder, Tensor[] Inputs, Tensor[] Outputs);

/// <summary>A backend test we claim, with the graph inputs (non-initializer) in declaration order.</summary>
public sealed record ConformanceCase(string Suite, string Name, string ModelPath, string[] InputNames, string[] OutputNames)
{
    public string Id => $"{Suite}/{Name}";

    public IEnumerable<DataSet> DataSets() => Directory.GetDirectories(Path.GetDirectoryName(ModelPath)!, "test_data_set_*").Order()
        .Select(d => new DataSet(d, Read(d, "input", InputNames.Length), Read(d, "output", OutputNames.Length)));

    private static Tensor[] Read(string folder, string prefix, int count) =>
        Enumerable.Range(0, count).Select(i => TensorProtoFile.Read(Path.Combine(folder, $"{prefix}_{i}.pb"))).ToArray();
}

/// <summary>
/// The ONNX backend test data (Debian libonnx-testdata): which tests use only operators we claim, and why
/// each other one is left out. Claimed tests whose element types are outside our tensor types (float16,
/// double, string, ...) are listed separately, as are those we deliberately refuse.
/// </summary>
public static class ConformanceSuite
{
    public const string Root = "/usr/share/libonnx-testdata/data";
    public static readonly string[] Suites = ["node", "pytorch-converted", "pytorch-operator", "simple"];

    /// <summary>Claimed-op tests the importer refuses on purpose, with the text its error must contain.</summary>
    public static readonly IReadOnlyDictionary<string, string> ExpectedRejections = new Dictionary<string, string>
    {
        // Inference engine: batch statistics and random dropout masks are training-only.
        ["node/test_batchnorm_epsilon_training_mode"] = "training_mode=1",
        ["node/test_batchnorm_example_training_mode"] = "training_mode=1",
        ["node/test_training_dropout"] = "training_mode=true",
        ["node/test_training_dropout_default"] = "training_mode=true",
        ["node/test_training_dropout_default_mask"] = "training_mode=true",
        ["node/test_training_dropout_mask"] = "training_mode=true",
        // MaxPool's argmax output has no graph op.
        ["node/test_maxpool_with_argmax_2d_precomputed_pads"] = "Indices output",
        ["node/test_maxpool_with_argmax_2d_precomputed_strides"] = "Indices output",
        // ConvTranspose runs 1-D and 2-D; the volumetric form has no kernel.
        ["node/test_convtranspose_3d"] = "3 spatial axes",
    };

    /// <summary>
    /// Claimed tests where ONNX Runtime itself departs from the ONNX reference, so the exported model cannot match
    /// the expected output there (our session must still pass them).
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> OrtDeviations = new Dictionary<string, string>
    {
        // align_corners with a scale whose in * scale is not whole: the reference maps with (in - 1) / (in * scale - 1),
        // ONNX Runtime with (in - 1) / (out - 1) (onnx/onnx#2462).
        ["node/test_resize_downsample_scales_linear_align_corners"] = "align_corners uses the integer output length",
        ["node/test_resize_downsample_scales_cubic_align_corners"] = "align_corners uses the integer output length",
    };

    public sealed record Survey(List<ConformanceCase> Claimed, SortedDictionary<string, List<string>> Unclaimed, List<string> TypeSkips);

    public static bool Available => Directory.Exists(Path.Combine(Root, "node"));

    public static Survey Scan()
    {
        var supported = OnnxImporter.SupportedOperators.ToHashSet();
        var claimed = new List<ConformanceCase>();
        var unclaimed = new SortedDictionary<string, List<string>>(StringComparer.Ordinal);
        var typeSkips = new List<string>();
        foreach (var suite in Suites)
        {
            string dir = Path.Combine(Root, suite);
            if (!Directory.Exists(dir)) continue;
            foreach (var testDir in Directory.GetDirectories(dir).Order(StringComparer.Ordinal))
            {
                string name = Path.GetFileName(testDir), id = $"{suite}/{name}", path = Path.Combine(testDir, "model.onnx");
                var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
                var g = model.Graph;
                var missing = g.Node.Where(n => n.Domain is not ("" or "ai.onnx") || !supported.Contains(n.OpType))
                    .Select(n => n.Domain is "" or "ai.onnx" ? n.OpType : $"{n.Domain}.{n.OpType}").Distinct().Order().ToList();
                if (missing.Count > 0)
                {
                    (unclaimed.TryGetValue(string.Join("+", missing), out var list) ? list : unclaimed[string.Join("+", missing)] = []).Add(id);
                    continue;
                }
                var initializers = g.Initializer.Select(t => t.Name).ToHashSet();
                var inputs = g.Input.Where(v => !initializers.Contains(v.Name)).ToArray();
                var badTypes = inputs.Concat(g.Output).Where(v => v.Type?.TensorType is not { } t || !Enum.IsDefined(typeof(DataType), t.ElemType))
                    .Select(v => $"{v.Name}: {Describe(v.Type)}").ToList();
                if (badTypes.Count > 0)
                {
                    typeSkips.Add($"{id} ({string.Join(", ", badTypes)})");
                    continue;
                }
                claimed.Add(new ConformanceCase(suite, name, path, inputs.Select(v => v.Name).ToArray(), g.Output.Select(v => v.Name).ToArray()));
            }
        }
        return new Survey(claimed, unclaimed, typeSkips);
    }

    private static string Describe(TypeProto? t) =>
        t?.TensorType is { } tt ? MobileNetSharp.Onnx.OnnxDataTypes.Name(tt.ElemType) : t?.ValueCase.ToString() ?? "no type";

    /// <summary>
    /// Loads the case, binding as constants exactly the inputs the importer needs at load time (ONNX's tests
    /// feed shapes, axes, pads and bounds as graph inputs; our graph takes them as load-time constants).
    /// </summary>
    public static (ModelGraph Graph, Dictionary<string, Tensor> Frozen) Load(ConformanceCase c, DataSet data)
    {
        var frozen = new Dictionary<string, Tensor>();
        while (true)
        {
            try { return (OnnxImporter.Load(c.ModelPath, new OnnxImportOptions { Constants = new(frozen) }), frozen); }
            catch (ConstantInputRequiredException e) when (e.RuntimeInputs.Count > 0 && e.RuntimeInputs.All(n => c.InputNames.Contains(n) && !frozen.ContainsKey(n)))
            {
                foreach (var n in e.RuntimeInputs) frozen[n] = data.Inputs[Array.IndexOf(c.InputNames, n)];
            }
        }
    }

    /// <summary>numpy.allclose with ONNX's backend-test spirit: |a - e| &lt;= atol + rtol * |e|; non-float types exactly.</summary>
    public static string? Mismatch(Tensor expected, Tensor actual, double rtol = 1e-3, double atol = 1e-5)
    {
        if (!Shape.Equal(expected.Shape, actual.Shape)) return $"shape {Shape.Format(actual.Shape)}, expected {Shape.Format(expected.Shape)}";
        if (expected.DataType != actual.DataType) return $"type {actual.DataType}, expected {expected.DataType}";
        if (expected.Data is not float[] e)
        {
            for (int i = 0; i < expected.Length; i++)
                if (!Equals(expected.Data.GetValue(i), actual.Data.GetValue(i))) return $"element {i} is {actual.Data.GetValue(i)}, expected {expected.Data.GetValue(i)}";
            return null;
        }
        var a = actual.Floats;
        for (int i = 0; i < e.Length; i++)
        {
            if (float.IsNaN(e[i]) && float.IsNaN(a[i])) continue;
            if (float.IsInfinity(e[i]) && e[i] == a[i]) continue;
            if (!(Math.Abs((double)a[i] - e[i]) <= atol + rtol * Math.Abs((double)e[i])))
                return $"element {i} is {a[i]:R}, expected {e[i]:R}";
        }
        return null;
    }
}
