using System.Diagnostics;
using System.Globalization;
using Ebp.Datasets;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;

namespace Ebp.Audit;

/// <summary>What the job is doing when it reports progress.</summary>
internal enum AuditPhase
{
    /// <summary>Inputs listed, model loaded, journal read; nothing computed yet in this run.</summary>
    Started,

    /// <summary>A batch was computed and recorded in the journal.</summary>
    Batch,

    /// <summary>The reports were written (the run is over).</summary>
    Finished,
}

/// <summary>A progress report. <see cref="Done"/> counts images finished in any run (resumed ones included).</summary>
/// <param name="Phase">What just happened.</param>
/// <param name="Done">Images finished (processed or skipped), including those of earlier runs.</param>
/// <param name="Total">Images of this shard.</param>
/// <param name="Skipped">Images skipped (unreadable etc.), including earlier runs.</param>
/// <param name="Resumed">Images that were already finished when this run started.</param>
/// <param name="Batches">Batches computed in this run.</param>
/// <param name="Elapsed">Time since this run's first batch started (zero before).</param>
/// <param name="Current">The last image of the batch, or null.</param>
internal sealed record AuditProgress(AuditPhase Phase, int Done, int Total, int Skipped, int Resumed, int Batches, TimeSpan Elapsed, string? Current)
{
    /// <summary>Images per second in this run (0 before the first batch).</summary>
    public double Rate => Elapsed.TotalSeconds > 0 ? (Done - Resumed) / Elapsed.TotalSeconds : 0;

    /// <summary>Estimated time to finish, or null when unknown.</summary>
    public TimeSpan? Eta => Rate > 0 ? TimeSpan.FromSeconds((Total - Done) / Rate) : null;
}

/// <summary>How a run ended.</summary>
internal enum AuditStatus
{
    /// <summary>Every image of the shard is finished.</summary>
    Complete,

    /// <summary>Cancelled (Ctrl-C, SIGTERM, the token) after a batch; the reports cover the finished images; a rerun resumes.</summary>
    Cancelled,
}

/// <summary>The outcome of <see cref="AuditJob.Run"/>.</summary>
internal sealed record AuditResult(
    AuditStatus Status, string OutputFolder, int Inputs, int Processed, int Skipped, int Pending, int Rows, int FlaggedRows,
    int ResumedImages, int JournalEntriesDropped)
{
    /// <summary>A merge: the shards (<c>i/N</c>) that were not there; empty otherwise.</summary>
    public IReadOnlyList<string> MissingShards { get; init; } = [];
}

/// <summary>
/// The model audit: explains every image of a folder or manifest (or one shard of it) with one or more saliency
/// methods through the Ebp.MLNet <c>ComputeSaliency</c> stage, and writes overlays, <c>results.csv</c>/<c>.jsonl</c>,
/// <c>summary.json</c>/<c>.md</c> and an HTML gallery.
/// </summary>
/// <remarks>
/// <para><b>Streaming.</b> Images are decoded a batch at a time (<see cref="AuditOptions.BatchSize"/>) and released
/// after the batch; only paths and per-row numbers are kept.</para>
/// <para><b>Stages.</b> Per batch, the first method's stage runs with target = the prediction, which gives every
/// image's scores (top-k ranks) and the top-1 map. Each method then has a stage with target = a class column that
/// explains the remaining (image, class) pairs: the top-k classes, the label's class and every annotated class.</para>
/// <para><b>Robustness.</b> Files that cannot be read or decoded, bad annotations and unknown labels are recorded as
/// skipped with the reason; a batch whose computation fails is retried image by image. Every batch is appended to
/// the journal after its overlays are written; a rerun resumes from it (<see cref="Journal"/>). Cancellation is
/// checked between batches, and the reports are always written before returning.</para>
/// </remarks>
internal sealed class AuditJob
{
    private readonly AuditOptions _o;

    public AuditJob(AuditOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _o = options;
    }

    /// <summary>Runs the job on a worker thread (see <see cref="Run"/>).</summary>
    public Task<AuditResult> RunAsync(IProgress<AuditProgress>? progress = null, CancellationToken cancellationToken = default) =>
        Task.Factory.StartNew(() => Run(progress, cancellationToken), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>
    /// Runs the job. <paramref name="progress"/> is called synchronously on the job's thread after each batch.
    /// Cancellation stops after the current batch; the reports are then written with status
    /// <see cref="AuditStatus.Cancelled"/> (no exception is thrown).
    /// </summary>
    /// <exception cref="AuditUsageException">Bad options, inputs, model, or an output folder holding another job.</exception>
    public AuditResult Run(IProgress<AuditProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var o = _o;
        o.Validate();
        var started = DateTime.UtcNow;
        var total = Stopwatch.StartNew();
        var timings = new Timings();
        // Without --threads or OMP_NUM_THREADS the count is measured on the first batches (ThreadTuner).
        bool fromEnvironment = o.Threads is null && EnvironmentThreads() is not null;
        timings.Threads = Ebp.Threading.TorchThreads.Configure(o.Threads);
        timings.ThreadsChosenBy = o.Threads is not null ? ThreadChoice.Option : fromEnvironment ? ThreadChoice.Environment : ThreadChoice.Default;

        var layout = new OutputLayout(o.EffectiveOutputFolder);
        var all = InputCatalog.Load(o);
        string inputFingerprint = InputCatalog.Fingerprint(all);
        var mine = all.Where(i => o.Shard.Takes(i.Key)).ToList();
        all = null!; // only this shard's list is kept

        var clock = Stopwatch.StartNew();
        using var model = AuditModel.Load(o);
        timings.ModelLoad = clock.Elapsed.TotalSeconds;
        var faithfulness = FaithfulnessRows.Create(o, model);
        var job = JobInfo.From(o, model);

        Directory.CreateDirectory(layout.StateFolder);
        using var folderLock = AcquireLock(layout);
        if (o.Restart) Discard(layout);
        if (File.Exists(layout.JobFile))
        {
            var previous = JobInfo.Load(layout.JobFile);
            var diff = JobInfo.Differences(previous, job);
            if (diff.Count > 0)
                throw new AuditUsageException(
                    $"The output folder '{layout.Folder}' holds results of a different audit (differences: {string.Join(", ", diff)}). " +
                    "Use --restart to discard them, or another --out folder.");
        }
        AtomicFile.WriteAllText(layout.JobFile, job.ToJson());
        AtomicFile.CleanTemporaries(layout.Folder);

        // Resume: keep the journal entries that still describe this shard's current files.
        var stamps = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var input in mine) stamps[input.Key] = Stamp(input);
        var journal = Journal.Read(layout.JournalFile, out int unreadable);
        int dropped = unreadable;
        var finished = new Dictionary<string, ImageRecord>(StringComparer.Ordinal);
        foreach (var (key, record) in journal)
        {
            if (stamps.TryGetValue(key, out var stamp) && record.Stamp == stamp && OverlaysPresent(layout, record)) finished[key] = record;
            else dropped++;
        }
        journal = null!;
        Journal.Rewrite(layout.JournalFile, finished.Values.OrderBy(r => r.Image, StringComparer.Ordinal));
        int resumed = finished.Count;
        var pending = mine.Where(i => !finished.ContainsKey(i.Key)).ToList();

        int skipped = finished.Values.Count(r => !r.IsDone);
        int batches = 0;
        var runClock = new Stopwatch();
        progress?.Report(new AuditProgress(AuditPhase.Started, finished.Count, mine.Count, skipped, resumed, 0, TimeSpan.Zero, null));

        var tuner = timings.ThreadsChosenBy == ThreadChoice.Default ? new ThreadTuner(timings.Threads, pending.Count, o.BatchSize) : null;
        int threads = timings.Threads;
        if (pending.Count > 0 && !cancellationToken.IsCancellationRequested)
        {
            clock.Restart();
            using var stages = new Stages(model, o);
            stages.Faithfulness = faithfulness;
            timings.ModelLoad += clock.Elapsed.TotalSeconds;
            using var appender = Journal.OpenAppend(layout.JournalFile);
            runClock.Start();
            for (int start = 0; start < pending.Count; start += o.BatchSize)
            {
                if (cancellationToken.IsCancellationRequested) break;
                var chunk = pending.GetRange(start, Math.Min(o.BatchSize, pending.Count - start));
                if (tuner is not null && tuner.Next() != threads) torch.set_num_threads(threads = tuner.Next());
                double computed = timings.Compute;
                var records = ProcessWithFallback(chunk, stamps, model, stages, layout, timings);
                tuner?.Record(threads, records.Count(r => r.IsDone), timings.Compute - computed);
                clock.Restart();
                appender.Append(records);
                timings.Journal += clock.Elapsed.TotalSeconds;
                foreach (var r in records)
                {
                    finished[r.Image] = r;
                    if (!r.IsDone) skipped++;
                }
                batches++;
                progress?.Report(new AuditProgress(AuditPhase.Batch, finished.Count, mine.Count, skipped, resumed, batches, runClock.Elapsed, chunk[^1].Key));
            }
        }

        if (tuner is { Trying: true })
        {
            timings.Threads = tuner.Chosen;
            if (tuner.Decided) timings.ThreadsChosenBy = ThreadChoice.Measured;
            timings.ThreadTrials = tuner.Trials;
        }

        var status = finished.Count == mine.Count ? AuditStatus.Complete : AuditStatus.Cancelled;
        var sorted = finished.Values.OrderBy(r => r.Image, StringComparer.Ordinal).ToList();
        clock.Restart();
        var run = new RunInfo
        {
            Status = status,
            Inputs = mine.Count,
            Pending = mine.Count - finished.Count,
            Shard = o.Shard.IsSharded ? o.Shard.ToString() : null,
            InputFingerprint = inputFingerprint,
            ResumedImages = resumed,
            JournalEntriesDropped = dropped,
            StartedUtc = started,
            Timings = timings,
        };
        timings.Total = total.Elapsed.TotalSeconds;
        timings.ImagesPerSecond = runClock.Elapsed.TotalSeconds > 0 ? (finished.Count - resumed) / runClock.Elapsed.TotalSeconds : 0;
        var summary = ReportWriter.Write(layout, job, sorted, run, o.MinEnergy, timings);
        progress?.Report(new AuditProgress(AuditPhase.Finished, finished.Count, mine.Count, skipped, resumed, batches, runClock.Elapsed, null));
        return new AuditResult(status, layout.Folder, mine.Count, summary.Processed, summary.Skipped, run.Pending, summary.Rows,
                               summary.FlaggedRows, resumed, dropped);
    }

    /// <summary>The stages of the job: one target-is-prediction stage (first method) and one target-is-column stage per method.</summary>
    private sealed class Stages : IDisposable
    {
        public Stages(AuditModel model, AuditOptions o)
        {
            Ml = new MLContext(seed: 0);
            try
            {
                Primary = SaliencyStage.Create(Ml, model, o.Methods[0], byTarget: false, o.ComputeBatch, o.Device);
                foreach (var m in o.Methods) ByTarget[m] = SaliencyStage.Create(Ml, model, m, byTarget: true, o.ComputeBatch, o.Device);
            }
            catch (ArgumentException e)
            {
                Dispose();
                string channels = model.Channels != 3
                    ? $" (the model takes {model.Channels}-channel input; an Ebp.MLNet stage that only feeds 3-channel images cannot run it)"
                    : "";
                throw new AuditUsageException($"The saliency stage does not accept this model or settings{channels}: {e.Message}");
            }
        }

        public MLContext Ml { get; }
        public SaliencyStage Primary { get; } = null!;
        public Dictionary<AuditMethod, SaliencyStage> ByTarget { get; } = new();
        public FaithfulnessRows? Faithfulness { get; set; }

        public void Dispose()
        {
            Primary?.Dispose();
            foreach (var s in ByTarget.Values) s.Dispose();
        }
    }

    private List<ImageRecord> ProcessWithFallback(List<AuditInput> chunk, Dictionary<string, string> stamps, AuditModel model,
                                                  Stages stages, OutputLayout layout, Timings timings)
    {
        try
        {
            return Process(chunk, stamps, model, stages, layout, timings);
        }
        catch (Exception e) when (e is not OutOfMemoryException and not AuditUsageException)
        {
            if (chunk.Count == 1)
                return [Skip(chunk[0], stamps[chunk[0].Key], $"saliency failed: {Innermost(e)}")];
            // One bad image must not cost the batch: retry one by one.
            var records = new List<ImageRecord>(chunk.Count);
            foreach (var input in chunk) records.AddRange(ProcessWithFallback([input], stamps, model, stages, layout, timings));
            return records;
        }
    }

    private static string Innermost(Exception e)
    {
        var msg = e.Message;
        for (var inner = e.InnerException; inner is not null; inner = inner.InnerException) msg = inner.Message;
        return msg;
    }

    /// <summary>One image of a batch between decoding and recording.</summary>
    private sealed class Item(AuditInput input, ImageRecord record, DecodedImage image, List<ImageBox> boxes)
    {
        public AuditInput Input { get; } = input;
        public ImageRecord Record { get; } = record;
        public DecodedImage Image { get; } = image;
        public List<ImageBox> Boxes { get; } = boxes;
        public MLImage? MLImage { get; set; }
        public float[] Scores { get; set; } = [];
        public float[]? PrimaryMap { get; set; }
        public List<int> Classes { get; } = new();
        public Dictionary<(AuditMethod, int), float[]> Maps { get; } = new();
        public Dictionary<(AuditMethod, int), (double Deletion, double Insertion)>? Faithfulness { get; set; }
    }

    private List<ImageRecord> Process(List<AuditInput> chunk, Dictionary<string, string> stamps, AuditModel model, Stages stages,
                                      OutputLayout layout, Timings timings)
    {
        var o = _o;
        var clock = Stopwatch.StartNew();
        var records = new List<ImageRecord>(chunk.Count);
        var items = new List<Item>(chunk.Count);
        foreach (var input in chunk)
        {
            var record = Prepare(input, stamps[input.Key], model, out var image, out var boxes);
            records.Add(record);
            if (image is not null) items.Add(new Item(input, record, image, boxes!));
        }
        timings.Decode += clock.Elapsed.TotalSeconds;
        if (items.Count == 0) return records;

        clock.Restart();
        var images = new List<MLImage>(items.Count);
        try
        {
            foreach (var it in items) images.Add(it.MLImage = it.Image.ToMLImage());
            // 1. Target = prediction, first method: scores, top-1, the top-1 map.
            var rows = items.Select((it, k) => new StageRow { Image = images[k] }).ToList();
            var primary = o.Methods[0];
            stages.Primary.Run(rows, (k, output) =>
            {
                var it = items[k];
                if (output.Predicted < 0)
                {
                    it.Record.Status = ImageRecord.Skipped;
                    it.Record.Reason = "the saliency stage rejected the image: " + (output.Error ?? "unknown reason");
                    return;
                }
                it.Record.Predicted = output.Predicted;
                it.Scores = output.Scores.ToArray();
                it.PrimaryMap = output.Map.ToArray();
            });
            items.RemoveAll(it => !it.Record.IsDone);

            // 2. The classes of each image: top-k, label, annotated.
            foreach (var it in items)
            {
                var set = new SortedSet<int>();
                var order = Ranking.Descending(it.Scores);
                for (int r = 0; r < Math.Min(o.TopK, order.Length); r++) set.Add(order[r]);
                if (it.Record.Label is { } label) set.Add(label);
                foreach (var b in it.Boxes) if (b.Class >= 0) set.Add(b.Class);
                it.Classes.AddRange(set);
                it.Maps[(primary, it.Record.Predicted)] = it.PrimaryMap!;
            }

            // 3. Every method: the remaining (image, class) pairs, target = class column.
            foreach (var method in o.Methods)
            {
                var pairs = new List<(Item Item, int Class, MLImage Image)>();
                foreach (var it in items)
                    foreach (var c in it.Classes)
                        if (!it.Maps.ContainsKey((method, c))) pairs.Add((it, c, it.MLImage!));
                if (pairs.Count == 0) continue;
                var labelRows = pairs.Select(p => new StageRow { Image = p.Image, Target = p.Class }).ToList();
                stages.ByTarget[method].Run(labelRows, (k, output) =>
                {
                    var (it, c, _) = pairs[k];
                    if (output.Predicted < 0)
                        throw new InvalidOperationException($"the saliency stage rejected '{it.Input.Key}' for class {c}: {output.Error ?? "unknown reason"}");
                    it.Maps[(method, c)] = output.Map.ToArray();
                });
            }
            // 4. Optional: deletion and insertion areas of every map.
            if (stages.Faithfulness is { } faithfulness)
                foreach (var it in items)
                    it.Faithfulness = faithfulness.Measure(stages.Primary.ModelInput(it.MLImage!), o.Methods.SelectMany(m => it.Classes.Select(c => (m, c))),
                                                           it.Maps, stages.Primary.MapWidth, stages.Primary.MapHeight);
            timings.Compute += clock.Elapsed.TotalSeconds;

            // 5. Measures and overlays.
            clock.Restart();
            foreach (var it in items) Measure(it, model, stages.Primary.MapWidth, stages.Primary.MapHeight, layout);
            timings.Write += clock.Elapsed.TotalSeconds;
        }
        finally
        {
            foreach (var im in images) im.Dispose();
        }
        return records;
    }

    /// <summary>Class indices by descending score (ties: lower index first).</summary>
    private void Measure(Item it, AuditModel model, int mapWidth, int mapHeight, OutputLayout layout)
    {
        var o = _o;
        // w × h is the working frame (the image, or its downscaled decode); tolerance and peaks are reported in file pixels.
        int w = it.Image.Width, h = it.Image.Height;
        double scale = (double)Math.Max(w, h) / Math.Max(it.Image.OriginalWidth, it.Image.OriginalHeight);
        double tolerance = (o.TolerancePx ?? PointingGame.ScaledTolerance(Math.Max(it.Image.OriginalWidth, it.Image.OriginalHeight))) * scale;
        var order = Ranking.Descending(it.Scores);
        var rank = new int[order.Length];
        for (int r = 0; r < order.Length; r++) rank[order[r]] = r + 1;
        var objectMask = it.Boxes.Count > 0 ? MapAnalysis.Mask(it.Boxes, null, w, h) : null;
        var classMasks = new Dictionary<int, bool[]>();
        if (o.WriteOverlays)
        {
            it.Record.InputPanel = OutputLayout.InputPanelPath(it.Input.Key);
            MapAnalysis.SaveInput(layout.Full(it.Record.InputPanel), it.Image, it.Boxes);
        }
        foreach (var method in o.Methods)
        {
            foreach (var c in it.Classes)
            {
                bool annotated = it.Boxes.Any(b => b.Class == c);
                bool[]? classMask = null;
                if (annotated && !classMasks.TryGetValue(c, out classMask)) classMasks[c] = classMask = MapAnalysis.Mask(it.Boxes, c, w, h);
                var map = MapAnalysis.ToImage(it.Maps[(method, c)], mapWidth, mapHeight, w, h);
                var m = MapAnalysis.Measure(map, w, h, classMask, objectMask, tolerance);
                string? overlay = null;
                if (o.WriteOverlays)
                {
                    overlay = OutputLayout.OverlayPath(it.Input.Key, method.Name(), c);
                    MapAnalysis.SaveOverlay(layout.Full(overlay), it.Image, map, it.Boxes, c, m.PeakX, m.PeakY, o.OverlayAlpha);
                }
                it.Record.Rows.Add(new RowRecord
                {
                    Method = method.Name(),
                    Class = c,
                    Rank = rank[c],
                    Score = it.Scores[c],
                    PeakX = ToFile(m.PeakX, w, it.Image.OriginalWidth),
                    PeakY = ToFile(m.PeakY, h, it.Image.OriginalHeight),
                    Empty = m.Empty,
                    ClassAnnotated = annotated,
                    Energy = m.Energy,
                    Hit = m.Hit,
                    PeakInObject = m.PeakInObject,
                    Overlay = overlay,
                    DeletionAuc = it.Faithfulness?[(method, c)].Deletion,
                    InsertionAuc = it.Faithfulness?[(method, c)].Insertion,
                });
            }
        }
    }

    /// <summary>A working-frame coordinate in file pixels (the centre of the working pixel).</summary>
    private static int ToFile(int v, int working, int original) =>
        working == original ? v : Math.Min(original - 1, (int)Math.Floor((v + 0.5) * original / working));

    /// <summary>
    /// The longest side images are decoded at: large files are decoded downscaled (a 64-megapixel PNG would otherwise take
    /// gigabytes), yet overlays stay readable and well above the model's input size.
    /// </summary>
    internal static int WorkingSide(AuditModel model) => Math.Max(MinWorkingSide, 2 * Math.Max(model.Width, model.Height));

    /// <summary>The smallest <see cref="WorkingSide"/>.</summary>
    internal const int MinWorkingSide = 1024;

    /// <summary>Reads, validates and decodes one input; a problem gives a skipped record and a null image.</summary>
    private static ImageRecord Prepare(AuditInput input, string stamp, AuditModel model, out DecodedImage? image, out List<ImageBox>? boxes)
    {
        image = null;
        boxes = null;
        if (input.Problem is not null) return Skip(input, stamp, input.Problem);
        int? label = null;
        if (input.Label is not null)
        {
            int k = model.ClassIndex(input.Label);
            if (k < 0) return Skip(input, stamp, $"label '{input.Label}' is not a model class (a class name or an index 0..{model.NumClasses - 1})");
            label = k;
        }
        var decoded = ImageFile.TryDecode(input.Path, out var error, WorkingSide(model));
        if (decoded is null) return Skip(input, stamp, error!);

        var record = new ImageRecord { Image = input.Key, Stamp = stamp, Width = decoded.OriginalWidth, Height = decoded.OriginalHeight, Label = label };
        if (decoded.Downscaled)
            record.Warnings.Add($"large image decoded downscaled to a longer side of {Math.Max(decoded.Width, decoded.Height)} px (maps, energy and pointing measured there; peaks in file pixels)");
        if (ImageFile.ExtensionMismatch(input.Path, decoded.Format) is { } mismatch) record.Warnings.Add(mismatch);
        var list = new List<ImageBox>();
        if (input.AnnotationPath is not null)
        {
            VocAnnotation ann;
            try
            {
                ann = VocAnnotation.Load(input.AnnotationPath);
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
            {
                return Skip(input, stamp, $"annotation '{Path.GetFileName(input.AnnotationPath)}': {e.Message}");
            }
            // Boxes are in the annotation's frame (<size>); scale them if the image has another size.
            double sx = (double)decoded.Width / ann.Width, sy = (double)decoded.Height / ann.Height;
            bool scale = ann.Width != decoded.Width || ann.Height != decoded.Height;
            if (ann.Width != decoded.OriginalWidth || ann.Height != decoded.OriginalHeight)
                record.Warnings.Add($"annotation size {ann.Width}×{ann.Height} differs from the image ({decoded.OriginalWidth}×{decoded.OriginalHeight}); boxes scaled");
            foreach (var obj in ann.Objects)
            {
                var b = obj.Box.ToPixelBox();
                if (scale)
                {
                    int x0 = (int)Math.Floor(b.X * sx), y0 = (int)Math.Floor(b.Y * sy);
                    int x1 = (int)Math.Ceiling(b.Right * sx), y1 = (int)Math.Ceiling(b.Bottom * sy);
                    b = BoundingBox.FromEdges(x0, y0, x1, y1);
                }
                int cls = model.ClassIndex(obj.Name);
                if (cls < 0) record.Warnings.Add($"annotation class '{obj.Name}' is not a model class");
                list.Add(new ImageBox(cls, b));
            }
            record.Annotated = true;
            record.Objects = list.Count;
        }
        image = decoded;
        boxes = list;
        return record;
    }

    private static ImageRecord Skip(AuditInput input, string stamp, string reason) =>
        new() { Image = input.Key, Status = ImageRecord.Skipped, Reason = reason, Stamp = stamp };

    /// <summary>Size and modification time of the image and annotation files ("missing" if absent).</summary>
    internal static string Stamp(AuditInput input)
    {
        static string Of(string? path)
        {
            if (path is null) return "-";
            try
            {
                var f = new FileInfo(path);
                return f.Exists ? $"{f.Length.ToString(CultureInfo.InvariantCulture)}@{f.LastWriteTimeUtc.Ticks.ToString(CultureInfo.InvariantCulture)}" : "missing";
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return "unreadable";
            }
        }
        return $"{Of(input.Path)};{Of(input.AnnotationPath)};{input.Label ?? ""}";
    }

    /// <summary><c>OMP_NUM_THREADS</c> when set to a positive number (libtorch's own setting, then respected).</summary>
    private static int? EnvironmentThreads() =>
        int.TryParse(Environment.GetEnvironmentVariable("OMP_NUM_THREADS"), NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0 ? n : null;

    private static bool OverlaysPresent(OutputLayout layout, ImageRecord r) =>
        r.Rows.All(row => row.Overlay is null || File.Exists(layout.Full(row.Overlay)))
        && (r.InputPanel is null || File.Exists(layout.Full(r.InputPanel)));

    /// <summary>Holds an exclusive lock on the output folder for the run (a second process writing there fails fast).</summary>
    internal static FileStream AcquireLock(OutputLayout layout)
    {
        try
        {
            return new FileStream(layout.LockFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new AuditUsageException($"Another ebp-audit process is writing to '{layout.Folder}' ({e.Message}).");
        }
    }

    private static void Discard(OutputLayout layout)
    {
        foreach (var f in new[] { layout.JournalFile, layout.JobFile, layout.ResultsCsv, layout.ResultsJsonl, layout.SummaryJson, layout.SummaryMd, layout.Gallery })
            if (File.Exists(f)) File.Delete(f);
        foreach (var name in new[] { OutputLayout.OverlayFolderName, OutputLayout.InputFolderName })
        {
            var images = Path.Combine(layout.Folder, name);
            if (Directory.Exists(images)) Directory.Delete(images, recursive: true);
        }
    }
}

/// <summary>Seconds spent per part of a run (reported in <c>summary.json</c> under <c>run.timings</c>).</summary>
internal sealed class Timings
{
    public double Total { get; set; }
    public double ModelLoad { get; set; }
    public double Decode { get; set; }
    public double Compute { get; set; }
    public double Write { get; set; }
    public double Journal { get; set; }
    public double Report { get; set; }
    public double ImagesPerSecond { get; set; }

    /// <summary>Torch intra-op threads of the run (0 when unknown, e.g. a merge).</summary>
    public int Threads { get; set; }

    /// <summary>How <see cref="Threads"/> was decided (<see cref="ThreadChoice"/>); null when unknown (a merge).</summary>
    public string? ThreadsChosenBy { get; set; }

    /// <summary>The thread trial's timings per candidate (empty without a trial).</summary>
    public IReadOnlyList<ThreadTrial> ThreadTrials { get; set; } = [];

    /// <summary>A merge's own wall time (the other figures are then the shards' summed); null for a run.</summary>
    public double? Merge { get; set; }
}

/// <summary>Facts about a run that the records do not hold.</summary>
internal sealed class RunInfo
{
    public AuditStatus Status { get; init; }
    public int Inputs { get; init; }
    public int Pending { get; init; }
    public string? Shard { get; init; }
    public string InputFingerprint { get; init; } = "";
    public int ResumedImages { get; init; }
    public int JournalEntriesDropped { get; init; }
    public DateTime StartedUtc { get; init; }
    public IReadOnlyList<string>? MergedFrom { get; init; }

    /// <summary>A merge's missing shards (<c>i/N</c>).</summary>
    public IReadOnlyList<string> MissingShards { get; init; } = [];
    public Timings Timings { get; init; } = new();
}
