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
