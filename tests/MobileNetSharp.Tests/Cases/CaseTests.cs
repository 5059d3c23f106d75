using System.Runtime.CompilerServices;
using Google.Protobuf;
using MobileNetSharp.Graph;
using MobileNetSharp.Onnx;
using MobileNetSharp.Runtime;
using MobileNetSharp.Tensors;

namespace MobileNetSharp.Tests.Cases;

/// <summary>
/// The user cases in this folder (see README.md): each model run through the library against the outputs
/// computed independently, within 1e-4 * max(1, max|expected|), plus what each case is about.
/// </summary>
public class CaseTests
{
    private static string Here([CallerFilePath] string source = "") => Path.GetDirectoryName(source)!;

    public static TheoryData<string> All() => new(Directory.GetDirectories(Here()).Select(Path.GetFileName).Order(StringComparer.Ordinal)!);

    /// <summary>case.txt: "input NAME FILE" and "output NAME FILE" lines (other lines are notes).</summary>
    private static (Dictionary<string, Tensor> Inputs, Dictionary<string, Tensor> Outputs) Read(string dir)
    {
        var inputs = new Dictionary<string, Tensor>();
        var outputs = new Dictionary<string, Tensor>();
        foreach (var line in File.ReadAllLines(Path.Combine(dir, "case.txt")))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts is ["input", var name, var file]) inputs[name] = Npy.Read(Path.Combine(dir, file));
            else if (parts is ["output", var o, var f]) outputs[o] = Npy.Read(Path.Combine(dir, f));
        }
        Assert.NotEmpty(inputs);
        Assert.NotEmpty(outputs);
        return (inputs, outputs);
    }

    private static void Matches(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.Shape, actual.Shape);
        double scale = Math.Max(1.0, expected.Floats.Max(v => Math.Abs((double)v)));
        double worst = expected.Floats.Zip(actual.Floats, (e, a) => float.IsNaN(a) ? double.PositiveInfinity : Math.Abs((double)e - a)).Max();
        Assert.True(worst <= 1e-4 * scale, $"{what}: max abs error {worst:g4} exceeds 1e-4 x {scale:g4}");
    }

    [Theory]
    [MemberData(nameof(All))]
    public void CaseMatchesItsExpectedOutputs(string name)
    {
        string dir = Path.Combine(Here(), name);
        var (inputs, outputs) = Read(dir);
        // The shapes of the inputs given fix the model's symbolic dimensions, as `mnet run` does.
        var options = new OnnxImportOptions();
        foreach (var (input, t) in inputs) options.InputShapes[input] = t.Shape;
        var graph = OnnxImporter.Load(Path.Combine(dir, "model.onnx"), options);
        using var session = new InferenceSession(graph, new SessionOptions { Threads = 2 });
        var actual = session.Run(inputs);
        foreach (var (o, expected) in outputs) Matches(expected, actual[o], $"{name}/{o}");
    }

    /// <summary>
    /// se_expand_as: the squeeze-excite Expand(s, Shape(x)) is dropped at import, so the SE Mul broadcasts s
    /// itself. The plan is step for step the one for the same file with the Expands cut out by hand: no step
    /// materializes the expanded scale, and no copy or layout change is added around the Mul.
    /// </summary>
    [Fact]
    public void SqueezeExciteExpandCostsNothing()
    {
        string path = Path.Combine(Here(), "se_expand_as", "model.onnx");
        using var session = new InferenceSession(OnnxImporter.Load(path), new SessionOptions { Threads = 1 });
        var graph = session.OptimizedGraph; // the optimizer drops each Expand: the Mul broadcasts by itself
        Assert.DoesNotContain(graph.Nodes, n => n.Op.Type == "Expand");
        var seMuls = graph.Nodes.Where(n => n.Op is BinaryOp { Kind: MobileNetSharp.Graph.BinaryKind.Mul } && n.Name.EndsWith("body.5/Mul")).ToList();
        Assert.Equal(3, seMuls.Count);
        foreach (var mul in seMuls)
        {
            // conv output [N,C,H,W] times the scale [N,C,1,1], read as it is.
            var (x, s) = (mul.Input(0), mul.Input(1));
            Assert.Equal(x.Shape, mul.Output.Shape);
            Assert.Equal([x.Shape[0], x.Shape[1], 1, 1], s.Shape);
        }

        var model = OnnxImporter.Parse(File.ReadAllBytes(path));
        foreach (var expand in model.Graph.Node.Where(n => n.OpType == "Expand").ToList())
        {
            foreach (var reader in model.Graph.Node)
                for (int i = 0; i < reader.Input.Count; i++)
                    if (reader.Input[i] == expand.Output[0]) reader.Input[i] = expand.Input[0];
            model.Graph.Node.Remove(expand);
        }
        var handCut = OnnxImporter.Load(model.ToByteArray());

        using var reference = new InferenceSession(handCut, new SessionOptions { Threads = 1 });
        Assert.Equal(reference.Steps, session.Steps);
        Assert.DoesNotContain(session.Steps, s => s.Kernel is "Copy" or "Transpose" or "ToNchw");
        foreach (var mul in seMuls) Assert.Contains(session.Steps, s => s.Name == mul.Name);

        // The hard-swishes and hard-sigmoids, written out as Add/Relu/Clip/Mul/Div, fold into the convs and FC layers:
        // the only element-wise steps left are the three SE Muls (one carrying the hard-swish that follows it).
        string[] elementwise = ["Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "Relu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "Silu"];
        var left = session.Steps.Where(s => elementwise.Any(k => s.Kernel.StartsWith(k, StringComparison.Ordinal))).Select(s => s.Name);
        Assert.Equal(seMuls.Select(m => m.Name).Order(), left.Order());
    }
}
