using System.Runtime.CompilerServices;
using Ebp.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Attribution;

/// <summary>
/// Issue 14, item 7: a session that is never disposed must not hold the model forever: once it is collected the next
/// Ebp call releases it, and while it is alive other threads fail after a timeout naming it.
/// </summary>
[TestClass]
public sealed class DroppedSessionTests
{
    private static readonly SaliencyOptions Options = new() { SaliencyLayer = "3" };

    /// <summary>Opens a session, uses it once and drops it; not inlined, so that nothing in the caller keeps it alive.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void OpenAndDrop(SaliencyExplainer explainer, Tensor x)
    {
        var session = explainer.OpenSession(Options);
        using var scope = torch.NewDisposeScope();
        session.Explain(x, SaliencyTarget.Class(1));
    }

    private static void Collect()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    [TestMethod]
    public void DroppedSession_AfterCollection_AnotherThreadExplains_AndTheModelEndsAsItWas()
    {
        using var model = TestModels.CnnWithBn(90);
        model.train();
        using var x = TestModels.Image(91, 1, 3, 12, 12);
        using var snapshot = new ModelSnapshot(model, x);
        var explainer = new SaliencyExplainer(model);
        using var expected = explainer.Explain(x, SaliencyTarget.Class(1), Options);

        OpenAndDrop(explainer, x);
        Assert.AreNotEqual(0, TestModels.HookCount(model), "the dropped session's hooks are still on the model");
        Assert.IsFalse(model.training);
        Collect();

        var other = OtherThread.Run(() =>
        {
            using var scope = torch.NewDisposeScope();
            using var r = explainer.Explain(x, SaliencyTarget.Class(1), Options);
            return TestModels.Same(r.Map, expected.Map);
        });
        Assert.IsTrue(other.Wait(TimeSpan.FromSeconds(20)), "the other thread's call must not wait for the dropped session");
        Assert.IsTrue(other.Result, "its map equals the one before the session");
        snapshot.AssertUnchanged("after the dropped session was released");
        Assert.IsTrue(model.training);
    }

    [TestMethod]
    public void DroppedSession_AfterCollection_TheSameThreadCanOpenANewSession_AndLoadWeights()
    {
        using var model = TestModels.CnnWithBn(92);
        using var x = TestModels.Image(93, 1, 3, 12, 12);
        using var snapshot = new ModelSnapshot(model, x);
        var explainer = new SaliencyExplainer(model);
        using var expected = explainer.Explain(x, SaliencyTarget.Class(1), Options);

        OpenAndDrop(explainer, x);
        Collect();
        using (var session = explainer.OpenSession(Options))
        using (var r = session.Explain(x, SaliencyTarget.Class(1)))
            Assert.IsTrue(TestModels.Same(r.Map, expected.Map));
        snapshot.AssertUnchanged("after a new session on the same thread");

        OpenAndDrop(explainer, x);
        Collect();
        // Loading weights is refused while a session is open; a collected one no longer counts.
        WeightLoader.LoadStateDict(model, model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone()));
        snapshot.AssertUnchanged("after loading the same weights");
    }

    [TestMethod]
    public void LiveSessionOnAnotherThread_MakesACallFailAfterTheTimeout_NamingWhereTheSessionWasOpened()
    {
        using var model = TestModels.CnnWithBn(94);
        using var x = TestModels.Image(95, 1, 3, 12, 12);
        using var snapshot = new ModelSnapshot(model, x);
        var explainer = new SaliencyExplainer(model);
        var impatient = new SaliencyExplainer(model) { WaitTimeout = TimeSpan.FromMilliseconds(300) };
        using (var session = explainer.OpenSession(Options))
        {
            var other = OtherThread.Run(() => impatient.Explain(x, SaliencyTarget.Class(1), Options));
            var ex = Assert.ThrowsExactly<TimeoutException>(() => other.GetAwaiter().GetResult());
            StringAssert.Contains(ex.Message, "SaliencySession");
            StringAssert.Contains(ex.Message, nameof(DroppedSessionTests) + ".cs:");
            StringAssert.Contains(ex.Message, "Dispose");
            using var r = session.Explain(x, SaliencyTarget.Class(1));
        }
        snapshot.AssertUnchanged("after the timeout and the session");
    }
}
