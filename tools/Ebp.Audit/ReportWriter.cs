using System.Globalization;
using System.Text;
using System.Text.Json;
using CsvHelper;
using CsvHelper.Configuration;

namespace Ebp.Audit;

/// <summary>Counts returned by <see cref="ReportWriter.Write"/>.</summary>
internal sealed record ReportCounts(int Processed, int Skipped, int Rows, int FlaggedRows);

/// <summary>
/// Writes the reports of an output folder from its records (sorted by image): <c>results.csv</c>, <c>results.jsonl</c>
/// (one line per (image, method, class): image order, then method order, then class index), <c>summary.json</c>,
/// <c>summary.md</c> and <c>index.html</c>. Every file is written atomically. The same records give byte-identical
/// files, apart from the <c>run</c> section of the summaries (timings, shard, resume counts).
/// </summary>
internal static class ReportWriter
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>The CSV header (also the JSONL field order).</summary>
    public static readonly string[] Columns =
    [
        "image", "method", "class", "class_name", "rank", "score", "predicted", "predicted_name", "label", "label_name",
        "peak_x", "peak_y", "energy_in_boxes", "pointing", "flags", "overlay", "deletion_auc", "insertion_auc",
    ];

    public static ReportCounts Write(OutputLayout layout, JobInfo job, IReadOnlyList<ImageRecord> records, RunInfo run, EnergyThresholds minEnergy, Timings timings)
    {
        ArgumentNullException.ThrowIfNull(minEnergy);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var methodOrder = job.Methods.Select((m, i) => (m, i)).ToDictionary(x => x.m, x => x.i);
        var rows = new List<ReportRow>();
        foreach (var r in records)
        {
            if (!r.IsDone) continue;
            foreach (var row in r.Rows.OrderBy(x => methodOrder.GetValueOrDefault(x.Method, int.MaxValue)).ThenBy(x => x.Class))
                rows.Add(new ReportRow(r, row, Flags.Of(r, row, minEnergy)));
        }
        var results = rows.Select(r => r.ToResult(job)).ToList();

        AtomicFile.WriteText(layout.ResultsCsv, w =>
        {
            using var csv = new CsvWriter(w, new CsvConfiguration(Inv) { NewLine = "\n" }, leaveOpen: true);
            foreach (var c in Columns) csv.WriteField(c);
            csv.NextRecord();
            foreach (var row in results)
            {
                foreach (var f in row.CsvFields()) csv.WriteField(f);
                csv.NextRecord();
            }
        });
        AtomicFile.WriteText(layout.ResultsJsonl, w =>
        {
            foreach (var row in results) w.WriteLine(JsonSerializer.Serialize(row, ReportJsonContext.Default.ResultRow));
        });

        var summary = new ReportSummary(job, records, rows, run, minEnergy);
        timings.Report = clock.Elapsed.TotalSeconds;
        AtomicFile.WriteAllText(layout.SummaryJson, summary.ToJson(timings));
        AtomicFile.WriteAllText(layout.SummaryMd, summary.ToMarkdown(timings));
        AtomicFile.WriteAllText(layout.Gallery, summary.Gallery(results));
        return new ReportCounts(summary.Processed, summary.Skipped, rows.Count, summary.FlaggedRows);
    }

    /// <summary>One output row: the image, the row's raw numbers and its flags.</summary>
    internal sealed record ReportRow(ImageRecord Image, RowRecord Row, List<string> Flags)
    {
        public ResultRow ToResult(JobInfo job) => new(
            Image.Image, Row.Method, Row.Class, ClassName(job, Row.Class), Row.Rank, Row.Score, Image.Predicted,
            ClassName(job, Image.Predicted), Image.Label, Image.Label is { } l ? ClassName(job, l) : null,
            Row.Empty ? null : Row.PeakX, Row.Empty ? null : Row.PeakY, Row.Energy,
            Row.Hit is { } h ? (h ? "hit" : "miss") : null, Flags, Row.Overlay, Row.DeletionAuc, Row.InsertionAuc);
    }

    internal static string ClassName(JobInfo job, int c) => c >= 0 && c < job.ClassNames.Count ? job.ClassNames[c] : c.ToString(Inv);

    internal static string FormatScore(float v) => ((double)v).ToString("G6", Inv);

    internal static string FormatRatio(double v) => v.ToString("F4", Inv);

    /// <summary>A share as a percentage with one decimal (<c>66.7 %</c>), the same in summary.md and index.html.</summary>
    internal static string FormatPercent(double? v) => v is { } x ? (100 * x).ToString("F1", Inv) + " %" : "–";

    /// <summary><c>66.7 % (2/3)</c>.</summary>
    internal static string FormatHits(int hits, int total) =>
        FormatPercent(total > 0 ? (double)hits / total : null) + $" ({hits.ToString(Inv)}/{total.ToString(Inv)})";

    /// <summary>A document as JSON, indented (summary.json) or compact.</summary>
    internal static string Serialize<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> info, bool indented)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = indented }))
            JsonSerializer.Serialize(w, value, info);
        return Encoding.UTF8.GetString(ms.ToArray());
    }
}
