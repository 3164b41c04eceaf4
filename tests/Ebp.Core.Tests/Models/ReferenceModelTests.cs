using System.Text.Json;
using Ebp.Models;
using Ebp.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Models;

/// <summary>Every reference case's model builds from its spec and takes its weights with strict key matching.</summary>
[TestClass]
public sealed class ReferenceModelTests
{
    private static bool BitEqual(Tensor a, Tensor b) =>
        a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.contiguous().bytes.SequenceEqual(b.contiguous().bytes);

    internal static string ReferenceDir => Path.Combine(AppContext.BaseDirectory, "TestData", "reference");

    public static IEnumerable<object[]> Cases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(ReferenceDir, "cases.json")));
        foreach (var c in doc.RootElement.EnumerateArray())
            yield return [c.GetProperty("name").GetString()!, c.GetProperty("file").GetString()!, c.GetProperty("model").GetRawText()];
    }

    [TestMethod]
    public void AllNineteenCasesAreListed() => Assert.AreEqual(19, Cases().Count());

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void CaseModelLoadsStrictlyAndRunsFinite(string name, string file, string modelJson)
    {
        using var model = ModelSpec.Build(modelJson);
        string path = Path.Combine(ReferenceDir, file);
        var result = WeightLoader.Load(model, path, prefix: "model.", strict: true);

        // Every key except the BatchNorm counters (not stored in the vectors) was loaded.
        var sd = model.state_dict();
        Assert.AreEqual(sd.Count, result.LoadedKeys.Count + result.MissingKeys.Count);
        Assert.IsTrue(result.MissingKeys.All(k => k.EndsWith("num_batches_tracked", StringComparison.Ordinal)), name);
        Assert.AreEqual(0, result.UnexpectedKeys.Count);

        using var tensors = WeightLoader.ReadSafetensors(path);
        foreach (var key in result.LoadedKeys)
            Assert.IsTrue(BitEqual(sd[key], tensors["model." + key]), $"{name}: {key} not copied");

        var input = tensors["input"];
        using var output = model.call(input);
        Assert.AreEqual(2, output.dim(), name);
        Assert.AreEqual(input.shape[0], output.shape[0], name);
        Assert.IsTrue(isfinite(output).all().item<bool>(), $"{name}: non-finite output");
        if (tensors.TryGetValue("target_gradient", out var tg))
            CollectionAssert.AreEqual(tg.shape, output.shape, name);
    }
}
