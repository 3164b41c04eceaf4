using Ebp.Rules;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Attribution;

/// <summary>Issue 11 / issue 14 item 4: one failing call must not poison a session.</summary>
[TestClass]
public sealed class SessionRecoveryTests
{
    [TestMethod]
    public void Session_AfterOneRuleFailure_GivesTheMapOfASingleCall()
    {
        using var model = TestModels.CnnWithBn(60);
        using var x = TestModels.Image(61, 1, 3, 12, 12);
        var options = new SaliencyOptions { SaliencyLayer = "3" };
        using var expected = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(1), options);

        bool fail = true;
        var layer = model.named_modules().Single(n => n.name == "8").module;
        var linear = (TorchSharp.Modules.Linear)layer;
        var explainer = new SaliencyExplainer(model)
        {
            // While `fail` is set, Z does not depend on the layer input and the rule's backward fails;
            // afterwards it is the ordinary W⁺ rule of the layer.
            ScopeCreated = scope => scope.RuleOverride = m => ReferenceEquals(m, layer)
                ? new ExcitationRule(input => fail
                    ? input.detach().sum(1, keepdim: true).expand(-1, linear.weight!.shape[0])
                    : nn.functional.linear(input, linear.weight!.detach().clamp_min(0)), null)
                : null,
        };
        using var session = explainer.OpenSession(options);
        var ex = Assert.Throws<EbpRuleException>(() => session.Explain(x, SaliencyTarget.Class(1)));
        Assert.AreEqual("8", ex.LayerName);

        fail = false;
        using var recovered = session.Explain(x, SaliencyTarget.Class(1));
        Assert.AreEqual(0.0, (recovered.Map - expected.Map).abs().max().item<float>(), 1e-6);
        using var again = session.Explain(x, SaliencyTarget.Class(1));
        Assert.IsTrue(TestModels.Same(again.Map, recovered.Map));
    }
}
