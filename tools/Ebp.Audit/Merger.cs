using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Ebp.Audit;

/// <summary>Settings of <see cref="Merger.Merge"/>.</summary>
internal sealed record MergeOptions
{
    /// <summary>
    /// Shard output folders (<c>…/shard-i-of-N</c>), or folders that contain them (e.g. the <c>--out</c> folder the
    /// shards were given); each must hold a job file.
    /// </summary>
    public IReadOnlyList<string> Sources { get; init; } = [];

    /// <summary>The merged output folder.</summary>
    public string OutputFolder { get; init; } = "";

    /// <summary>Flag thresholds for the merged report. Default <see cref="EnergyThresholds.Default"/>.</summary>
    public EnergyThresholds MinEnergy { get; init; } = EnergyThresholds.Default;

    /// <summary>Merge even if shards are missing or incomplete (the summary then says <c>cancelled</c>). Default false.</summary>
    public bool AllowIncomplete { get; init; }
}

/// <summary>
/// Combines the output folders of the shards of one job into the folder a single process would have written: the
/// journals are merged in image order, overlays copied, and the reports written by the same code, so
/// <c>results.csv</c>, <c>results.jsonl</c> and every number of <c>summary.json</c> except the <c>run</c> section equal a
/// single run's. Also regenerates the report of one folder (<see cref="Report"/>).
/// </summary>
internal static class Merger
{
    /// <exception cref="AuditUsageException">No shards, shards of different jobs or inputs, missing or incomplete shards.</exception>
    public static AuditResult Merge(MergeOptions o, IProgress<string>? log = null)
    {
        var clock = Stopwatch.StartNew();
        var started = DateTime.UtcNow;
        if (string.IsNullOrWhiteSpace(o.OutputFolder)) throw new AuditUsageException("Give the merged output folder: --out <folder>.");
        (o.MinEnergy ?? throw new AuditUsageException("Give the --min-energy thresholds.")).Checked();
        var folders = FindShardFolders(o.Sources, out var repeated);
        foreach (var r in repeated) log?.Report($"'{r}' is given more than once; it is merged once");
        var target = new OutputLayout(o.OutputFolder);
        if (folders.Any(f => string.Equals(Path.GetFullPath(f), target.Folder, StringComparison.Ordinal)))
            throw new AuditUsageException("The merged output folder must not be one of the shard folders.");

        var shards = folders.Select(f => (Layout: new OutputLayout(f), Job: JobInfo.Load(new OutputLayout(f).JobFile))).ToList();
        var first = shards[0].Job;
        int count = first.ShardCount;
        foreach (var s in shards)
        {
            var diff = JobInfo.Differences(first.Unsharded(), s.Job.Unsharded());
            if (diff.Count > 0)
                throw new AuditUsageException($"'{s.Layout.Folder}' belongs to a different audit than '{shards[0].Layout.Folder}' (differences: {string.Join(", ", diff)}).");
            if (s.Job.ShardCount != count)
                throw new AuditUsageException($"'{s.Layout.Folder}' is shard {s.Job.ShardIndex}/{s.Job.ShardCount}, but '{shards[0].Layout.Folder}' is one of {count} shards.");
        }
        var missing = Enumerable.Range(0, count).Except(shards.Select(s => s.Job.ShardIndex)).ToList();
        string missingText = missing.Count == 0 ? "" : $"missing shard{(missing.Count > 1 ? "s" : "")} {string.Join(", ", missing.Select(i => $"{i}/{count}"))}";
        var dup = shards.GroupBy(s => s.Job.ShardIndex).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null)
            throw new AuditUsageException(
                $"Shard {dup.Key}/{count} is given twice, in different folders: {string.Join(", ", dup.Select(s => s.Layout.Folder))}; keep one of them" +
                (missing.Count > 0 ? $" ({missingText})." : "."));
        if (missing.Count > 0 && !o.AllowIncomplete)
            throw new AuditUsageException($"The merge lacks {missingText} of {count} (pass --allow-incomplete to merge the others anyway).");
        if (missing.Count > 0) log?.Report($"merging without {missingText}: their images are not in the report");

        // Each shard's last summary: status, input count and the fingerprint of the full input list.
        int inputs = 0, pending = 0;
        string? fingerprint = null;
        var timings = new Timings();
        double shardWork = 0;
        foreach (var s in shards)
        {
            var summary = ReadSummary(s.Layout);
            string shardStatus = summary?.Status ?? "missing";
            if (shardStatus != "complete" && !o.AllowIncomplete)
                throw new AuditUsageException($"Shard '{s.Layout.Folder}' is not complete (status {shardStatus}); rerun it (it resumes) or pass --allow-incomplete.");
            inputs += summary?.Counts?.Inputs ?? 0;
            pending += summary?.Counts?.Pending ?? 0;
            var fp = summary?.Run?.InputFingerprint;
            if (fingerprint is null) fingerprint = fp;
            else if (fp is not null && fp != fingerprint && !o.AllowIncomplete)
                throw new AuditUsageException($"Shard '{s.Layout.Folder}' saw a different input list than '{shards[0].Layout.Folder}' (the input changed between the shards' runs); rerun the shards on the same input.");
            if (summary?.Run?.Timings is { } t)
            {
                timings.ModelLoad += t.ModelLoad ?? 0;
                timings.Decode += t.Decode ?? 0;
                timings.Compute += t.Compute ?? 0;
                timings.Write += t.Write ?? 0;
                timings.Journal += t.Journal ?? 0;
                timings.Total += t.Total ?? 0;
                shardWork += (t.Decode ?? 0) + (t.Compute ?? 0) + (t.Write ?? 0) + (t.Journal ?? 0);
            }
        }

        Directory.CreateDirectory(target.StateFolder);
        using var folderLock = AuditJob.AcquireLock(target);
        AtomicFile.CleanTemporaries(target.Folder);
        var merged = new Dictionary<string, ImageRecord>(StringComparer.Ordinal);
        foreach (var s in shards)
        {
            var records = Journal.Read(s.Layout.JournalFile, out int unreadable);
            if (unreadable > 0) log?.Report($"{s.Layout.Folder}: {unreadable} unreadable journal lines ignored");
            foreach (var (key, r) in records)
            {
                if (ShardSpec.Of(key, count) != s.Job.ShardIndex)
                    throw new AuditUsageException($"'{s.Layout.Folder}' holds '{key}', which belongs to shard {ShardSpec.Of(key, count)}/{count}.");
                if (!merged.TryAdd(key, r)) throw new AuditUsageException($"'{key}' appears in two shards.");
                foreach (var file in r.Rows.Select(row => row.Overlay).Append(r.InputPanel))
                {
                    if (file is null) continue;
                    var src = s.Layout.Full(file);
                    var dst = target.Full(file);
                    if (!File.Exists(src))
                        throw new AuditUsageException($"'{s.Layout.Folder}' lacks the overlay '{file}' its journal lists; rerun that shard (it redoes the image).");
                    if (!File.Exists(dst) || new FileInfo(dst).Length != new FileInfo(src).Length || !SameBytes(src, dst))
                        AtomicFile.Copy(src, dst);
                }
            }
            log?.Report($"{s.Layout.Folder}: {records.Count} images");
        }
        var sorted = merged.Values.OrderBy(r => r.Image, StringComparer.Ordinal).ToList();
        var job = first.Unsharded();
        AtomicFile.WriteAllText(target.JobFile, job.ToJson());
        Journal.Rewrite(target.JournalFile, sorted);
        var status = missing.Count == 0 && pending == 0 && sorted.Count == inputs ? AuditStatus.Complete : AuditStatus.Cancelled;
        var run = new RunInfo
        {
            Status = status,
            Inputs = inputs,
            Pending = Math.Max(pending, inputs - sorted.Count),
            InputFingerprint = fingerprint ?? "",
            StartedUtc = started,
            MissingShards = missing.Select(i => $"{i}/{count}").ToList(),
            MergedFrom = shards.OrderBy(s => s.Job.ShardIndex).Select(s => Path.GetRelativePath(target.Folder, s.Layout.Folder).Replace('\\', '/')).ToList(),
            Timings = timings,
        };
        // The shards' phases are summed (process seconds, not wall time); the rate is per shard process.
        timings.ImagesPerSecond = shardWork > 0 ? sorted.Count / shardWork : 0;
        timings.Merge = clock.Elapsed.TotalSeconds;
        var counts = ReportWriter.Write(target, job, sorted, run, o.MinEnergy, timings);
        return new AuditResult(status, target.Folder, inputs, counts.Processed, counts.Skipped, run.Pending, counts.Rows, counts.FlaggedRows, 0, 0)
        {
            MissingShards = run.MissingShards,
        };
    }

    /// <summary>
    /// Rewrites the reports of one output folder from its journal (e.g. with another <paramref name="minEnergy"/>),
    /// without the model or the images.
    /// </summary>
    public static AuditResult Report(string folder, EnergyThresholds minEnergy)
    {
        ArgumentNullException.ThrowIfNull(minEnergy);
        minEnergy.Checked();
        var layout = new OutputLayout(folder);
        if (!File.Exists(layout.JobFile)) throw new AuditUsageException($"'{folder}' is not an ebp-audit output folder (no .audit/job.json).");
        var job = JobInfo.Load(layout.JobFile);
        using var folderLock = AuditJob.AcquireLock(layout);
        var records = Journal.Read(layout.JournalFile, out _).Values.OrderBy(r => r.Image, StringComparer.Ordinal).ToList();
        var summary = ReadSummary(layout);
        int inputs = summary?.Counts?.Inputs ?? records.Count;
        var statusText = summary?.Status;
        var status = statusText == "complete" && records.Count >= inputs ? AuditStatus.Complete : AuditStatus.Cancelled;
        List<string>? mergedFrom = summary?.Run?.MergedFrom?.ToList();
        var run = new RunInfo
        {
            Status = status,
            Inputs = inputs,
            Pending = Math.Max(0, inputs - records.Count),
            Shard = summary?.Run?.Shard,
            InputFingerprint = summary?.Run?.InputFingerprint ?? "",
            StartedUtc = DateTime.UtcNow,
            MergedFrom = mergedFrom,
            MissingShards = summary?.Run?.MissingShards?.ToList() ?? [],
        };
        var timings = new Timings();
        var counts = ReportWriter.Write(layout, job, records, run, minEnergy, timings);
        return new AuditResult(status, layout.Folder, inputs, counts.Processed, counts.Skipped, run.Pending, counts.Rows, counts.FlaggedRows, 0, 0);
    }

    /// <summary>The shard folders among <paramref name="sources"/> (a folder with <c>.audit/job.json</c>, or its <c>shard-*</c> subfolders).</summary>
    internal static List<string> FindShardFolders(IReadOnlyList<string> sources, out List<string> repeated)
    {
        if (sources.Count == 0) throw new AuditUsageException("Give the shard folders to merge (or the folder that contains shard-i-of-N folders).");
        var result = new List<string>();
        foreach (var s in sources)
        {
            var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(s));
            if (!Directory.Exists(full)) throw new AuditUsageException($"'{s}' does not exist.");
            if (File.Exists(new OutputLayout(full).JobFile) && Path.GetFileName(full).StartsWith("shard-", StringComparison.Ordinal))
            {
                result.Add(full);
                continue;
            }
            var subs = Directory.GetDirectories(full, "shard-*-of-*").Where(d => File.Exists(new OutputLayout(d).JobFile)).Order(StringComparer.Ordinal).ToList();
            if (subs.Count == 0)
            {
                if (File.Exists(new OutputLayout(full).JobFile)) { result.Add(full); continue; }
                throw new AuditUsageException($"'{s}' is neither an ebp-audit shard folder nor a folder containing shard-i-of-N folders.");
            }
            result.AddRange(subs);
        }
        repeated = result.GroupBy(f => f, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        return result.Distinct(StringComparer.Ordinal).ToList();
    }

    /// <summary>The folder's last <c>summary.json</c>, or null when it is missing or unreadable (the merge then counts from the journal).</summary>
    private static SummaryDocument? ReadSummary(OutputLayout layout)
    {
        if (!File.Exists(layout.SummaryJson)) return null;
        try { return JsonSerializer.Deserialize(File.ReadAllText(layout.SummaryJson), ReportJsonContext.Default.SummaryDocument); }
        catch (Exception e) when (e is JsonException or NotSupportedException or InvalidOperationException) { return null; }
    }

    private static bool SameBytes(string a, string b)
    {
        var x = File.ReadAllBytes(a);
        var y = File.ReadAllBytes(b);
        return x.AsSpan().SequenceEqual(y);
    }

    internal static string Describe(AuditResult r) => string.Create(CultureInfo.InvariantCulture,
        $"{r.Status.ToString().ToLowerInvariant()}: {r.Processed} processed, {r.Skipped} skipped, {r.Pending} pending, {r.Rows} rows, {r.FlaggedRows} flagged") +
        (r.MissingShards.Count > 0 ? $"; missing shards {string.Join(", ", r.MissingShards)} (their images are not counted)" : "");
}
