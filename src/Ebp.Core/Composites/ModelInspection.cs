using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Composites;

/// <summary>Names and finds a model's modules the way PyTorch's <c>named_modules()</c> does.</summary>
public static class ModelInspection
{
    /// <summary>
    /// Every submodule with its dotted name (<c>features.0</c>, <c>layer1.0.conv1</c>), in definition order
    /// (depth first, as PyTorch lists them). The root module itself is not included.
    /// </summary>
    public static IReadOnlyList<(string Name, nn.Module Module)> NamedModules(nn.Module model)
    {
        var result = new List<(string, nn.Module)>();
        var seen = new HashSet<nn.Module>(ReferenceEqualityComparer.Instance);
        void Walk(nn.Module m, string prefix)
        {
            foreach (var (childName, child) in m.named_children())
            {
                if (!seen.Add(child)) continue; // a module registered twice is listed once, like PyTorch
                var name = prefix.Length == 0 ? childName : prefix + "." + childName;
                result.Add((name, child));
                Walk(child, name);
            }
        }
        Walk(model, "");
        return result;
    }

    /// <summary>
    /// The one check of a layer name against a model (the explainer, the ML.NET stage and the audit tool use it):
    /// null when <paramref name="name"/> is null or names one of <paramref name="modules"/>, otherwise the message to
    /// raise: that the model has no such module, the names that contain it or that it contains ("Did you mean"), and
    /// examples of the model's own names. <c>""</c> (the input) is the caller's to accept.
    /// </summary>
    /// <param name="modules">The model's modules, as <see cref="NamedModules"/> lists them.</param>
    /// <param name="name">The layer name given, or null.</param>
    /// <param name="what">What the name is for, in the message (e.g. "saliency layer").</param>
    public static string? UnknownLayerMessage(IReadOnlyList<(string Name, nn.Module Module)> modules, string? name, string what)
    {
        ArgumentNullException.ThrowIfNull(modules);
        if (name is null || modules.Any(m => m.Name == name)) return null;
        var close = name.Length == 0 ? new List<string>() : modules.Select(m => m.Name)
            .Where(n => n.Contains(name, StringComparison.OrdinalIgnoreCase) || name.Contains(n, StringComparison.OrdinalIgnoreCase))
            .Take(5).ToList();
        var examples = modules.Count > 0 ? string.Join(", ", modules.Take(4).Select(m => $"'{m.Name}'")) : "'features.16' or 'layer2'";
        return $"Unknown {what} '{name}': the model has no module of that name. " +
               (close.Count > 0 ? $"Did you mean {string.Join(", ", close.Select(c => $"'{c}'"))}? " : "") +
               $"Layer names are state_dict-style module names such as {examples}; \"\" is the input.";
    }

    /// <summary>
    /// The state_dict-style name of <paramref name="module"/> inside <paramref name="model"/>, so that a layer can be
    /// given by reference: <c>SaliencyLayer = ModelInspection.NameOf(model, myConv)</c>, or in a composite
    /// <c>WithRule(ModelInspection.NameOf(model, myNorm), LayerRule.PassThrough)</c>.
    /// </summary>
    /// <exception cref="ArgumentException">The module is not a submodule of the model (the model itself is the input, <c>""</c>).</exception>
    public static string NameOf(nn.Module model, nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(module);
        foreach (var (name, m) in NamedModules(model))
            if (ReferenceEquals(m, module)) return name;
        throw new ArgumentException(
            $"The {module.GetType().Name} module is not a submodule of this {model.GetType().Name}; pass a module of the explained model.", nameof(module));
    }

    /// <summary>
    /// The classifier layer the contrastive method negates when none is named: the last convolution or
    /// linear layer in definition order (<c>classifier.6</c> for VGG, <c>fc</c> for ResNet).
    /// </summary>
    public static string? DefaultClassifierLayer(nn.Module model)
        => NamedModules(model).LastOrDefault(m => m.Module is Linear or Conv1d or Conv2d or Conv3d).Name;

    /// <summary>The first convolution or linear layer, used to check an input's rank and channel count.</summary>
    internal static nn.Module? FirstWeightedLayer(nn.Module model)
        => NamedModules(model).FirstOrDefault(m => m.Module is Linear or Convolution).Module;
}
