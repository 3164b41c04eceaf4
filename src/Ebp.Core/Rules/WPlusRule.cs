using Ebp.Composites;

namespace Ebp.Rules;

/// <summary>
/// Excitation Backprop's rule for layers that are linear in their input (Conv1d/2d/3d, Linear, average pooling):
/// <c>G_in = x ⊙ layerᵀ(G ⊘ (Z + ε))</c> with <c>Z = layer(x; W⁺)</c>, <c>W⁺ = max(W, 0)</c> (<c>max(−W, 0)</c> for
/// the contrastive classifier), plus the bias as <see cref="Bias"/> says. The defaults are the reference's
/// (ε = 1e-20 added, not a max; bias ignored), so <c>new WPlusRule()</c> is <see cref="LayerRule.Excitation"/>.
/// </summary>
/// <remarks>
/// For a module that is none of these types, the module's own forward is taken as <c>layer(x; W⁺)</c>: use it only
/// for layers that are linear with non-negative weights (the bias option then has nothing to act on).
/// </remarks>
/// <example><c>Composite.ExcitationBackprop.WithRule&lt;Linear&gt;(new WPlusRule { Epsilon = 1e-6, Bias = BiasHandling.Include })</c></example>
public sealed record WPlusRule : LayerRule
{
    /// <summary>The reference's ε: 1e-20.</summary>
    public const double ReferenceEpsilon = 1e-20;

    private readonly double _epsilon = ReferenceEpsilon;
    private readonly BiasHandling _bias = BiasHandling.Ignore;

    /// <summary>Added to <c>Z</c> before the division; positive and finite. Default <see cref="ReferenceEpsilon"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not a positive finite number.</exception>
    public double Epsilon
    {
        get => _epsilon;
        init => _epsilon = double.IsFinite(value) && value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(Epsilon), value,
            "WPlusRule.Epsilon must be a positive finite number (the reference uses 1e-20): it keeps G ⊘ (Z + ε) finite where Z = 0.");
    }

    /// <summary>What happens to the layer's bias. Default <see cref="BiasHandling.Ignore"/>, as the reference.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not a defined <see cref="BiasHandling"/>.</exception>
    public BiasHandling Bias
    {
        get => _bias;
        init => _bias = Enum.IsDefined(value) ? value : throw new ArgumentOutOfRangeException(nameof(Bias), value,
            $"Unknown BiasHandling {(int)value}; use BiasHandling.Ignore (the reference) or BiasHandling.Include.");
    }

    internal override LayerKind Kind => LayerKind.Excitation;

    /// <inheritdoc/>
    public override string Name => $"W⁺ (ε = {Epsilon:G3}, bias {(Bias == BiasHandling.Ignore ? "ignored" : "included")})";
}
