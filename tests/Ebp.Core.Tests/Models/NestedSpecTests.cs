using Ebp.Core.Tests.Weights;
using Ebp.Models;
using Ebp.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Models;

/// <summary>
/// Issue 11, "describing a model": nested, named sequentials give a VGG-style model with a two-linear classifier
/// PyTorch's own names, so its state_dict loads unchanged and EBP runs at <c>features.N</c>.
/// </summary>
[TestClass]
public sealed class NestedSpecTests
{
    // As PyTorch would print it: features (conv, relu, pool, conv, relu, pool), avgpool, flatten, classifier (linear, relu, dropout, linear).
    private const string Spec = """
        {"kind": "sequential", "layers": [
          {"type": "sequential", "name": "features", "layers": [
            {"type": "conv2d", "in": 3, "out": 8, "kernel": 3, "padding": 1},
            {"type": "relu"},
            {"type": "maxpool2d", "kernel": 2},
            {"type": "conv2d", "in": 8, "out": 16, "kernel": 3, "padding": 1},
            {"type": "relu"},
            {"type": "maxpool2d", "kernel": 2}]},
          {"type": "adaptiveavgpool2d", "name": "avgpool", "output": 2},
          {"type": "flatten", "name": "flatten"},
          {"type": "sequential", "name": "classifier", "layers": [
            {"type": "linear", "in": 64, "out": 32},
            {"type": "relu"},
            {"type": "dropout"},
            {"type": "linear", "in": 32, "out": 10}]}]}
        """;

    /// <summary>The state dict PyTorch would save for the model above (biases zero, so EBP conserves exactly).</summary>
    private static Dictionary<string, Tensor> PyTorchStateDict()
    {
        var g = new Generator(11);
        Tensor W(params long[] shape) => torch.rand(shape, generator: g) - 0.3;
        return new Dictionary<string, Tensor>
        {
            ["features.0.weight"] = W(8, 3, 3, 3), ["features.0.bias"] = zeros(8),
            ["features.3.weight"] = W(16, 8, 3, 3), ["features.3.bias"] = zeros(16),
            ["classifier.0.weight"] = W(32, 64), ["classifier.0.bias"] = zeros(32),
            ["classifier.3.weight"] = W(10, 32), ["classifier.3.bias"] = zeros(10),
        };
    }

    private string _dir = "";

    [TestInitialize]
    public void Init() => Directory.CreateDirectory(_dir = Path.Combine(Path.GetTempPath(), "ebp-nested-" + Guid.NewGuid().ToString("N")));

    [TestCleanup]
    public void Cleanup()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    [TestMethod]
    public void NestedNamedSequentialsHavePyTorchsNames()
    {
        using var model = ModelSpec.Build(Spec);
        CollectionAssert.AreEqual(PyTorchStateDict().Keys.ToList(), model.state_dict().Keys.ToList());
        var modules = model.named_modules().Select(m => m.name).ToList();
        foreach (var name in new[] { "features", "features.5", "avgpool", "flatten", "classifier", "classifier.2", "classifier.3" })
            CollectionAssert.Contains(modules, name);
    }

    [TestMethod]
    public void StateDictLoadsUnchangedFromFileAndEbpRunsAtAFeaturesLayer()
    {
        var sd = PyTorchStateDict();
        // The torch.save layout, as PyTorch writes it for this model.
        var tensors = new List<HostileWeightFiles.PthTensor>();
        var sizes = new Dictionary<string, long>();
        var data = new Dictionary<string, byte[]>();
        foreach (var (key, t) in sd)
        {
            string k = tensors.Count.ToString();
            tensors.Add(new(key, k, "FloatStorage", t.numel(), 0, t.shape));
            data[k] = t.bytes.ToArray();
            sizes[k] = data[k].Length;
        }
        string path = Path.Combine(_dir, "vgg_small.pth");
        HostileWeightFiles.WritePth(path, tensors, sizes, data: data);

        using var model = ModelSpec.Build(Spec);
        var result = WeightLoader.Load(model, path);
        Assert.HasCount(sd.Count, result.LoadedKeys);
        foreach (var (key, t) in sd)
            CollectionAssert.AreEqual(t.bytes.ToArray(), model.state_dict()[key].bytes.ToArray(), key);

        model.eval();
        using var x = torch.rand(new long[] { 1, 3, 16, 16 }, generator: new Generator(12));
        foreach (var layer in new[] { "features.3", "features.5" })
            for (int c = 0; c < 10; c += 3)
            {
                using var r = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(c), new SaliencyOptions { SaliencyLayer = layer });
                // A one-hot EBP map of a bias-free model sums to 1 at any layer.
                Assert.AreEqual(1.0, r.Map.sum().item<float>(), 1e-4, $"class {c} at {layer}");
                Assert.IsTrue(r.Map.min().item<float>() >= 0, $"class {c} at {layer}: EBP is non-negative");
            }
    }

    [TestMethod]
    public void MismatchShowsExpectedAndFoundKeysSideBySide()
    {
        // The same weights saved from a model whose classifier had no dropout: classifier.3 is classifier.2 there.
        var sd = PyTorchStateDict();
        sd["classifier.2.weight"] = sd["classifier.3.weight"];
        sd["classifier.2.bias"] = sd["classifier.3.bias"];
        sd.Remove("classifier.3.weight");
        sd.Remove("classifier.3.bias");
        sd["features.0.bias"] = zeros(9);
        using var model = ModelSpec.Build(Spec);
        var e = Assert.ThrowsExactly<StateDictMismatchException>(() => WeightLoader.LoadStateDict(model, sd));
        // ArgumentException appends " (Parameter 'stateDict')" to the last line.
        var lines = e.Message.Replace(" (Parameter 'stateDict')", "").Split('\n').Select(l => l.TrimEnd()).ToList();
        int header = lines.FindIndex(l => l.Contains("Expected (model)") && l.Contains("Found (weights)"));
        Assert.IsGreaterThanOrEqualTo(0, header, e.Message);
        var table = lines.Skip(header + 1).Select(l => System.Text.RegularExpressions.Regex.Split(l.Trim(), @"\s{3,}")).ToList();
        CollectionAssert.AreEqual(new[] { "features.0.bias [8]", "features.0.bias [9]" }, table[0], e.Message);
        CollectionAssert.AreEqual(new[] { "classifier.3.weight [10, 32]", "classifier.2.weight [10, 32]" }, table[1], e.Message);
        CollectionAssert.AreEqual(new[] { "classifier.3.bias [10]", "classifier.2.bias [10]" }, table[2], e.Message);
        Assert.HasCount(3, table, e.Message);
    }

    [TestMethod]
    public void BadNamesAreRefusedWithTheirPlace()
    {
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ModelSpec.Build(
            """{"kind":"sequential","layers":[{"type":"sequential","name":"features","layers":[{"type":"relu","name":"a"},{"type":"relu","name":"a"}]}]}""")).Message,
            "the name \"a\" is used twice in sequential \"features\"");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ModelSpec.Build(
            """{"kind":"sequential","layers":[{"type":"relu","name":"a.b"}]}""")).Message, "without '.'");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ModelSpec.Build(
            """{"kind":"sequential","layers":[{"type":"sequential","name":"features","layers":[{"type":"conv9d"}]}]}""")).Message,
            "sequential layer features.0: unknown layer type \"conv9d\"");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ModelSpec.Build(
            """{"kind":"sequential","layers":[{"type":"sequential","name":"features","layers":[]}]}""")).Message,
            "sequential \"features\" must contain at least one layer");
    }
}
