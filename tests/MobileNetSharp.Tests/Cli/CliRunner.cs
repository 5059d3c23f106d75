namespace MobileNetSharp.Tests.Cli;

/// <summary>Console redirection is process-wide, so every test that runs the CLI in-process is in this collection.</summary>
[CollectionDefinition("Console", DisableParallelization = true)]
public class ConsoleCollection;

public static class CliRunner
{
    /// <summary>Runs `mnet args` in-process; returns exit code, stdout and stderr.</summary>
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o);
        Console.SetError(e);
        try { return (MobileNetSharp.Cli.Program.Main(args), o.ToString(), e.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }
}
