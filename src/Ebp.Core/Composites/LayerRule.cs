using Ebp.Rules;

namespace Ebp.Composites;

/// <summary>
/// A backward rule that a <see cref="Composite"/> assigns to a module: an immutable description (which rule, with
/// which constants) that Ebp's own autograd functions read. No user code runs in the backward pass, where an
/// exception would abort the process (TorchSharp), so the set of rule kinds is closed; each one is checked
/// against a naive matrix form in the tests. Rules compare by value. The rule types (<see cref="WPlusRule"/>,
/// <see cref="PassThroughRule"/>, <see cref="ProportionalSplitRule"/>, <see cref="GradientRule"/>,
/// <see cref="UnsupportedRule"/>) live in <c>Ebp.Rules</c>; this base stays beside <see cref="Composite"/>.
/// </summary>
public abstract record LayerRule
{
    private protected LayerRule() { }

    internal abstract LayerKind Kind { get; }

    /// <summary>A short description, e.g. <c>W⁺ (ε = 1E-20, bias ignored)</c>.</summary>
    public abstract string Name { get; }

    /// <summary>The W⁺ rule with the reference's constants (<see cref="WPlusRule.ReferenceEpsilon"/>, bias ignored).</summary>
    public static WPlusRule Excitation { get; } = new();

    /// <summary>The signal passes unchanged (<see cref="PassThroughRule"/>).</summary>
    public static PassThroughRule PassThrough { get; } = new();

    /// <summary>The proportional split of a sum with its default stabiliser (<see cref="ProportionalSplitRule"/>).</summary>
    public static ProportionalSplitRule ProportionalSum { get; } = new();

    /// <summary>The module's ordinary gradient (<see cref="GradientRule"/>).</summary>
    public static GradientRule Gradient { get; } = new();

    /// <summary>No rule: the module in the path is an <see cref="UnsupportedLayerException"/> (<see cref="UnsupportedRule"/>).</summary>
    public static UnsupportedRule Unsupported { get; } = new();

    /// <inheritdoc/>
    public sealed override string ToString() => Name;
}
