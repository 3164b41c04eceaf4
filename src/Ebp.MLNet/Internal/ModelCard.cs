using System.Text.Json;

namespace Ebp.MLNet.Internal;

/// <summary>
/// What a described model brings besides its architecture: weights, class names, input size, a suggested saliency
/// layer. One record for every description format (a model card today; other sources, such as ONNX metadata, fill the
/// same fields), so that the stage takes class names and defaults from wherever the model came from.
/// </summary>
internal sealed record ModelDescription
{
    /// <summary>The Ebp model spec (the card's <c>model</c> object as JSON).</summary>
    public string? ModelSpecJson { get; init; }

    /// <summary>The weight file, already resolved to a full path inside the description's folder.</summary>
    public string? WeightsPath { get; init; }

    public string[]? ClassNames { get; init; }
    public int? ImageWidth { get; init; }
    public int? ImageHeight { get; init; }
    public string? SaliencyLayer { get; init; }
}

/// <summary>
/// Reads a model card: the JSON file stored next to a model's weights (e.g. <c>models/cluttered-mnist-vgg.json</c>)
/// with <c>model</c> (an Ebp model spec), <c>weights</c> (a file name in the card's folder), <c>class_names</c>,
/// <c>input</c> and <c>saliency</c>. The card is untrusted input: its size is bounded and its weight file must stay
/// inside the card's folder.
/// </summary>
internal static class ModelCard
{
    private const long MaxCardBytes = 1 << 20;

    public static ModelDescription Read(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new ArgumentException($"Model card not found: '{path}' (full path '{full}').", "options");
        if (new FileInfo(full).Length > MaxCardBytes)
            throw new ArgumentException($"'{path}' is larger than {MaxCardBytes} bytes; a model card is a small JSON file.", "options");
        JsonElement root;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(full), new JsonDocumentOptions { MaxDepth = 32 });
            root = doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"'{path}' is not a model card (invalid JSON: {e.Message}).", "options", e);
        }
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw new ArgumentException($"'{path}' is not a model card: it needs a \"model\" object (an Ebp model spec).", "options");

        string? weights = null;
        if (root.TryGetProperty("weights", out var w) && w.ValueKind == JsonValueKind.String)
        {
            var folder = Path.GetDirectoryName(full)!;
            var name = w.GetString()!;
            var resolved = Path.GetFullPath(Path.Combine(folder, name));
            if (name.Length == 0 || Path.IsPathRooted(name) || Path.GetDirectoryName(resolved) != folder)
                throw new ArgumentException($"The model card '{path}' names the weight file \"{name}\"; it must be a file name in the card's folder.", "options");
            weights = resolved;
        }

        string[]? classNames = null;
        if (root.TryGetProperty("class_names", out var names) && names.ValueKind == JsonValueKind.Array)
        {
            classNames = names.EnumerateArray().Select(n => n.ValueKind == JsonValueKind.String ? n.GetString()! : n.ToString()).ToArray();
            if (classNames.Distinct(StringComparer.Ordinal).Count() != classNames.Length)
                throw new ArgumentException($"The model card '{path}' lists a class name twice.", "options");
        }

        int? width = null, height = null;
        if (root.TryGetProperty("input", out var input) && input.ValueKind == JsonValueKind.Object)
        {
            if (input.TryGetProperty("width", out var iw) && iw.TryGetInt32(out var wv) && wv > 0) width = wv;
            if (input.TryGetProperty("height", out var ih) && ih.TryGetInt32(out var hv) && hv > 0) height = hv;
        }

        string? layer = null;
        if (root.TryGetProperty("saliency", out var s) && s.ValueKind == JsonValueKind.Object
            && s.TryGetProperty("saliency_layer", out var l) && l.ValueKind == JsonValueKind.String)
            layer = l.GetString();

        return new ModelDescription
        {
            ModelSpecJson = model.GetRawText(),
            WeightsPath = weights,
            ClassNames = classNames,
            ImageWidth = width,
            ImageHeight = height,
            SaliencyLayer = layer,
        };
    }
}

/// <summary>Turns a described model source (a model card, an ONNX file) into the plain options it stands for.</summary>
internal static class ModelSources
{
    /// <summary>The one home of the rule "exactly one model source", checked on the caller's options before anything is read.</summary>
    private static void CheckOneSource(SaliencyEstimator.Options o)
    {
        var set = new (string Name, bool IsSet)[]
        {
            ("OnnxModelPath", o.OnnxModelPath is not null), ("ModelCardPath", o.ModelCardPath is not null),
            ("Architecture", o.Architecture is not null), ("ModelSpecJson", o.ModelSpecJson is not null),
            ("ModelFactory", o.ModelFactory is not null), ("Model", o.Model is not null),
        }.Where(s => s.IsSet).Select(s => s.Name).ToList();
        if (set.Count != 1)
            throw new ArgumentException(
                "Set exactly one model source: OnnxModelPath (an .onnx file), ModelCardPath (a model card), Architecture (a ModelZoo name), " +
                $"ModelSpecJson, ModelFactory or Model ({(set.Count == 0 ? "none is set" : string.Join(" and ", set) + " are set")}).", "options");
    }

    /// <summary>
    /// A copy of <paramref name="o"/> with the model card (if any) read into <see cref="SaliencyEstimator.Options.ModelSpecJson"/>,
    /// weights, class names, input size and saliency layer (options the caller set win), and the remaining defaults applied.
    /// </summary>
    public static SaliencyEstimator.Options Expand(SaliencyEstimator.Options o)
    {
        CheckOneSource(o);
        var copy = o.Clone();
        if (o.ModelCardPath is { } card)
        {
            var d = ModelCard.Read(card);
            copy.ModelCardPath = null;
            copy.ModelSpecJson = d.ModelSpecJson;
            copy.WeightsPath ??= d.WeightsPath;
            copy.ClassNames ??= d.ClassNames;
            copy.ImageWidth ??= d.ImageWidth;
            copy.ImageHeight ??= d.ImageHeight;
            copy.SaliencyLayer ??= d.SaliencyLayer;
        }
        if (o.OnnxModelPath is { } onnx)
        {
            if (o.WeightsPath is not null)
                throw new ArgumentException("WeightsPath cannot be combined with OnnxModelPath: the ONNX file holds the weights.", "options");
            var (d, files, suggested) = OnnxSource.Read(onnx);
            copy.OnnxFiles = files;
            copy.ClassNames ??= d.ClassNames;
            copy.ImageWidth ??= d.ImageWidth;
            copy.ImageHeight ??= d.ImageHeight;
            copy.SaliencyLayer ??= d.SaliencyLayer;
            if (o.Method == SaliencyMethod.ContrastiveExcitationBackprop)
            {
                copy.ContrastLayer ??= suggested.ContrastLayer;
                copy.ClassifierLayer ??= suggested.ClassifierLayer;
            }
        }
        copy.ImageWidth ??= 224;
        copy.ImageHeight ??= 224;
        copy.SaliencyLayer ??= "";
        return copy;
    }
}
