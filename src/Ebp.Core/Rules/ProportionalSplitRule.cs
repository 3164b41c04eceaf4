using Ebp.Composites;

namespace Ebp.Rules;

/// <summary>
/// The rule of a two-input sum <c>y = a + b</c> (<see cref="Modules.ResidualSum"/>): the signal is split in proportion
/// to each input's share. With <see cref="Stabiliser"/> δ and <c>m = |a| + |b|</c>, elementwise
/// <c>G_a = (a·y³ + (δm)⁴/2) ⊘ (y⁴ + (δm)⁴) ⊙ G</c>, and the same for <c>b</c>.
/// </summary>
/// <remarks>
/// Why: the reference's <c>G_a = (a ⊘ y) ⊙ G</c> is 0/0 where y = 0 and unbounded where a and b nearly cancel; the
/// ratios then reach millions, and the float rounding of the two branches below, multiplied by them, no longer
/// cancels (a one-hot map that should sum to 1 sums to anything). The stabilised shares add up to exactly 1
/// (<c>(a + b)·y³ + (δm)⁴ = y⁴ + (δm)⁴</c>), so the signal is conserved; each is bounded by about <c>0.57/δ + 1/2</c>;
/// where y = 0 they are ½ each (an even split); and where a and b do not cancel by more than a factor 1/δ they
/// differ from <c>a ⊘ y</c> by about <c>(δm/y)⁴</c>, which leaves the reference vectors within their tolerance.
/// δ is relative to <c>m</c>, so the rule is the same for a block whose weights are scaled by 1e-30 (a
/// zero-initialised residual branch) as for one at scale 1. δ = 0 gives the reference's <c>a ⊘ y</c> exactly, with
/// the even split only where y is exactly 0.
/// </remarks>
public sealed record ProportionalSplitRule : LayerRule
{
    /// <summary>
    /// The default δ = 1e-5: shares bounded by about 57 000 (the reference's are unbounded); the largest δ that keeps
    /// every public and held-out reference vector within its tolerance (δ = 1e-4 moves one held-out ResNet case by
    /// 2.8e-4 of its maximum, twice its tolerance, because the reference's own maps hold shares above 1e4).
    /// </summary>
    public const double DefaultStabiliser = 1e-5;

    private readonly double _stabiliser = DefaultStabiliser;

    /// <summary>δ ≥ 0, relative to <c>|a| + |b|</c>. Default <see cref="DefaultStabiliser"/>; 0 is the reference's plain ratio.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative, above 1 or not finite.</exception>
    public double Stabiliser
    {
        get => _stabiliser;
        init => _stabiliser = double.IsFinite(value) && value is >= 0 and <= 1 ? value : throw new ArgumentOutOfRangeException(nameof(Stabiliser), value,
            $"ProportionalSplitRule.Stabiliser must be in [0, 1] (default {DefaultStabiliser}; 0 is the reference's plain a ⊘ y).");
    }

    internal override LayerKind Kind => LayerKind.ProportionalSum;

    /// <inheritdoc/>
    public override string Name => $"proportional split (δ = {Stabiliser:G3})";
}
