using Ebp.Composites;
using static TorchSharp.torch;

namespace Ebp;

/// <summary>
/// Where the signal is read besides the map: at the output of every module above the saliency layer, or of the
/// modules you name (by state_dict-style name or by reference). Give it as <see cref="SaliencyOptions.Probe"/>; the
/// signals come back in <see cref="SaliencyResult.Signals"/> (and <see cref="SaliencyResult.ContrastSignals"/>),
/// keyed by layer name. Probes are immutable and can be shared.
/// </summary>
/// <example>
/// <code>
/// var probe = SignalProbe.At(model, model.Layer4, model.AvgPool);   // or SignalProbe.At("layer4", "avgpool")
/// using var r = explainer.Explain(x, SaliencyTarget.Class(3), new SaliencyOptions { SaliencyLayer = "layer1", Probe = probe });
/// var atLayer4 = r.Signals!["layer4"];                                // G at layer4's output, [B, C, H, W]
/// </code>
/// </example>
public sealed class SignalProbe
{
    private readonly HashSet<string>? _layers;

    private SignalProbe(HashSet<string>? layers) => _layers = layers;

    /// <summary>Every module from the saliency layer (included) up to the output.</summary>
    public static SignalProbe AllLayers { get; } = new(null);

    /// <summary>The modules named <paramref name="layers"/> (e.g. <c>features.16</c>, <c>layer2.0.add</c>).</summary>
    /// <exception cref="ArgumentException">No name, or an empty name (<c>""</c> is the input, which has no module output to read).</exception>
    public static SignalProbe At(params string[] layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Length == 0) throw new ArgumentException("Name at least one layer, or use SignalProbe.AllLayers.", nameof(layers));
        foreach (var name in layers)
            if (string.IsNullOrEmpty(name))
                throw new ArgumentException("A probe layer name is null or empty; name a module, e.g. 'features.16' (the map itself is read at SaliencyLayer).", nameof(layers));
        return new SignalProbe(layers.ToHashSet(StringComparer.Ordinal));
    }

    /// <summary>The given submodules of <paramref name="model"/>, by reference (their names as <see cref="ModelInspection.NameOf"/> gives them).</summary>
    /// <exception cref="ArgumentException">A module that is not a submodule of the model.</exception>
    public static SignalProbe At(nn.Module model, params nn.Module[] modules)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(modules);
        return At(modules.Select(m => ModelInspection.NameOf(model, m)).ToArray());
    }

    /// <summary>The probed layer names, or null for <see cref="AllLayers"/>.</summary>
    public IReadOnlyCollection<string>? Layers => _layers;

    internal bool Reads(string layer) => _layers is null || _layers.Contains(layer);

    /// <inheritdoc/>
    public override string ToString() => _layers is null ? "all layers" : string.Join(", ", _layers);
}
