using Ebp.Composites;

namespace Ebp.Rules;

/// <summary>
/// The signal passes unchanged, <c>G_in = G</c>: BatchNorm's rule (the affine scale is not part of the winning
/// probabilities, as in the reference), or a normalisation of your own.
/// </summary>
public sealed record PassThroughRule : LayerRule
{
    internal override LayerKind Kind => LayerKind.PassThrough;

    /// <inheritdoc/>
    public override string Name => "pass-through";
}
