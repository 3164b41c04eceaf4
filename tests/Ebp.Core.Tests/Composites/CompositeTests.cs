using Ebp.Composites;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Composites;

/// <summary>A normalisation of the user's own: a per-channel affine map y = γ·x + β (the docs/EXTENDING.md example).</summary>
public sealed class ChannelScale : nn.Module<Tensor, Tensor>
{
    private readonly Parameter gamma, beta;

    public ChannelScale(Tensor gammaValues, Tensor betaValues) : base(nameof(ChannelScale))
    {
        gamma = nn.Parameter(gammaValues.clone());
        beta = nn.Parameter(betaValues.clone());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => x * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1);
}

[TestClass]
public sealed class CompositeTests
{
    private static readonly Tensor Gamma = torch.tensor(new float[] { 0.5f, 1.5f, 0.8f, 1.2f, 0.9f, 1.1f });
    private static readonly Tensor Beta = torch.tensor(new float[] { 0.1f, -0.2f, 0.05f, 0.3f, 0f, -0.1f });

    /// <summary>CnnWithBn with its BatchNorm ("1") replaced by <paramref name="norm"/>; the other weights as the seed gives them.</summary>
    private static nn.Module<Tensor, Tensor> Model(nn.Module<Tensor, Tensor> norm)
    {
        var reference = TestModels.CnnWithBn(70);
        var model = nn.Sequential(
            ("0", nn.Conv2d(3, 6, 3, padding: 1)), ("1", norm), ("2", nn.ReLU()), ("3", nn.MaxPool2d(2)),
            ("4", nn.Conv2d(6, 8, 3, padding: 1)), ("5", nn.ReLU()), ("6", nn.AdaptiveAvgPool2d(new long[] { 2, 2 })),
            ("7", nn.Flatten()), ("8", nn.Linear(32, 12)), ("9", nn.ReLU()), ("10", nn.Dropout(0.5)), ("11", nn.Linear(12, 4)));
        var weights = reference.state_dict().Where(kv => !kv.Key.StartsWith("1.")).ToDictionary(kv => kv.Key, kv => kv.Value);
        model.load_state_dict(weights, strict: false);
        return model;
    }

    /// <summary>BatchNorm in eval mode with mean 0, variance 1 − eps is exactly the affine map γ·x + β.</summary>
    private static BatchNorm2d EquivalentBatchNorm()
    {
        var bn = nn.BatchNorm2d(6);
        using (torch.no_grad())
        {
            bn.weight!.copy_(Gamma);
            bn.bias!.copy_(Beta);
            bn.running_mean!.zero_();
            bn.running_var!.fill_(1 - 1e-5);
        }
        return bn;
    }

    [TestMethod]
    public void UserLayerWithParameters_IsUnsupportedByDefault_AndPassesThroughWithARuleForItsType()
    {
        using var custom = Model(new ChannelScale(Gamma, Beta));
        using var withBn = Model(EquivalentBatchNorm());
        using var x = TestModels.Image(71, 2, 3, 12, 12);
        var options = new SaliencyOptions { SaliencyLayer = "0" };

        var error = Assert.Throws<UnsupportedLayerException>(() => new SaliencyExplainer(custom).Explain(x, SaliencyTarget.Class(2), options));
        StringAssert.Contains(error.Message, "'1'");

        using var expected = new SaliencyExplainer(withBn).Explain(x, SaliencyTarget.Class(2), options);
        var byType = options with { Composite = Composite.ExcitationBackprop.WithRule<ChannelScale>(LayerRule.PassThrough) };
        var byName = options with { Composite = Composite.ExcitationBackprop.WithRule("1", LayerRule.PassThrough) };
        using var a = new SaliencyExplainer(custom).Explain(x, SaliencyTarget.Class(2), byType);
        using var b = new SaliencyExplainer(custom).Explain(x, SaliencyTarget.Class(2), byName);
        Assert.IsTrue((a.Map - expected.Map).abs().max().item<float>() <= 1e-5f * expected.Map.abs().max().item<float>() + 1e-9f);
        Assert.IsTrue(TestModels.Same(a.Map, b.Map));
        Assert.AreEqual(0, TestModels.HookCount(custom));
    }

    [TestMethod]
    public void NameRule_WinsOverTypeRule_AndTheMostDerivedTypeWins()
    {
        var composite = Composite.ExcitationBackprop
            .WithRule<nn.Module<Tensor, Tensor>>(LayerRule.Unsupported)
            .WithRule<ReLU>(LayerRule.Gradient)
            .WithRule("features.3", LayerRule.PassThrough);
        using var relu = nn.ReLU();
        using var conv = nn.Conv2d(1, 1, 1);
        Assert.AreSame(LayerRule.Gradient, composite.RuleFor("features.1", relu));
        Assert.AreSame(LayerRule.PassThrough, composite.RuleFor("features.3", relu));
        Assert.AreSame(LayerRule.Unsupported, composite.RuleFor("features.0", conv));
        Assert.AreSame(LayerRule.Excitation, Composite.ExcitationBackprop.RuleFor("features.0", conv));
    }

    [TestMethod]
    public void RuleThatDoesNotFitTheModule_AndUnknownLayerName_AreClearErrors()
    {
        using var model = TestModels.CnnWithBn(72);
        using var x = TestModels.Image(73, 1, 3, 12, 12);
        var explainer = new SaliencyExplainer(model);
        var wrongKind = new SaliencyOptions { Composite = Composite.ExcitationBackprop.WithRule("1", LayerRule.ProportionalSum) };
        var e1 = Assert.Throws<ArgumentException>(() => explainer.Explain(x, SaliencyTarget.Class(0), wrongKind));
        StringAssert.Contains(e1.Message, "two tensors");
        var unknown = new SaliencyOptions { Composite = Composite.ExcitationBackprop.WithRule("features.99", LayerRule.PassThrough) };
        var e2 = Assert.Throws<ArgumentException>(() => explainer.Explain(x, SaliencyTarget.Class(0), unknown));
        StringAssert.Contains(e2.Message, "features.99");
        Assert.AreEqual(0, TestModels.HookCount(model));
    }

    [TestMethod]
    public void LayersGivenByReference_GiveTheSameMapAsByName()
    {
        using var model = TestModels.CnnWithBn(74);
        using var x = TestModels.Image(75, 1, 3, 12, 12);
        var conv = model.named_modules().Single(n => n.name == "4").module;
        Assert.AreEqual("4", ModelInspection.NameOf(model, conv));
        var explainer = new SaliencyExplainer(model);
        using var byName = explainer.Explain(x, SaliencyTarget.Class(0), new SaliencyOptions { SaliencyLayer = "4" });
        using var byRef = explainer.Explain(x, SaliencyTarget.Class(0), new SaliencyOptions { SaliencyLayer = ModelInspection.NameOf(model, conv) });
        Assert.IsTrue(TestModels.Same(byName.Map, byRef.Map));
        using var stranger = nn.Conv2d(1, 1, 1);
        var ex = Assert.Throws<ArgumentException>(() => ModelInspection.NameOf(model, stranger));
        StringAssert.Contains(ex.Message, "not a submodule");
    }
}
