using System.Globalization;

namespace MobileNetSharp.Bench;

/// <summary>
/// Reads a bench mode's options in order: <c>foreach (var option in reader)</c>, then <see cref="Value"/>,
/// <see cref="Int"/> or <see cref="Ints"/> for the option's value. Bad values throw <see cref="ArgumentException"/>
/// naming the option, which <see cref="Program"/> prints as a one-line error.
/// </summary>
internal sealed class BenchArgs(string[] args)
{
    private int _i = -1;

    public IEnumerable<string> Options()
    {
        while (++_i < args.Length) yield return args[_i];
    }

    /// <summary>The current option's value (the next argument).</summary>
    public string Value() => _i + 1 < args.Length ? args[++_i] : throw new ArgumentException($"{args[_i]} needs a value");

    /// <summary>The value as an integer of at least <paramref name="min"/>.</summary>
    public int Int(int min = int.MinValue)
    {
        string option = args[_i], text = Value();
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v))
            throw new ArgumentException($"{option} expects an integer, got '{text}'");
        if (v < min) throw new ArgumentException($"{option} must be at least {min}, got {v}");
        return v;
    }

    /// <summary>The value as a comma-separated list of integers, each at least <paramref name="min"/>.</summary>
    public List<int> Ints(int min = int.MinValue)
    {
        string option = args[_i], text = Value();
        var list = new List<int>();
        foreach (var part in text.Split(','))
        {
            if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v))
                throw new ArgumentException($"{option} expects integers separated by commas, got '{text}'");
            if (v < min) throw new ArgumentException($"{option} values must be at least {min}, got {v}");
            list.Add(v);
        }
        return list;
    }

    /// <summary>The value as a floating-point number.</summary>
    public float Float()
    {
        string option = args[_i], text = Value();
        return float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float v)
            ? v : throw new ArgumentException($"{option} expects a number, got '{text}'");
    }

    public ArgumentException Unknown() => new($"unknown option {args[_i]}");

    /// <summary>Checks what a run would only reach later: architecture names, thread counts and the output file's folder.</summary>
    public static void CheckUpFront(IEnumerable<string> archs, IEnumerable<int> threads, string? outputPath = null)
    {
        foreach (var arch in archs) Models.ModelZoo.Get(arch); // throws ArgumentException naming the known ones
        foreach (int t in threads)
            if (t > Runtime.SessionOptions.MaxThreads) throw new ArgumentException($"--threads values must be at most {Runtime.SessionOptions.MaxThreads}, got {t}");
        if (outputPath is not null && Path.GetDirectoryName(Path.GetFullPath(outputPath)) is { } dir && !Directory.Exists(dir))
            throw new ArgumentException($"--json: the folder {dir} does not exist");
    }
}
