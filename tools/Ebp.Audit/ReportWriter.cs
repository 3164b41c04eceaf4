using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Ebp.Audit;

/// <summary>Counts returned by <see cref="ReportWriter.Write"/>.</summary>
public sealed record ReportCounts(int Processed, int Skipped, int Rows, int FlaggedRows);

/// <summary>
/// Writes the reports of an output folder from its records (sorted by image): <c>results.csv</c>, <c>results.jsonl</c>
/// (one line per (image, method, class): image order, then method order, then class index), <c>summary.json</c>,
/// <c>summary.md</c> and <c>index.html</c>. Every file is written atomically. The same records give byte-identical
/// files, apart from the <c>run</c> section of the summaries (timings, shard, resume counts).
/// </summary>
public static class ReportWriter
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>The CSV header (also the JSONL field order).</summary>
    public static readonly string[] Columns =
    [
        "image", "method", "class", "class_name", "rank", "score", "predicted", "predicted_name", "label", "label_name",
        "peak_x", "peak_y", "energy_in_boxes", "pointing", "flags", "overlay", "deletion_auc", "insertion_auc",
    ];

    public static ReportCounts Write(OutputLayout layout, JobInfo job, IReadOnlyList<ImageRecord> records, RunInfo run, double minEnergy, Timings timings)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var methodOrder = job.Methods.Select((m, i) => (m, i)).ToDictionary(x => x.m, x => x.i);
        var rows = new List<ReportRow>();
        foreach (var r in records)
        {
            if (!r.IsDone) continue;
            foreach (var row in r.Rows.OrderBy(x => methodOrder.GetValueOrDefault(x.Method, int.MaxValue)).ThenBy(x => x.Class))
                rows.Add(new ReportRow(r, row, Flags.Of(r, row, minEnergy)));
        }

        AtomicFile.WriteText(layout.ResultsCsv, w =>
        {
            w.WriteLine(string.Join(',', Columns));
            foreach (var row in rows) w.WriteLine(string.Join(',', row.Fields(job).Select(f => Csv.Escape(f.Text))));
        });
        AtomicFile.WriteText(layout.ResultsJsonl, w =>
        {
            foreach (var row in rows) w.WriteLine(RowJson(row, job));
        });

        var summary = new Summary(job, records, rows, run, minEnergy);
        timings.Report = clock.Elapsed.TotalSeconds;
        AtomicFile.WriteAllText(layout.SummaryJson, summary.ToJson(timings));
        AtomicFile.WriteAllText(layout.SummaryMd, summary.ToMarkdown(timings));
        AtomicFile.WriteAllText(layout.Gallery, Gallery.Html(GalleryData(job, rows, summary)));
        return new ReportCounts(summary.Processed, summary.Skipped, rows.Count, summary.FlaggedRows);
    }

    /// <summary>One output row.</summary>
    internal sealed record ReportRow(ImageRecord Image, RowRecord Row, List<string> Flags)
    {
        /// <summary>The fields in <see cref="Columns"/> order; <c>Json</c> is the JSON value (raw), <c>Text</c> the CSV text.</summary>
        public IEnumerable<(string Text, string Json)> Fields(JobInfo job)
        {
            string Name(int c) => c >= 0 && c < job.ClassNames.Count ? job.ClassNames[c] : c.ToString(Inv);
            yield return Str(Image.Image);
            yield return Str(Row.Method);
            yield return Int(Row.Class);
            yield return Str(Name(Row.Class));
            yield return Int(Row.Rank);
            yield return Num(FormatScore(Row.Score));
            yield return Int(Image.Predicted);
            yield return Str(Name(Image.Predicted));
            yield return Image.Label is { } l ? Int(l) : Null();
            yield return Image.Label is { } l2 ? Str(Name(l2)) : Null();
            yield return Row.Empty ? Null() : Int(Row.PeakX);
            yield return Row.Empty ? Null() : Int(Row.PeakY);
            yield return Row.Energy is { } e ? Num(FormatRatio(e)) : Null();
            yield return Row.Hit is { } h ? Str(h ? "hit" : "miss") : Null();
            yield return (string.Join(';', Flags), "[" + string.Join(',', Flags.Select(JsonString)) + "]");
            yield return Row.Overlay is { } o ? Str(o) : Null();
            yield return Row.DeletionAuc is { } d ? Num(FormatRatio(d)) : Null();
            yield return Row.InsertionAuc is { } ins ? Num(FormatRatio(ins)) : Null();
        }

        private static (string, string) Str(string s) => (s, JsonString(s));
        private static (string, string) Int(int v) => (v.ToString(Inv), v.ToString(Inv));
        private static (string, string) Num(string s) => (s, s);
        private static (string, string) Null() => ("", "null");
    }

    internal static string FormatScore(float v) => ((double)v).ToString("G6", Inv);

    internal static string FormatRatio(double v) => v.ToString("F4", Inv);

    internal static string JsonString(string s) => JsonSerializer.Serialize(s);

    private static string RowJson(ReportRow row, JobInfo job)
    {
        var sb = new StringBuilder("{");
        int i = 0;
        foreach (var (_, json) in row.Fields(job))
        {
            if (i > 0) sb.Append(',');
            sb.Append(JsonString(Columns[i])).Append(':').Append(json);
            i++;
        }
        return sb.Append('}').ToString();
    }

    private static string GalleryData(JobInfo job, List<ReportRow> rows, Summary summary)
    {
        var sb = new StringBuilder();
        sb.Append("{\"columns\":[").Append(string.Join(',', Columns.Select(JsonString))).Append("],\"rows\":[");
        for (int i = 0; i < rows.Count; i++)
        {
            if (i > 0) sb.Append(",\n");
            sb.Append('[').Append(string.Join(',', rows[i].Fields(job).Select(f => f.Json))).Append(']');
        }
        sb.Append("],\"flags\":[").Append(string.Join(',', Flags.All.Select(JsonString))).Append(']');
        sb.Append(",\"methods\":[").Append(string.Join(',', job.Methods.Select(JsonString))).Append(']');
        sb.Append(",\"classes\":[").Append(string.Join(',', job.ClassNames.Select(JsonString))).Append(']');
        sb.Append(",\"summary\":").Append(summary.ToJson(null));
        sb.Append('}');
        // Safe inside <script>: no "</" sequence can close the element.
        return sb.ToString().Replace("</", "<\\/");
    }

    /// <summary>The aggregate numbers of a report.</summary>
    private sealed class Summary
    {
        private readonly JobInfo _job;
        private readonly RunInfo _run;
        private readonly double _minEnergy;
        private readonly List<(string Image, string Reason)> _skipped;
        private readonly List<(string Text, int Images, List<string> Examples)> _warnings;
        private const int WarningExamples = 5;
        private readonly Dictionary<string, int> _flagCounts;
        private readonly List<MethodStats> _methods;
        private readonly FaithfulnessSummary? _faithfulness;

        public Summary(JobInfo job, IReadOnlyList<ImageRecord> records, List<ReportRow> rows, RunInfo run, double minEnergy)
        {
            _job = job;
            _run = run;
            _minEnergy = minEnergy;
            var done = records.Where(r => r.IsDone).ToList();
            Processed = done.Count;
            Skipped = records.Count - done.Count;
            Rows = rows.Count;
            _skipped = records.Where(r => !r.IsDone).Select(r => (r.Image, r.Reason ?? "")).ToList();
            _warnings = records.SelectMany(r => r.Warnings.Distinct().Select(w => (r.Image, w)))
                .GroupBy(x => x.w).Select(g => (g.Key, g.Count(), g.Select(x => x.Image).Order(StringComparer.Ordinal).Take(WarningExamples).ToList()))
                .OrderBy(x => x.Key, StringComparer.Ordinal).ToList();
            AnnotatedImages = done.Count(r => r.Objects > 0);
            Labelled = done.Count(r => r.Label is not null);
            LabelCorrect = done.Count(r => r.Label is { } l && l == r.Predicted);
            _flagCounts = Flags.All.ToDictionary(f => f, f => rows.Count(r => r.Flags.Contains(f)));
            FlaggedRows = rows.Count(r => r.Flags.Count > 0);
            FlaggedImages = rows.Where(r => r.Flags.Count > 0).Select(r => r.Image.Image).Distinct().Count();
            _methods = job.Methods.Select(m => new MethodStats(m, rows.Where(r => r.Row.Method == m).Select(r => r.Row).ToList())).ToList();
            _faithfulness = FaithfulnessSummary.Of(job, rows.Select(r => r.Row));
        }

        public int Processed { get; }
        public int Skipped { get; }
        public int Rows { get; }
        public int AnnotatedImages { get; }
        public int Labelled { get; }
        public int LabelCorrect { get; }
        public int FlaggedRows { get; }
        public int FlaggedImages { get; }

        private sealed class MethodStats
        {
            public MethodStats(string method, List<RowRecord> rows)
            {
                Method = method;
                Rows = rows.Count;
                var pointed = rows.Where(r => r.Hit is not null).ToList();
                Hits = pointed.Count(r => r.Hit == true);
                Total = pointed.Count;
                PerClass = pointed.GroupBy(r => r.Class).OrderBy(g => g.Key)
                    .Select(g => (g.Key, g.Count(r => r.Hit == true), g.Count())).ToList();
                var energies = rows.Where(r => r.Energy is not null).Select(r => r.Energy!.Value).Order().ToList();
                EnergyRows = energies.Count;
                EnergyMean = energies.Count > 0 ? energies.Average() : null;
                EnergyMedian = energies.Count == 0 ? null
                    : energies.Count % 2 == 1 ? energies[energies.Count / 2] : (energies[energies.Count / 2 - 1] + energies[energies.Count / 2]) / 2;
            }

            public string Method { get; }
            public int Rows { get; }
            public int Hits { get; }
            public int Total { get; }
            public List<(int Class, int Hits, int Total)> PerClass { get; }
            public int EnergyRows { get; }
            public double? EnergyMean { get; }
            public double? EnergyMedian { get; }
            public double? Accuracy => Total > 0 ? (double)Hits / Total : null;
            public double? MeanClassAccuracy => PerClass.Count > 0 ? PerClass.Average(c => (double)c.Hits / c.Total) : null;
        }

        private string ClassName(int c) => c >= 0 && c < _job.ClassNames.Count ? _job.ClassNames[c] : c.ToString(Inv);

        private static void Ratio(Utf8JsonWriter w, string name, double? v)
        {
            if (v is { } x) { w.WritePropertyName(name); w.WriteRawValue(FormatRatio(x)); }
            else w.WriteNull(name);
        }

        /// <summary>summary.json; without <paramref name="timings"/> the run section is left out (for the gallery).</summary>
        public string ToJson(Timings? timings)
        {
            using var ms = new MemoryStream();
            using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = timings is not null }))
            {
                w.WriteStartObject();
                w.WriteString("tool", "ebp-audit");
                w.WriteNumber("format", 1);
                w.WriteString("status", _run.Status == AuditStatus.Complete ? "complete" : "cancelled");

                w.WriteStartObject("job");
                w.WriteString("model", _job.Model);
                w.WriteString("model_identity", _job.ModelIdentity);
                w.WriteNumber("classes", _job.ClassNames.Count);
                w.WriteStartArray("methods");
                foreach (var m in _job.Methods) w.WriteStringValue(m);
                w.WriteEndArray();
                w.WriteString("saliency_layer", _job.SaliencyLayer);
                w.WriteStartObject("layers");
                foreach (var m in _job.Methods) w.WriteString(m, _job.LayerOf(m));
                w.WriteEndObject();
                w.WriteString("contrast_layer", _job.ContrastLayer);
                w.WriteString("classifier_layer", _job.ClassifierLayer);
                w.WriteString("input_size", $"{_job.InputWidth}x{_job.InputHeight}x{_job.Channels}");
                w.WriteNumber("top_k", _job.TopK);
                w.WriteNumber("compute_batch", _job.ComputeBatch);
                Ratio(w, "min_energy", _minEnergy);
                if (_job.TolerancePx is { } t) { w.WritePropertyName("tolerance_px"); w.WriteRawValue(t.ToString("R", Inv)); }
                else w.WriteString("tolerance_px", "15 px at 224, scaled to the image's longer side");
                w.WriteEndObject();

                w.WriteStartObject("counts");
                w.WriteNumber("inputs", _run.Inputs);
                w.WriteNumber("processed", Processed);
                w.WriteNumber("skipped", Skipped);
                w.WriteNumber("pending", _run.Pending);
                w.WriteNumber("rows", Rows);
                w.WriteNumber("annotated_images", AnnotatedImages);
                w.WriteNumber("labelled_images", Labelled);
                w.WriteNumber("label_correct", LabelCorrect);
                Ratio(w, "label_accuracy", Labelled > 0 ? (double)LabelCorrect / Labelled : null);
                w.WriteNumber("flagged_rows", FlaggedRows);
                w.WriteNumber("flagged_images", FlaggedImages);
                w.WriteEndObject();

                w.WriteStartObject("flags");
                foreach (var f in Flags.All) w.WriteNumber(f, _flagCounts[f]);
                w.WriteEndObject();

                w.WriteStartObject("pointing");
                foreach (var m in _methods)
                {
                    w.WriteStartObject(m.Method);
                    w.WriteNumber("hits", m.Hits);
                    w.WriteNumber("total", m.Total);
                    Ratio(w, "accuracy", m.Accuracy);
                    Ratio(w, "mean_class_accuracy", m.MeanClassAccuracy);
                    w.WriteStartArray("per_class");
                    foreach (var (c, hits, total) in m.PerClass)
                    {
                        w.WriteStartObject();
                        w.WriteNumber("class", c);
                        w.WriteString("name", ClassName(c));
                        w.WriteNumber("hits", hits);
                        w.WriteNumber("total", total);
                        Ratio(w, "accuracy", (double)hits / total);
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                    w.WriteEndObject();
                }
                w.WriteEndObject();

                w.WriteStartObject("energy_in_boxes");
                foreach (var m in _methods)
                {
                    w.WriteStartObject(m.Method);
                    w.WriteNumber("rows", m.EnergyRows);
                    Ratio(w, "mean", m.EnergyMean);
                    Ratio(w, "median", m.EnergyMedian);
                    w.WriteEndObject();
                }
                w.WriteEndObject();

                _faithfulness?.WriteJson(w, ClassName);

                w.WriteStartArray("skipped");
                foreach (var (image, reason) in _skipped)
                {
                    w.WriteStartObject();
                    w.WriteString("image", image);
                    w.WriteString("reason", reason);
                    w.WriteEndObject();
                }
                w.WriteEndArray();

                w.WriteStartArray("warnings");
                foreach (var (text, images, examples) in _warnings)
                {
                    w.WriteStartObject();
                    w.WriteString("warning", text);
                    w.WriteNumber("images", images);
                    w.WriteStartArray("examples");
                    foreach (var e in examples) w.WriteStringValue(e);
                    w.WriteEndArray();
                    w.WriteEndObject();
                }
                w.WriteEndArray();

                if (timings is not null)
                {
                    w.WriteStartObject("run");
                    w.WriteString("shard", _run.Shard);
                    if (_run.MergedFrom is { } from)
                    {
                        w.WriteStartArray("merged_from");
                        foreach (var f in from) w.WriteStringValue(f);
                        w.WriteEndArray();
                    }
                    else
                    {
                        w.WriteNull("merged_from");
                    }
                    w.WriteStartArray("missing_shards");
                    foreach (var m in _run.MissingShards) w.WriteStringValue(m);
                    w.WriteEndArray();
                    w.WriteString("input_fingerprint", _run.InputFingerprint);
                    w.WriteNumber("resumed_images", _run.ResumedImages);
                    w.WriteNumber("journal_entries_dropped", _run.JournalEntriesDropped);
                    w.WriteString("started_utc", _run.StartedUtc.ToString("O", Inv));
                    w.WriteString("finished_utc", DateTime.UtcNow.ToString("O", Inv));
                    w.WriteStartObject("timings");
                    void Seconds(string name, double v) { w.WritePropertyName(name); w.WriteRawValue(v.ToString("F3", Inv)); }
                    Seconds("total_s", timings.Total);
                    Seconds("model_load_s", timings.ModelLoad);
                    Seconds("decode_s", timings.Decode);
                    Seconds("compute_s", timings.Compute);
                    Seconds("overlays_and_measures_s", timings.Write);
                    Seconds("journal_s", timings.Journal);
                    Seconds("report_s", timings.Report);
                    Seconds("images_per_s", timings.ImagesPerSecond);
                    if (timings.Threads > 0) w.WriteNumber("threads", timings.Threads);
                    if (timings.Merge is { } merge)
                    {
                        w.WriteString("note", "merged: the phases are the shards' seconds summed, images_per_s is per shard process; merge_s is the merge's wall time");
                        Seconds("merge_s", merge);
                    }
                    w.WriteEndObject();
                    w.WriteEndObject();
                }
                w.WriteEndObject();
            }
            return Encoding.UTF8.GetString(ms.ToArray()) + (timings is not null ? "\n" : "");
        }

        public string ToMarkdown(Timings timings)
        {
            var sb = new StringBuilder();
            string R(double? v) => v is { } x ? FormatRatio(x) : "–";
            string Pct(double? v) => v is { } x ? (100 * x).ToString("F1", Inv) + " %" : "–";
            string Md(string s) => s.Replace("|", "\\|").Replace("\n", " ");
            sb.Append("# Saliency audit\n\n");
            sb.Append($"Status: **{(_run.Status == AuditStatus.Complete ? "complete" : "cancelled")}**");
            if (_run.Pending > 0) sb.Append($" ({_run.Pending} images pending; rerun the same command to resume)");
            sb.Append("\n\n");
            sb.Append($"Model: {Md(_job.Model)} (`{_job.ModelIdentity[..Math.Min(12, _job.ModelIdentity.Length)]}`), input {_job.InputWidth}×{_job.InputHeight}×{_job.Channels}, ");
            sb.Append("methods " + string.Join(", ", _job.Methods.Select(m => $"{m} at `{(_job.LayerOf(m).Length == 0 ? "(input)" : _job.LayerOf(m))}`")));
            if (_job.ContrastLayer is not null) sb.Append($", contrast layer `{_job.ContrastLayer}`");
            sb.Append($", top-k {_job.TopK}, min energy {FormatRatio(_minEnergy)}.\n\n");

            sb.Append("| count | value |\n|---|---:|\n");
            sb.Append($"| inputs | {_run.Inputs} |\n| processed | {Processed} |\n| skipped | {Skipped} |\n| pending | {_run.Pending} |\n");
            sb.Append($"| rows (image × method × class) | {Rows} |\n| annotated images | {AnnotatedImages} |\n");
            sb.Append($"| labelled images | {Labelled} |\n| label accuracy (top-1) | {Pct(Labelled > 0 ? (double)LabelCorrect / Labelled : null)} |\n");
            sb.Append($"| flagged rows | {FlaggedRows} |\n| flagged images | {FlaggedImages} |\n\n");

            sb.Append("## Flags\n\n| flag | rows | meaning |\n|---|---:|---|\n");
            sb.Append($"| `{Flags.PeakOutsideObjects}` | {_flagCounts[Flags.PeakOutsideObjects]} | the map's peak lies outside every annotated box (beyond the pointing tolerance) |\n");
            sb.Append($"| `{Flags.LowEnergy}` | {_flagCounts[Flags.LowEnergy]} | less than {FormatRatio(_minEnergy)} of the map's positive mass lies in the class's boxes |\n");
            sb.Append($"| `{Flags.LabelMismatch}` | {_flagCounts[Flags.LabelMismatch]} | the top-1 prediction differs from the label |\n");
            sb.Append($"| `{Flags.EmptyMap}` | {_flagCounts[Flags.EmptyMap]} | the map has no positive value |\n\n");

            sb.Append("## Pointing game\n\n");
            if (_methods.All(m => m.Total == 0))
            {
                sb.Append("No annotated (image, class) pairs.\n\n");
            }
            else
            {
                var classes = _methods.SelectMany(m => m.PerClass.Select(p => p.Class)).Distinct().Order().ToList();
                sb.Append("| class | " + string.Join(" | ", _methods.Select(m => m.Method)) + " |\n");
                sb.Append("|---|" + string.Concat(_methods.Select(_ => "---:|")) + "\n");
                foreach (var c in classes)
                {
                    sb.Append($"| {Md(ClassName(c))} |");
                    foreach (var m in _methods)
                    {
                        var p = m.PerClass.FirstOrDefault(x => x.Class == c);
                        sb.Append(p.Total > 0 ? $" {Pct((double)p.Hits / p.Total)} ({p.Hits}/{p.Total}) |" : " – |");
                    }
                    sb.Append('\n');
                }
                sb.Append("| **all** |" + string.Concat(_methods.Select(m => $" **{Pct(m.Accuracy)}** ({m.Hits}/{m.Total}) |")) + "\n");
                sb.Append("| mean over classes |" + string.Concat(_methods.Select(m => $" {Pct(m.MeanClassAccuracy)} |")) + "\n\n");
                sb.Append("Energy in boxes (share of the map's positive mass inside the class's boxes): " +
                          string.Join("; ", _methods.Select(m => $"{m.Method} mean {R(m.EnergyMean)}, median {R(m.EnergyMedian)} over {m.EnergyRows} rows")) + ".\n\n");
            }

            _faithfulness?.AppendMarkdown(sb, ClassName);
            sb.Append("## Skipped files\n\n");
            if (_skipped.Count == 0) sb.Append("None.\n\n");
            else
            {
                sb.Append("| image | reason |\n|---|---|\n");
                foreach (var (image, reason) in _skipped) sb.Append($"| {Md(image)} | {Md(reason)} |\n");
                sb.Append('\n');
            }
            if (_warnings.Count > 0)
            {
                sb.Append("## Warnings\n\n| warning | images | e.g. |\n|---|---:|---|\n");
                foreach (var (text, images, examples) in _warnings)
                    sb.Append($"| {Md(text)} | {images} | {Md(string.Join(", ", examples))}{(images > examples.Count ? ", …" : "")} |\n");
                sb.Append('\n');
            }

            sb.Append("## Run\n\n");
            if (_run.Shard is not null) sb.Append($"Shard {_run.Shard}. ");
            if (_run.MergedFrom is { } from) sb.Append($"Merged from {from.Count} shard folders. ");
            if (_run.MissingShards.Count > 0) sb.Append($"**Missing shards: {string.Join(", ", _run.MissingShards)}** (their images are not in this report). ");
            sb.Append($"Resumed {_run.ResumedImages} finished images; {_run.JournalEntriesDropped} journal entries were invalid or stale and redone.\n\n");
            if (timings.Merge is not null) sb.Append("Timings are the shards' seconds summed (not wall time); images per second is per shard process.\n\n");
            sb.Append("| timing | seconds |\n|---|---:|\n");
            sb.Append($"| total | {timings.Total.ToString("F1", Inv)} |\n| model load | {timings.ModelLoad.ToString("F1", Inv)} |\n");
            sb.Append($"| decode | {timings.Decode.ToString("F1", Inv)} |\n| saliency (stages) | {timings.Compute.ToString("F1", Inv)} |\n");
            sb.Append($"| measures and overlays | {timings.Write.ToString("F1", Inv)} |\n| images per second | {timings.ImagesPerSecond.ToString("F2", Inv)} |\n");
            if (timings.Merge is { } merge) sb.Append($"| merge (wall time) | {merge.ToString("F1", Inv)} |\n");
            return sb.ToString();
        }
    }
}
