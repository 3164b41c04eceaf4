using Ebp.Composites;

namespace Ebp.Rules;

/// <summary>No rule: a module with this rule between the saliency layer and the output is an <see cref="UnsupportedLayerException"/>.</summary>
public sealed record UnsupportedRule : LayerRule
{
    internal override LayerKind Kind => LayerKind.Unsupported;

    /// <inheritdoc/>
    public override string Name => "unsupported";
}
