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
        var json = Cli.Json();
        var cmd = new Command("list", "List the architectures and their parameters") { json };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var rows = ModelZoo.All.Select(a =>
            {
                var c = CostModel.Analyze(a.Build(new ModelOptions()));
                return new { name = a.Name, description = a.Description, resolution = a.DefaultResolution, @params = c.Params, macs = c.Macs };
            }).ToArray();
            if (r.GetValue(json)) { Cli.PrintJson(rows); return 0; }
            var t = new Table().AddColumns("architecture", "input", "params", "MACs", "description");
            foreach (var a in rows)
                t.AddRow(a.name, $"{a.resolution}x{a.resolution}", Cli.Count(a.@params), Cli.Millions(a.macs), Markup.Escape(a.description));
            Cli.Out.Write(t);
            Cli.Out.WriteLine("Options for every architecture: --width (alpha), --resolution, --classes. Example: mnet summary mobilenet_v2 --width 0.75 --resolution 160");
            return 0;
        }));
        return cmd;
    }
}
