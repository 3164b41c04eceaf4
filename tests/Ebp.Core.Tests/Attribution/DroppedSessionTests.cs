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
        using var m = new ExplainedModel(90, Options, training: true);
        OpenAndDrop(m.Explainer, m.X);
        Assert.AreNotEqual(0, TestModels.HookCount(m.Model), "the dropped session's hooks are still on the model");
        Assert.IsFalse(m.Model.training);
        Collect();

        var other = OtherThread.Run(() =>
        {
            using var scope = torch.NewDisposeScope();
            using var r = m.Explainer.Explain(m.X, SaliencyTarget.Class(1), Options);
            return TestModels.Same(r.Map, m.Expected.Map);
        });
        Assert.IsTrue(other.Wait(TimeSpan.FromSeconds(20)), "the other thread's call must not wait for the dropped session");
        Assert.IsTrue(other.Result, "its map equals the one before the session");
        m.Snapshot.AssertUnchanged("after the dropped session was released");
        Assert.IsTrue(m.Model.training);
    }

    [TestMethod]
    public void DroppedSession_AfterCollection_TheSameThreadCanOpenANewSession_AndLoadWeights()
    {
        using var m = new ExplainedModel(92, Options);
        OpenAndDrop(m.Explainer, m.X);
        Collect();
        using (var session = m.Explainer.OpenSession(Options))
        using (var r = session.Explain(m.X, SaliencyTarget.Class(1)))
            Assert.IsTrue(TestModels.Same(r.Map, m.Expected.Map));
        m.Snapshot.AssertUnchanged("after a new session on the same thread");

        OpenAndDrop(m.Explainer, m.X);
        Collect();
        // Loading weights is refused while a session is open; a collected one no longer counts.
        WeightLoader.LoadStateDict(m.Model, m.Model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone()));
        m.Snapshot.AssertUnchanged("after loading the same weights");
    }

    [TestMethod]
    public void LiveSessionOnAnotherThread_MakesACallFailAfterTheTimeout_NamingWhereTheSessionWasOpened()
    {
        using var m = new ExplainedModel(94, Options);
        var impatient = new SaliencyExplainer(m.Model) { WaitTimeout = TimeSpan.FromMilliseconds(300) };
        using (var session = m.Explainer.OpenSession(Options))
        {
            var other = OtherThread.Run(() => impatient.Explain(m.X, SaliencyTarget.Class(1), Options));
            var ex = Assert.ThrowsExactly<TimeoutException>(() => other.GetAwaiter().GetResult());
            StringAssert.Contains(ex.Message, "SaliencySession");
            StringAssert.Contains(ex.Message, nameof(DroppedSessionTests) + ".cs:");
            StringAssert.Contains(ex.Message, "Dispose");
            using var r = session.Explain(m.X, SaliencyTarget.Class(1));
            Assert.IsTrue(TestModels.Same(r.Map, m.Expected.Map), "the session is unaffected by the caller that gave up");
        }
        m.Snapshot.AssertUnchanged("after the timeout and the session");
    }

    [TestMethod]
    public void OneOffCallLongerThanTheTimeout_IsWaitedFor_NotTimedOut()
    {
        using var m = new ExplainedModel(96, Options);
        using var installed = new ManualResetEventSlim();
        // The slow call holds the model well past the other caller's timeout: one-off calls always end, so it waits.
        var slow = new SaliencyExplainer(m.Model) { ScopeCreated = _ => { installed.Set(); Thread.Sleep(800); } };
        var impatient = new SaliencyExplainer(m.Model) { WaitTimeout = TimeSpan.FromMilliseconds(100) };
        var first = OtherThread.Run(() =>
        {
            using var scope = torch.NewDisposeScope();
            using var r = slow.Explain(m.X, SaliencyTarget.Class(1), Options);
            return TestModels.Same(r.Map, m.Expected.Map);
        });
        Assert.IsTrue(installed.Wait(TimeSpan.FromSeconds(20)));
        using (var r = impatient.Explain(m.X, SaliencyTarget.Class(1), Options))
            Assert.IsTrue(TestModels.Same(r.Map, m.Expected.Map));
        Assert.IsTrue(first.Wait(TimeSpan.FromSeconds(20)) && first.Result);
        m.Snapshot.AssertUnchanged("after both calls");
    }
}
