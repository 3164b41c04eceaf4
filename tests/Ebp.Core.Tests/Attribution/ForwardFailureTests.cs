using Ebp.Rules;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Attribution;

/// <summary>A module whose own code fails, as a user's layer with a bug would.</summary>
internal sealed class FailingLayer : nn.Module<Tensor, Tensor>
{
    public FailingLayer() : base(nameof(FailingLayer)) { }
    public override Tensor forward(Tensor x) => throw new NotImplementedException();
}

/// <summary>A model whose own forward fails outside its submodules.</summary>
internal sealed class BadReshapeNet : nn.Module<Tensor, Tensor>
{
    public readonly TorchSharp.Modules.Linear fc = nn.Linear(3, 4);
    public BadReshapeNet() : base(nameof(BadReshapeNet)) => RegisterComponents();
    public override Tensor forward(Tensor x) => fc.call(x).reshape(-1, 3);
}

/// <summary>
/// Issue 14, items 11 and 12: a model that fails inside its forward is reported with the layer that failed (its
/// state_dict name and type) and the layer's own error as the inner exception, without libtorch's backtrace; the
/// bare "not implemented" or "Tensor invalid" texts never reach the caller alone; the model is left as it was.
/// </summary>
[TestClass]
public sealed class ForwardFailureTests
{
    private static ModelForwardException AssertForwardFailure(nn.Module<Tensor, Tensor> model, Tensor x, string layer, string type)
    {
        model.eval();
        var ex = Assert.Throws<ModelForwardException>(() => new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(0)));
        Assert.AreEqual(layer, ex.LayerName);
        Assert.AreEqual(type, ex.LayerType);
        StringAssert.Contains(ex.Message, layer.Length == 0 ? $"the model's own forward ({type})" : $"layer '{layer}' ({type})");
        StringAssert.Contains(ex.Message, "does not fit the model");
        Assert.IsNotNull(ex.InnerException);
        StringAssert.Contains(ex.Message, SaliencyExplainer.WithoutNativeBacktrace(ex.InnerException.Message));
        Assert.IsFalse(ex.Message.Contains("frame #") || ex.Message.Contains("Exception raised from"), ex.Message);
        Assert.AreEqual(0, TestModels.HookCount(model), "hooks removed");
        Assert.IsTrue(model.parameters().All(p => p.requires_grad), "requires_grad restored");
        return ex;
    }

    [TestMethod]
    public void NativeFailureInALayer_NamesTheLayer()
    {
        using var model = TestModels.BiasFreeCnn(120);
        using var x = TestModels.Image(121, 1, 3, 1, 1); // MaxPool2d(2) at "2" cannot pool a 1×1 map
        var ex = AssertForwardFailure(model, x, "2", "MaxPool2d");
        StringAssert.Contains(ex.InnerException!.Message, "frame #", "libtorch's full text stays in the inner exception");
    }

    [TestMethod]
    public void ManagedFailureInANestedLayer_NamesItsQualifiedName_AndKeepsTheError()
    {
        using var model = TestModels.Reinitialise(nn.Sequential(
            ("body", nn.Sequential(("conv", nn.Conv2d(3, 4, 3, padding: 1)), ("bad", new FailingLayer()))),
            ("flat", nn.Flatten()), ("fc", nn.Linear(64, 2))), 122);
        using var x = TestModels.Image(123, 1, 3, 4, 4);
        var ex = AssertForwardFailure(model, x, "body.bad", "FailingLayer");
        Assert.IsInstanceOfType<NotImplementedException>(ex.InnerException);
        StringAssert.Contains(ex.Message, "NotImplementedException");
    }

    [TestMethod]
    public void FailureInTheModelsOwnCode_NamesTheModel()
    {
        using var model = TestModels.Reinitialise(new BadReshapeNet(), 124);
        using var x = TestModels.Image(125, 1, 3);
        AssertForwardFailure(model, x, "", nameof(BadReshapeNet));
    }

    [TestMethod]
    public void RuleFailingInTheForwardPass_IsARuleErrorNamingTheLayer()
    {
        using var model = TestModels.CnnWithBn(126);
        model.eval();
        using var x = TestModels.Image(127, 1, 3, 12, 12);
        using var before = model.call(x).detach().clone();
        var explainer = new SaliencyExplainer(model)
        {
            ScopeCreated = scope => scope.RuleOverride = m => m is TorchSharp.Modules.Linear
                ? new ExcitationRule(_ => throw new InvalidOperationException("no Z here"), null)
                : null,
        };
        var ex = Assert.Throws<EbpRuleException>(() => explainer.Explain(x, SaliencyTarget.Class(0)));
        Assert.AreEqual("8", ex.LayerName);
        StringAssert.Contains(ex.Message, "layer '8' (Linear)");
        StringAssert.Contains(ex.Message, "no Z here");
        BadInputTests.AssertUntouched(model, x, before);
    }

    [TestMethod]
    public void DisposedSeed_IsAnObjectDisposedError_NotAnInvalidHandle()
    {
        using var model = TestModels.CnnWithBn(128);
        model.eval();
        using var x = TestModels.Image(129, 1, 3, 12, 12);
        using var before = model.call(x).detach().clone();
        var seed = torch.ones(1, 4);
        seed.Dispose();
        var ex = Assert.Throws<ObjectDisposedException>(() => new SaliencyExplainer(model).Explain(x, SaliencyTarget.Seed(seed)));
        StringAssert.Contains(ex.Message, "seed");
        Assert.IsFalse(ex.Message.Contains("empty handle"), ex.Message);
        BadInputTests.AssertUntouched(model, x, before);

        var input = x.clone();
        input.Dispose();
        var inputError = Assert.Throws<ArgumentException>(() => new SaliencyExplainer(model).Explain(input, SaliencyTarget.Class(0)));
        StringAssert.Contains(inputError.Message, "disposed");
        using var session = new SaliencyExplainer(model).OpenSession();
        Assert.Throws<ObjectDisposedException>(() => session.Explain(x, SaliencyTarget.Seed(seed)));
        Assert.Throws<ArgumentException>(() => session.Explain(input, SaliencyTarget.Class(0)));
    }
}
