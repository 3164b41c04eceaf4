using Ebp.Conformance;
using Ebp.Models;
using Ebp.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Onnx.Tests;

/// <summary>Maps of an imported model against the same weights in Ebp's own zoo model, and the reference vectors.</summary>
[TestClass]
public sealed class SaliencyEqualityTests
{
    private static nn.Module<Tensor, Tensor> ZooTwin(OnnxModel onnx, nn.Module<Tensor, Tensor> zoo)
    {
        // The same weights, by name: the importer keeps PyTorch's state_dict names.
        var state = onnx.Module.state_dict();
        var wanted = zoo.state_dict().Keys.Where(k => !k.EndsWith("num_batches_tracked")).ToList();
        var dict = wanted.ToDictionary(k => k, k => state[k]);
        WeightLoader.LoadStateDict(zoo, dict, strict: false);
        zoo.eval();
        return zoo;
    }

    [TestMethod]
    [DataRow("vgg_bn.onnx", "features.7", "classifier.4")]
    [DataRow("vgg_bn.onnx", "features.2", "classifier.1")]
    [DataRow("vgg_bn.onnx", "features.10", "avgpool")]
    [DataRow("resnet_basic.onnx", "layer3", "avgpool")]
    [DataRow("resnet_basic.onnx", "layer2", "layer4")]
    [DataRow("resnet_basic.onnx", "layer1.0.conv1", "layer3")]
    [DataRow("resnet_bottleneck.onnx", "layer2", "avgpool")]
    public void MapsEqualTheZooModel(string fixture, string saliency, string contrast)
    {
        using var scope = torch.NewDisposeScope();
        using var onnx = OnnxModel.Load(Fixtures.Path(fixture));
        using var zoo = ZooTwin(onnx, fixture switch
        {
            "vgg_bn.onnx" => new Vgg(new VggConfig([8, "M", 16, "M", 32, 32, "M"], true, 3, 32, 10, 2, 2)),
            "resnet_basic.onnx" => new ResNet(new ResNetConfig(ResNetBlock.Basic, [1, 1, 1, 1], 8, 10)),
            _ => new ResNet(new ResNetConfig(ResNetBlock.Bottleneck, [2, 1, 1, 1], 8, 10)),
        });
        var input = torch.rand(onnx.InputShape.ToArray(), generator: new Generator(99));
        var methods = new[]
        {
            new SaliencyOptions { SaliencyLayer = saliency },
            new SaliencyOptions { Method = SaliencyMethod.ContrastiveExcitationBackprop, SaliencyLayer = saliency, ContrastLayer = contrast },
            new SaliencyOptions { Method = SaliencyMethod.Gradient, SaliencyLayer = saliency },
        };
        foreach (var options in methods)
        {
            using var a = new SaliencyExplainer(onnx.Module).Explain(input, SaliencyTarget.Class(3), options);
            using var e = new SaliencyExplainer(zoo).Explain(input, SaliencyTarget.Class(3), options);
            double err = Fixtures.RelativeError(a.Map, e.Map);
            Assert.IsTrue(err <= 1e-5, $"{fixture} {options.Method} at {saliency}: rel err {err:E2}");
            Assert.IsTrue(e.Map.abs().max().item<float>() > 0, "a zero map proves nothing");
        }
    }

    [TestMethod]
    public void ElementwiseProductOfActivationsIsTheEnginesUnsupportedLayer()
    {
        using var scope = torch.NewDisposeScope();
        using var onnx = OnnxModel.Load(Fixtures.Path("squeeze_excite.onnx"));
        var explainer = new SaliencyExplainer(onnx.Module);
        var input = torch.rand(1, 3, 16, 16);
        var ex = Assert.ThrowsExactly<UnsupportedLayerException>(() => explainer.Explain(input, SaliencyTarget.Class(0)));
        StringAssert.Contains(ex.Message, "Mul");
        using var plain = explainer.Explain(input, SaliencyTarget.Class(0), new SaliencyOptions { PlainGradientForUnsupportedLayers = true });
        Assert.IsTrue(plain.Map.isfinite().all().item<bool>());
    }

    public static IEnumerable<object[]> ReferenceCases() =>
        Directory.GetFiles(Fixtures.Path("reference"), "*.onnx").Select(f => new object[] { System.IO.Path.GetFileNameWithoutExtension(f) });

    [TestMethod]
    [DynamicData(nameof(ReferenceCases))]
    public void ExportedReferenceModelsReproduceTheirVectors(string name)
    {
        using var scope = torch.NewDisposeScope();
        var folder = Fixtures.Path("reference-vectors");
        var c = ConformanceCase.Load(System.IO.Path.Combine(folder, "cases.json")).Single(k => k.Name == name);
        var tensors = WeightLoader.ReadSafetensors(System.IO.Path.Combine(folder, c.File));
        using var onnx = OnnxModel.Load(Fixtures.Path($"reference/{name}.onnx"));
        var method = c.SaliencyMethod!.Value;
        var options = new SaliencyOptions
        {
            Method = method,
            SaliencyLayer = c.SaliencyLayer,
            ContrastLayer = method == SaliencyMethod.ContrastiveExcitationBackprop ? c.ContrastLayer : null,
            ClassifierLayer = method == SaliencyMethod.ContrastiveExcitationBackprop ? c.ClassifierLayer : null,
            Resize = c.Resize,
            ResizeMode = c.ResizeMode,
        };
        var target = SaliencyTarget.Classes(tensors["target"].data<long>().Select(v => (int)v).ToArray());
        using var result = new SaliencyExplainer(onnx.Module).Explain(tensors["input"], target, options);
        CollectionAssert.AreEqual(tensors["expected"].shape, result.Map.shape);
        double err = Fixtures.RelativeError(result.Map, tensors["expected"]);
        Assert.IsTrue(err <= c.RtolOfMax, $"{name}: {err:E2}");
        foreach (var t in tensors.Values) t.Dispose();
    }
}
