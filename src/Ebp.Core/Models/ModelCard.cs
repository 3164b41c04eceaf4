using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Models;

/// <summary>
/// The JSON file stored next to a model's weights (e.g. <c>models/cluttered-mnist-vgg.json</c>): the architecture
/// in the <see cref="ModelSpec"/> format, the weight file, class names, input size and normalisation, the layers to
/// explain at, and how the weights were made and how well they do. The one reader of the format: the ML.NET stage
/// (<c>ModelCardPath</c>), the audit tool and the pointing-game tools all load cards through <see cref="Load"/>.
/// </summary>
/// <remarks>
/// A card is input from outside, checked before anything is built from it: at most <see cref="MaxBytes"/> bytes of
/// JSON with a <c>model</c> object; <c>weights</c> a plain file name in the card's folder; class names unique;
/// <c>input.mean</c> and <c>input.std</c> one finite number per channel (std &gt; 0).
/// </remarks>
public sealed class ModelCard
{
    /// <summary>The largest card read, in bytes: a card is a small JSON file.</summary>
    public const long MaxBytes = 1 << 20;

    /// <summary>The model's name (the file's base name by convention).</summary>
    [JsonPropertyName("name")] public string Name { get; set; } = "";

    /// <summary>What the model is, for people.</summary>
    [JsonPropertyName("description")] public string? Description { get; set; }

    /// <summary>Weight file, a file name in the card's folder ("" when the card names none).</summary>
    [JsonPropertyName("weights")] public string Weights { get; set; } = "";

    /// <summary>SHA-256 of the weight file, lower-case hex, or null.</summary>
    [JsonPropertyName("weights_sha256")] public string? WeightsSha256 { get; set; }

    /// <summary>Architecture spec, the <c>"model"</c> object of the reference cases (<see cref="ModelSpec.Build(JsonElement)"/>).</summary>
    [JsonPropertyName("model")] public JsonObject Model { get; set; } = new();

    /// <summary>One name per class, in class-index order (empty when the card lists none).</summary>
    [JsonPropertyName("class_names")] public List<string> ClassNames { get; set; } = new();

    /// <summary>The input the model takes.</summary>
    [JsonPropertyName("input")] public InputSpec Input { get; set; } = new();

    /// <summary>How pixels become the model's input, for people (the numbers are <see cref="InputSpec.Mean"/> and <see cref="InputSpec.Std"/>).</summary>
    [JsonPropertyName("preprocessing")] public string Preprocessing { get; set; } = "x = pixel / 255";

    /// <summary>What the model's output means, for people.</summary>
    [JsonPropertyName("output")] public string Output { get; set; } = "";

    /// <summary>The layers for the saliency methods.</summary>
    [JsonPropertyName("saliency")] public SaliencySpec Saliency { get; set; } = new();

    /// <summary>How the weights were made (free-form).</summary>
    [JsonPropertyName("training")] public JsonObject? Training { get; set; }

    /// <summary>How well the weights do (free-form).</summary>
    [JsonPropertyName("evaluation")] public JsonObject? Evaluation { get; set; }

    /// <summary>The model's input: channels, size and the per-channel normalisation.</summary>
    public sealed class InputSpec
    {
        /// <summary>Input channels (1 grey, 3 colour); 0 when the card does not say.</summary>
        [JsonPropertyName("channels")] public int Channels { get; set; }

        /// <summary>Input height in pixels; 0 when the card does not say.</summary>
        [JsonPropertyName("height")] public int Height { get; set; }

        /// <summary>Input width in pixels; 0 when the card does not say.</summary>
        [JsonPropertyName("width")] public int Width { get; set; }

        /// <summary>Per-channel mean subtracted from pixel/255 (e.g. ImageNet's 0.485, 0.456, 0.406); none: 0.</summary>
        [JsonPropertyName("mean")] public List<double>? Mean { get; set; }

        /// <summary>Per-channel standard deviation divided by after the mean (e.g. 0.229, 0.224, 0.225); none: 1.</summary>
        [JsonPropertyName("std")] public List<double>? Std { get; set; }

        /// <summary>The card's normalisation, or null when it has neither mean nor std.</summary>
        [JsonIgnore]
        public InputNormalization? Normalization
        {
            get
            {
                if (Mean is null && Std is null) return null;
                int channels = Channels > 0 ? Channels : (Mean ?? Std)!.Count;
                return new InputNormalization(
                    (Mean ?? Enumerable.Repeat(0.0, channels).ToList()).Select(v => (float)v).ToArray(),
                    (Std ?? Enumerable.Repeat(1.0, channels).ToList()).Select(v => (float)v).ToArray());
            }
        }
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

        /// <summary>Why these layers, for people.</summary>
        [JsonPropertyName("note")] public string? Note { get; set; }
    }

    /// <summary>How cards are read and written (indented, nulls left out, non-ASCII names kept readable).</summary>
    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        MaxDepth = 64,
    };

    // The source-generated serialiser with JsonOptions' settings; made on first use, after JsonOptions.
    private static ModelCardJsonContext Json => _json ??= new(new JsonSerializerOptions(JsonOptions));
    private static ModelCardJsonContext? _json;

    /// <summary>Reads and checks a card.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">The file is too large, or its JSON is not a valid model card (the message says why).</exception>
    public static ModelCard Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new FileNotFoundException($"Model card not found: '{path}' (full path '{full}').", path);
        if (new FileInfo(full).Length > MaxBytes)
            throw new InvalidDataException($"'{path}' is larger than {MaxBytes} bytes; a model card is a small JSON file.");
        return Parse(File.ReadAllText(full), path);
    }

    /// <summary>Reads and checks the text of a card; <paramref name="source"/> names it in messages.</summary>
    /// <exception cref="InvalidDataException">The JSON is not a valid model card (the message says why).</exception>
    public static ModelCard Parse(string json, string source)
    {
        ArgumentNullException.ThrowIfNull(json);
        ModelCard? card;
        try
        {
            card = JsonSerializer.Deserialize(json, Json.ModelCard);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{source}' is not a valid model card: {e.Message}", e);
        }
        if (card is null || card.Model.Count == 0)
            throw new InvalidDataException($"'{source}' is not a model card: it needs a \"model\" object (an Ebp model spec).");
        card.Check(source);
        return card;
    }

    private void Check(string source)
    {
        if (Weights.Length > 0 && (Path.GetFileName(Weights) != Weights || Weights is "." or ".." || Path.IsPathRooted(Weights)
                                   || Weights.Contains('/') || Weights.Contains('\\')))
            throw new InvalidDataException($"The model card '{source}' names the weight file \"{Weights}\"; it must be a file name in the card's folder.");
        if (ClassNames.Distinct(StringComparer.Ordinal).Count() != ClassNames.Count)
            throw new InvalidDataException($"The model card '{source}' lists a class name twice.");
        if (Input.Channels < 0 || Input.Width < 0 || Input.Height < 0)
            throw new InvalidDataException($"'{source}': input.channels, input.width and input.height must not be negative.");
        foreach (var (name, values, positive) in new[] { ("mean", Input.Mean, false), ("std", Input.Std, true) })
        {
            if (values is null) continue;
            if (Input.Channels > 0 && values.Count != Input.Channels)
                throw new InvalidDataException(
                    $"'{source}': input.{name} has {values.Count} values, but the input has {Input.Channels} channel(s); give one number per channel.");
            if (values.Count == 0 || values.Any(v => !double.IsFinite(v) || (positive && v <= 0)))
                throw new InvalidDataException($"'{source}': input.{name} must hold finite numbers{(positive ? " > 0" : "")} (got {string.Join(", ", values)}).");
        }
        if (Input.Mean is { } m && Input.Std is { } s && m.Count != s.Count)
            throw new InvalidDataException($"'{source}': input.mean has {m.Count} values and input.std {s.Count}; give one number per channel in each.");
    }

    /// <summary>
    /// The full path of the weight file of the card at <paramref name="cardPath"/>, or null when the card names none.
    /// </summary>
    public string? WeightsPathNextTo(string cardPath) =>
        Weights.Length == 0 ? null : Path.Combine(Path.GetDirectoryName(Path.GetFullPath(cardPath))!, Weights);

    /// <summary>Writes the card (indented JSON), creating the folder if needed.</summary>
    public void Save(string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        File.WriteAllText(path, JsonSerializer.Serialize(this, Json.ModelCard) + "\n");
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

/// <summary>The per-channel input normalisation of a model card: x = (pixel/255 - mean) / std.</summary>
/// <param name="Mean">Subtracted from pixel/255, one value per channel.</param>
/// <param name="Std">Divided by after the mean, one value per channel.</param>
public sealed record InputNormalization(float[] Mean, float[] Std)
{
    /// <summary>Normalises a <c>[B, C, H, W]</c> batch of pixel/255 values (a new tensor).</summary>
    public Tensor Apply(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.shape.Length != 4 || x.shape[1] != Mean.Length)
            throw new ArgumentException($"The card's normalisation has {Mean.Length} channel(s), the input has shape [{string.Join(", ", x.shape)}].");
        using var m = torch.tensor(Mean).reshape(1, -1, 1, 1);
        using var s = torch.tensor(Std).reshape(1, -1, 1, 1);
        return (x - m) / s;
    }
}
