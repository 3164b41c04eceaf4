using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Ebp.Audit;

/// <summary>One line of <c>results.jsonl</c> (and one row of <c>results.csv</c>, in the same order).</summary>
internal sealed record ResultRow(
    [property: JsonPropertyName("image")] string Image,
    [property: JsonPropertyName("method")] string Method,
    [property: JsonPropertyName("class")] int Class,
    [property: JsonPropertyName("class_name")] string ClassName,
    [property: JsonPropertyName("rank")] int Rank,
    [property: JsonPropertyName("score"), JsonConverter(typeof(ScoreConverter))] float Score,
    [property: JsonPropertyName("predicted")] int Predicted,
    [property: JsonPropertyName("predicted_name")] string PredictedName,
    [property: JsonPropertyName("label")] int? Label,
    [property: JsonPropertyName("label_name")] string? LabelName,
    [property: JsonPropertyName("peak_x")] int? PeakX,
    [property: JsonPropertyName("peak_y")] int? PeakY,
    [property: JsonPropertyName("energy_in_boxes"), JsonConverter(typeof(RatioConverter))] double? EnergyInBoxes,
    [property: JsonPropertyName("pointing")] string? Pointing,
    [property: JsonPropertyName("flags")] IReadOnlyList<string> Flags,
    [property: JsonPropertyName("overlay")] string? Overlay,
    [property: JsonPropertyName("deletion_auc"), JsonConverter(typeof(RatioConverter))] double? DeletionAuc,
    [property: JsonPropertyName("insertion_auc"), JsonConverter(typeof(RatioConverter))] double? InsertionAuc)
{
    /// <summary>The CSV fields in <see cref="ReportWriter.Columns"/> order (empty for null).</summary>
    public IEnumerable<string> CsvFields()
    {
        var inv = CultureInfo.InvariantCulture;
        yield return Image;
        yield return Method;
        yield return Class.ToString(inv);
        yield return ClassName;
        yield return Rank.ToString(inv);
        yield return ReportWriter.FormatScore(Score);
        yield return Predicted.ToString(inv);
        yield return PredictedName;
        yield return Label?.ToString(inv) ?? "";
        yield return LabelName ?? "";
        yield return PeakX?.ToString(inv) ?? "";
        yield return PeakY?.ToString(inv) ?? "";
        yield return EnergyInBoxes is { } e ? ReportWriter.FormatRatio(e) : "";
        yield return Pointing ?? "";
        yield return string.Join(';', Flags);
        yield return Overlay ?? "";
        yield return DeletionAuc is { } d ? ReportWriter.FormatRatio(d) : "";
        yield return InsertionAuc is { } i ? ReportWriter.FormatRatio(i) : "";
    }
}

/// <summary><c>summary.json</c>. Everything except <see cref="Run"/> is a function of the results.</summary>
internal sealed record SummaryDocument(
    [property: JsonPropertyName("tool")] string Tool,
    [property: JsonPropertyName("format")] int Format,
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("job")] SummaryJob Job,
    [property: JsonPropertyName("counts")] SummaryCounts Counts,
    [property: JsonPropertyName("flags")] Dictionary<string, int> Flags,
    [property: JsonPropertyName("pointing")] Dictionary<string, MethodPointing> Pointing,
    [property: JsonPropertyName("energy_in_boxes")] Dictionary<string, MethodEnergy> EnergyInBoxes,
    [property: JsonPropertyName("faithfulness"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] FaithfulnessDocument? Faithfulness,
    [property: JsonPropertyName("confusion")] IReadOnlyList<ConfusionCell> Confusion,
    [property: JsonPropertyName("skipped")] IReadOnlyList<SkippedFile> Skipped,
    [property: JsonPropertyName("warnings")] IReadOnlyList<WarningGroup> Warnings,
    [property: JsonPropertyName("run"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] SummaryRun? Run);

internal sealed record SummaryJob(
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("model_identity")] string ModelIdentity,
    [property: JsonPropertyName("classes")] int Classes,
    [property: JsonPropertyName("methods")] IReadOnlyList<string> Methods,
    [property: JsonPropertyName("saliency_layer")] string SaliencyLayer,
    [property: JsonPropertyName("layers")] Dictionary<string, string> Layers,
    [property: JsonPropertyName("contrast_layer")] string? ContrastLayer,
    [property: JsonPropertyName("classifier_layer")] string? ClassifierLayer,
    [property: JsonPropertyName("input_size")] string InputSize,
    [property: JsonPropertyName("top_k")] int TopK,
    [property: JsonPropertyName("compute_batch")] int ComputeBatch,
    [property: JsonPropertyName("min_energy"), JsonConverter(typeof(RatioConverter))] double? MinEnergy,
    [property: JsonPropertyName("min_energy_by_method")] Dictionary<string, Ratio> MinEnergyByMethod,
    [property: JsonPropertyName("tolerance_px"), JsonConverter(typeof(ToleranceConverter))] double? TolerancePx);

internal sealed record SummaryCounts(
    [property: JsonPropertyName("inputs")] int Inputs,
    [property: JsonPropertyName("processed")] int Processed,
    [property: JsonPropertyName("skipped")] int Skipped,
    [property: JsonPropertyName("pending")] int Pending,
    [property: JsonPropertyName("rows")] int Rows,
    [property: JsonPropertyName("annotated_images")] int AnnotatedImages,
    [property: JsonPropertyName("labelled_images")] int LabelledImages,
    [property: JsonPropertyName("label_correct")] int LabelCorrect,
    [property: JsonPropertyName("label_accuracy"), JsonConverter(typeof(RatioConverter))] double? LabelAccuracy,
    [property: JsonPropertyName("flagged_rows")] int FlaggedRows,
    [property: JsonPropertyName("flagged_images")] int FlaggedImages);

internal sealed record MethodPointing(
    [property: JsonPropertyName("hits")] int Hits,
    [property: JsonPropertyName("total")] int Total,
    [property: JsonPropertyName("accuracy"), JsonConverter(typeof(RatioConverter))] double? Accuracy,
    [property: JsonPropertyName("mean_class_accuracy"), JsonConverter(typeof(RatioConverter))] double? MeanClassAccuracy,
    [property: JsonPropertyName("per_class")] IReadOnlyList<ClassPointing> PerClass);

internal sealed record ClassPointing(
    [property: JsonPropertyName("class")] int Class,
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("hits")] int Hits,
    [property: JsonPropertyName("total")] int Total,
    [property: JsonPropertyName("accuracy"), JsonConverter(typeof(RatioConverter))] double? Accuracy);

/// <summary>Energy in boxes of one method: rows with boxes, mean, median and 5th percentile (linear interpolation).</summary>
internal sealed record MethodEnergy(
    [property: JsonPropertyName("rows")] int Rows,
    [property: JsonPropertyName("mean"), JsonConverter(typeof(RatioConverter))] double? Mean,
    [property: JsonPropertyName("median"), JsonConverter(typeof(RatioConverter))] double? Median,
    [property: JsonPropertyName("p05"), JsonConverter(typeof(RatioConverter))] double? P05);

/// <summary>
/// Deletion and insertion areas of a job run with <c>--faithfulness</c>: the settings, then per method the means over all
/// measured rows and per class.
/// </summary>
internal sealed record FaithfulnessDocument(
    [property: JsonPropertyName("steps")] int Steps,
    [property: JsonPropertyName("score")] string? Score,
    [property: JsonPropertyName("deletion_baseline")] string DeletionBaseline,
    [property: JsonPropertyName("insertion_baseline")] string InsertionBaseline,
    [property: JsonPropertyName("methods")] Dictionary<string, FaithfulnessMethod> Methods);

internal sealed record FaithfulnessMethod(
    [property: JsonPropertyName("rows")] int Rows,
    [property: JsonPropertyName("deletion_auc"), JsonConverter(typeof(RatioConverter))] double? DeletionAuc,
    [property: JsonPropertyName("insertion_auc"), JsonConverter(typeof(RatioConverter))] double? InsertionAuc,
    [property: JsonPropertyName("per_class")] IReadOnlyList<FaithfulnessClass> PerClass);

internal sealed record FaithfulnessClass(
    [property: JsonPropertyName("class")] int Class,
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("rows")] int Rows,
    [property: JsonPropertyName("deletion_auc"), JsonConverter(typeof(RatioConverter))] double? DeletionAuc,
    [property: JsonPropertyName("insertion_auc"), JsonConverter(typeof(RatioConverter))] double? InsertionAuc);

/// <summary>
/// Annotated images whose top-1 prediction is <see cref="Predicted"/> among those annotated with <see cref="Annotated"/>;
/// an image whose prediction is one of its annotated classes counts once, on the diagonal; otherwise once per annotated class.
/// </summary>
internal sealed record ConfusionCell(
    [property: JsonPropertyName("annotated")] int Annotated,
    [property: JsonPropertyName("annotated_name")] string AnnotatedName,
    [property: JsonPropertyName("predicted")] int Predicted,
    [property: JsonPropertyName("predicted_name")] string PredictedName,
    [property: JsonPropertyName("images")] int Images);

internal sealed record SkippedFile(
    [property: JsonPropertyName("image")] string Image,
    [property: JsonPropertyName("reason")] string Reason);

internal sealed record WarningGroup(
    [property: JsonPropertyName("warning")] string Warning,
    [property: JsonPropertyName("images")] int Images,
    [property: JsonPropertyName("examples")] IReadOnlyList<string> Examples);

internal sealed record SummaryRun(
    [property: JsonPropertyName("shard")] string? Shard,
    [property: JsonPropertyName("merged_from")] IReadOnlyList<string>? MergedFrom,
    [property: JsonPropertyName("missing_shards")] IReadOnlyList<string> MissingShards,
    [property: JsonPropertyName("input_fingerprint")] string InputFingerprint,
    [property: JsonPropertyName("resumed_images")] int ResumedImages,
    [property: JsonPropertyName("journal_entries_dropped")] int JournalEntriesDropped,
    [property: JsonPropertyName("started_utc")] string StartedUtc,
    [property: JsonPropertyName("finished_utc")] string FinishedUtc,
    [property: JsonPropertyName("timings")] SummaryTimings Timings);

internal sealed record SummaryTimings(
    [property: JsonPropertyName("total_s"), JsonConverter(typeof(SecondsConverter))] double? Total,
    [property: JsonPropertyName("model_load_s"), JsonConverter(typeof(SecondsConverter))] double? ModelLoad,
    [property: JsonPropertyName("decode_s"), JsonConverter(typeof(SecondsConverter))] double? Decode,
    [property: JsonPropertyName("compute_s"), JsonConverter(typeof(SecondsConverter))] double? Compute,
    [property: JsonPropertyName("overlays_and_measures_s"), JsonConverter(typeof(SecondsConverter))] double? Write,
    [property: JsonPropertyName("journal_s"), JsonConverter(typeof(SecondsConverter))] double? Journal,
    [property: JsonPropertyName("report_s"), JsonConverter(typeof(SecondsConverter))] double? Report,
    [property: JsonPropertyName("images_per_s"), JsonConverter(typeof(SecondsConverter))] double? ImagesPerSecond,
    [property: JsonPropertyName("threads"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? Threads,
    [property: JsonPropertyName("note"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Note,
    [property: JsonPropertyName("merge_s"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonConverter(typeof(SecondsConverter))] double? Merge,
    [property: JsonPropertyName("threads_chosen_by"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? ThreadsChosenBy = null,
    [property: JsonPropertyName("thread_trial"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<SummaryThreadTrial>? ThreadTrial = null);

/// <summary>One candidate of the thread trial: batches and images timed, saliency milliseconds per image.</summary>
internal sealed record SummaryThreadTrial(
    [property: JsonPropertyName("threads")] int Threads,
    [property: JsonPropertyName("batches")] int Batches,
    [property: JsonPropertyName("images")] int Images,
    [property: JsonPropertyName("ms_per_image"), JsonConverter(typeof(SecondsConverter))] double? MsPerImage);

/// <summary>A share printed with 4 decimals (as in every report), as a JSON number.</summary>
[JsonConverter(typeof(RatioValueConverter))]
internal readonly record struct Ratio(double Value);

/// <summary>
/// The data embedded in <c>index.html</c>: the rows, the summary, and what the page shows as text, formatted here (by the
/// same functions as <c>summary.md</c>) so that both print every number alike.
/// </summary>
internal sealed record GalleryData(
    [property: JsonPropertyName("rows")] IReadOnlyList<ResultRow> Rows,
    [property: JsonPropertyName("flags")] IReadOnlyList<string> Flags,
    [property: JsonPropertyName("methods")] IReadOnlyList<string> Methods,
    [property: JsonPropertyName("classes")] IReadOnlyList<string> Classes,
    [property: JsonPropertyName("summary")] SummaryDocument Summary,
    [property: JsonPropertyName("text")] GalleryText Text,
    [property: JsonPropertyName("score_text")] IReadOnlyList<string> ScoreText,
    [property: JsonPropertyName("meanings")] Dictionary<string, string> Meanings,
    [property: JsonPropertyName("case_count")] int CaseCount,
    [property: JsonPropertyName("cases")] IReadOnlyList<GalleryCase> Cases);

/// <summary>Pre-formatted texts of the page's summary.</summary>
internal sealed record GalleryText(
    [property: JsonPropertyName("min_energy")] string MinEnergy,
    [property: JsonPropertyName("label_accuracy")] string LabelAccuracy,
    [property: JsonPropertyName("pointing")] Dictionary<string, string> Pointing,
    [property: JsonPropertyName("per_class")] Dictionary<string, Dictionary<string, string>> PerClass,
    [property: JsonPropertyName("faithfulness"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Dictionary<string, Dictionary<string, FaithfulnessText>>? Faithfulness);

/// <summary>Mean deletion and insertion areas as the page prints them ("–" without measured rows).</summary>
internal sealed record FaithfulnessText(
    [property: JsonPropertyName("deletion")] string Deletion,
    [property: JsonPropertyName("insertion")] string Insertion);

/// <summary>
/// One (image, class) of the worst-cases section: its rows of every method, with the reason it is listed. Cases are ordered
/// by <see cref="Severity"/> (0 first), then by more flagged methods, then lower energy, then image and class.
/// </summary>
internal sealed record GalleryCase(
    [property: JsonPropertyName("image")] string Image,
    [property: JsonPropertyName("class")] int Class,
    [property: JsonPropertyName("class_name")] string ClassName,
    [property: JsonPropertyName("severity")] int Severity,
    [property: JsonPropertyName("reason")] string Reason,
    [property: JsonPropertyName("title")] string Title,
    [property: JsonPropertyName("input")] string? Input,
    [property: JsonPropertyName("panels")] IReadOnlyList<GalleryPanel> Panels);

internal sealed record GalleryPanel(
    [property: JsonPropertyName("method")] string Method,
    [property: JsonPropertyName("overlay")] string? Overlay,
    [property: JsonPropertyName("caption")] string Caption,
    [property: JsonPropertyName("flags")] IReadOnlyList<string> Flags);

/// <summary>The report documents, serialised by source-generated code (nulls are written: every line has the same fields).</summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(ResultRow))]
[JsonSerializable(typeof(SummaryDocument))]
[JsonSerializable(typeof(GalleryData))]
internal sealed partial class ReportJsonContext : JsonSerializerContext;

/// <summary>A number written with a fixed format (the reports' rounding), or null.</summary>
internal abstract class FormattedNumberConverter(Func<double, string> format) : JsonConverter<double?>
{
    public override bool HandleNull => true;

    public override double? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.Null ? null : reader.GetDouble();

    public override void Write(Utf8JsonWriter writer, double? value, JsonSerializerOptions options)
    {
        if (value is { } v) writer.WriteRawValue(format(v));
        else writer.WriteNullValue();
    }
}

/// <summary>A share with 4 decimals, as in every report.</summary>
internal sealed class RatioConverter() : FormattedNumberConverter(ReportWriter.FormatRatio);

/// <summary>Seconds with 3 decimals.</summary>
internal sealed class SecondsConverter() : FormattedNumberConverter(v => v.ToString("F3", CultureInfo.InvariantCulture));

internal sealed class RatioValueConverter : JsonConverter<Ratio>
{
    public override Ratio Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => new(reader.GetDouble());

    public override void Write(Utf8JsonWriter writer, Ratio value, JsonSerializerOptions options) =>
        writer.WriteRawValue(ReportWriter.FormatRatio(value.Value));
}

/// <summary>A score with 6 significant digits, as in <c>results.csv</c>.</summary>
internal sealed class ScoreConverter : JsonConverter<float>
{
    public override float Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.GetSingle();

    public override void Write(Utf8JsonWriter writer, float value, JsonSerializerOptions options) =>
        writer.WriteRawValue(ReportWriter.FormatScore(value));
}

/// <summary>The tolerance in pixels, or (null) the text of the default rule.</summary>
internal sealed class ToleranceConverter : JsonConverter<double?>
{
    public override bool HandleNull => true;

    public override double? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.Number ? reader.GetDouble() : null;

    public override void Write(Utf8JsonWriter writer, double? value, JsonSerializerOptions options)
    {
        if (value is { } t) writer.WriteRawValue(t.ToString("R", CultureInfo.InvariantCulture));
        else writer.WriteStringValue("15 px at 224, scaled to the image's longer side");
    }
}
