using System.CommandLine;
using MobileNetSharp.Graph;
using MobileNetSharp.Models;
using Spectre.Console;

namespace MobileNetSharp.Cli.Commands;

/// <summary>`mnet list`: the architectures, with their default-size costs.</summary>
internal static class ListCommand
{
    public static Command Create()
    {
        var (json, width, res, classes, channels, small) = (Cli.Json(), Cli.Width(), Cli.Resolution(), Cli.Classes(), Cli.Channels(), Cli.SmallInput());
        var cmd = new Command("list", "List the architectures and their parameters (at the default settings, or at the options given)") { width, res, classes, channels, small, json };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var rows = ModelZoo.All.Select(a =>
            {
                var o = new ModelOptions(r.GetValue(width), r.GetValue(res), r.GetValue(classes), InChannels: r.GetValue(channels), SmallInput: r.GetValue(small));
                var g = a.Build(o);
                var c = CostModel.Analyze(g);
                return new { name = a.Name, description = a.Description, resolution = g.Inputs[0].Shape[2], @params = c.Params, macs = c.Macs };
            }).ToArray();
            if (r.GetValue(json)) { Cli.PrintJson(rows); return 0; }
            var t = new Table().AddColumns("architecture", "input", "params", "MACs", "description");
            foreach (var a in rows)
                t.AddRow(a.name, $"{a.resolution}x{a.resolution}", Cli.Count(a.@params), Cli.Millions(a.macs), Markup.Escape(a.description));
            Cli.Out.Write(t);
            Cli.Out.WriteLine("Options for every architecture: --width (alpha), --resolution, --classes, --channels, --small-input. Example: mnet summary mobilenet_v2 --width 0.5 --resolution 28 --channels 1 --classes 10 --small-input");
            return 0;
        }));
        return cmd;
    }
}
