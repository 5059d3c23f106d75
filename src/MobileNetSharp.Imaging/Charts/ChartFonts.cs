using ScottPlot;

namespace MobileNetSharp.Imaging.Charts;

/// <summary>
/// A font for chart text. The SkiaSharp native build we ship (NativeAssets.Linux.NoDependencies) has no fontconfig,
/// so it finds no system fonts by name and text would silently not render: a TrueType file is located in the usual
/// font folders instead (DejaVu Sans or Liberation Sans preferred) and registered with ScottPlot once.
/// </summary>
internal static class ChartFonts
{
    public const string Name = "mnet-chart-font";
    private static readonly Lazy<string?> File = new(Register);

    /// <summary>The registered font file, or null when this machine has no TrueType fonts (charts then have no text).</summary>
    public static string? Path => File.Value;

    /// <summary>Sets every text element of <paramref name="plot"/> to the registered font; false when none exists.</summary>
    public static bool Apply(Plot plot)
    {
        if (File.Value is null) return false;
        plot.Font.Set(Name);
        return true;
    }

    private static string? Register()
    {
        string? path = Find();
        if (path is not null) Fonts.AddFontFile(Name, path);
        return path;
    }

    private static string? Find()
    {
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        string[] roots = ["/usr/share/fonts", "/usr/local/share/fonts", System.IO.Path.Combine(home, ".fonts"), System.IO.Path.Combine(home, ".local/share/fonts"),
            "/System/Library/Fonts", "/Library/Fonts", Environment.GetFolderPath(Environment.SpecialFolder.Fonts)];
        string[] preferred = ["DejaVuSans.ttf", "LiberationSans-Regular.ttf", "Arial.ttf", "arial.ttf", "Helvetica.ttc"];
        var files = new List<string>();
        foreach (var root in roots.Where(r => r.Length > 0 && Directory.Exists(r)))
        {
            try { files.AddRange(Directory.EnumerateFiles(root, "*.tt?", new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 4, IgnoreInaccessible = true })); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        foreach (var name in preferred)
            if (files.FirstOrDefault(f => System.IO.Path.GetFileName(f) == name) is { } hit) return hit;
        return files.Where(f => f.EndsWith(".ttf", StringComparison.OrdinalIgnoreCase)).Order(StringComparer.Ordinal).FirstOrDefault();
    }
}
