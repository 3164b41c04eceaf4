using System.Text.Json.Serialization;

namespace Ebp.MLNet.Internal;

/// <summary><c>ebp-pipeline.json</c>: the saved pipeline's format, version and stage list.</summary>
internal sealed record PipelineManifest(
    [property: JsonPropertyName("format")] string? Format,
    [property: JsonPropertyName("version")] int? Version,
    [property: JsonPropertyName("bareTransformer")] bool? BareTransformer,
    [property: JsonPropertyName("stages")] IReadOnlyList<ManifestStage?>? Stages);

/// <summary>
/// One stage of <see cref="PipelineManifest"/>: a run of ML.NET transformers (<c>mlnet</c>: <see cref="Entry"/>,
/// <see cref="Count"/>) or a saliency stage (<c>saliency</c>: <see cref="Settings"/>, <see cref="Weights"/> and, for an
/// ONNX graph, <see cref="OnnxFiles"/>). Fields a kind does not have are left out.
/// </summary>
internal sealed record ManifestStage(
    [property: JsonPropertyName("kind")] string? Kind,
    [property: JsonPropertyName("entry"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Entry = null,
    [property: JsonPropertyName("count"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? Count = null,
    [property: JsonPropertyName("settings"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Settings = null,
    [property: JsonPropertyName("weights"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Weights = null,
    [property: JsonPropertyName("onnxFiles"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string?>? OnnxFiles = null);

/// <summary>
/// The saved pipeline's manifest, serialised by source-generated code. (A stage's settings, <see cref="StageConfig"/>,
/// keep reflection: see there.)
/// </summary>
[JsonSourceGenerationOptions(WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(PipelineManifest))]
internal sealed partial class PersistenceJsonContext : JsonSerializerContext;
