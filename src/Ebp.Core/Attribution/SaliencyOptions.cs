namespace Ebp;

/// <summary>Options of one saliency computation. Every default is the plain Excitation Backprop of the paper.</summary>
public sealed record SaliencyOptions
{
    /// <summary>The method. Default <see cref="SaliencyMethod.ExcitationBackprop"/>.</summary>
    public SaliencyMethod Method { get; init; } = SaliencyMethod.ExcitationBackprop;

    /// <summary>
    /// Module whose <b>output</b> receives the map, by its state_dict-style name (<c>features.16</c>,
    /// <c>layer2</c>). <c>""</c> (the default) means the model input.
    /// </summary>
    public string SaliencyLayer { get; init; } = "";

    /// <summary>
    /// Contrastive EBP only: the module at whose output the contrast signal is subtracted (e.g.
    /// <c>classifier.4</c> for VGG16, <c>avgpool</c> for ResNet). Required for the contrastive method.
    /// </summary>
    public string? ContrastLayer { get; init; }

    /// <summary>
    /// Contrastive EBP only: the layer whose weights are negated for the contrast pass. Null (default):
    /// the last convolution or linear layer in definition order.
    /// </summary>
    public string? ClassifierLayer { get; init; }

    /// <summary>
    /// Resize the map: null (default) keeps the saliency layer's resolution; <see cref="MapSize.Input"/>
    /// resizes to the input's spatial size; <see cref="MapSize.Of(int,int)"/> to a width and height.
    /// </summary>
    public MapSize? Resize { get; init; }

    /// <summary>Interpolation for <see cref="Resize"/>. Default bilinear.</summary>
    public ResizeMode ResizeMode { get; init; } = ResizeMode.Bilinear;

    /// <summary>
    /// How the signal at the saliency layer becomes a map. Null (default): the method's own
    /// (<see cref="MapReduction.DefaultFor"/>: channel sum, clamped channel sum for contrastive EBP, max |G| for
    /// <see cref="SaliencyMethod.Gradient"/>).
    /// </summary>
    public MapReduction? Reduction { get; init; }

    /// <summary>
    /// Gaussian smoothing of the final map as TorchRay's <c>imsmooth</c>: sigma as a fraction of the map's larger side
    /// (e.g. 0.02), taps to ±ceil(4σ), replicated borders. Null or 0 (default): none. Applied after resizing.
    /// </summary>
    public double? SmoothingSigma { get; init; }

    /// <summary>
    /// Which rule goes on which module (EBP and contrastive EBP): null (default) is
    /// <see cref="Composites.Composite.ExcitationBackprop"/>. Add rules (<see cref="Composites.LayerRule"/>) for your own layer types
    /// or names with <c>Composite.ExcitationBackprop.WithRule&lt;MyLayer&gt;(LayerRule.PassThrough)</c> (docs/EXTENDING.md).
    /// </summary>
    public Composites.Composite? Composite { get; init; }

    /// <summary>
    /// Also return the signal at the output of every module above the saliency layer. Default false. The same as
    /// <c>Probe = SignalProbe.AllLayers</c>.
    /// </summary>
    public bool CollectSignals { get; init; }

    /// <summary>
    /// Where else the signal is read (<see cref="SignalProbe.At(string[])"/>, <see cref="SignalProbe.AllLayers"/>); it comes
    /// back in <see cref="SaliencyResult.Signals"/>. Null (default): nowhere, unless <see cref="CollectSignals"/>.
    /// A named layer must lie between the saliency layer (included) and the output.
    /// </summary>
    public SignalProbe? Probe { get; init; }

    /// <summary>
    /// Layers without an EBP rule (e.g. LayerNorm) whose ordinary gradient may pass instead of raising
    /// <see cref="UnsupportedLayerException"/>. Default: none.
    /// </summary>
    public IReadOnlyCollection<string> PlainGradientLayers { get; init; } = Array.Empty<string>();

    /// <summary>Let the ordinary gradient pass through every layer that has no rule. Default false.</summary>
    public bool PlainGradientForUnsupportedLayers { get; init; }

    /// <summary>
    /// The one check of the rules between options that need no model (the explainer and the ML.NET stage apply it):
    /// a known method and resize mode; contrastive EBP needs <see cref="ContrastLayer"/>, and only it takes
    /// <see cref="ContrastLayer"/> and <see cref="ClassifierLayer"/>; <see cref="SmoothingSigma"/> in
    /// [0, <see cref="MapPostProcessing.MaxSigmaFraction"/>]. Layer names are checked against the model by the explainer.
    /// </summary>
    /// <exception cref="ArgumentException">Contrast or classifier layer given to the wrong method, or missing for contrastive EBP.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An unknown method or resize mode, or a smoothing outside its range.</exception>
    public void CheckRules()
    {
        if (!Enum.IsDefined(Method))
            throw new ArgumentOutOfRangeException(nameof(Method), Method,
                $"Unknown SaliencyMethod {(int)Method}; use one of {string.Join(", ", Enum.GetNames<SaliencyMethod>())}.");
        if (Method == SaliencyMethod.ContrastiveExcitationBackprop && string.IsNullOrEmpty(ContrastLayer))
            throw new ArgumentException("Contrastive Excitation Backprop needs ContrastLayer (e.g. 'classifier.4' for VGG16, 'avgpool' for ResNet).");
        if (Method != SaliencyMethod.ContrastiveExcitationBackprop && (ContrastLayer is not null || ClassifierLayer is not null))
            throw new ArgumentException("ContrastLayer and ClassifierLayer apply only to SaliencyMethod.ContrastiveExcitationBackprop.");
        if (SmoothingSigma is { } s && (!double.IsFinite(s) || s < 0 || s > MapPostProcessing.MaxSigmaFraction))
            throw new ArgumentOutOfRangeException(nameof(SmoothingSigma), s,
                $"SmoothingSigma must be a finite fraction of the map's larger side in [0, {MapPostProcessing.MaxSigmaFraction}] (e.g. 0.02), or null for none.");
        if (ResizeMode is not (ResizeMode.Bilinear or ResizeMode.Nearest))
            throw new ArgumentOutOfRangeException(nameof(ResizeMode), ResizeMode,
                $"Unknown ResizeMode {(int)ResizeMode}; use ResizeMode.Bilinear or ResizeMode.Nearest.");
    }
}

/// <summary>A requested map size.</summary>
public sealed record MapSize
{
    private MapSize(int width, int height, bool input) { Width = width; Height = height; IsInput = input; }

    /// <summary>The input's own spatial size.</summary>
    public static MapSize Input { get; } = new(0, 0, true);

    /// <summary>A width and height in pixels (the map is then <c>[B, 1, height, width]</c>).</summary>
    public static MapSize Of(int width, int height)
    {
        if (width <= 0 || height <= 0)
            throw new ArgumentOutOfRangeException(nameof(width), $"Map size must be positive, got {width}×{height}.");
        return new MapSize(width, height, false);
    }

    /// <summary>The width in pixels (0 for <see cref="Input"/>).</summary>
    public int Width { get; }

    /// <summary>The height in pixels (0 for <see cref="Input"/>).</summary>
    public int Height { get; }

    /// <summary>Whether this is <see cref="Input"/>: the model input's own height and width.</summary>
    public bool IsInput { get; }
}
