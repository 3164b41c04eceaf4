using System.Text.Json;
using System.Text.Json.Serialization;

namespace Ebp.Audit;

/// <summary>
/// The result of one image, as the journal stores it: either processed (<see cref="Rows"/>, one per explained
/// (method, class)) or skipped with a reason. Raw numbers only; flags are derived when reports are written, so a
/// report with another <c>--min-energy</c> needs no recomputation.
/// </summary>
internal sealed class ImageRecord
{
    public const string Done = "done";
    public const string Skipped = "skipped";

    [JsonPropertyName("image")] public string Image { get; set; } = "";
    [JsonPropertyName("status")] public string Status { get; set; } = Done;
    [JsonPropertyName("reason")] public string? Reason { get; set; }

    /// <summary>Size and modification time of the image (and annotation) file when it was processed; a changed file is redone.</summary>
    [JsonPropertyName("stamp")] public string Stamp { get; set; } = "";

    [JsonPropertyName("width")] public int Width { get; set; }
    [JsonPropertyName("height")] public int Height { get; set; }

    /// <summary>The label's class index, or null without a label.</summary>
    [JsonPropertyName("label")] public int? Label { get; set; }

    /// <summary>The top-1 class.</summary>
    [JsonPropertyName("predicted")] public int Predicted { get; set; } = -1;

    /// <summary>Number of annotated objects (0 = not annotated or no objects).</summary>
    [JsonPropertyName("objects")] public int Objects { get; set; }

    /// <summary>Whether an annotation file was read.</summary>
    [JsonPropertyName("annotated")] public bool Annotated { get; set; }

    [JsonPropertyName("rows")] public List<RowRecord> Rows { get; set; } = new();

    /// <summary>The gallery's input panel (the image with its boxes), relative to the output folder, or null (no overlays, or an older journal).</summary>
    [JsonPropertyName("input_panel")] public string? InputPanel { get; set; }

    /// <summary>Problems that did not stop the image (e.g. an annotation class the model does not know).</summary>
    [JsonPropertyName("warnings")] public List<string> Warnings { get; set; } = new();

    [JsonIgnore] public bool IsDone => Status == Done;
}

/// <summary>One explained (method, class) of an image.</summary>
internal sealed class RowRecord
{
    [JsonPropertyName("method")] public string Method { get; set; } = "";
    [JsonPropertyName("class")] public int Class { get; set; }

    /// <summary>1-based rank of the class by score (ties: lower index first).</summary>
    [JsonPropertyName("rank")] public int Rank { get; set; }

    /// <summary>The model's raw output (logit) for the class.</summary>
    [JsonPropertyName("score")] public float Score { get; set; }

    /// <summary>Peak of the map resized to the image, image pixels (0-based); −1 for an empty map.</summary>
    [JsonPropertyName("peak_x")] public int PeakX { get; set; }
    [JsonPropertyName("peak_y")] public int PeakY { get; set; }

    /// <summary>The map's positive mass is zero (or not finite): nothing to point at.</summary>
    [JsonPropertyName("empty")] public bool Empty { get; set; }

    /// <summary>Whether the image has boxes of this class.</summary>
    [JsonPropertyName("class_annotated")] public bool ClassAnnotated { get; set; }

    /// <summary>Share of the positive mass inside the union of this class's boxes; null without such boxes or for an empty map.</summary>
    [JsonPropertyName("energy")] public double? Energy { get; set; }

    /// <summary>Pointing game: the peak within the tolerance of a box of this class; null without such boxes.</summary>
    [JsonPropertyName("hit")] public bool? Hit { get; set; }

    /// <summary>
    /// Whether the peak lies in, or within the pointing tolerance of, some annotated box (any class); null when the image
    /// has no objects or the map is empty.
    /// </summary>
    [JsonPropertyName("peak_in_object")] public bool? PeakInObject { get; set; }

    /// <summary>Overlay PNG, relative to the output folder ('/' separators), or null.</summary>
    [JsonPropertyName("overlay")] public string? Overlay { get; set; }

    /// <summary>Area under the deletion curve (<c>--faithfulness</c>; lower is more faithful), or null when not measured.</summary>
    [JsonPropertyName("deletion_auc")] public double? DeletionAuc { get; set; }

    /// <summary>Area under the insertion curve (<c>--faithfulness</c>; higher is more faithful), or null when not measured.</summary>
    [JsonPropertyName("insertion_auc")] public double? InsertionAuc { get; set; }
}

/// <summary>The flags of a row, derived from its numbers.</summary>
internal static class Flags
{
    public const string PeakOutsideObjects = "peak_outside_objects";
    public const string LowEnergy = "low_energy";
    public const string LabelMismatch = "label_mismatch";
    public const string EmptyMap = "empty_map";
    public const string FalsePositive = "false_positive";
    public const string MissedLabel = "missed_label";

    /// <summary>All flags in report order.</summary>
    public static readonly string[] All = [PeakOutsideObjects, LowEnergy, LabelMismatch, FalsePositive, MissedLabel, EmptyMap];

    /// <summary>
    /// <list type="bullet">
    /// <item><c>peak_outside_objects</c>: the image has annotated objects and the peak is farther than the pointing tolerance from every box (any class);</item>
    /// <item><c>low_energy</c>: the class has boxes and less than the row's method's <paramref name="minEnergy"/> of the positive mass lies inside them;</item>
    /// <item><c>label_mismatch</c>: the image has a label and the top-1 prediction differs;</item>
    /// <item><c>false_positive</c>: the row explains the top-1 prediction of an image with annotated model classes, and the
    /// prediction is none of them;</item>
    /// <item><c>missed_label</c>: the row's class is annotated but the model does not rank it among its top n classes, n
    /// the number of annotated classes of the image;</item>
    /// <item><c>empty_map</c>: the map has no positive mass (no peak).</item>
    /// </list>
    /// </summary>
    public static List<string> Of(ImageRecord image, RowRecord row, EnergyThresholds minEnergy)
    {
        var flags = new List<string>(2);
        if (row.PeakInObject == false) flags.Add(PeakOutsideObjects);
        // Compared as reported (4 decimals), so that the flag always agrees with the printed number.
        if (row.Energy is { } e && Math.Round(e, 4) < minEnergy.For(row.Method)) flags.Add(LowEnergy);
        if (image.Label is { } l && l != image.Predicted) flags.Add(LabelMismatch);
        int annotated = image.Rows.Where(r => r.ClassAnnotated).Select(r => r.Class).Distinct().Count();
        if (annotated > 0 && row.Class == image.Predicted && !row.ClassAnnotated) flags.Add(FalsePositive);
        if (row.ClassAnnotated && row.Rank > annotated) flags.Add(MissedLabel);
        if (row.Empty) flags.Add(EmptyMap);
        return flags;
    }
}

/// <summary>
/// The journal (<c>.audit/journal.jsonl</c>, one compact object per line) and the job file (<c>.audit/job.json</c>,
/// indented), serialised by source-generated code. Nulls are kept so that every line has the same fields.
/// </summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.Never,
                             NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(ImageRecord))]
[JsonSerializable(typeof(JobInfo))]
internal sealed partial class AuditJsonContext : JsonSerializerContext
{
    /// <summary>The same settings, indented (the job file).</summary>
    // Made on first use: the generated part initialises Default in a static field of its own, whose order against a
    // field initialiser here is not defined. A race makes two equal contexts, which is harmless.
    public static AuditJsonContext Indented => _indented ??= new(new JsonSerializerOptions(Default.Options) { WriteIndented = true });

    private static AuditJsonContext? _indented;
}
