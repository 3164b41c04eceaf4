using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Attribution;

/// <summary>Each bad input: a clear exception naming the problem, and the model exactly as before.</summary>
[TestClass]
public sealed class BadInputTests
{
    internal static void AssertUntouched(nn.Module<Tensor, Tensor> model, Tensor x, Tensor before)
    {
        Assert.AreEqual(0, TestModels.HookCount(model), "hooks removed");
        Assert.IsFalse(model.training, "mode restored (eval before the call)");
        Assert.IsTrue(model.parameters().All(p => p.requires_grad), "requires_grad restored");
        Assert.IsTrue(before.isfinite().all().item<bool>(), "the test model's own output is finite");
        using var after = model.call(x);
        Assert.IsTrue(TestModels.Same(after, before),
            $"outputs unchanged; got [{string.Join(", ", after.data<float>().ToArray())}], before [{string.Join(", ", before.data<float>().ToArray())}]");
    }

    private static T Check<T>(Func<nn.Module<Tensor, Tensor>, Tensor, object> call, string expectedFragment) where T : Exception
    {
        using var model = TestModels.CnnWithBn(30);
        model.eval();
        using var x = TestModels.Image(31, 1, 3, 12, 12);
        using var before = model.call(x).detach().clone();
        var ex = Assert.Throws<T>(() => call(model, x));
        StringAssert.Contains(ex.Message, expectedFragment);
        AssertUntouched(model, x, before);
        return ex;
    }

    [TestMethod]
    public void UnknownLayerName() => Check<ArgumentException>((m, x) =>
        new SaliencyExplainer(m).Explain(x, SaliencyTarget.Class(0), new SaliencyOptions { SaliencyLayer = "features.99" }), "'features.99'");

    [TestMethod]
    public void SaliencyLayerAboveContrastLayer() => Check<ArgumentException>((m, x) =>
        new SaliencyExplainer(m).Explain(x, SaliencyTarget.Class(0), new SaliencyOptions
        { Method = SaliencyMethod.ContrastiveExcitationBackprop, SaliencyLayer = "9", ContrastLayer = "4" }), "must lie below the contrast layer");

    [TestMethod]
    public void ContrastAboveClassifier() => Check<ArgumentException>((m, x) =>
        new SaliencyExplainer(m).Explain(x, SaliencyTarget.Class(0), new SaliencyOptions
        { Method = SaliencyMethod.ContrastiveExcitationBackprop, SaliencyLayer = "2", ContrastLayer = "9", ClassifierLayer = "8" }), "must lie above the contrast layer");

    [TestMethod]
    public void TargetOutOfRange()
    {
        var ex = Check<ArgumentOutOfRangeException>((m, x) => new SaliencyExplainer(m).Explain(x, SaliencyTarget.Class(4)), "0..3");
        StringAssert.Contains(ex.Message, "4 classes");
    }

    [TestMethod]
    public void WrongNumberOfTargets() => Check<ArgumentException>((m, x) =>
        new SaliencyExplainer(m).Explain(x, SaliencyTarget.Classes(0, 1)), "batch of 1");

    [TestMethod]
    public void WrongInputRank() => Check<ArgumentException>((m, x) =>
        new SaliencyExplainer(m).Explain(x[0], SaliencyTarget.Class(0)), "rank 3");

    [TestMethod]
    public void WrongChannelCount() => Check<ArgumentException>((m, x) =>
        new SaliencyExplainer(m).Explain(torch.rand(1, 4, 12, 12), SaliencyTarget.Class(0)), "4 channels");

    [TestMethod]
    public void NaNInInput() => Check<ArgumentException>((m, x) =>
    {
        var bad = x.clone();
        bad[0, 1, 2, 3] = float.NaN;
        return new SaliencyExplainer(m).Explain(bad, SaliencyTarget.Class(0));
    }, "NaN");

    [TestMethod]
    public void SeedOfWrongShape() => Check<ArgumentException>((m, x) =>
        new SaliencyExplainer(m).Explain(x, SaliencyTarget.Seed(torch.ones(1, 5))), "[1, 4]");

    [TestMethod]
    public void ContrastiveWithoutContrastLayer() => Check<ArgumentException>((m, x) =>
        new SaliencyExplainer(m).Explain(x, SaliencyTarget.Class(0), new SaliencyOptions { Method = SaliencyMethod.ContrastiveExcitationBackprop }), "ContrastLayer");

    [TestMethod]
    public void UnsupportedLayerInPath_NamesTheLayer_UnlessOptedIn()
    {
        // Weights from a private generator: the global one (torch.manual_seed) is shared with tests running in parallel.
        using var model = TestModels.Reinitialise(nn.Sequential(
            ("conv", nn.Conv2d(3, 4, 3, padding: 1)),
            ("norm", nn.GroupNorm(2, 4)),
            ("up", nn.ConvTranspose2d(4, 4, 2, stride: 2)),
            ("relu", nn.ReLU()),
            ("pool", nn.AdaptiveAvgPool2d(1)),
            ("flat", nn.Flatten()),
            ("fc", nn.Linear(4, 3))), 32);
        model.eval();
        using var x = TestModels.Image(33, 1, 3, 8, 8);
        using var before = model.call(x).detach().clone();
        var explainer = new SaliencyExplainer(model);

        var ex = Assert.Throws<UnsupportedLayerException>(() => explainer.Explain(x, SaliencyTarget.Class(0)));
        Assert.AreEqual("norm", ex.LayerName);
        StringAssert.Contains(ex.Message, "GroupNorm");
        AssertUntouched(model, x, before);

        ex = Assert.Throws<UnsupportedLayerException>(() => explainer.Explain(x, SaliencyTarget.Class(0),
            new SaliencyOptions { PlainGradientLayers = new[] { "norm" } }));
        Assert.AreEqual("up", ex.LayerName);

        // Above the unsupported layers nothing is in the way.
        using (var ok = explainer.Explain(x, SaliencyTarget.Class(0), new SaliencyOptions { SaliencyLayer = "up" }))
            Assert.IsTrue(ok.Map.isfinite().all().item<bool>());
        // Opted in: their ordinary gradient passes.
        using (var ok = explainer.Explain(x, SaliencyTarget.Class(0), new SaliencyOptions { PlainGradientForUnsupportedLayers = true }))
            CollectionAssert.AreEqual(new long[] { 1, 1, 8, 8 }, ok.Map.shape);
        AssertUntouched(model, x, before);
    }
}
