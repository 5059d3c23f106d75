using MobileNetSharp.Onnx;
using MobileNetSharp.Tensors;
using Outcome = MobileNetSharp.Tests.Onnx.ModelExercise.Outcome;

namespace MobileNetSharp.Tests.Onnx;

/// <summary>
/// The fixed hostile corpus: the code reviews' repro models, rebuilt here with <see cref="OnnxModelBuilder"/>
/// (so no binary files are committed). Each goes through load, compile and one run like `mnet run`; each
/// must end in the stated outcome, and refusals must name the problem.
/// </summary>
public class HostileCorpusTests
{
    private static Tensor I64(params long[] v) => new(v, v.Length);
    private static Tensor Scalar(long v) => new([v], []);

    /// <summary>Name -> (model, expected outcome, fragments the refusal message must contain).</summary>
    private static readonly Dictionary<string, (Func<byte[]> Model, Outcome Expected, string[] Message)> Corpus = new()
    {
        // Range(1, 3000001) -> Unsqueeze(x, axes) -> Slice: a rank-3,000,001 tensor (stack overflow in the kernels).
        ["rank_bomb"] = (() => new OnnxModelBuilder().Input("x", 2)
            .Initializer("s", Scalar(1)).Initializer("l", Scalar(3_000_001)).Initializer("d", Scalar(1))
            .Initializer("st", I64(0)).Initializer("en", I64(1)).Initializer("ax", I64(0))
            .Node("Range", ["s", "l", "d"], ["axes"]).Node("Unsqueeze", ["x", "axes"], ["u"], "unsq")
            .Node("Slice", ["u", "st", "en", "ax"], ["y"]).Output("y").ToBytes(),
            Outcome.Refused, ["'unsq'", "rank 3000001", "at most 8"]),
        // Unsqueeze to rank 9 with a literal axes list.
        ["rank_nine_unsqueeze"] = (() => new OnnxModelBuilder().Input("x", 2)
            .Initializer("axes", I64(0, 1, 2, 3, 4, 5, 6, 7)).Node("Unsqueeze", ["x", "axes"], ["y"], "unsq").Output("y").ToBytes(),
            Outcome.Refused, ["'unsq'", "rank 9"]),
        // 12 x ConstantOfShape([2^26]) nobody reads: 3.7 GB before; now not evaluated at all.
        ["dead_constant_of_shape"] = (() => Amplifier(12, 26, live: false), Outcome.Ran, []),
        // The same tensors feeding the output: the whole-model budget stops the second one.
        ["live_constant_of_shape"] = (() => Amplifier(12, 25, live: true), Outcome.Refused, ["'cos1'", "for the whole model", "MaxFoldedElements"]),
        // 1000 Gathers of 4096 shared indices on a runtime tensor, unused: 2.27 GB before; now skipped.
        ["dead_gathers"] = (() => Gathers(1000, live: false), Outcome.Ran, []),
        // Two such Gathers that are used: the per-model slice budget stops the second.
        ["live_gathers"] = (() => Gathers(2, live: true), Outcome.Refused, ["'g1'", "limit of 4096 per model"]),
        // Where(Equal(NaN, NaN), 1, 2) + x: IEEE says 2.
        ["equal_nan"] = (() => EqualNaN().ToBytes(), Outcome.Ran, []),
        // ConstantOfShape weights [1,64,64,64] on a 256x256 input with pads 32: im2col scratch beyond the arena cap.
        ["im2col_big"] = (() => new OnnxModelBuilder().Input("x", 1, 64, 256, 256).Initializer("s", I64(1, 64, 64, 64))
            .Node("ConstantOfShape", ["s"], ["w"]).Node("Conv", ["x", "w"], ["y"], "conv", ("pads", new[] { 32, 32, 32, 32 })).Output("y").ToBytes(),
            Outcome.CompileRefused, []),
        // Kernel 65536 x dilation 65536: window arithmetic that overflowed 32 bits.
        ["conv_kernel_times_dilation"] = (() => new OnnxModelBuilder().Input("x", 1, 1, 1, 3).Initializer("w", Tensor.Zeros(1, 1, 1, 65536))
            .Node("Conv", ["x", "w"], ["y"], "conv", ("kernel_shape", new[] { 1, 65536 }), ("dilations", new[] { 1, 65536 })).Output("y").ToBytes(),
            Outcome.Refused, ["'conv'"]),
        ["maxpool_kernel_times_dilation"] = (() => new OnnxModelBuilder().Input("x", 1, 1, 1, 1)
            .Node("MaxPool", ["x"], ["y"], "pool", ("kernel_shape", new[] { 1, 65536 }), ("dilations", new[] { 1, 65536 })).Output("y").ToBytes(),
            Outcome.Refused, ["'pool'"]),
        ["avgpool_kernel_times_dilation"] = (() => new OnnxModelBuilder(19).Input("x", 1, 1, 1, 1)
            .Node("AveragePool", ["x"], ["y"], "pool", ("kernel_shape", new[] { 1, 65536 }), ("dilations", new[] { 1, 65536 })).Output("y").ToBytes(),
            Outcome.Refused, ["'pool'"]),
        // Integer weights and statistics where the kernels compute in float.
        ["int_conv_weight"] = (() => new OnnxModelBuilder().Input("x", 1, 1, 3, 3)
            .Initializer(MobileNetSharp.Onnx.Export.TensorWriter.Write(new Tensor(DataType.Int32, [1, 1, 1, 1], new[] { 1 }), "w"))
            .Node("Conv", ["x", "w"], ["y"], "conv").Output("y").ToBytes(),
            Outcome.Refused, ["'conv'", "Int32"]),
        ["int_batchnorm_stats"] = (() => IntBatchNorm(), Outcome.Refused, ["'bn'", "Int8"]),
    };

    public static TheoryData<string> Names() => new(Corpus.Keys);

    [Theory]
    [MemberData(nameof(Names))]
    public void ReproModelsEndInTheirStatedOutcome(string name)
    {
        var (model, expected, fragments) = Corpus[name];
        var (outcome, error) = ModelExercise.Run(model());
        Assert.True(outcome == expected, $"{name}: expected {expected}, got {outcome}: {error?.Message}");
        foreach (var f in fragments) Assert.Contains(f, error!.Message);
    }

    /// <summary>k x ConstantOfShape([2^log2]); when live, their first elements are added to the output.</summary>
    internal static byte[] Amplifier(int k, int log2, bool live)
    {
        var m = new OnnxModelBuilder().Input("x", 1).Initializer("shape", I64(1L << log2)).Initializer("first", I64(0));
        string acc = "x";
        for (int i = 0; i < k; i++)
        {
            m.Node("ConstantOfShape", ["shape"], [$"c{i}"], $"cos{i}", ("value", new Tensor([(float)i], 1)));
            if (!live) continue;
            m.Node("Slice", [$"c{i}", "first", "first_end", "first"], [$"s{i}"], $"slice{i}");
            m.Node("Add", [acc, $"s{i}"], [$"acc{i}"], $"add{i}");
            acc = $"acc{i}";
        }
        m.Initializer("first_end", I64(1));
        m.Node("Relu", [acc], ["y"], "relu");
        return m.Output("y").ToBytes();
    }

    /// <summary>k Gathers of the same 4096 zero indices on the runtime input; when live, all concatenated into the output.</summary>
    internal static byte[] Gathers(int k, bool live)
    {
        var m = new OnnxModelBuilder().Input("x", 2).Initializer("idx", new Tensor(new long[4096], 4096));
        for (int i = 0; i < k; i++) m.Node("Gather", ["x", "idx"], [$"g{i}"], $"g{i}", ("axis", 0));
        if (live) m.Node("Concat", Enumerable.Range(0, k).Select(i => $"g{i}").ToArray(), ["y"], "concat", ("axis", 0));
        else m.Node("Relu", ["x"], ["y"], "relu");
        return m.Output("y").ToBytes();
    }

    internal static OnnxModelBuilder EqualNaN() => new OnnxModelBuilder().Input("x", 1)
        .Initializer("n", new Tensor([float.NaN], 1)).Initializer("one", new Tensor([1f], 1)).Initializer("two", new Tensor([2f], 1))
        .Node("Equal", ["n", "n"], ["e"], "eq").Node("Where", ["e", "one", "two"], ["w"], "where").Node("Add", ["x", "w"], ["y"], "add")
        .Output("y");

    private static byte[] IntBatchNorm()
    {
        var m = new OnnxModelBuilder().Input("x", 1, 2, 2);
        foreach (var name in new[] { "s", "b", "m", "v" })
            m.Initializer(MobileNetSharp.Onnx.Export.TensorWriter.Write(new Tensor(DataType.Int8, [2], new sbyte[] { 1, 1 }), name));
        return m.Node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], "bn").Output("y").ToBytes();
    }
}
