namespace Ebp.Evaluation;

/// <summary>
/// A way of pointing at a class in an image: a saliency method with its layers, or the centre baseline.
/// </summary>
/// <param name="Name">Short name used on the command line and in tables (<c>center</c>, <c>gradient</c>, <c>ebp</c>, <c>cebp</c>).</param>
/// <param name="Label">Human-readable description for tables.</param>
/// <param name="Options">Saliency options (always resized to the input); null for the centre baseline.</param>
public sealed record PointingMethod(string Name, string Label, SaliencyOptions? Options)
{
    /// <summary>True for the centre baseline: the point is the image centre, whatever the class.</summary>
    public bool IsCenter => Options is null;

    /// <summary>The centre baseline.</summary>
    public static PointingMethod Center { get; } = new("center", "center baseline (always the image centre)", null);

    /// <summary>
    /// The methods of the paper's table: centre, gradient at the input (|∂score/∂x|, max over channels = sum for a
    /// one-channel input), EBP at <paramref name="saliencyLayer"/>, and contrastive EBP at the same layer with the
    /// contrast at <paramref name="contrastLayer"/>.
    /// </summary>
    public static IReadOnlyList<PointingMethod> Standard(string saliencyLayer, string contrastLayer, string? classifierLayer = null) =>
    [
        Center,
        Gradient(),
        Ebp(saliencyLayer),
        ContrastiveEbp(saliencyLayer, contrastLayer, classifierLayer),
    ];

    /// <summary>
    /// The gradient baseline at the input: TorchRay's <c>gradient</c> (max over channels of |∂score/∂x|), or with
    /// <paramref name="absolute"/> false its <c>gradient_sum</c> (the signed channel sum).
    /// </summary>
    public static PointingMethod Gradient(bool absolute = true) => new(
        absolute ? "gradient" : "gradient-signed",
        absolute ? "gradient at the input, max over channels of |G| (TorchRay's gradient)" : "gradient at the input, signed channel sum (TorchRay's gradient_sum)",
        new SaliencyOptions { Method = absolute ? SaliencyMethod.Gradient : SaliencyMethod.GradientSum, SaliencyLayer = "", Resize = MapSize.Input });

    /// <summary>Excitation Backprop with its map at the output of <paramref name="saliencyLayer"/>, resized to the input.</summary>
    /// <param name="saliencyLayer">The module whose output receives the map (state_dict-style name; "" is the input).</param>
    public static PointingMethod Ebp(string saliencyLayer) => new(
        "ebp", $"EBP at {saliencyLayer}",
        new SaliencyOptions { Method = SaliencyMethod.ExcitationBackprop, SaliencyLayer = saliencyLayer, Resize = MapSize.Input });

    /// <summary>Contrastive Excitation Backprop: the class's map minus its dual's, from <paramref name="contrastLayer"/> down to <paramref name="saliencyLayer"/>.</summary>
    /// <param name="saliencyLayer">The module whose output receives the map.</param>
    /// <param name="contrastLayer">Where the contrast signal is subtracted (e.g. <c>classifier.4</c> of a VGG).</param>
    /// <param name="classifierLayer">The layer whose weights are negated; null: the last convolution or linear layer.</param>
    public static PointingMethod ContrastiveEbp(string saliencyLayer, string contrastLayer, string? classifierLayer = null) => new(
        "cebp", $"c-EBP at {saliencyLayer}, contrast {contrastLayer}",
        new SaliencyOptions
        {
            Method = SaliencyMethod.ContrastiveExcitationBackprop,
            SaliencyLayer = saliencyLayer,
            ContrastLayer = contrastLayer,
            ClassifierLayer = classifierLayer,
            Resize = MapSize.Input,
        });

    /// <summary>Picks methods by name from a comma-separated list (<c>center,gradient,gradient-signed,ebp,cebp</c>).</summary>
    public static IReadOnlyList<PointingMethod> Parse(string list, string saliencyLayer, string contrastLayer, string? classifierLayer)
    {
        var result = new List<PointingMethod>();
        foreach (var raw in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            result.Add(raw.ToLowerInvariant() switch
            {
                "center" or "centre" => Center,
                "gradient" or "grad" => Gradient(),
                "gradient-signed" => Gradient(absolute: false),
                "ebp" => Ebp(saliencyLayer),
                "cebp" or "c-ebp" => ContrastiveEbp(saliencyLayer, contrastLayer, classifierLayer),
                _ => throw new ArgumentException($"Unknown method '{raw}'. Known: center, gradient, gradient-signed, ebp, cebp."),
            });
        }
        if (result.Count == 0) throw new ArgumentException("No method given.");
        return result;
    }
}
