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
/// Reads a model card (<see cref="Ebp.Models.ModelCard"/>, the one reader of the format) into a
/// <see cref="ModelDescription"/>; a card that is missing or invalid is an error about the caller's options.
/// </summary>
internal static class ModelCardSource
{
    public static ModelDescription Read(string path)
    {
        Ebp.Models.ModelCard card;
        try
        {
            card = Ebp.Models.ModelCard.Load(path);
        }
        catch (Exception e) when (e is FileNotFoundException or InvalidDataException)
        {
            throw new ArgumentException(e.Message, "options", e);
        }
        return new ModelDescription
        {
            ModelSpecJson = card.Model.ToJsonString(),
            WeightsPath = card.WeightsPathNextTo(path),
            ClassNames = card.ClassNames.Count > 0 ? card.ClassNames.ToArray() : null,
            ImageWidth = card.Input.Width > 0 ? card.Input.Width : null,
            ImageHeight = card.Input.Height > 0 ? card.Input.Height : null,
            SaliencyLayer = card.Saliency.SaliencyLayer.Length > 0 ? card.Saliency.SaliencyLayer : null,
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
            var d = ModelCardSource.Read(card);
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
        copy.ImageWidth ??= SaliencyEstimator.Defaults.ImageSize;
        copy.ImageHeight ??= SaliencyEstimator.Defaults.ImageSize;
        copy.SaliencyLayer ??= "";
        return copy;
    }
}
