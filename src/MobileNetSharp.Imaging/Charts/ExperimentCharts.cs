using ScottPlot;

namespace MobileNetSharp.Imaging.Charts;

/// <summary>One labelled series of (x, y) points for <see cref="ExperimentCharts"/>.</summary>
public sealed record ChartSeries(string Name, double[] X, double[] Y, string[] PointLabels, bool Connect = true);

/// <summary>Scatter charts of accuracy against cost, drawn with ScottPlot and written as PNG atomically.</summary>
public static class ExperimentCharts
{
    /// <summary>
    /// Points of each series (connected in order when asked), labelled, with optional vertical reference lines
    /// (e.g. a real-time budget) and the Pareto front over all points (higher y for lower x) drawn dashed.
    /// </summary>
    public static void Scatter(string path, string title, string xLabel, string yLabel, IReadOnlyList<ChartSeries> series,
        bool logX = false, bool paretoFront = false, IReadOnlyList<(double X, string Label)>? verticalLines = null, int width = 1000, int height = 650)
    {
        var plot = new Plot();
        ChartFonts.Apply(plot);
        var palette = new ScottPlot.Palettes.Category10();
        double Tx(double x) => logX ? Math.Log10(x) : x;
        for (int s = 0; s < series.Count; s++)
        {
            var ser = series[s];
            var color = palette.GetColor(s);
            var xs = ser.X.Select(Tx).ToArray();
            var sc = plot.Add.Scatter(xs, ser.Y);
            sc.Color = color;
            sc.LegendText = ser.Name;
            sc.MarkerSize = 8;
            sc.LineWidth = ser.Connect ? 1.5f : 0;
            for (int i = 0; i < xs.Length; i++)
            {
                var t = plot.Add.Text(ser.PointLabels[i], xs[i], ser.Y[i]);
                t.LabelFontSize = 11;
                t.LabelFontColor = color;
                t.LabelOffsetX = 6;
                t.LabelOffsetY = -14;
                if (ChartFonts.Path is not null) t.LabelFontName = ChartFonts.Name;
            }
        }
        if (paretoFront)
        {
            var pts = series.SelectMany(s => s.X.Zip(s.Y)).OrderBy(p => p.First).ToList();
            var front = new List<(double X, double Y)>();
            foreach (var (x, y) in pts)
                if (front.Count == 0 || y > front[^1].Y) front.Add((x, y));
            if (front.Count > 1)
            {
                var line = plot.Add.Scatter(front.Select(p => Tx(p.X)).ToArray(), front.Select(p => p.Y).ToArray());
                line.LinePattern = LinePattern.Dashed;
                line.MarkerSize = 0;
                line.Color = Colors.Gray;
                line.LegendText = "Pareto front";
            }
        }
        foreach (var (x, label) in verticalLines ?? [])
        {
            var v = plot.Add.VerticalLine(Tx(x));
            v.Text = label;
            v.LinePattern = LinePattern.Dotted;
            v.Color = Colors.DarkRed;
        }
        if (logX)
        {
            var ticks = new ScottPlot.TickGenerators.NumericAutomatic { LabelFormatter = v => Math.Pow(10, v).ToString("0.##", System.Globalization.CultureInfo.InvariantCulture) };
            plot.Axes.Bottom.TickGenerator = ticks;
        }
        plot.XLabel(xLabel + (logX ? " (log scale)" : ""));
        plot.YLabel(yLabel);
        plot.Title(title);
        plot.ShowLegend(Alignment.LowerRight);
        ConfusionChart.SavePng(plot, path, width, height);
    }
}
