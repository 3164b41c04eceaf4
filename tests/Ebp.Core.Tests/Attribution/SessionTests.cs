using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Attribution;

[TestClass]
public sealed class SessionTests
{
    [TestMethod]
    public void Session_GivesTheSameMapsAsSingleCalls_AndRestoresTheModel()
    {
        using var model = TestModels.CnnWithBn(50);
        model.train();
        using var x1 = TestModels.Image(51, 2, 3, 12, 12);
        using var x2 = TestModels.Image(52, 1, 3, 12, 12);
        var explainer = new SaliencyExplainer(model);
        var options = new SaliencyOptions { Method = SaliencyMethod.ContrastiveExcitationBackprop, SaliencyLayer = "3", ContrastLayer = "9" };
        using var single1 = explainer.Explain(x1, SaliencyTarget.Classes(0, 2), options);
        using var single2 = explainer.Explain(x2, SaliencyTarget.Predicted, options);
        Assert.IsTrue(model.training);

        using (var session = explainer.OpenSession(options))
        {
            Assert.IsFalse(model.training, "eval mode while the session is open");
            Assert.ThrowsExactly<InvalidOperationException>(() => explainer.Explain(x1, SaliencyTarget.Class(0), options));
            for (int round = 0; round < 2; round++)
            {
                using var a = session.Explain(x1, SaliencyTarget.Classes(0, 2));
                using var b = session.Explain(x2, SaliencyTarget.Predicted);
                Assert.IsTrue(TestModels.Same(a.Map, single1.Map), $"round {round}, batch of 2");
                Assert.IsTrue(TestModels.Same(b.Map, single2.Map), $"round {round}, batch of 1");
            }
        }
        Assert.AreEqual(0, TestModels.HookCount(model));
        Assert.IsTrue(model.training);
        Assert.IsTrue(model.parameters().All(p => p.requires_grad));
        using var again = explainer.Explain(x2, SaliencyTarget.Predicted, options);
        Assert.IsTrue(TestModels.Same(again.Map, single2.Map));
    }

    [TestMethod]
    public void Session_OnOtherThread_MakesOtherCallersWait()
    {
        using var model = TestModels.CnnWithBn(53);
        using var x = TestModels.Image(54, 1, 3, 12, 12);
        var explainer = new SaliencyExplainer(model);
        var session = explainer.OpenSession(new SaliencyOptions { SaliencyLayer = "3" });
        var other = Task.Run(() =>
        {
            using var scope = torch.NewDisposeScope();
            using var r = explainer.Explain(x, SaliencyTarget.Class(1), new SaliencyOptions { SaliencyLayer = "3" });
            return r.Map.sum().item<float>();
        });
        Thread.Sleep(200);
        Assert.IsFalse(other.IsCompleted, "waits while the session holds the model");
        session.Dispose();
        Assert.IsTrue(float.IsFinite(other.Result));
    }
}
