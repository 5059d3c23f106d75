using System.Diagnostics;
using Google.Protobuf;
using MobileNetSharp.Graph;
using MobileNetSharp.Kernels;
using MobileNetSharp.Onnx;
using MobileNetSharp.Onnx.Proto;
using MobileNetSharp.Tensors;
using Xunit.Abstractions;

namespace MobileNetSharp.Tests.Onnx;

/// <summary>
/// Seeded mutation fuzzing of the importer and the runtime over several small valid models: byte-level
/// mutations (bit flips, truncation, splices) and structural ones (absurd dims, attribute values, renamed
/// values, swapped ops, rank growth, extreme kernel/dilation/stride/pad windows). Each mutant goes through
/// what `mnet run` does (<see cref="ModelExercise"/>): load, compile, run once on zeros. The only allowed
/// refusals are ModelFormatException, GraphException and ArgumentException; anything else is a bug.
/// </summary>
public class FuzzTests(ITestOutputHelper output)
{
    private const int MutantsPerSeed = 8000;

    public static TheoryData<string> Seeds() => new(SeedModels.Keys);

    private static readonly Dictionary<string, Func<byte[]>> SeedModels = new()
    {
        ["conv"] = () => HostileInputTests.ConvModel().ToBytes(),
        ["exported_blocks"] = ExportedBlocks,
        ["opset6_legacy"] = () => LegacyForms().ToBytes(),
        ["dynamic_reshape"] = () => DynamicReshape().ToBytes(),
        ["decoder_ops"] = () => DecoderOpsTests.DecoderModel().ToBytes(),
        ["argmax_where_cast_expand"] = () => MaskAndIndices().ToBytes(),
        // Old exporter output from the ONNX test data when installed (conv 1-D, pixel shuffle, GLU's split, indexing).
        ["pytorch_conv1d"] = () => TestData("pytorch-converted/test_Conv1d_groups"),
        ["pytorch_pixel_shuffle"] = () => TestData("pytorch-converted/test_PixelShuffle"),
        ["pytorch_glu"] = () => TestData("pytorch-converted/test_GLU_dim"),
        ["pytorch_index"] = () => TestData("pytorch-operator/test_operator_index"),
        ["node_maxpool_ceil"] = () => TestData("node/test_maxpool_2d_ceil"),
    };

    private static byte[] TestData(string test)
    {
        string path = Path.Combine(ConformanceSuite.Root, test, "model.onnx");
        return File.Exists(path) ? File.ReadAllBytes(path) : HostileInputTests.ConvModel(9).ToBytes();
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void MutantsLoadOrFailWithModelFormatException(string seed)
    {
        var original = SeedModels[seed]();
        OnnxImporter.Load(original); // the seed itself is valid
        var rng = new Random(StableHash(seed) ^ 20240917);
        var failures = new List<string>();
        var outcomes = new Dictionary<ModelExercise.Outcome, int>();
        int windowsRan = 0, rankGrowthRan = 0;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < MutantsPerSeed; i++)
        {
            var (mutant, how) = i % 2 == 0 ? MutateBytes(original, rng) : MutateStructure(original, rng);
            // Some mutants get a second and third change, to reach past the first check that fires.
            for (int extra = rng.Next(3); extra > 0 && i % 2 == 1; extra--)
            {
                var (next, more) = MutateStructure(mutant, rng);
                (mutant, how) = (next, $"{how}; {more}");
            }
            try
            {
                var (outcome, _) = ModelExercise.Run(mutant);
                outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
                if (outcome == ModelExercise.Outcome.Ran && how.Contains(" window ")) windowsRan++;
                if (outcome == ModelExercise.Outcome.Ran && (how.Contains("unsqueeze of") || how.Contains(" rank "))) rankGrowthRan++;
            }
            catch (Exception e) { failures.Add($"#{i} {how}: {e.GetType().Name}: {e.Message}\n{string.Join("\n", e.StackTrace?.Split('\n').Take(4) ?? [])}"); }
        }
        output.WriteLine($"{seed}: {MutantsPerSeed} mutants ({string.Join(", ", outcomes.OrderBy(o => o.Key).Select(o => $"{o.Value} {o.Key}"))}), "
            + $"{windowsRan} with extreme windows and {rankGrowthRan} with grown ranks ran, {failures.Count} unexpected exceptions, {clock.ElapsedMilliseconds} ms");
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(10)));
    }

    /// <summary>string.GetHashCode is randomized per process; the mutants must be the same on every run.</summary>
    private static int StableHash(string s)
    {
        int h = 17;
        foreach (char c in s) h = unchecked(h * 31 + c);
        return h;
    }

    private static (byte[], string) MutateBytes(byte[] source, Random rng)
    {
        var b = (byte[])source.Clone();
        switch (rng.Next(5))
        {
            case 0:
                int flips = rng.Next(1, 9);
                for (int k = 0; k < flips; k++) b[rng.Next(b.Length)] ^= (byte)(1 << rng.Next(8));
                return (b, $"{flips} bit flips");
            case 1:
                byte[] special = [0x00, 0xFF, 0x7F, 0x80, 0x01];
                int at = rng.Next(b.Length);
                for (int k = at; k < Math.Min(b.Length, at + rng.Next(1, 6)); k++) b[k] = special[rng.Next(special.Length)];
                return (b, $"special bytes at {at}");
            case 2:
                int cut = rng.Next(b.Length);
                return (b[..cut], $"truncated to {cut}");
            case 3:
            {
                int from = rng.Next(b.Length), len = rng.Next(1, Math.Min(64, b.Length - from) + 1), to = rng.Next(b.Length);
                return ([.. b[..to], .. b.AsSpan(from, len), .. b[to..]], $"spliced {len} bytes from {from} to {to}");
            }
            default:
            {
                int start = rng.Next(b.Length), len = rng.Next(1, Math.Min(32, b.Length - start) + 1);
                return ([.. b[..start], .. b[(start + len)..]], $"deleted {len} bytes at {start}");
            }
        }
    }

    private static readonly long[] Extremes = [0, -1, 1, 2, 3, -2, 7, 255, 65536, int.MaxValue, int.MinValue, (long)int.MaxValue + 1, long.MaxValue, long.MinValue, 1L << 40];
    private static readonly string[] Ops = OnnxImporter.SupportedOperators.ToArray();

    private static (byte[], string) MutateStructure(byte[] source, Random rng)
    {
        var m = ModelProto.Parser.ParseFrom(source);
        var g = m.Graph;
        long Extreme() => Extremes[rng.Next(Extremes.Length)];
        string how;
        switch (rng.Next(12))
        {
            case 0 when g.Initializer.Count > 0:
            {
                var t = g.Initializer[rng.Next(g.Initializer.Count)];
                if (t.Dims.Count == 0) t.Dims.Add(Extreme()); else t.Dims[rng.Next(t.Dims.Count)] = Extreme();
                how = $"initializer '{t.Name}' dims [{string.Join(",", t.Dims)}]";
                break;
            }
            case 1 when g.Initializer.Count > 0:
            {
                var t = g.Initializer[rng.Next(g.Initializer.Count)];
                t.DataType = rng.Next(0, 24);
                how = $"initializer '{t.Name}' type {t.DataType}";
                break;
            }
            case 2 when g.Initializer.Count > 0:
            {
                var t = g.Initializer[rng.Next(g.Initializer.Count)];
                t.RawData = ByteString.CopyFrom(t.RawData.Span[..rng.Next(t.RawData.Length + 1)]);
                how = $"initializer '{t.Name}' raw_data cut to {t.RawData.Length}";
                break;
            }
            case 3 when g.Node.Any(n => n.Attribute.Count > 0):
            {
                var n = g.Node.Where(n => n.Attribute.Count > 0).ElementAt(rng.Next(g.Node.Count(n => n.Attribute.Count > 0)));
                var a = n.Attribute[rng.Next(n.Attribute.Count)];
                if (a.Ints.Count > 0) a.Ints[rng.Next(a.Ints.Count)] = Extreme();
                else if (a.HasI) a.I = Extreme();
                else if (a.HasF) a.F = rng.Next(3) switch { 0 => float.NaN, 1 => float.PositiveInfinity, _ => -1e30f };
                else a.Type = (AttributeProto.Types.AttributeType)rng.Next(0, 15);
                how = $"node '{n.Name}' attribute '{a.Name}'";
                break;
            }
            case 4 when g.Node.Count > 0:
            {
                var n = g.Node[rng.Next(g.Node.Count)];
                n.OpType = Ops[rng.Next(Ops.Length)];
                how = $"node '{n.Name}' becomes {n.OpType}";
                break;
            }
            case 5 when g.Node.Count > 1:
            {
                var n = g.Node[rng.Next(g.Node.Count)];
                var names = g.Node.SelectMany(x => x.Output).Concat(g.Input.Select(v => v.Name)).Concat(g.Initializer.Select(t => t.Name)).ToArray();
                if (n.Input.Count > 0) n.Input[rng.Next(n.Input.Count)] = names[rng.Next(names.Length)];
                how = $"node '{n.Name}' rewired";
                break;
            }
            case 6 when g.Input.Count > 0:
            {
                var dims = g.Input[0].Type.TensorType.Shape.Dim;
                if (dims.Count > 0) dims[rng.Next(dims.Count)].DimValue = Extreme();
                how = "input dims";
                break;
            }
            case 7 when g.Node.Count > 0:
            {
                int k = rng.Next(g.Node.Count);
                if (rng.Next(2) == 0) g.Node.RemoveAt(k); else g.Node.Insert(rng.Next(g.Node.Count), g.Node[k].Clone());
                how = "node removed or duplicated";
                break;
            }
            case 9 when g.Node.Count > 0 && g.Node.Any(n => n.Output.Count > 0):
            {
                var withOutputs = g.Node.Where(n => n.Output.Count > 0).ToArray();
                var n = withOutputs[rng.Next(withOutputs.Length)];
                if (rng.Next(2) == 0 && n.Input.Count > 0) n.Input.RemoveAt(rng.Next(n.Input.Count)); else n.Input.Add(rng.Next(2) == 0 ? "" : n.Output[0]);
                how = $"node '{n.Name}' input list changed";
                break;
            }
            case 10 when g.Node.Count > 0:
                how = GrowRank(m, rng);
                break;
            case 11 when g.Node.Any(n => n.OpType is "Conv" or "ConvTranspose" or "MaxPool" or "AveragePool"):
                how = ExtremeWindow(g, rng);
                break;
            default:
                if (m.OpsetImport.Count == 0) m.OpsetImport.Add(new OperatorSetIdProto());
                m.OpsetImport[0].Version = rng.Next(0, 25);
                how = $"opset {m.OpsetImport[0].Version}";
                break;
        }
        return (m.ToByteArray(), how);
    }

    private static readonly long[] WindowExtremes = [1, 2, 3, 7, 255, 4096, 65535, 65536, 65537, 1 << 20, int.MaxValue];

    /// <summary>
    /// Rank growth: size-1 axes added to a graph input or an initializer, or an Unsqueeze of up to 12 axes
    /// spliced after a node (its readers now read the unsqueezed value).
    /// </summary>
    private static string GrowRank(ModelProto m, Random rng)
    {
        var g = m.Graph;
        int extra = rng.Next(1, 13);
        switch (rng.Next(3))
        {
            case 0 when g.Input.Count > 0 && g.Input[0].Type?.TensorType?.Shape is { } shape:
                for (int k = 0; k < extra; k++) shape.Dim.Insert(rng.Next(shape.Dim.Count + 1), new TensorShapeProto.Types.Dimension { DimValue = 1 });
                return $"input '{g.Input[0].Name}' rank {shape.Dim.Count}";
            case 1 when g.Initializer.Count > 0:
            {
                var t = g.Initializer[rng.Next(g.Initializer.Count)];
                for (int k = 0; k < extra; k++) t.Dims.Insert(rng.Next(t.Dims.Count + 1), 1);
                return $"initializer '{t.Name}' rank {t.Dims.Count}";
            }
            default:
            {
                var withOutputs = g.Node.Where(n => n.Output.Count > 0 && n.Output[0].Length > 0).ToArray();
                if (withOutputs.Length == 0) return "no rank growth";
                var n = withOutputs[rng.Next(withOutputs.Length)];
                string from = n.Output[0], to = from + "_unsq";
                foreach (var reader in g.Node)
                    for (int i = 0; i < reader.Input.Count; i++)
                        if (reader.Input[i] == from) reader.Input[i] = to;
                foreach (var o in g.Output) if (o.Name == from) o.Name = to;
                var axes = Enumerable.Range(0, extra).Select(a => (long)a).ToArray();
                int opset = (int)m.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx")?.Version!;
                var unsqueeze = new NodeProto { OpType = "Unsqueeze", Name = $"grow_{from}", Input = { from }, Output = { to } };
                if (opset < 13) unsqueeze.Attribute.Add(OnnxModelBuilder.Attribute("axes", axes));
                else
                {
                    string axesName = $"grow_axes_{from}";
                    g.Initializer.Add(MobileNetSharp.Onnx.Export.TensorWriter.Write(new Tensor(axes, axes.Length), axesName));
                    unsqueeze.Input.Add(axesName);
                }
                g.Node.Insert(g.Node.IndexOf(n) + 1, unsqueeze);
                return $"unsqueeze of {extra} axes after '{from}'";
            }
        }
    }

    /// <summary>Kernel, dilation, stride and pad attributes (and ConvTranspose's output_padding/output_shape) of a Conv or pool set to extremes, alone or together.</summary>
    private static string ExtremeWindow(GraphProto g, Random rng)
    {
        var windows = g.Node.Where(n => n.OpType is "Conv" or "ConvTranspose" or "MaxPool" or "AveragePool").ToArray();
        var n = windows[rng.Next(windows.Length)];
        int spatial = n.Attribute.FirstOrDefault(a => a.Name == "kernel_shape")?.Ints.Count ?? 2;
        long Pick() => WindowExtremes[rng.Next(WindowExtremes.Length)];
        var changed = new List<string>();
        string[] names = n.OpType == "ConvTranspose"
            ? ["kernel_shape", "dilations", "strides", "pads", "output_padding", "output_shape"]
            : ["kernel_shape", "dilations", "strides", "pads"];
        foreach (var name in names)
        {
            if (rng.Next(2) == 0) continue;
            // A Conv's kernel must match its weight; change the weight too when it is an initializer.
            var values = Enumerable.Range(0, name == "pads" ? 2 * spatial : spatial).Select(_ => rng.Next(3) == 0 ? 1 : Pick()).ToArray();
            if (n.Attribute.FirstOrDefault(a => a.Name == name) is { } old) n.Attribute.Remove(old);
            n.Attribute.Add(OnnxModelBuilder.Attribute(name, values));
            changed.Add($"{name}=[{string.Join(",", values)}]");
            if (name == "kernel_shape" && n.OpType is "Conv" or "ConvTranspose" && n.Input.Count > 1
                && g.Initializer.FirstOrDefault(t => t.Name == n.Input[1]) is { Dims.Count: > 2 } w)
            {
                for (int d = 0; d < spatial && d + 2 < w.Dims.Count; d++) w.Dims[d + 2] = values[d];
                // Zero weights of the new size when that stays small (so the runtime sees the window); else no data.
                long elements = w.Dims.Aggregate(1L, (a, d) => d is >= 0 and <= int.MaxValue && a <= (1L << 40) ? a * d : long.MaxValue);
                w.FloatData.Clear();
                w.RawData = elements <= 1 << 20 && w.DataType == 1 ? ByteString.CopyFrom(new byte[elements * 4]) : ByteString.Empty;
            }
        }
        return $"node '{n.Name}' window {string.Join(" ", changed)}";
    }

    /// <summary>A small graph of the blocks our builders use, exported: conv/BN/HardSwish, squeeze-excite, residual, classifier.</summary>
    private static byte[] ExportedBlocks()
    {
        var b = new GraphBuilder("blocks", 3);
        var x = b.Input("input", 1, 3, 16, 16);
        x = b.ConvBnAct(x, 8, 3, 2, Activation.HardSwish);
        var y = b.ConvBnAct(x, 8, 3, 1, Activation.Relu6, groups: 8);
        y = b.SqueezeExcite(y, 4, Activation.HardSigmoid(1f / 6f, 0.5f));
        x = b.Binary(BinaryKind.Add, x, y);
        x = b.Add(new Softmax(1), "softmax", b.Linear(b.Flatten(b.GlobalAveragePool(x)), 5));
        b.Output(x);
        return OnnxExporter.ToBytes(b.Graph);
    }

    /// <summary>Opset-6 spellings: BN with is_test/spatial, legacy broadcast Add, attribute Pad/Clip/Squeeze, 2-D Softmax.</summary>
    internal static OnnxModelBuilder LegacyForms() => new OnnxModelBuilder(6)
        .Input("x", 1, 2, 5, 5)
        .Initializer("s", new Tensor([1f, 2f], 2)).Initializer("b", new Tensor([0.1f, -0.1f], 2))
        .Initializer("m", new Tensor([0f, 0.5f], 2)).Initializer("v", new Tensor([1f, 2f], 2))
        .Initializer("bias", new Tensor([0.5f, -0.5f], 2))
        .Node("BatchNormalization", ["x", "s", "b", "m", "v"], ["bn"], "bn", ("is_test", 1), ("spatial", 1), ("epsilon", 1e-3f))
        .Node("Add", ["bn", "bias"], ["biased"], "add", ("broadcast", 1), ("axis", 1))
        .Node("Pad", ["biased"], ["padded"], "pad", ("pads", new[] { 0, 0, 1, 1, 0, 0, 1, 1 }), ("mode", "reflect"))
        .Node("Clip", ["padded"], ["clipped"], "clip", ("min", 0f), ("max", 6f))
        .Node("GlobalAveragePool", ["clipped"], ["pooled"], "gap")
        .Node("Squeeze", ["pooled"], ["squeezed"], "squeeze", ("axes", new[] { 2, 3 }))
        .Node("Softmax", ["squeezed"], ["y"], "softmax")
        .Output("y", 1, 2);

    /// <summary>The Shape -> Gather -> Unsqueeze -> Concat -> Reshape chain exporters write for x.view(x.size(0), -1), plus Split and Slice.</summary>
    internal static OnnxModelBuilder DynamicReshape() => new OnnxModelBuilder(13)
        .Input("x", "batch", 4, 3, 3)
        .Initializer("zero", new Tensor([0L], []))
        .Initializer("minus_one", new Tensor([-1L], 1))
        .Initializer("axes0", new Tensor([0L], 1))
        .Initializer("split", new Tensor([2L, 2L], 2))
        .Initializer("starts", new Tensor([1L], 1)).Initializer("ends", new Tensor([3L], 1)).Initializer("slice_axes", new Tensor([2L], 1))
        .Node("Shape", ["x"], ["shape"], "shape")
        .Node("Gather", ["shape", "zero"], ["n"], "gather", ("axis", 0))
        .Node("Unsqueeze", ["n", "axes0"], ["n1"], "unsqueeze")
        .Node("Concat", ["n1", "minus_one"], ["target"], "concat", ("axis", 0))
        .Node("Split", ["x", "split"], ["a", "b"], "split", ("axis", 1))
        .Node("Slice", ["b", "starts", "ends", "slice_axes"], ["bs"], "slice")
        .Node("Transpose", ["a"], ["at"], "transpose", ("perm", new[] { 0, 1, 3, 2 }))
        .Node("Reshape", ["at", "target"], ["flat_a"], "reshape_a")
        .Node("Reshape", ["bs", "target"], ["flat_b"], "reshape_b")
        .Node("Concat", ["flat_a", "flat_b"], ["y"], "join", ("axis", 1))
        .Output("y", "batch", 30);

    /// <summary>
    /// A uint8 image cast to float, a per-pixel ArgMax (int64) cast back and expanded over the channels, a
    /// comparison mask and a Where, and a reduction: the element-type changes a model taking images and returning
    /// indices goes through.
    /// </summary>
    internal static OnnxModelBuilder MaskAndIndices() => new OnnxModelBuilder(13)
        .TypedInput("image", 2, 1, 3, 4, 4)
        .Initializer("shape", new Tensor([1L, 3L, 4L, 4L], 4))
        .Initializer("reps", new Tensor([1L, 1L, 2L, 1L], 4))
        .Node("Cast", ["image"], ["x"], "cast", ("to", 1))
        .Node("ArgMax", ["x"], ["idx"], "argmax", ("axis", 1), ("keepdims", 1))
        .Node("Cast", ["idx"], ["idx_f"], "cast_idx", ("to", 1))
        .Node("Expand", ["idx_f", "shape"], ["e"], "expand")
        .Node("Greater", ["x", "e"], ["mask"], "greater")
        .Node("Where", ["mask", "x", "e"], ["w"], "where")
        .Node("Tile", ["w", "reps"], ["t"], "tile")
        .Node("ReduceLogSumExp", ["t"], ["y"], "reduce", ("axes", new[] { 2, 3 }), ("keepdims", 0))
        .Output("y", 1, 3)
        .TypedOutput("idx", 7, 1, 1, 4, 4);
}
