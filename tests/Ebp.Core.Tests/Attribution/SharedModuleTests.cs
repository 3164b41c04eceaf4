using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Attribution;

/// <summary>
/// Issue 14, item 6: scopes on two top-level objects that share modules (a model and a Sequential wrapping it) take
/// turns, so neither sees the other's hooks or flags and the model ends as it was.
/// </summary>
[TestClass]
public sealed class SharedModuleTests
{
    [TestMethod]
    public void ModelAndASequentialWrappingIt_OnTwoThreads_EveryCallSucceeds_AndTheModelEndsAsItWas()
    {
        var model = TestModels.CnnWithBn(80);
        model.train();
        var wrapper = nn.Sequential(("net", model));
        using var x = TestModels.Image(81, 1, 3, 12, 12);
        using var snapshot = new ModelSnapshot(model, x);
        var direct = new SaliencyExplainer(model);
        var wrapped = new SaliencyExplainer(wrapper);
        var onModel = new SaliencyOptions { Method = SaliencyMethod.ContrastiveExcitationBackprop, SaliencyLayer = "3", ContrastLayer = "9" };
        var onWrapper = new SaliencyOptions { Method = SaliencyMethod.ContrastiveExcitationBackprop, SaliencyLayer = "net.3", ContrastLayer = "net.9" };
        using var expected = direct.Explain(x, SaliencyTarget.Class(1), onModel);
        using (var viaWrapper = wrapped.Explain(x, SaliencyTarget.Class(1), onWrapper))
            Assert.IsTrue(TestModels.Same(viaWrapper.Map, expected.Map), "the wrapper's map is the model's");

        var tally = new CallTally(expected.Map);
        using var start = new Barrier(2);
        var threads = new[] { (direct, onModel), (wrapped, onWrapper) }.Select(job => new Thread(() =>
        {
            start.SignalAndWait();
            for (int call = 0; call < 6; call++) tally.Run(() => job.Item1.Explain(x, SaliencyTarget.Class(1), job.Item2));
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        tally.AssertAll(12);
        snapshot.AssertUnchanged("after both threads");
        Assert.IsTrue(model.training);
    }

    [TestMethod]
    public void SessionOnTheModel_MakesAnExplainOfTheWrapperWait_AndOnItsOwnThreadFailsAtOnce()
    {
        var model = TestModels.CnnWithBn(82);
        var wrapper = nn.Sequential(("net", model));
        using var x = TestModels.Image(83, 1, 3, 12, 12);
        using var snapshot = new ModelSnapshot(model, x);
        var onWrapper = new SaliencyOptions { SaliencyLayer = "net.3" };
        var wrapped = new SaliencyExplainer(wrapper);
        using var expected = wrapped.Explain(x, SaliencyTarget.Class(2), onWrapper);

        var session = new SaliencyExplainer(model).OpenSession(new SaliencyOptions { SaliencyLayer = "3" });
        var ownThread = Assert.ThrowsExactly<InvalidOperationException>(() => wrapped.Explain(x, SaliencyTarget.Class(2), onWrapper));
        StringAssert.Contains(ownThread.Message, "SaliencySession");
        var other = OtherThread.Run(() =>
        {
            using var scope = torch.NewDisposeScope();
            using var r = wrapped.Explain(x, SaliencyTarget.Class(2), onWrapper);
            return TestModels.Same(r.Map, expected.Map);
        });
        Thread.Sleep(300);
        Assert.IsFalse(other.IsCompleted, "the wrapper's call waits while the session holds the model's modules");
        Assert.AreNotEqual(0, TestModels.HookCount(model));
        session.Dispose();
        Assert.IsTrue(other.Wait(TimeSpan.FromSeconds(30)), "the wrapper's call runs once the session is disposed");
        Assert.IsTrue(other.Result, "the wrapper's map after the session equals the one before");
        snapshot.AssertUnchanged("after the session and the wrapper's call");
    }
}
