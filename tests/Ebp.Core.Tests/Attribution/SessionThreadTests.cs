using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Attribution;

/// <summary>Issue 14, item 5: calls on one session from several threads are serialised, like one-off calls.</summary>
[TestClass]
public sealed class SessionThreadTests
{
    [TestMethod]
    public void OneSession_FourThreads_EveryCallSucceeds_AndEqualsTheSequentialMap()
    {
        using var model = TestModels.CnnWithBn(70);
        using var x = TestModels.Image(71, 1, 3, 12, 12);
        var explainer = new SaliencyExplainer(model);
        var options = new SaliencyOptions { Method = SaliencyMethod.ContrastiveExcitationBackprop, SaliencyLayer = "3", ContrastLayer = "9" };
        using var expected = explainer.Explain(x, SaliencyTarget.Class(1), options);

        var tally = new CallTally(expected.Map);
        using (var session = explainer.OpenSession(options))
        {
            using var start = new Barrier(4);
            var threads = Enumerable.Range(0, 4).Select(_ => new Thread(() =>
            {
                start.SignalAndWait();
                for (int call = 0; call < 3; call++) tally.Run(() => session.Explain(x, SaliencyTarget.Class(1)));
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
        }
        tally.AssertAll(12); // no failure, and all 12 maps equal to the sequential one
        Assert.AreEqual(0, TestModels.HookCount(model));
    }
}
