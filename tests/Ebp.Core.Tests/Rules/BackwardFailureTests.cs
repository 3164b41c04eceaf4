using Ebp.Rules;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Rules;

/// <summary>
/// TorchSharp aborts the process when a custom backward throws. A failing rule must therefore return
/// zeros, and the failure must reach the caller afterwards as an exception naming the layer.
/// </summary>
[TestClass]
public sealed class BackwardFailureTests
{
    [TestMethod]
    public void FailingRule_IsRethrownWithTheLayerName_AndTheModelIsRestored()
    {
        using var model = TestModels.CnnWithBn(40);
        model.eval();
        using var x = TestModels.Image(41, 1, 3, 12, 12);
        using var before = model.call(x).detach().clone();
        var explainer = new SaliencyExplainer(model)
        {
            // Z that does not depend on the layer input: autograd.grad inside the rule's backward fails.
            ScopeCreated = scope => scope.RuleOverride = m => ReferenceEquals(m, model.named_modules().Single(n => n.name == "8").module)
                ? new ExcitationRule(input => input.detach().sum(1, keepdim: true).expand(-1, 12), null)
                : null,
        };
        var ex = Assert.Throws<EbpRuleException>(() => explainer.Explain(x, SaliencyTarget.Class(1)));
        Assert.AreEqual("8", ex.LayerName);
        StringAssert.Contains(ex.Message, "layer '8'");
        Assert.IsNotNull(ex.InnerException);

        Assert.AreEqual(0, TestModels.HookCount(model));
        Assert.IsFalse(model.training);
        Assert.IsTrue(model.parameters().All(p => p.requires_grad));
        using var after = model.call(x);
        Assert.IsTrue(TestModels.Same(after, before));

        // The same explainer works again once the seam is gone.
        explainer.ScopeCreated = null;
        using var ok = explainer.Explain(x, SaliencyTarget.Class(1));
        Assert.IsTrue(ok.Map.isfinite().all().item<bool>());
    }
}
