using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Ebp.Models;
using Ebp.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.PointingGame;

/// <summary>
/// The JSON file stored next to a model's weights (e.g. <c>models/cluttered-mnist-vgg.json</c>): the architecture
/// in the <see cref="ModelSpec"/> format, class names, input size and preprocessing, the layers to explain at,
/// and how the weights were made and how well they do.
/// </summary>
public sealed class ModelCard
{
    [JsonPropertyName("name")] public string Name { get; set; } = "";
    [JsonPropertyName("description")] public string? Description { get; set; }

    /// <summary>Weight file, relative to the card's folder.</summary>
    [JsonPropertyName("weights")] public string Weights { get; set; } = "";
    [JsonPropertyName("weights_sha256")] public string? WeightsSha256 { get; set; }

    /// <summary>Architecture spec, the <c>"model"</c> object of the reference cases (<see cref="ModelSpec.Build(JsonElement)"/>).</summary>
    [JsonPropertyName("model")] public JsonObject Model { get; set; } = new();

    [JsonPropertyName("class_names")] public List<string> ClassNames { get; set; } = new();
    [JsonPropertyName("input")] public InputSpec Input { get; set; } = new();
    [JsonPropertyName("preprocessing")] public string Preprocessing { get; set; } = "x = pixel / 255";
    [JsonPropertyName("output")] public string Output { get; set; } = "";
    [JsonPropertyName("saliency")] public SaliencySpec Saliency { get; set; } = new();
    [JsonPropertyName("training")] public JsonObject? Training { get; set; }
    [JsonPropertyName("evaluation")] public JsonObject? Evaluation { get; set; }

    public sealed class InputSpec
    {
        [JsonPropertyName("channels")] public int Channels { get; set; } = 1;
        [JsonPropertyName("height")] public int Height { get; set; }
        [JsonPropertyName("width")] public int Width { get; set; }
        /// <summary>Per-channel mean subtracted from pixel/255 (e.g. ImageNet's 0.485, 0.456, 0.406); none: 0.</summary>
        [JsonPropertyName("mean")] public List<double>? Mean { get; set; }
        /// <summary>Per-channel standard deviation divided by after the mean (e.g. 0.229, 0.224, 0.225); none: 1.</summary>
        [JsonPropertyName("std")] public List<double>? Std { get; set; }

        /// <summary>The card's normalisation, or null when it has neither mean nor std.</summary>
        [JsonIgnore]
        public InputNormalization? Normalization =>
            Mean is null && Std is null ? null
                : new InputNormalization(
                    (Mean ?? Enumerable.Repeat(0.0, Channels).ToList()).Select(v => (float)v).ToArray(),
                    (Std ?? Enumerable.Repeat(1.0, Channels).ToList()).Select(v => (float)v).ToArray());
    }

    /// <summary>Layer names for the saliency methods (state_dict-style module names).</summary>
    public sealed class SaliencySpec
    {
        /// <summary>Where EBP and contrastive EBP maps are read (the output of this module).</summary>
        [JsonPropertyName("saliency_layer")] public string SaliencyLayer { get; set; } = "";
        /// <summary>Where contrastive EBP subtracts the contrast signal.</summary>
        [JsonPropertyName("contrast_layer")] public string ContrastLayer { get; set; } = "";
        /// <summary>The layer whose weights are negated for the contrast pass.</summary>
        [JsonPropertyName("classifier_layer")] public string? ClassifierLayer { get; set; }
        [JsonPropertyName("note")] public string? Note { get; set; }
    }

    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>Reads a card.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">The JSON is not a model card.</exception>
    public static ModelCard Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Model card not found: '{path}'.", path);
        ModelCard? card;
        try
        {
            card = JsonSerializer.Deserialize<ModelCard>(File.ReadAllText(path), JsonOptions);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{path}' is not a valid model card: {e.Message}", e);
        }
        if (card is null || card.Model.Count == 0 || card.Weights.Length == 0 || card.ClassNames.Count == 0)
            throw new InvalidDataException($"'{path}' is not a model card: it needs \"model\", \"weights\" and \"class_names\".");
        foreach (var (name, values, positive) in new[] { ("mean", card.Input.Mean, false), ("std", card.Input.Std, true) })
        {
            if (values is null) continue;
            if (values.Count != card.Input.Channels)
                throw new InvalidDataException(
                    $"'{path}': input.{name} has {values.Count} values, but the input has {card.Input.Channels} channel(s); give one number per channel.");
            if (values.Any(v => !double.IsFinite(v) || (positive && v <= 0)))
                throw new InvalidDataException($"'{path}': input.{name} must hold finite numbers{(positive ? " > 0" : "")} (got {string.Join(", ", values)}).");
        }
        return card;
    }

    public void Save(string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        File.WriteAllText(path, JsonSerializer.Serialize(this, JsonOptions) + "\n");
    }

    /// <summary>Builds the architecture (eval mode, random weights).</summary>
    public nn.Module<Tensor, Tensor> BuildModel() => ModelSpec.Build(Model.ToJsonString());

    /// <summary>SHA-256 of a file, lower-case hex.</summary>
    public static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}

/// <summary>A model card with its model, weights loaded strictly, in eval mode.</summary>
/// <summary>The per-channel input normalisation of a model card: x = (pixel/255 - mean) / std.</summary>
public sealed record InputNormalization(float[] Mean, float[] Std)
{
    /// <summary>Normalises a <c>[B, C, H, W]</c> batch of pixel/255 values (a new tensor).</summary>
    public Tensor Apply(Tensor x)
    {
        if (x.shape.Length != 4 || x.shape[1] != Mean.Length)
            throw new ArgumentException($"The card's normalisation has {Mean.Length} channel(s), the input has shape [{string.Join(", ", x.shape)}].");
        using var m = torch.tensor(Mean).reshape(1, -1, 1, 1);
        using var s = torch.tensor(Std).reshape(1, -1, 1, 1);
        return (x - m) / s;
    }
}

public sealed class LoadedModel : IDisposable
{
    private LoadedModel(ModelCard card, nn.Module<Tensor, Tensor> model, string cardPath)
    {
        Card = card;
        Model = model;
        CardPath = cardPath;
    }

    public ModelCard Card { get; }
    public nn.Module<Tensor, Tensor> Model { get; }
    public string CardPath { get; }

    public string WeightsPath => Path.Combine(Path.GetDirectoryName(Path.GetFullPath(CardPath))!, Card.Weights);

    /// <summary>Loads <paramref name="cardPath"/> and its weights (strict: every key must match).</summary>
    public static LoadedModel Load(string cardPath, bool verifyChecksum = true)
    {
        var card = ModelCard.Load(cardPath);
        var model = card.BuildModel();
        var loaded = new LoadedModel(card, model, cardPath);
        try
        {
            if (verifyChecksum && card.WeightsSha256 is { } expected)
            {
                var actual = ModelCard.Sha256(loaded.WeightsPath);
                if (!string.Equals(actual, expected, StringComparison.OrdinalIgnoreCase))
                    throw new InvalidDataException(
                        $"'{loaded.WeightsPath}' has SHA-256 {actual}, but the card '{cardPath}' expects {expected}. " +
                        "The weights and the card do not belong together (re-run the training command or restore the file).");
            }
            WeightLoader.Load(model, loaded.WeightsPath, strict: true);
            model.eval();
            return loaded;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    public void Dispose() => Model.Dispose();
}
