using Ebp.Models;
using Ebp.Weights;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Weights;

/// <summary>Issue 14, item 8: weights loaded while a session is open are refused, and load once it is closed.</summary>
[TestClass]
public sealed class SessionWeightLoadTests
{
    private const string Spec = """{"kind":"vgg","cfg":[8,"M",16,"M"],"batch_norm":false,"in_channels":3,"hidden":16,"num_classes":4,"pool_size":[1,1]}""";

    [TestMethod]
    public void LoadDuringAnOpenSessionIsRefusedAndTheSessionsMapsStayTheOldWeights()
    {
        using var model = TestModels.Reinitialise(ModelSpec.Build(Spec), seed: 80);
        using var other = TestModels.Reinitialise(ModelSpec.Build(Spec), seed: 81);
        string path = Path.Combine(Path.GetTempPath(), $"ebp-session-{Guid.NewGuid():N}.safetensors");
        other.save_safetensors(path);
        var newWeights = other.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
        try
        {
            using var x = TestModels.Image(82, 1, 3, 16, 16);
            var options = new SaliencyOptions { SaliencyLayer = "features.3" };
            var explainer = new SaliencyExplainer(model);
            using var before = explainer.Explain(x, SaliencyTarget.Class(1), options);
            var weightsBefore = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.bytes.ToArray());

            using (var session = explainer.OpenSession(options))
            {
                var e = Assert.ThrowsExactly<InvalidOperationException>(() => WeightLoader.Load(model, path));
                StringAssert.Contains(e.Message, "a SaliencySession is open");
                StringAssert.Contains(e.Message, path);
                // Into a submodule of the model in the session, and from a dictionary: refused as well.
                var sub = model.named_modules().Single(m => m.name == "classifier").module;
                StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(
                    () => WeightLoader.LoadStateDict(sub, sub.state_dict())).Message, "open on it (or on a model containing it)");
                Assert.ThrowsExactly<InvalidOperationException>(() => WeightLoader.LoadStateDict(model, newWeights));

                using var during = session.Explain(x, SaliencyTarget.Class(1));
                Assert.IsTrue(during.Map.allclose(before.Map, rtol: 1e-6, atol: 1e-8), "the session's map changed");
            }
            foreach (var (k, v) in model.state_dict())
                CollectionAssert.AreEqual(weightsBefore[k], v.bytes.ToArray(), $"{k} changed");

            // Closed: the load goes through and the maps follow the new weights.
            WeightLoader.Load(model, path);
            using var expected = new SaliencyExplainer(other).Explain(x, SaliencyTarget.Class(1), options);
            using var after = explainer.Explain(x, SaliencyTarget.Class(1), options);
            Assert.IsTrue(after.Map.allclose(expected.Map, rtol: 1e-5, atol: 1e-7));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
