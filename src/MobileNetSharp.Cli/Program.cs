using System.CommandLine;
using MobileNetSharp.Cli.Commands;

namespace MobileNetSharp.Cli;

/// <summary>`mnet`: build, inspect, compare and run MobileNet-family models.</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("mnet: MobileNet-family models in pure C#: build, summarize, compare, run, convert.");
        foreach (var c in Commands()) root.Subcommands.Add(c);
        return root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
    }

    public static IEnumerable<Command> Commands() =>
    [
        ListCommand.Create(),
        SummaryCommand.Create(),
        LayerCommand.Create(),
        CompareCommand.Create(),
        ProfileCommand.Create(),
        BenchCommand.Create(),
        RunCommand.Create(),
        ConvertCommand.Create(),
        DetectFacesCommand.Create(),
        DetectCommand.Create(),
        SegmentCommand.Create(),
        TrainCommand.Create(),
        EvalCommand.Create(),
        ClassifyCommand.Create(),
        ExperimentCommand.Create(),
    ];
}
