using System.Text.Json.Serialization;

namespace Ebp.Models;

/// <summary>
/// Model cards read and written by source-generated code; the settings come from <see cref="ModelCard.JsonOptions"/>
/// (the encoder cannot be given here). The <c>model</c>, <c>training</c> and <c>evaluation</c> objects stay
/// <see cref="System.Text.Json.Nodes.JsonObject"/>: a nested model spec and free-form provenance have no fixed type.
/// </summary>
[JsonSerializable(typeof(ModelCard))]
internal sealed partial class ModelCardJsonContext : JsonSerializerContext;
