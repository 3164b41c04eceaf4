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

        // In a session the failed call leaves nothing behind: the next call names its own layer, or succeeds.
        using var session = new SaliencyExplainer(model).OpenSession();
        Assert.AreEqual("2", Assert.Throws<ModelForwardException>(() => session.Explain(x, SaliencyTarget.Class(0))).LayerName);
        using var good = TestModels.Image(121, 1, 3, 16, 16);
        using var ok = session.Explain(good, SaliencyTarget.Class(0));
        Assert.IsTrue(ok.Map.isfinite().all().item<bool>());
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

/// <summary>
/// Issue 14, item 11's example: a Conv2d with Padding.Same in a non-zero padding mode runs in TorchSharp, so its
/// Excitation rule must run too: with non-negative weights and no bias, Z = conv(x; W⁺) is the module's own output.
/// </summary>
[TestClass]
public sealed class SymbolicPaddingTests
{
    [TestMethod]
    [DataRow(PaddingModes.Circular, 3L, 1L)]
    [DataRow(PaddingModes.Circular, 4L, 1L)]
    [DataRow(PaddingModes.Reflect, 3L, 2L)]
    [DataRow(PaddingModes.Replicate, 2L, 1L)]
    public void SamePadding_ZIsTheModulesOwnOutput(PaddingModes mode, long kernel, long dilation)
    {
        foreach (var padding in new[] { Padding.Same, Padding.Valid })
        {
            using var conv = nn.Conv2d(3, 4, kernel, padding, dilation: dilation, padding_mode: mode, bias: false);
            using (torch.no_grad()) conv.weight!.copy_(torch.rand(conv.weight!.shape, generator: new Generator(130)));
            using var x = TestModels.Image(131, 2, 3, 9, 7);
            using var expected = conv.call(x);
            var owned = new List<Tensor>();
            var rule = (ExcitationRule)Ebp.Composites.ExcitationComposite.CreateExcitationRule(conv, owned, backwardPasses: 1);
            using var z = rule.PositiveForward(x);
            Assert.IsTrue(expected.allclose(z, rtol: 1e-5, atol: 1e-6), $"{padding} {mode} k{kernel} d{dilation}");
            foreach (var t in owned) t.Dispose();
        }
    }

    [TestMethod]
    public void CircularSameConv_IsExplained_AsTheSameConvWithExplicitPadding()
    {
        using var same = TestModels.Reinitialise(nn.Sequential(("conv", nn.Conv2d(3, 4, 3, Padding.Same, padding_mode: PaddingModes.Circular)),
            ("relu", nn.ReLU()), ("flat", nn.Flatten()), ("fc", nn.Linear(64, 2))), 132);
        using var explicitPadding = TestModels.Reinitialise(nn.Sequential(("conv", nn.Conv2d(3, 4, 3, padding: 1, padding_mode: PaddingModes.Circular)),
            ("relu", nn.ReLU()), ("flat", nn.Flatten()), ("fc", nn.Linear(64, 2))), 132);
        using var x = TestModels.Image(133, 1, 3, 4, 4);
        using var a = new SaliencyExplainer(same).Explain(x, SaliencyTarget.Class(1));
        using var b = new SaliencyExplainer(explicitPadding).Explain(x, SaliencyTarget.Class(1));
        Assert.IsTrue(TestModels.Same(a.Map, b.Map));
        Assert.IsTrue(a.Map.gt(0).any().item<bool>());
    }
}

/// <summary>A block that calls a failing child and recovers from it itself.</summary>
internal sealed class RecoveringBlock : nn.Module<Tensor, Tensor>
{
    public readonly FailingLayer bad = new();
    public readonly TorchSharp.Modules.ReLU relu = nn.ReLU();
    public RecoveringBlock() : base(nameof(RecoveringBlock)) => RegisterComponents();
    public override Tensor forward(Tensor x)
    {
        try { return bad.call(x); }
        catch (NotImplementedException) { return relu.call(x); }
    }
}

/// <summary>Runs <see cref="RecoveringBlock"/>, then fails in its own code: a reshape that does not fit.</summary>
internal sealed class RecoverThenFail : nn.Module<Tensor, Tensor>
{
    public readonly RecoveringBlock block = new();
    public RecoverThenFail() : base(nameof(RecoverThenFail)) => RegisterComponents();
    public override Tensor forward(Tensor x) => block.call(x).reshape(-1, 7);
}

[TestClass]
public sealed class RecoveredFailureTests
{
    [TestMethod]
    public void AFailureTheModelCatchesItself_DoesNotConfuseTheLayerOfALaterFailure()
    {
        using var model = new RecoverThenFail();
        using var x = TestModels.Image(134, 1, 3, 2, 2); // the block recovers from its child; then 12 values do not reshape to [-1, 7]
        var ex = Assert.Throws<ModelForwardException>(() => new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(0)));
        Assert.AreEqual("", ex.LayerName, ex.Message);
        Assert.AreEqual(nameof(RecoverThenFail), ex.LayerType);
        Assert.AreEqual(0, TestModels.HookCount(model));
    }
}
