using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Models;

/// <summary>
/// Builds a network from a JSON architecture spec, the <c>"model"</c> object of the reference
/// <c>cases.json</c>: <c>"kind"</c> is <c>"vgg"</c>, <c>"resnet"</c> or <c>"sequential"</c>.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><c>vgg</c>: <c>cfg</c> (required; integers and <c>"M"</c>), <c>batch_norm</c>, <c>in_channels</c>, <c>hidden</c>,
/// <c>num_classes</c>, <c>pool_size</c> (integer or <c>[ph, pw]</c>), <c>dropout</c>.</item>
/// <item><c>resnet</c>: <c>block</c> (<c>"basic"</c> | <c>"bottleneck"</c>), <c>layers</c> (4 integers), <c>width</c>,
/// <c>num_classes</c>, <c>in_channels</c>.</item>
/// <item><c>sequential</c>: <c>layers</c>, see <see cref="SequentialSpec"/>.</item>
/// </list>
/// Omitted optional fields take the <see cref="VggConfig"/> / <see cref="ResNetConfig"/> defaults.
/// </remarks>
public static class ModelSpec
{
    private static readonly string[] VggFields = ["kind", "cfg", "batch_norm", "in_channels", "hidden", "num_classes", "pool_size", "dropout"];
    private static readonly string[] ResNetFields = ["kind", "block", "layers", "width", "num_classes", "in_channels"];
    private static readonly string[] SequentialFields = ["kind", "layers"];

    /// <summary>The model kinds <see cref="Build(JsonElement)"/> accepts.</summary>
    public static IReadOnlyList<string> Kinds { get; } = ["vgg", "resnet", "sequential"];

    /// <summary>Builds the network described by <paramref name="model"/>, in evaluation mode.</summary>
    /// <param name="model">The architecture spec (a JSON object with a <c>"kind"</c>).</param>
    /// <returns>A new <see cref="Vgg"/>, <see cref="ResNet"/> or <c>Sequential</c>, already switched to <c>eval()</c>.</returns>
    /// <exception cref="ArgumentException">Unknown kind, unknown field, missing required field or invalid value (the message names it).</exception>
    public static nn.Module<Tensor, Tensor> Build(JsonElement model)
    {
        if (model.ValueKind != JsonValueKind.Object)
            throw new ArgumentException($"A model spec must be a JSON object (got {model.ValueKind}).", nameof(model));
        string kind = SpecJson.String(model, "model spec", "kind");
        nn.Module<Tensor, Tensor> net = kind.ToLowerInvariant() switch
        {
            "vgg" => new Vgg(ParseVgg(model)),
            "resnet" => new ResNet(ParseResNet(model)),
            "sequential" => BuildSequential(model),
            _ => throw new ArgumentException(
                $"model spec: unknown kind \"{kind}\". Known kinds: {string.Join(", ", Kinds)}.", nameof(model)),
        };
        net.eval();
        return net;
    }

    /// <summary>Builds the network described by the JSON text <paramref name="json"/>, in evaluation mode.</summary>
    /// <param name="json">The architecture spec as JSON text.</param>
    /// <exception cref="ArgumentException">The spec is invalid.</exception>
    /// <exception cref="JsonException">The text is not valid JSON.</exception>
    public static nn.Module<Tensor, Tensor> Build(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return Build(doc.RootElement);
    }

    /// <summary>Parses a <c>"kind": "vgg"</c> spec into a <see cref="VggConfig"/>.</summary>
    /// <param name="model">The spec object.</param>
    /// <exception cref="ArgumentException">The spec is invalid.</exception>
    public static VggConfig ParseVgg(JsonElement model)
    {
        const string what = "vgg spec";
        SpecJson.CheckFields(model, what, VggFields);
        var cfgJson = SpecJson.Required(model, what, "cfg");
        if (cfgJson.ValueKind != JsonValueKind.Array)
            throw new ArgumentException($"{what}: field \"cfg\" must be a list of integers and \"M\" (got {cfgJson.ValueKind}).");
        var cfg = new List<object>();
        foreach (var e in cfgJson.EnumerateArray())
        {
            if (e.ValueKind == JsonValueKind.String && e.GetString() == VggConfig.MaxPool)
                cfg.Add(VggConfig.MaxPool);
            else if (e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int v) && v > 0)
                cfg.Add(v);
            else
                throw new ArgumentException($"{what}: \"cfg\" entry {e} is invalid: expected a positive integer or \"M\".");
        }
        var defaults = new VggConfig(cfg, false);
        var pool = SpecJson.IntOrList(model, what, "pool_size", 2, [defaults.PoolHeight, defaults.PoolWidth]);
        return new VggConfig(
            cfg,
            SpecJson.Bool(model, what, "batch_norm", false),
            InChannels: ToInt(SpecJson.Int(model, what, "in_channels", defaults.InChannels), what, "in_channels"),
            Hidden: ToInt(SpecJson.Int(model, what, "hidden", defaults.Hidden), what, "hidden"),
            NumClasses: ToInt(SpecJson.Int(model, what, "num_classes", defaults.NumClasses), what, "num_classes"),
            PoolHeight: ToInt(pool[0], what, "pool_size"),
            PoolWidth: ToInt(pool[1], what, "pool_size"),
            Dropout: SpecJson.Double(model, what, "dropout", defaults.Dropout));
    }

    /// <summary>Parses a <c>"kind": "resnet"</c> spec into a <see cref="ResNetConfig"/>.</summary>
    /// <param name="model">The spec object.</param>
    /// <exception cref="ArgumentException">The spec is invalid.</exception>
    public static ResNetConfig ParseResNet(JsonElement model)
    {
        const string what = "resnet spec";
        SpecJson.CheckFields(model, what, ResNetFields);
        string blockName = SpecJson.String(model, what, "block");
        var block = blockName.ToLowerInvariant() switch
        {
            "basic" => ResNetBlock.Basic,
            "bottleneck" => ResNetBlock.Bottleneck,
            _ => throw new ArgumentException($"{what}: unknown block \"{blockName}\". Known blocks: basic, bottleneck."),
        };
        var layers = SpecJson.IntOrList(model, what, "layers", 4);
        var defaults = new ResNetConfig(block, [1, 1, 1, 1]);
        return new ResNetConfig(
            block,
            layers.Select(l => ToInt(l, what, "layers")).ToArray(),
            Width: ToInt(SpecJson.Int(model, what, "width", defaults.Width), what, "width"),
            NumClasses: ToInt(SpecJson.Int(model, what, "num_classes", defaults.NumClasses), what, "num_classes"),
            InChannels: ToInt(SpecJson.Int(model, what, "in_channels", defaults.InChannels), what, "in_channels"));
    }

    private static nn.Module<Tensor, Tensor> BuildSequential(JsonElement model)
    {
        SpecJson.CheckFields(model, "sequential spec", SequentialFields);
        return SequentialSpec.Build(SpecJson.Required(model, "sequential spec", "layers"));
    }

    private static int ToInt(long v, string what, string field) =>
        v <= int.MaxValue ? (int)v : throw new ArgumentException($"{what}: field \"{field}\" is too large ({v}).");
}

/// <summary>
/// Creates the standard torchvision ImageNet architectures by name (randomly initialised; load weights with
/// <see cref="Ebp.Weights.WeightLoader"/>).
/// </summary>
public static class ModelZoo
{
    private static readonly Dictionary<string, Func<int, object>> Configs =
        new(StringComparer.OrdinalIgnoreCase)
        {
            ["vgg11"] = n => VggConfig.Vgg11(false, n),
            ["vgg11_bn"] = n => VggConfig.Vgg11(true, n),
            ["vgg13"] = n => VggConfig.Vgg13(false, n),
            ["vgg13_bn"] = n => VggConfig.Vgg13(true, n),
            ["vgg16"] = n => VggConfig.Vgg16(false, n),
            ["vgg16_bn"] = n => VggConfig.Vgg16(true, n),
            ["vgg19"] = n => VggConfig.Vgg19(false, n),
            ["vgg19_bn"] = n => VggConfig.Vgg19(true, n),
            ["resnet18"] = n => ResNetConfig.ResNet18(n),
            ["resnet34"] = n => ResNetConfig.ResNet34(n),
            ["resnet50"] = n => ResNetConfig.ResNet50(n),
            ["resnet101"] = n => ResNetConfig.ResNet101(n),
            ["resnet152"] = n => ResNetConfig.ResNet152(n),
        };

    /// <summary>The accepted model names (lower case; matching is case-insensitive).</summary>
    public static IReadOnlyList<string> Names { get; } = Configs.Keys.ToArray();

    /// <summary>Creates the named architecture, in evaluation mode.</summary>
    /// <param name="name"><c>vgg11</c>, <c>vgg11_bn</c>, <c>vgg13</c>, <c>vgg13_bn</c>, <c>vgg16</c>, <c>vgg16_bn</c>,
    /// <c>vgg19</c>, <c>vgg19_bn</c>, <c>resnet18</c>, <c>resnet34</c>, <c>resnet50</c>, <c>resnet101</c> or <c>resnet152</c> (case-insensitive).</param>
    /// <param name="numClasses">Number of output classes.</param>
    /// <returns>A new <see cref="Vgg"/> or <see cref="ResNet"/>, already switched to <c>eval()</c>.</returns>
    /// <exception cref="ArgumentException">Unknown name (the message lists the valid names) or non-positive <paramref name="numClasses"/>.</exception>
    public static nn.Module<Tensor, Tensor> Create(string name, int numClasses = 1000) => Build(Config(name, numClasses));

    /// <summary>The configuration (<see cref="VggConfig"/> or <see cref="ResNetConfig"/>) <see cref="Create"/> builds for a name.</summary>
    internal static object Config(string name, int numClasses = 1000)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!Configs.TryGetValue(name.Trim(), out var config))
            throw new ArgumentException($"Unknown model name \"{name}\". Valid names: {string.Join(", ", Names)}.", nameof(name));
        if (numClasses <= 0)
            throw new ArgumentException($"numClasses must be positive (got {numClasses}).", nameof(numClasses));
        return config(numClasses);
    }

    /// <summary>The network of a <see cref="Config"/> (possibly narrowed by a test), in evaluation mode.</summary>
    internal static nn.Module<Tensor, Tensor> Build(object config)
    {
        nn.Module<Tensor, Tensor> net = config switch
        {
            VggConfig v => new Vgg(v),
            ResNetConfig r => new ResNet(r),
            _ => throw new ArgumentException($"Not a model configuration: {config?.GetType().Name ?? "null"}.", nameof(config)),
        };
        net.eval();
        return net;
    }
}
