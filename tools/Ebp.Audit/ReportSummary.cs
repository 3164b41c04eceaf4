using System.Globalization;
using System.Text;
using static Ebp.Audit.ReportWriter;

namespace Ebp.Audit;

/// <summary>The aggregate numbers of a report, and the documents made from them (summary.json, summary.md, the gallery's data).</summary>
internal sealed class ReportSummary
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private const int WarningExamples = 5;

    /// <summary>Cases in the gallery's worst-cases section (and the first of them in summary.md).</summary>
    internal const int GalleryCases = 60, MarkdownCases = 10;

    private readonly JobInfo _job;
    private readonly RunInfo _run;
    private readonly EnergyThresholds _minEnergy;
    private readonly List<SkippedFile> _skipped;
    private readonly List<WarningGroup> _warnings;
    private readonly Dictionary<string, int> _flagCounts;
    private readonly List<MethodStats> _methods;
    private readonly List<ConfusionCell> _confusion;
    private readonly List<GalleryCase> _cases;
    private readonly FaithfulnessSummary? _faithfulness;

    public ReportSummary(JobInfo job, IReadOnlyList<ImageRecord> records, List<ReportRow> rows, RunInfo run, EnergyThresholds minEnergy)
    {
        _job = job;
        _run = run;
        _minEnergy = minEnergy;
        var done = records.Where(r => r.IsDone).ToList();
        Processed = done.Count;
        Skipped = records.Count - done.Count;
        Rows = rows.Count;
        _skipped = records.Where(r => !r.IsDone).Select(r => new SkippedFile(r.Image, r.Reason ?? "")).ToList();
        _warnings = records.SelectMany(r => r.Warnings.Distinct().Select(w => (r.Image, w)))
            .GroupBy(x => x.w)
            .Select(g => new WarningGroup(g.Key, g.Count(), g.Select(x => x.Image).Order(StringComparer.Ordinal).Take(WarningExamples).ToList()))
            .OrderBy(x => x.Warning, StringComparer.Ordinal).ToList();
        AnnotatedImages = done.Count(r => r.Objects > 0);
        Labelled = done.Count(r => r.Label is not null);
        LabelCorrect = done.Count(r => r.Label is { } l && l == r.Predicted);
        _flagCounts = Flags.All.ToDictionary(f => f, f => rows.Count(r => r.Flags.Contains(f)));
        FlaggedRows = rows.Count(r => r.Flags.Count > 0);
        FlaggedImages = rows.Where(r => r.Flags.Count > 0).Select(r => r.Image.Image).Distinct().Count();
        _methods = job.Methods.Select(m => new MethodStats(m, rows.Where(r => r.Row.Method == m).Select(r => r.Row).ToList())).ToList();
        _confusion = Confusion(done);
        _cases = WorstCases.Of(job, rows);
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

    private double? LabelAccuracy => Labelled > 0 ? (double)LabelCorrect / Labelled : null;

    private sealed class MethodStats
    {
        public MethodStats(string method, List<RowRecord> rows)
        {
            Method = method;
            var pointed = rows.Where(r => r.Hit is not null).ToList();
            Hits = pointed.Count(r => r.Hit == true);
            Total = pointed.Count;
            PerClass = pointed.GroupBy(r => r.Class).OrderBy(g => g.Key)
                .Select(g => (g.Key, g.Count(r => r.Hit == true), g.Count())).ToList();
            var energies = rows.Where(r => r.Energy is not null).Select(r => r.Energy!.Value).Order().ToList();
            EnergyRows = energies.Count;
            EnergyMean = energies.Count > 0 ? energies.Average() : null;
            EnergyMedian = energies.Count > 0 ? Quantiles.Median(energies) : null;
            EnergyP05 = Quantiles.Percentile(energies, 0.05);
        }

        public string Method { get; }
        public int Hits { get; }
        public int Total { get; }
        public List<(int Class, int Hits, int Total)> PerClass { get; }
        public int EnergyRows { get; }
        public double? EnergyMean { get; }
        public double? EnergyMedian { get; }
        public double? EnergyP05 { get; }
        public double? Accuracy => Total > 0 ? (double)Hits / Total : null;
        public double? MeanClassAccuracy => PerClass.Count > 0 ? PerClass.Average(c => (double)c.Hits / c.Total) : null;
    }

    /// <summary>
    /// Top-1 prediction against annotated classes, per annotated image: a prediction among the image's annotated classes
    /// counts once on the diagonal; another prediction counts once for each annotated class (the model saw something else).
    /// </summary>
    private List<ConfusionCell> Confusion(List<ImageRecord> done)
    {
        var counts = new Dictionary<(int Annotated, int Predicted), int>();
        foreach (var r in done)
        {
            var annotated = r.Rows.Where(x => x.ClassAnnotated).Select(x => x.Class).Distinct().ToList();
            if (annotated.Count == 0 || r.Predicted < 0) continue;
            if (annotated.Contains(r.Predicted)) counts[(r.Predicted, r.Predicted)] = counts.GetValueOrDefault((r.Predicted, r.Predicted)) + 1;
            else foreach (var a in annotated) counts[(a, r.Predicted)] = counts.GetValueOrDefault((a, r.Predicted)) + 1;
        }
        return counts.OrderBy(kv => kv.Key.Annotated).ThenBy(kv => kv.Key.Predicted)
            .Select(kv => new ConfusionCell(kv.Key.Annotated, ClassName(_job, kv.Key.Annotated), kv.Key.Predicted, ClassName(_job, kv.Key.Predicted), kv.Value))
            .ToList();
    }

    private SummaryDocument Document(Timings? timings) => new(
        Tool: "ebp-audit",
        Format: 1,
        Status: _run.Status == AuditStatus.Complete ? "complete" : "cancelled",
        Job: new SummaryJob(
            _job.Model, _job.ModelIdentity, _job.ClassNames.Count, _job.Methods, _job.SaliencyLayer,
            _job.Methods.ToDictionary(m => m, _job.LayerOf), _job.ContrastLayer, _job.ClassifierLayer,
            $"{_job.InputWidth}x{_job.InputHeight}x{_job.Channels}", _job.TopK, _job.ComputeBatch,
            _minEnergy.IsUniform(_job.Methods) && _job.Methods.Count > 0 ? _minEnergy.For(_job.Methods[0]) : null,
            _job.Methods.ToDictionary(m => m, m => new Ratio(_minEnergy.For(m))),
            _job.TolerancePx),
        Counts: new SummaryCounts(_run.Inputs, Processed, Skipped, _run.Pending, Rows, AnnotatedImages, Labelled, LabelCorrect,
                                  LabelAccuracy, FlaggedRows, FlaggedImages),
        Flags: Flags.All.ToDictionary(f => f, f => _flagCounts[f]),
        Pointing: _methods.ToDictionary(m => m.Method, m => new MethodPointing(
            m.Hits, m.Total, m.Accuracy, m.MeanClassAccuracy,
            m.PerClass.Select(c => new ClassPointing(c.Class, ClassName(_job, c.Class), c.Hits, c.Total, (double)c.Hits / c.Total)).ToList())),
        EnergyInBoxes: _methods.ToDictionary(m => m.Method, m => new MethodEnergy(m.EnergyRows, m.EnergyMean, m.EnergyMedian, m.EnergyP05)),
        Faithfulness: _faithfulness?.Document(c => ClassName(_job, c)),
        Confusion: _confusion,
        Skipped: _skipped,
        Warnings: _warnings,
        Run: timings is null ? null : new SummaryRun(
            _run.Shard, _run.MergedFrom, _run.MissingShards, _run.InputFingerprint, _run.ResumedImages, _run.JournalEntriesDropped,
            _run.StartedUtc.ToString("O", Inv), DateTime.UtcNow.ToString("O", Inv),
            new SummaryTimings(timings.Total, timings.ModelLoad, timings.Decode, timings.Compute, timings.Write, timings.Journal,
                               timings.Report, timings.ImagesPerSecond, timings.Threads > 0 ? timings.Threads : null,
                               timings.Merge is null ? null : "merged: the phases are the shards' seconds summed, images_per_s is per shard process; merge_s is the merge's wall time",
                               timings.Merge, timings.ThreadsChosenBy,
                               timings.ThreadTrials.Count == 0 ? null
                                   : timings.ThreadTrials.Select(t => new SummaryThreadTrial(t.Threads, t.Batches, t.Images, 1000 * t.SecondsPerImage)).ToList())));

    private static string ThreadChoiceText(string? by) => by switch
    {
        ThreadChoice.Option => "--threads",
        ThreadChoice.Environment => "OMP_NUM_THREADS",
        ThreadChoice.Measured => "measured: the fastest on the first batches, fewer threads within " + ThreadTuner.TieMargin.ToString("P0", Inv),
        _ => "the CPUs available; too few images to time a choice",
    };

    /// <summary>summary.json (indented, with the run section).</summary>
    public string ToJson(Timings timings) => Serialize(Document(timings), ReportJsonContext.Default.SummaryDocument, indented: true) + "\n";

    /// <summary>The data of index.html: rows, summary (without the run section, so that equal results give equal pages), texts, cases.</summary>
    public string Gallery(IReadOnlyList<ResultRow> results) => Audit.Gallery.Html(GalleryJson(results), this);

    /// <summary>The page's title line: the job in words (HTML-encoded by the gallery).</summary>
    public string JobLine => $"model {_job.Model}, methods " +
        string.Join(", ", _job.Methods.Select(m => $"{m} at {(_job.LayerOf(m).Length == 0 ? "(input)" : _job.LayerOf(m))}")) +
        $", min energy {_minEnergy.Describe(_job.Methods)}.";

    public string StatusText => _run.Status == AuditStatus.Complete ? "complete" : "cancelled";

    private string GalleryJson(IReadOnlyList<ResultRow> results)
    {
        var text = new GalleryText(
            _minEnergy.Describe(_job.Methods),
            FormatPercent(LabelAccuracy),
            _methods.ToDictionary(m => m.Method, m => FormatHits(m.Hits, m.Total)),
            _methods.ToDictionary(m => m.Method, m => m.PerClass.ToDictionary(c => c.Class.ToString(Inv), c => FormatHits(c.Hits, c.Total))),
            _faithfulness?.Texts());
        var data = new GalleryData(results, Flags.All, _job.Methods, _job.ClassNames, Document(null), text,
                                   results.Select(r => FormatScore(r.Score)).ToList(),
                                   Flags.All.ToDictionary(f => f, f => WorstCases.Meaning(f, text.MinEnergy)),
                                   _cases.Count, _cases.Take(GalleryCases).ToList());
        return Serialize(data, ReportJsonContext.Default.GalleryData, indented: false);
    }

    public string ToMarkdown(Timings timings)
    {
        var sb = new StringBuilder();
        static string Md(string s) => s.Replace("|", "\\|").Replace("\n", " ");
        sb.Append("# Saliency audit\n\n");
        sb.Append($"Status: **{(_run.Status == AuditStatus.Complete ? "complete" : "cancelled")}**");
        if (_run.Pending > 0) sb.Append($" ({_run.Pending} images pending; rerun the same command to resume)");
        sb.Append("\n\n");
        sb.Append($"Model: {Md(_job.Model)} (`{_job.ModelIdentity[..Math.Min(12, _job.ModelIdentity.Length)]}`), input {_job.InputWidth}×{_job.InputHeight}×{_job.Channels}, ");
        sb.Append("methods " + string.Join(", ", _job.Methods.Select(m => $"{m} at `{(_job.LayerOf(m).Length == 0 ? "(input)" : _job.LayerOf(m))}`")));
        if (_job.ContrastLayer is not null) sb.Append($", contrast layer `{_job.ContrastLayer}`");
        sb.Append($", top-k {_job.TopK}, min energy {_minEnergy.Describe(_job.Methods)}.\n\n");

        sb.Append("| count | value |\n|---|---:|\n");
        sb.Append($"| inputs | {_run.Inputs} |\n| processed | {Processed} |\n| skipped | {Skipped} |\n| pending | {_run.Pending} |\n");
        sb.Append($"| rows (image × method × class) | {Rows} |\n| annotated images | {AnnotatedImages} |\n");
        sb.Append($"| labelled images | {Labelled} |\n| label accuracy (top-1) | {FormatPercent(LabelAccuracy)} |\n");
        sb.Append($"| flagged rows | {FlaggedRows} |\n| flagged images | {FlaggedImages} |\n\n");

        sb.Append("## Flags\n\n| flag | rows | meaning |\n|---|---:|---|\n");
        foreach (var f in Flags.All) sb.Append($"| `{f}` | {_flagCounts[f]} | {Md(WorstCases.Meaning(f, _minEnergy.Describe(_job.Methods)))} |\n");
        sb.Append('\n');

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
                sb.Append($"| {Md(ClassName(_job, c))} |");
                foreach (var m in _methods)
                {
                    var p = m.PerClass.FirstOrDefault(x => x.Class == c);
                    sb.Append(p.Total > 0 ? $" {FormatHits(p.Hits, p.Total)} |" : " – |");
                }
                sb.Append('\n');
            }
            sb.Append("| **all** |" + string.Concat(_methods.Select(m => $" **{FormatPercent(m.Accuracy)}** ({m.Hits}/{m.Total}) |")) + "\n");
            sb.Append("| mean over classes |" + string.Concat(_methods.Select(m => $" {FormatPercent(m.MeanClassAccuracy)} |")) + "\n\n");
            string R(double? v) => v is { } x ? FormatRatio(x) : "–";
            sb.Append("Energy in boxes (share of the map's positive mass inside the class's boxes): " +
                      string.Join("; ", _methods.Select(m => $"{m.Method} mean {R(m.EnergyMean)}, median {R(m.EnergyMedian)}, 5th percentile {R(m.EnergyP05)} over {m.EnergyRows} rows")) + ".\n\n");
        }

        _faithfulness?.AppendMarkdown(sb, c => ClassName(_job, c));

        sb.Append("## Predicted and annotated classes\n\n");
        var off = _confusion.Where(c => c.Annotated != c.Predicted).OrderByDescending(c => c.Images).ThenBy(c => c.Annotated).ThenBy(c => c.Predicted).ToList();
        int diagonal = _confusion.Where(c => c.Annotated == c.Predicted).Sum(c => c.Images);
        sb.Append($"Annotated images whose top-1 prediction is one of their annotated classes: {diagonal}. ");
        if (off.Count == 0) sb.Append("No other predictions.\n\n");
        else
        {
            sb.Append("Predictions of another class (each annotated class of the image counted):\n\n| annotated | predicted | images |\n|---|---|---:|\n");
            foreach (var c in off.Take(MarkdownCases)) sb.Append($"| {Md(c.AnnotatedName)} | {Md(c.PredictedName)} | {c.Images} |\n");
            if (off.Count > MarkdownCases) sb.Append($"| … | {off.Count - MarkdownCases} more pairs (summary.json → `confusion`) | |\n");
            sb.Append('\n');
        }

        sb.Append("## Worst cases\n\n");
        if (_cases.Count == 0) sb.Append("None: no (image, class) has a flag.\n\n");
        else
        {
            sb.Append($"{_cases.Count} (image, class) pairs have a flag; the first {Math.Min(MarkdownCases, _cases.Count)} (index.html shows up to {GalleryCases} side by side):\n\n");
            sb.Append("| image | class | why |\n|---|---|---|\n");
            foreach (var c in _cases.Take(MarkdownCases)) sb.Append($"| {Md(c.Image)} | {Md(c.ClassName)} | {Md(c.Reason)} |\n");
            sb.Append('\n');
        }

        sb.Append("## Skipped files\n\n");
        if (_skipped.Count == 0) sb.Append("None.\n\n");
        else
        {
            sb.Append("| image | reason |\n|---|---|\n");
            foreach (var s in _skipped) sb.Append($"| {Md(s.Image)} | {Md(s.Reason)} |\n");
            sb.Append('\n');
        }
        if (_warnings.Count > 0)
        {
            sb.Append("## Warnings\n\n| warning | images | e.g. |\n|---|---:|---|\n");
            foreach (var w in _warnings)
                sb.Append($"| {Md(w.Warning)} | {w.Images} | {Md(string.Join(", ", w.Examples))}{(w.Images > w.Examples.Count ? ", …" : "")} |\n");
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
        if (timings.Threads > 0)
        {
            sb.Append($"\nTorch intra-op threads: {timings.Threads} ({ThreadChoiceText(timings.ThreadsChosenBy)}).\n");
            if (timings.ThreadTrials.Count > 0)
            {
                sb.Append("\n| threads | batches timed | images | saliency ms per image |\n|---:|---:|---:|---:|\n");
                foreach (var t in timings.ThreadTrials)
                    sb.Append($"| {t.Threads} | {t.Batches} | {t.Images} | {(1000 * t.SecondsPerImage).ToString("F1", Inv)} |\n");
            }
        }
        return sb.ToString();
    }
}
