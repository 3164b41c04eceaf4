using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Attribution;

/// <summary>
/// Issue 14, item 9: a plain forward pass through the model on another thread while Ebp's rules are installed makes
/// the Ebp call fail naming that cause (not a misleading layer or shape error), and leaves the model as it was.
/// </summary>
[TestClass]
public sealed class ForeignForwardTests
{
    private const string Cause = "the model is running outside Ebp on another thread";

    [TestMethod]
    public void PlainForwardOnAnotherThread_DuringTheEbpForward_FailsBothNamingTheCause()
    {
        var options = new SaliencyOptions { SaliencyLayer = "3" };
        using var m = new ExplainedModel(100, options);
        var (model, x) = (m.Model, m.X);

        // The user's own hook on layer 8 starts a plain forward pass on another thread in the middle of Ebp's pass.
        var layer = (nn.Module<Tensor, Tensor>)model.named_modules().Single(n => n.name == "8").module;
        int started = 0;
        Exception? plainError = null;
        var userHook = layer.register_forward_hook((_, _, output) =>
        {
            if (Interlocked.Exchange(ref started, 1) == 0)
            {
                var plain = new Thread(() =>
                {
                    try
                    {
                        using var _ = torch.no_grad();
                        model.call(x).Dispose();
                    }
                    catch (Exception e) { plainError = e; }
                });
                plain.Start();
                plain.Join();
            }
            return output;
        });
        var ex = Assert.ThrowsExactly<InvalidOperationException>(() => m.Explainer.Explain(x, SaliencyTarget.Class(1), options));
        StringAssert.Contains(ex.Message, Cause);
        Assert.IsInstanceOfType<InvalidOperationException>(plainError, "the plain forward pass fails too, rather than run on Ebp's hooks");
        StringAssert.Contains(plainError!.Message, "Ebp");
        userHook.remove();

        m.Snapshot.AssertUnchanged("after the failed call");
        using var again = m.Explainer.Explain(x, SaliencyTarget.Class(1), options);
        Assert.IsTrue(TestModels.Same(again.Map, m.Expected.Map), "the next call gives the sequential map");
    }

    [TestMethod]
    public void PlainForwardsOnAnotherThread_BesideTwelveExplainCalls_EachCallSucceedsOrNamesTheCause()
    {
        var options = new SaliencyOptions { Method = SaliencyMethod.ContrastiveExcitationBackprop, SaliencyLayer = "3", ContrastLayer = "9" };
        using var m = new ExplainedModel(102, options);
        var (model, x) = (m.Model, m.X);
        Tensor reference;
        using (torch.no_grad()) reference = model.call(x).detach().clone();

        var tally = new CallTally(m.Expected.Map, e => e is InvalidOperationException && e.Message.Contains(Cause));
        int done = 0;
        var ebp = new Thread(() =>
        {
            for (int call = 0; call < 12; call++) tally.Run(() => m.Explainer.Explain(x, SaliencyTarget.Class(1), options));
            Volatile.Write(ref done, 1);
        });
        var plain = new Thread(() =>
        {
            for (int i = 0; i < 20000 && Volatile.Read(ref done) == 0; i++)
            {
                try
                {
                    using var scope = torch.NewDisposeScope();
                    using var _ = torch.no_grad();
                    var y = model.call(x);
                    if ((y - reference).abs().max().item<float>() > 1e-5f) tally.Wrong("a plain forward pass gave another output");
                }
                catch (Exception) { } // refused while Ebp holds the model: allowed, an output that differs is not
            }
        });
        ebp.Start();
        plain.Start();
        ebp.Join();
        plain.Join();

        tally.AssertAll(12);
        m.Snapshot.AssertUnchanged("after both threads");
        reference.Dispose();
    }
}
