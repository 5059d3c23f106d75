using ScottPlot;

namespace MobileNetSharp.Imaging.Charts;

/// <summary>Charts where a picture beats a table, drawn with ScottPlot and written as PNG atomically.</summary>
public static class ConfusionChart
{
    /// <summary>
    /// A heat map of a confusion matrix (rows: true class, columns: predicted class), each row normalized to the
    /// fraction of that class's samples, with the counts written in the cells.
    /// </summary>
    public static void Save(string path, int[,] confusion, IReadOnlyList<string> labels, string title, int size = 900)
    {
        int k = confusion.GetLength(0);
        if (confusion.GetLength(1) != k || labels.Count < k) throw new ArgumentException($"A {k}x{confusion.GetLength(1)} matrix needs {k} labels, got {labels.Count}.");
        var fractions = new double[k, k];
        for (int t = 0; t < k; t++)
        {
            double total = 0;
            for (int p = 0; p < k; p++) total += confusion[t, p];
            // Heatmap row 0 is drawn at the top: true class 0 first, as in the table.
            for (int p = 0; p < k; p++) fractions[t, p] = total == 0 ? 0 : confusion[t, p] / total;
        }
        var plot = new Plot();
        ChartFonts.Apply(plot);
        var map = plot.Add.Heatmap(fractions);
        map.Colormap = new ScottPlot.Colormaps.Viridis();
        plot.Add.ColorBar(map).Label = "fraction of the true class";
        for (int t = 0; t < k; t++)
            for (int p = 0; p < k; p++)
            {
                var text = plot.Add.Text(confusion[t, p].ToString(System.Globalization.CultureInfo.InvariantCulture), p, k - 1 - t);
                text.LabelAlignment = Alignment.MiddleCenter;
                text.LabelFontSize = k > 20 ? 8 : 12;
                text.LabelFontColor = fractions[t, p] > 0.5 ? Colors.Black : Colors.White;
                if (ChartFonts.Path is not null) text.LabelFontName = "mnet-chart-font";
            }
        var ticks = Enumerable.Range(0, k).Select(i => new Tick(i, labels[i])).ToArray();
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks);
        plot.Axes.Bottom.TickLabelStyle.Rotation = -45;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleRight;
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            Enumerable.Range(0, k).Select(i => new Tick(k - 1 - i, labels[i])).ToArray());
        plot.XLabel("predicted class");
        plot.YLabel("true class");
        plot.Title(title);
        SavePng(plot, path, size, size);
    }

    /// <summary>Renders through a temporary file beside <paramref name="path"/> renamed over it (<see cref="AtomicFile"/>).</summary>
    internal static void SavePng(Plot plot, string path, int width, int height) => AtomicFile.Replace(path, tmp => plot.SavePng(tmp, width, height));
}
