namespace Ebp.Composites;

/// <summary>
/// A backward rule a <see cref="Composite"/> assigns to a module. The rules are Excitation Backprop's; each is
/// checked against a naive matrix form in the tests.
/// </summary>
public sealed class LayerRule
{
    private LayerRule(LayerKind kind, string name)
    {
        Kind = kind;
        Name = name;
    }

    internal LayerKind Kind { get; }

    /// <summary>A short description.</summary>
    public string Name { get; }

    /// <summary>
    /// The W⁺ rule <c>G_in = x ⊙ layerᵀ(G ⊘ (layer(x; W⁺) + 1e-20))</c>, bias ignored, for layers that are linear
    /// with weights: Conv1d/2d/3d, Linear, and average pooling (and their subclasses). For any other
    /// single-input module the module's own forward is taken as <c>layer(x; W⁺)</c>, so it must be linear with
    /// non-negative weights.
    /// </summary>
    public static LayerRule Excitation { get; } = new(LayerKind.Excitation, "excitation (W⁺)");

    /// <summary>The signal passes unchanged, <c>G_in = G</c> (BatchNorm; a custom normalisation).</summary>
    public static LayerRule PassThrough { get; } = new(LayerKind.PassThrough, "pass-through");

    /// <summary>Two-input sums <c>y = a + b</c>: <c>G_a = (a ⊘ y) ⊙ G</c>, <c>G_b = (b ⊘ y) ⊙ G</c> (<see cref="Modules.ResidualSum"/>).</summary>
    public static LayerRule ProportionalSum { get; } = new(LayerKind.ProportionalSum, "proportional split");

    /// <summary>The module's ordinary gradient (ReLU, MaxPool, Dropout, Flatten, containers).</summary>
    public static LayerRule Gradient { get; } = new(LayerKind.Gradient, "plain gradient");

    /// <summary>No rule: the module in the path is an <see cref="UnsupportedLayerException"/>.</summary>
    public static LayerRule Unsupported { get; } = new(LayerKind.Unsupported, "unsupported");

    /// <inheritdoc/>
    public override string ToString() => Name;
}
