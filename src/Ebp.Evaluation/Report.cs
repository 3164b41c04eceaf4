using System.Globalization;
using System.Text;

namespace Ebp.Evaluation;

/// <summary>Markdown tables of pointing-game results.</summary>
public static class Report
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>
    /// One row per method: mean per-class accuracy over all trials and over the difficult ones (with trial counts),
    /// and milliseconds per image.
    /// </summary>
    public static string Table(IReadOnlyList<MethodResult> results)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| method | all | difficult | ms/image |");
        sb.AppendLine("|---|---:|---:|---:|");
        foreach (var r in results)
        {
            string ms = r.Method.IsCenter ? "–" : r.MsPerImage.ToString("F1", Inv);
            sb.AppendLine($"| {r.Method.Label} | {Pct(r.All.MeanAccuracy)} | {Pct(r.Difficult.MeanAccuracy)} | {ms} |");
        }
        return sb.ToString();
    }

    /// <summary>Per-class accuracy (all trials) of each method, with the number of trials per class.</summary>
    public static string PerClassTable(IReadOnlyList<MethodResult> results, IReadOnlyList<string> classNames)
    {
        var sb = new StringBuilder();
        sb.Append("| method |");
        foreach (var c in classNames) sb.Append($" {c} |");
        sb.AppendLine();
        sb.Append("|---|");
        foreach (var _ in classNames) sb.Append("---:|");
        sb.AppendLine();
        foreach (var r in results)
        {
            sb.Append($"| {r.Method.Name} |");
            for (int c = 0; c < classNames.Count; c++) sb.Append($" {Pct(r.All.PerClassAccuracy[c])} |");
            sb.AppendLine();
        }
        if (results.Count > 0)
        {
            sb.Append("| trials (all / difficult) |");
            for (int c = 0; c < classNames.Count; c++) sb.Append($" {results[0].All.Totals[c]} / {results[0].Difficult.Totals[c]} |");
            sb.AppendLine();
        }
        return sb.ToString();
    }

    /// <summary>A percentage with one decimal, or "n/a".</summary>
    public static string Pct(double v) => double.IsNaN(v) ? "n/a" : (100 * v).ToString("F1", Inv) + " %";
}
