using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Attribution;

/// <summary>The probe (issue 11): one public type that says where the signal is read, by name or by module reference.</summary>
[TestClass]
public sealed class SignalProbeTests
{
    [TestMethod]
    public void NamedProbe_ReadsOnlyItsLayers_TheSameSignalsAsCollectingEverything()
    {
        using var model = TestModels.CnnWithBn(80);
        using var x = TestModels.Image(81, 2, 3, 8, 8);
        var explainer = new SaliencyExplainer(model);
        var conv = model.named_modules().Single(m => m.name == "4").module;
        using var all = explainer.Explain(x, SaliencyTarget.Class(1), new SaliencyOptions { SaliencyLayer = "0", CollectSignals = true });
        using var allByProbe = explainer.Explain(x, SaliencyTarget.Class(1), new SaliencyOptions { SaliencyLayer = "0", Probe = SignalProbe.AllLayers });
        using var byName = explainer.Explain(x, SaliencyTarget.Class(1), new SaliencyOptions { SaliencyLayer = "0", Probe = SignalProbe.At("0", "4") });
        using var byRef = explainer.Explain(x, SaliencyTarget.Class(1), new SaliencyOptions { SaliencyLayer = "0", Probe = SignalProbe.At(model, conv) });

        CollectionAssert.AreEquivalent(all.Signals!.Keys.ToArray(), allByProbe.Signals!.Keys.ToArray());
        CollectionAssert.AreEquivalent(new[] { "0", "4" }, byName.Signals!.Keys.ToArray());
        CollectionAssert.AreEquivalent(new[] { "4" }, byRef.Signals!.Keys.ToArray());
        Assert.IsTrue(TestModels.Same(all.Signals["4"], byName.Signals["4"]));
        Assert.IsTrue(TestModels.Same(all.Signals["4"], byRef.Signals["4"]));
        Assert.IsTrue(TestModels.Same(all.Map, byName.Map), "probing changes nothing in the map");
        // The signal at the saliency layer is the map before the channel sum.
        using var channelSum = byName.Signals["0"].sum(1, keepdim: true);
        Assert.IsTrue((channelSum - byName.Map).abs().max().item<float>() <= 1e-6f * byName.Map.abs().max().item<float>());
        Assert.AreEqual(0, TestModels.HookCount(model));
    }

    [TestMethod]
    public void BadProbes_AreClearErrors()
    {
        using var model = TestModels.CnnWithBn(82);
        using var x = TestModels.Image(83, 1, 3, 8, 8);
        var explainer = new SaliencyExplainer(model);
        var unknown = Assert.Throws<ArgumentException>(() => explainer.Explain(x, SaliencyTarget.Class(0), new SaliencyOptions { Probe = SignalProbe.At("features.9") }));
        StringAssert.Contains(unknown.Message, "'features.9'");
        var below = Assert.Throws<ArgumentException>(() => explainer.Explain(x, SaliencyTarget.Class(0),
            new SaliencyOptions { SaliencyLayer = "4", Probe = SignalProbe.At("0", "8") }));
        StringAssert.Contains(below.Message, "'0'");
        StringAssert.Contains(below.Message, "received no signal");
        Assert.Throws<ArgumentException>(() => explainer.Explain(x, SaliencyTarget.Class(0),
            new SaliencyOptions { CollectSignals = true, Probe = SignalProbe.At("8") }));
        Assert.Throws<ArgumentException>(() => SignalProbe.At());
        Assert.Throws<ArgumentException>(() => SignalProbe.At(""));
        using var stranger = nn.Linear(2, 2);
        StringAssert.Contains(Assert.Throws<ArgumentException>(() => SignalProbe.At(model, stranger)).Message, "not a submodule");
        Assert.AreEqual(0, TestModels.HookCount(model));
    }

    [TestMethod]
    public void ProbeInASession_ReadsTheSameSignals()
    {
        using var model = TestModels.CnnWithBn(84);
        using var x = TestModels.Image(85, 1, 3, 8, 8);
        var options = new SaliencyOptions { SaliencyLayer = "0", Probe = SignalProbe.At("8") };
        var explainer = new SaliencyExplainer(model);
        using var once = explainer.Explain(x, SaliencyTarget.Class(2), options);
        using (var session = explainer.OpenSession(options))
        {
            using var inSession = session.Explain(x, SaliencyTarget.Class(2));
            Assert.IsTrue(TestModels.Same(once.Signals!["8"], inSession.Signals!["8"]));
        }
    }
}
