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
        var parsed = root.Parse(args.Length == 0 ? ["--help"] : args); // bare `mnet`: the command list
        if (parsed.Errors.Count > 0)
        {
            // One line, like every other bad argument, instead of System.CommandLine's errors plus the whole help text.
            string command = parsed.CommandResult.Command is RootCommand ? "mnet" : $"mnet {parsed.CommandResult.Command.Name}";
            Console.Error.WriteLine($"{string.Join(" ", parsed.Errors.Select(e => e.Message))} ({command} --help lists the options)");
            return 1;
        }
        return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
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
        QuantizeCommand.Create(),
        ExperimentCommand.Create(),
    ];
}
