using Ebp.Composites;

namespace Ebp.Rules;

/// <summary>The module's ordinary gradient: ReLU, MaxPool, Dropout, Flatten, containers, parameterless operations.</summary>
public sealed record GradientRule : LayerRule
{
    internal override LayerKind Kind => LayerKind.Gradient;

    /// <inheritdoc/>
    public override string Name => "plain gradient";
}
