using System.CommandLine;
using MobileNetSharp.Graph;
using Spectre.Console;

namespace MobileNetSharp.Cli.Commands;

/// <summary>
/// `mnet summary ARCH|MODEL.onnx`: per-layer output shapes, params and MACs, totals, and the breakdown by
/// layer kind that reproduces the MobileNetV1 paper's Table 2.
/// </summary>
internal static class SummaryCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Architecture name (see `mnet list`), a .onnx or a .tflite file" };
        var (width, res, classes, json) = (Cli.Width(), Cli.Resolution(), Cli.Classes(), Cli.Json());
        var (channels, small) = (Cli.Channels(), Cli.SmallInput());
        var cmd = new Command("summary", "Per-layer table of shapes, parameters and multiply-accumulates") { model, width, res, classes, channels, small, json };
        var shapes = new ShapeOptions();
        shapes.AddTo(cmd);
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var g = ModelSource.Load(r.GetValue(model)!, r.GetValue(width), r.GetValue(res), r.GetValue(classes), shapes.ImportOptions(r),
                channels: r.GetValue(channels), smallInput: r.GetValue(small));
            var cost = CostModel.Analyze(g);
            if (r.GetValue(json)) { Cli.PrintJson(ToJson(g, cost)); return 0; }
            Print(g, cost);
            return 0;
        }));
        return cmd;
    }

    private static object ToJson(ModelGraph g, GraphCost cost) => new
    {
        name = g.Name,
        input = g.Inputs.Select(i => new { name = i.Name, shape = i.Shape }),
        @params = cost.Params,
        macs = cost.Macs,
        layers = cost.Layers.Select(l => new
        {
            name = l.Name, op = l.Op, kind = l.Kind.ToString(), outputShape = l.OutputShape, @params = l.Params, macs = l.Macs,
            macShare = cost.Macs == 0 ? 0 : (double)l.Macs / cost.Macs,
        }),
        byKind = cost.ByKind.ToDictionary(k => KindName(k.Key), k => new
        {
            @params = k.Value.Params, macs = k.Value.Macs,
            paramShare = cost.Params == 0 ? 0 : (double)k.Value.Params / cost.Params,
            macShare = cost.Macs == 0 ? 0 : (double)k.Value.Macs / cost.Macs,
        }),
    };

    internal static string KindName(LayerKind k) => k switch
    {
        LayerKind.Pointwise => "pointwise1x1",
        LayerKind.Depthwise => "depthwise",
        LayerKind.StandardConv => "standardConv",
        LayerKind.FullyConnected => "fullyConnected",
        _ => "other",
    };

    internal static string KindTitle(LayerKind k) => k switch
    {
        LayerKind.Pointwise => "1x1 conv", LayerKind.Depthwise => "depthwise conv", LayerKind.StandardConv => "standard conv",
        LayerKind.FullyConnected => "fully connected", _ => "other (BN, act, pool, add)",
    };

    private static void Print(ModelGraph g, GraphCost cost)
    {
        var t = new Table().Title($"{Markup.Escape(g.Name)}  input {string.Join("x", g.Inputs[0].Shape)}")
            .AddColumns("layer", "op", "output", "params", "MACs", "MAC share");
        foreach (var l in cost.Layers.Where(l => l.Params > 0 || l.Macs > 0 || l.Kind == LayerKind.Other))
            t.AddRow(Markup.Escape(l.Name), Markup.Escape(l.Op), string.Join("x", l.OutputShape), Cli.Count(l.Params), Cli.Count(l.Macs),
                cost.Macs == 0 ? "" : Cli.Percent((double)l.Macs / cost.Macs));
        Cli.Out.Write(t);
        var k = new Table().Title("by layer kind (MobileNetV1 paper, Table 2)").AddColumns("kind", "MACs", "MAC share", "params", "param share");
        foreach (var (kind, c) in cost.ByKind)
            k.AddRow(KindTitle(kind), Cli.Count(c.Macs), cost.Macs == 0 ? "" : Cli.Percent((double)c.Macs / cost.Macs), Cli.Count(c.Params),
                cost.Params == 0 ? "" : Cli.Percent((double)c.Params / cost.Params));
        Cli.Out.Write(k);
        Cli.Out.MarkupLine($"[bold]total[/]: {Cli.Count(cost.Params)} params, {Cli.Count(cost.Macs)} MACs ({Cli.Millions(cost.Macs)})");
    }
}
