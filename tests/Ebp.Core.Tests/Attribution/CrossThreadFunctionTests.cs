using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Attribution;

/// <summary>
/// TorchSharp keeps one process-wide list of live autograd nodes, which Ebp reads to find a user's autograd function in
/// a module's forward. A function run by another thread at the same moment (another model, another test) belongs to
/// that thread's call and must not be credited to this call's modules.
/// </summary>
[TestClass]
public sealed class CrossThreadFunctionTests
{
    [TestMethod]
    public void UserFunctionOnAnotherThread_IsNotCreditedToThisCall()
    {
        using var plain = TestModels.CnnWithBn(72);
        using var x = TestModels.Image(73, 1, 3, 12, 12);
        var options = new SaliencyOptions { Method = SaliencyMethod.ContrastiveExcitationBackprop, SaliencyLayer = "3", ContrastLayer = "9" };
        var explainer = new SaliencyExplainer(plain);
        using var expected = explainer.Explain(x, SaliencyTarget.Class(1), options);

        using var custom = CustomBackwardChild.Model(144);
        using var y = TestModels.Image(145, 1, 3, 6, 6);
        var customExplainer = new SaliencyExplainer(custom);
        var optedIn = new SaliencyOptions { PlainGradientLayers = new[] { "act" } };
        using var customExpected = customExplainer.Explain(y, SaliencyTarget.Class(1), optedIn);

        const int calls = 60;
        var tally = new CallTally(expected.Map);
        var customTally = new CallTally(customExpected.Map);
        using var start = new Barrier(3);
        var threads = new[]
        {
            // The user's function runs in every forward pass of this thread: its nodes appear while the other threads' modules run.
            new Thread(() => { start.SignalAndWait(); for (int i = 0; i < calls; i++) customTally.Run(() => customExplainer.Explain(y, SaliencyTarget.Class(1), optedIn)); }),
            new Thread(() => { start.SignalAndWait(); for (int i = 0; i < calls; i++) tally.Run(() => explainer.Explain(x, SaliencyTarget.Class(1), options)); }),
            new Thread(() =>
            {
                start.SignalAndWait();
                using var session = explainer.OpenSession(options);
                for (int i = 0; i < calls; i++) tally.Run(() => session.Explain(x, SaliencyTarget.Class(1)));
            }),
        };
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();

        tally.AssertAll(2 * calls);
        customTally.AssertAll(calls);
        Assert.AreEqual(0, TestModels.HookCount(plain));
        Assert.AreEqual(0, TestModels.HookCount(custom));
    }
}
