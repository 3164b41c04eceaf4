namespace Ebp;

/// <summary>
/// A saliency rule failed while the backward pass ran. TorchSharp aborts the process when a custom
/// backward throws, so rules catch, return zeros, and the failure is rethrown here afterwards with the
/// name of the layer whose rule failed.
/// </summary>
public sealed class EbpRuleException : Exception
{
    /// <summary>The failure <paramref name="inner"/> of the rule of layer <paramref name="layerName"/>.</summary>
    /// <param name="layerName">The module name (as in the model's state_dict) whose rule failed.</param>
    /// <param name="inner">What the rule threw.</param>
    public EbpRuleException(string layerName, Exception inner)
        : base($"The saliency rule of layer '{layerName}' failed during the backward pass: {inner.Message}", inner)
        => LayerName = layerName;

    /// <summary>The module name (as in the model's state_dict) whose rule failed.</summary>
    public string LayerName { get; }
}

/// <summary>
/// A module in the path from the saliency layer to the output has parameters but no Excitation
/// Backprop rule (for example ConvTranspose2d, LayerNorm or GroupNorm).
/// </summary>
public sealed class UnsupportedLayerException : NotSupportedException
{
    /// <summary>Layer <paramref name="layerName"/> of type <paramref name="layerType"/> has no rule; the message says what to do.</summary>
    /// <param name="layerName">The module name (as in the model's state_dict).</param>
    /// <param name="layerType">The module's type name (e.g. <c>LayerNorm</c>).</param>
    public UnsupportedLayerException(string layerName, string layerType)
        : base($"Layer '{layerName}' ({layerType}) lies between the saliency layer and the output but has no Excitation " +
               "Backprop rule (rules exist for Conv1d/2d/3d, Linear, AvgPool, AdaptiveAvgPool, BatchNorm and ResidualSum). " +
               "Choose a saliency layer above it, give it a rule with SaliencyOptions.Composite " +
               $"(e.g. Composite.ExcitationBackprop.WithRule(\"{layerName}\", LayerRule.PassThrough), docs/EXTENDING.md), or let its ordinary gradient pass with " +
               $"SaliencyOptions.PlainGradientLayers = [\"{layerName}\"] (or PlainGradientForUnsupportedLayers = true).")
    {
        LayerName = layerName;
        LayerType = layerType;
    }

    /// <summary>The module name (as in the model's state_dict) without a rule.</summary>
    public string LayerName { get; }

    /// <summary>The module's type name.</summary>
    public string LayerType { get; }
}
