using System.Text.Json;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Models;

/// <summary>
/// Builds an <c>nn.Sequential</c> from a JSON layer list, the <c>"kind": "sequential"</c> spec. Children are named
/// <c>"0"</c>, <c>"1"</c>, … unless a layer has a <c>"name"</c>; a layer of type <c>"sequential"</c> holds its own
/// <c>"layers"</c>, so nested, named sequentials give PyTorch's names (<c>features.5</c>, <c>classifier.3</c>) and
/// a PyTorch <c>state_dict</c> loads unchanged.
/// </summary>
/// <remarks>
/// Every layer is an object with a <c>"type"</c> and the fields below; <c>kernel</c>, <c>stride</c>,
/// <c>padding</c> and <c>output</c> are an integer (same for every spatial dimension) or a list with one entry per
/// spatial dimension. Optional fields take PyTorch's defaults (stride = kernel for pools, stride 1 for
/// convolutions, padding 0, bias true).
/// <list type="table">
/// <item><term><c>conv1d</c>, <c>conv2d</c>, <c>conv3d</c></term><description><c>in, out, kernel, stride, padding, bias</c> (zero padding)</description></item>
/// <item><term><c>linear</c></term><description><c>in, out, bias</c></description></item>
/// <item><term><c>relu</c></term><description>no fields</description></item>
/// <item><term><c>maxpool2d</c></term><description><c>kernel, stride, padding</c></description></item>
/// <item><term><c>avgpool1d</c>, <c>avgpool2d</c>, <c>avgpool3d</c></term><description><c>kernel, stride, padding</c>; padding is counted in the divisor (<c>count_include_pad</c>)</description></item>
/// <item><term><c>adaptiveavgpool1d</c>, <c>2d</c>, <c>3d</c></term><description><c>output</c></description></item>
/// <item><term><c>batchnorm1d</c>, <c>batchnorm2d</c>, <c>batchnorm3d</c></term><description><c>features</c>, optional <c>eps</c> (1e-5)</description></item>
/// <item><term><c>dropout</c></term><description>optional <c>p</c> (0.5)</description></item>
/// <item><term><c>flatten</c></term><description>optional <c>start_dim</c> (1), <c>end_dim</c> (-1)</description></item>
/// <item><term><c>sequential</c></term><description><c>layers</c>: a nested list of layers, run in order</description></item>
/// </list>
/// Every layer may have a <c>"name"</c> (non-empty, without <c>'.'</c>, unique among its siblings); layers without
/// one are named by their position, as in PyTorch.
/// Unknown types and fields throw <see cref="ArgumentException"/> naming them.
/// </remarks>
public static class SequentialSpec
{
    /// <summary>The layer types <see cref="Build(JsonElement)"/> accepts.</summary>
    public static IReadOnlyList<string> LayerTypes { get; } =
    [
        "conv1d", "conv2d", "conv3d", "linear", "relu", "maxpool2d",
        "avgpool1d", "avgpool2d", "avgpool3d",
        "adaptiveavgpool1d", "adaptiveavgpool2d", "adaptiveavgpool3d",
        "batchnorm1d", "batchnorm2d", "batchnorm3d", "dropout", "flatten", "sequential",
    ];

    /// <summary>Nesting deeper than this is refused (a spec is written by hand; this bounds recursion).</summary>
    private const int MaxDepth = 32;

    private static readonly string[] ConvFields = ["type", "in", "out", "kernel", "stride", "padding", "bias"];
    private static readonly string[] LinearFields = ["type", "in", "out", "bias"];
    private static readonly string[] PoolFields = ["type", "kernel", "stride", "padding"];
    private static readonly string[] AdaptiveFields = ["type", "output"];
    private static readonly string[] NormFields = ["type", "features", "eps"];
    private static readonly string[] FlattenFields = ["type", "start_dim", "end_dim"];
    private static readonly string[] DropoutFields = ["type", "p"];
    private static readonly string[] TypeOnly = ["type"];
    private static readonly string[] NestedFields = ["type", "layers"];

    /// <summary>Builds the network from a JSON array of layer objects.</summary>
    /// <param name="layers">The <c>"layers"</c> array (a JSON object holding a <c>"layers"</c> array is accepted too).</param>
    /// <returns>A new <c>Sequential</c> in training mode (call <c>eval()</c> for inference).</returns>
    /// <exception cref="ArgumentException">A layer has an unknown type, an unknown field, or an invalid value.</exception>
    public static Sequential Build(JsonElement layers)
    {
        if (layers.ValueKind == JsonValueKind.Object && layers.TryGetProperty("layers", out var inner))
            layers = inner;
        return BuildList(layers, "", 0);
    }

    private static Sequential BuildList(JsonElement layers, string path, int depth)
    {
        string where = path.Length == 0 ? "A sequential spec" : $"sequential \"{path}\"";
        if (depth > MaxDepth)
            throw new ArgumentException($"{where} nests sequentials more than {MaxDepth} deep.");
        if (layers.ValueKind != JsonValueKind.Array)
            throw new ArgumentException($"{where} must be a JSON array of layers (got {layers.ValueKind}).");
        if (layers.GetArrayLength() == 0)
            throw new ArgumentException($"{where} must contain at least one layer.");

        var seq = nn.Sequential();
        var names = new HashSet<string>(StringComparer.Ordinal);
        int i = 0;
        try
        {
            foreach (var layer in layers.EnumerateArray())
            {
                string name = i.ToString();
                if (layer.ValueKind == JsonValueKind.Object && layer.TryGetProperty("name", out var n))
                {
                    if (n.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(n.GetString()) || n.GetString()!.Contains('.'))
                        throw new ArgumentException($"sequential layer {Qualify(path, name)}: \"name\" must be a non-empty string without '.' (got {n.GetRawText()}).");
                    name = n.GetString()!;
                }
                if (!names.Add(name))
                    throw new ArgumentException($"sequential layer {Qualify(path, name)}: the name \"{name}\" is used twice in {where}.");
                seq.append(name, BuildLayer(layer, Qualify(path, name), depth));
                i++;
            }
        }
        catch
        {
            seq.Dispose();
            throw;
        }
        return seq;
    }

    private static string Qualify(string path, string name) => path.Length == 0 ? name : path + "." + name;

    /// <summary>Builds the network from a JSON string (an array of layers, or an object with a <c>"layers"</c> array).</summary>
    /// <param name="json">The spec.</param>
    public static Sequential Build(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return Build(doc.RootElement);
    }

    private static nn.Module<Tensor, Tensor> BuildLayer(JsonElement layer, string index, int depth)
    {
        string what = $"sequential layer {index}";
        if (layer.ValueKind != JsonValueKind.Object)
            throw new ArgumentException($"{what} must be a JSON object (got {layer.ValueKind}).");
        string type = SpecJson.String(layer, what, "type");
        what = $"sequential layer {index} (\"{type}\")";
        // "name" is the layer's place in its parent, read there; the per-type field lists do not hold it.
        string[] With(string[] f) => [.. f, "name"];

        switch (type.ToLowerInvariant())
        {
            case "conv1d":
            case "conv2d":
            case "conv3d":
            {
                SpecJson.CheckFields(layer, what, With(ConvFields));
                int dims = type[4] - '0';
                long cin = SpecJson.Int(layer, what, "in");
                long cout = SpecJson.Int(layer, what, "out");
                var k = SpecJson.IntOrList(layer, what, "kernel", dims);
                var s = SpecJson.IntOrList(layer, what, "stride", dims, Ones(dims));
                var p = SpecJson.IntOrList(layer, what, "padding", dims, new long[dims], min: 0);
                bool bias = SpecJson.Bool(layer, what, "bias", true);
                return dims switch
                {
                    1 => nn.Conv1d(cin, cout, k[0], stride: s[0], padding: p[0], bias: bias),
                    2 => nn.Conv2d(cin, cout, (k[0], k[1]), stride: (s[0], s[1]), padding: (p[0], p[1]), bias: bias),
                    _ => nn.Conv3d(cin, cout, (k[0], k[1], k[2]), stride: (s[0], s[1], s[2]), padding: (p[0], p[1], p[2]), bias: bias),
                };
            }
            case "linear":
                SpecJson.CheckFields(layer, what, With(LinearFields));
                return nn.Linear(SpecJson.Int(layer, what, "in"), SpecJson.Int(layer, what, "out"),
                    hasBias: SpecJson.Bool(layer, what, "bias", true));
            case "relu":
                SpecJson.CheckFields(layer, what, With(TypeOnly));
                return nn.ReLU();
            case "maxpool2d":
            {
                SpecJson.CheckFields(layer, what, With(PoolFields));
                var (k, s, p) = Pool(layer, what, 2);
                return nn.MaxPool2d(k, s, p);
            }
            case "avgpool1d":
            {
                SpecJson.CheckFields(layer, what, With(PoolFields));
                var (k, s, p) = Pool(layer, what, 1);
                return nn.AvgPool1d(k[0], s[0], p[0], ceil_mode: false, count_include_pad: true);
            }
            case "avgpool2d":
            {
                SpecJson.CheckFields(layer, what, With(PoolFields));
                var (k, s, p) = Pool(layer, what, 2);
                return nn.AvgPool2d(k, s, p, ceil_mode: false, count_include_pad: true);
            }
            case "avgpool3d":
            {
                SpecJson.CheckFields(layer, what, With(PoolFields));
                var (k, s, p) = Pool(layer, what, 3);
                return nn.AvgPool3d(k, s, p, ceil_mode: false, count_include_pad: true);
            }
            case "adaptiveavgpool1d":
                SpecJson.CheckFields(layer, what, With(AdaptiveFields));
                return nn.AdaptiveAvgPool1d(SpecJson.IntOrList(layer, what, "output", 1)[0]);
            case "adaptiveavgpool2d":
                SpecJson.CheckFields(layer, what, With(AdaptiveFields));
                return nn.AdaptiveAvgPool2d(SpecJson.IntOrList(layer, what, "output", 2));
            case "adaptiveavgpool3d":
                SpecJson.CheckFields(layer, what, With(AdaptiveFields));
                return nn.AdaptiveAvgPool3d(SpecJson.IntOrList(layer, what, "output", 3));
            case "batchnorm1d":
            case "batchnorm2d":
            case "batchnorm3d":
            {
                SpecJson.CheckFields(layer, what, With(NormFields));
                long f = SpecJson.Int(layer, what, "features");
                double eps = SpecJson.Double(layer, what, "eps", 1e-5);
                return type[9] switch
                {
                    '1' => nn.BatchNorm1d(f, eps),
                    '2' => nn.BatchNorm2d(f, eps),
                    _ => nn.BatchNorm3d(f, eps),
                };
            }
            case "sequential":
                SpecJson.CheckFields(layer, what, With(NestedFields));
                return BuildList(SpecJson.Required(layer, what, "layers"), index, depth + 1);
            case "dropout":
                SpecJson.CheckFields(layer, what, With(DropoutFields));
                return nn.Dropout(SpecJson.Double(layer, what, "p", 0.5));
            case "flatten":
                SpecJson.CheckFields(layer, what, With(FlattenFields));
                return nn.Flatten(SpecJson.Int(layer, what, "start_dim", 1, long.MinValue),
                    SpecJson.Int(layer, what, "end_dim", -1, long.MinValue));
            default:
                throw new ArgumentException(
                    $"sequential layer {index}: unknown layer type \"{type}\". Known types: {string.Join(", ", LayerTypes)}.");
        }
    }

    private static (long[] Kernel, long[] Stride, long[] Padding) Pool(JsonElement layer, string what, int dims)
    {
        var k = SpecJson.IntOrList(layer, what, "kernel", dims);
        var s = SpecJson.IntOrList(layer, what, "stride", dims, k);
        var p = SpecJson.IntOrList(layer, what, "padding", dims, new long[dims], min: 0);
        return (k, s, p);
    }

    private static long[] Ones(int dims) => Enumerable.Repeat(1L, dims).ToArray();
}
