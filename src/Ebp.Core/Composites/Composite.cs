using System.Collections.Immutable;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Composites;

/// <summary>
/// Which <see cref="LayerRule"/> goes on which module, as zennit's composites: by module name first, then by
/// module type (the most derived registered type wins), then Excitation Backprop's own choice
/// (<see cref="ExcitationBackprop"/>). Composites are immutable; <c>With…</c> returns a new one.
/// </summary>
/// <example>
/// <code>
/// var composite = Composite.ExcitationBackprop
///     .WithRule&lt;MyNorm&gt;(LayerRule.PassThrough)
///     .WithRule&lt;Linear&gt;(new WPlusRule { Epsilon = 1e-6, Bias = BiasHandling.Include });
/// var map = explainer.Explain(x, SaliencyTarget.Class(3), new SaliencyOptions { Composite = composite });
/// </code>
/// </example>
public sealed class Composite
{
    private readonly ImmutableDictionary<Type, LayerRule> _byType;
    private readonly ImmutableDictionary<string, LayerRule> _byName;

    private Composite(ImmutableDictionary<Type, LayerRule> byType, ImmutableDictionary<string, LayerRule> byName)
    {
        _byType = byType;
        _byName = byName;
    }

    /// <summary>
    /// Excitation Backprop's default: W⁺ for Conv1d/2d/3d, Linear and average pooling; pass-through for BatchNorm;
    /// the proportional split for <see cref="Modules.ResidualSum"/>; the plain gradient for modules without parameters;
    /// every other module with parameters (ConvTranspose, LayerNorm, GroupNorm, …) unsupported.
    /// </summary>
    public static Composite ExcitationBackprop { get; } = new(ImmutableDictionary<Type, LayerRule>.Empty, ImmutableDictionary<string, LayerRule>.Empty);

    /// <summary>This composite with <paramref name="rule"/> for every module of type <typeparamref name="TModule"/> (and its subclasses).</summary>
    public Composite WithRule<TModule>(LayerRule rule) where TModule : nn.Module => WithRule(typeof(TModule), rule);

    /// <summary>This composite with <paramref name="rule"/> for every module of <paramref name="moduleType"/> (and its subclasses).</summary>
    public Composite WithRule(Type moduleType, LayerRule rule)
    {
        ArgumentNullException.ThrowIfNull(moduleType);
        ArgumentNullException.ThrowIfNull(rule);
        if (!typeof(nn.Module).IsAssignableFrom(moduleType))
            throw new ArgumentException($"{moduleType.Name} is not a TorchSharp module type.", nameof(moduleType));
        return new Composite(_byType.SetItem(moduleType, rule), _byName);
    }

    /// <summary>This composite with <paramref name="rule"/> for the module named <paramref name="layerName"/> (state_dict-style, e.g. <c>features.5</c>).</summary>
    public Composite WithRule(string layerName, LayerRule rule)
    {
        ArgumentException.ThrowIfNullOrEmpty(layerName);
        ArgumentNullException.ThrowIfNull(rule);
        return new Composite(_byType, _byName.SetItem(layerName, rule));
    }

    /// <summary>The module names this composite assigns a rule to.</summary>
    public IEnumerable<string> NamedLayers => _byName.Keys;

    /// <summary>The rule for <paramref name="module"/>, called <paramref name="name"/> in its model.</summary>
    public LayerRule RuleFor(string name, nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        if (name is not null && _byName.TryGetValue(name, out var byName)) return byName;
        for (var t = module.GetType(); t is not null && t != typeof(object); t = t.BaseType)
            if (_byType.TryGetValue(t, out var byType)) return byType;
        return Default(ExcitationComposite.Classify(module));
    }

    private static LayerRule Default(LayerKind kind) => kind switch
    {
        LayerKind.Excitation => LayerRule.Excitation,
        LayerKind.PassThrough => LayerRule.PassThrough,
        LayerKind.ProportionalSum => LayerRule.ProportionalSum,
        LayerKind.Gradient => LayerRule.Gradient,
        _ => LayerRule.Unsupported,
    };
}
