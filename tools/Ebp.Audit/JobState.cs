using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Ebp.Audit;

/// <summary>
/// What defines an audit's results (<c>.audit/job.json</c>): the model and every setting that changes a row. A rerun
/// resumes only when this is unchanged; <c>merge</c> requires it to be equal in all shards (apart from the shard).
/// Settings that only change the report (<c>--min-energy</c>) are not part of it.
/// </summary>
internal sealed class JobInfo
{
    public const int CurrentFormat = 1;

    [JsonPropertyName("format")] public int Format { get; set; } = CurrentFormat;
    [JsonPropertyName("model")] public string Model { get; set; } = "";
    [JsonPropertyName("model_identity")] public string ModelIdentity { get; set; } = "";
    [JsonPropertyName("class_names")] public List<string> ClassNames { get; set; } = new();
    [JsonPropertyName("methods")] public List<string> Methods { get; set; } = new();
    [JsonPropertyName("saliency_layer")] public string SaliencyLayer { get; set; } = "";
    [JsonPropertyName("contrast_layer")] public string? ContrastLayer { get; set; }

    /// <summary>The gradient method's layer ("" = the input), or null when the job has no gradient.</summary>
    [JsonPropertyName("gradient_layer")] public string? GradientLayer { get; set; }
    [JsonPropertyName("classifier_layer")] public string? ClassifierLayer { get; set; }
    [JsonPropertyName("input_width")] public int InputWidth { get; set; }
    [JsonPropertyName("input_height")] public int InputHeight { get; set; }
    [JsonPropertyName("channels")] public int Channels { get; set; }
    [JsonPropertyName("mean")] public float[] Mean { get; set; } = [];
    [JsonPropertyName("std")] public float[] Std { get; set; } = [];
    [JsonPropertyName("top_k")] public int TopK { get; set; }

    /// <summary>Rows per forward/backward pass: part of the job because it can change the last bits of the numbers.</summary>
    [JsonPropertyName("compute_batch")] public int ComputeBatch { get; set; } = 1;

    /// <summary>Pointing tolerance in image pixels, or null for 15 px at 224 scaled to the image's longer side.</summary>
    [JsonPropertyName("tolerance_px")] public double? TolerancePx { get; set; }
    [JsonPropertyName("overlay_alpha")] public float OverlayAlpha { get; set; }
    [JsonPropertyName("overlays")] public bool Overlays { get; set; }
    /// <summary>Steps of the deletion and insertion curves, or null when the job does not measure them.</summary>
    [JsonPropertyName("faithfulness_steps")] public int? FaithfulnessSteps { get; set; }

    /// <summary>The score of the curves (softmax, sigmoid), or null when the job does not measure them.</summary>
    [JsonPropertyName("faithfulness_score")] public string? FaithfulnessScore { get; set; }
    [JsonPropertyName("shard_index")] public int ShardIndex { get; set; }
    [JsonPropertyName("shard_count")] public int ShardCount { get; set; } = 1;

    /// <summary>The saliency layer of a method of the job ("" = the input).</summary>
    public string LayerOf(string method) => method == "gradient" ? GradientLayer ?? "" : SaliencyLayer;

    public static JobInfo From(AuditOptions o, AuditModel m) => new()
    {
        Model = m.Description,
        ModelIdentity = m.Identity,
        ClassNames = m.ClassNames.ToList(),
        Methods = o.Methods.Select(x => x.Name()).ToList(),
        SaliencyLayer = m.SaliencyLayer,
        ContrastLayer = m.ContrastLayer,
        GradientLayer = o.Methods.Contains(AuditMethod.Gradient) ? m.GradientLayer : null,
        ClassifierLayer = m.ClassifierLayer,
        InputWidth = m.Width,
        InputHeight = m.Height,
        Channels = m.Channels,
        Mean = m.Mean,
        Std = m.Std,
        TopK = o.TopK,
        ComputeBatch = o.ComputeBatch,
        TolerancePx = o.TolerancePx,
        OverlayAlpha = o.OverlayAlpha,
        Overlays = o.WriteOverlays,
        FaithfulnessSteps = o.Faithfulness ? o.FaithfulnessSteps : null,
        FaithfulnessScore = o.Faithfulness ? o.FaithfulnessScore.Name() : null,
        ShardIndex = o.Shard.Index,
        ShardCount = o.Shard.Count,
    };

    /// <summary>The same job without its shard (what a merged folder records).</summary>
    public JobInfo Unsharded()
    {
        var copy = (JobInfo)MemberwiseClone();
        copy.ShardIndex = 0;
        copy.ShardCount = 1;
        return copy;
    }

    public string ToJson() => JsonSerializer.Serialize(this, AuditJsonContext.Indented.JobInfo) + "\n";

    public static JobInfo Load(string path)
    {
        try
        {
            var info = JsonSerializer.Deserialize(File.ReadAllText(path), AuditJsonContext.Default.JobInfo)
                       ?? throw new InvalidDataException("empty");
            if (info.Format != CurrentFormat) throw new InvalidDataException($"format {info.Format}, this tool reads {CurrentFormat}");
            return info;
        }
        catch (Exception e) when (e is JsonException or InvalidDataException or NotSupportedException)
        {
            throw new AuditUsageException($"'{path}' is not an ebp-audit job file: {e.Message}");
        }
    }

    /// <summary>
    /// The names of the settings in which two jobs differ (empty when they are the same job). The model's description is
    /// not compared (a card may be moved or renamed); its identity (architecture and weight hashes) is.
    /// </summary>
    public static List<string> Differences(JobInfo a, JobInfo b)
    {
        // Field by field through the job file's own serialisation, so that a new setting is compared without a change here.
        var x = JsonSerializer.SerializeToNode(a, AuditJsonContext.Default.JobInfo)!.AsObject();
        var y = JsonSerializer.SerializeToNode(b, AuditJsonContext.Default.JobInfo)!.AsObject();
        x.Remove("model");
        y.Remove("model");
        var diff = new List<string>();
        foreach (var (name, value) in x)
            if (!JsonNode.DeepEquals(value, y[name])) diff.Add(name);
        foreach (var (name, _) in y)
            if (!x.ContainsKey(name)) diff.Add(name);
        return diff;
    }
}

/// <summary>The files of an output folder.</summary>
internal sealed class OutputLayout(string folder)
{
    public string Folder { get; } = Path.GetFullPath(folder);
    public string StateFolder => Path.Combine(Folder, ".audit");
    public string JobFile => Path.Combine(StateFolder, "job.json");
    public string JournalFile => Path.Combine(StateFolder, "journal.jsonl");
    public string LockFile => Path.Combine(StateFolder, "lock");
    public string ResultsCsv => Path.Combine(Folder, "results.csv");
    public string ResultsJsonl => Path.Combine(Folder, "results.jsonl");
    public string SummaryJson => Path.Combine(Folder, "summary.json");
    public string SummaryMd => Path.Combine(Folder, "summary.md");
    public string Gallery => Path.Combine(Folder, "index.html");
    public const string OverlayFolderName = "overlays";

    /// <summary>The overlay of (image, method, class), relative to the folder with '/' separators.</summary>
    public static string OverlayPath(string imageKey, string method, int classIndex) =>
        $"{OverlayFolderName}/{SafeRelative(imageKey)}/{method}_c{classIndex.ToString(CultureInfo.InvariantCulture)}.png";

    public const string InputFolderName = "inputs";

    /// <summary>The gallery's input panel of an image (the image with its boxes), relative to the folder.</summary>
    public static string InputPanelPath(string imageKey) => $"{InputFolderName}/{SafeRelative(imageKey)}/input.png";

    public string Full(string relative) => Path.Combine(Folder, relative.Replace('/', Path.DirectorySeparatorChar));

    /// <summary>
    /// A relative path safe to use under the output folder (and in a URL), and different for different keys: ASCII
    /// letters, digits, '.', '-' and '_' are kept; every other character (including '~') becomes '~' followed by the hex
    /// of its UTF-8 bytes (<c>x y.png</c> → <c>x~20y.png</c>, while <c>x_y.png</c> stays); "." and ".." segments are
    /// encoded the same way, so they cannot climb out, and an empty segment becomes "~".
    /// </summary>
    public static string SafeRelative(string key)
    {
        var parts = key.Split('/');
        var sb = new StringBuilder();
        Span<byte> utf8 = stackalloc byte[4];
        for (int p = 0; p < parts.Length; p++)
        {
            var part = parts[p];
            if (p > 0) sb.Append('/');
            if (part.Length == 0) { sb.Append('~'); continue; }
            bool dots = part is "." or "..";
            for (int i = 0; i < part.Length; i++)
            {
                char c = part[i];
                if (!dots && (char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_')) { sb.Append(c); continue; }
                int n = char.IsSurrogatePair(part, i)
                    ? new Rune(part[i], part[++i]).EncodeToUtf8(utf8)
                    : Rune.TryCreate(c, out var rune) ? rune.EncodeToUtf8(utf8) : new Rune(0xFFFD).EncodeToUtf8(utf8);
                foreach (byte b in utf8[..n]) sb.Append('~').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }
        return sb.ToString();
    }
}

/// <summary>
/// The append-only journal of finished images (<c>.audit/journal.jsonl</c>, one <see cref="ImageRecord"/> per line).
/// Each batch's lines are appended and flushed to disk after its overlays are written, so a crash loses at most the
/// batch in progress. On restart the journal is read tolerantly (a torn last line or any unreadable line is dropped)
/// and rewritten atomically with only the entries that are still valid.
/// </summary>
internal sealed class Journal : IDisposable
{
    private readonly FileStream _stream;

    private Journal(FileStream stream) => _stream = stream;

    /// <summary>Reads the valid entries in file order (a later entry for the same image replaces an earlier one).</summary>
    /// <param name="path">The journal file (missing = empty).</param>
    /// <param name="unreadable">Lines that could not be parsed.</param>
    public static Dictionary<string, ImageRecord> Read(string path, out int unreadable)
    {
        unreadable = 0;
        var records = new Dictionary<string, ImageRecord>(StringComparer.Ordinal);
        if (!File.Exists(path)) return records;
        using var reader = new StreamReader(path, new UTF8Encoding(false));
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            if (line.Length == 0) continue;
            ImageRecord? r = null;
            try
            {
                r = JsonSerializer.Deserialize(line, AuditJsonContext.Default.ImageRecord);
            }
            catch (JsonException)
            {
            }
            if (r is null || r.Image.Length == 0 || (r.Status != ImageRecord.Done && r.Status != ImageRecord.Skipped) || r.Rows is null)
            {
                unreadable++;
                continue;
            }
            records[r.Image] = r;
        }
        return records;
    }

    /// <summary>Replaces the journal (atomically) with <paramref name="records"/>.</summary>
    public static void Rewrite(string path, IEnumerable<ImageRecord> records) =>
        AtomicFile.WriteText(path, w =>
        {
            foreach (var r in records) w.WriteLine(JsonSerializer.Serialize(r, AuditJsonContext.Default.ImageRecord));
        });

    /// <summary>Opens the journal for appending.</summary>
    public static Journal OpenAppend(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        return new Journal(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read, 1 << 16));
    }

    /// <summary>Appends entries and flushes them to disk.</summary>
    public void Append(IEnumerable<ImageRecord> records)
    {
        var sb = new StringBuilder();
        foreach (var r in records) sb.Append(JsonSerializer.Serialize(r, AuditJsonContext.Default.ImageRecord)).Append('\n');
        var bytes = Encoding.UTF8.GetBytes(sb.ToString());
        _stream.Write(bytes);
        _stream.Flush(flushToDisk: true);
    }

    public void Dispose() => _stream.Dispose();
}
