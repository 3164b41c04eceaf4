using Ebp.Composites;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Attribution;

/// <summary>y = bil(fc(x), fc(x)): a two-input layer with parameters and no rule.</summary>
internal sealed class BilinearNet : nn.Module<Tensor, Tensor>
{
    public readonly Linear fc = nn.Linear(3, 4);
    public readonly Bilinear bil = nn.Bilinear(4, 4, 2);
    public BilinearNet() : base(nameof(BilinearNet)) => RegisterComponents();
    public override Tensor forward(Tensor x)
    {
        var h = fc.call(x);
        return bil.call(h, h);
    }
}

/// <summary>y = g·a + (1 − g)·b with a parameter g: a sum whose weights EBP has no rule for.</summary>
internal sealed class GatedSum : nn.Module<Tensor, Tensor, Tensor>
{
    public readonly Parameter gate = nn.Parameter(torch.tensor(0.75f));
    public GatedSum() : base(nameof(GatedSum)) => RegisterComponents();
    public override Tensor forward(Tensor a, Tensor b) => a * gate + b * (1 - gate);
}

internal sealed class GatedNet : nn.Module<Tensor, Tensor>
{
    public readonly Linear left = nn.Linear(3, 2, hasBias: false);
    public readonly Linear right = nn.Linear(3, 2, hasBias: false);
    public readonly GatedSum gate = new();
    public GatedNet() : base(nameof(GatedNet)) => RegisterComponents();
    public override Tensor forward(Tensor x) => gate.call(left.call(x), right.call(x));
}

/// <summary>A block with a parameter of its own around a child convolution: y = scale ⊙ conv(x).</summary>
internal sealed class ScaledBlock : nn.Module<Tensor, Tensor>
{
    public readonly Conv2d conv = nn.Conv2d(3, 4, 3, padding: 1);
    public readonly Parameter scale = nn.Parameter(torch.full(new long[] { 1, 4, 1, 1 }, 1.5f));
    public ScaledBlock() : base(nameof(ScaledBlock)) => RegisterComponents();
    public override Tensor forward(Tensor x) => conv.call(x) * scale;
}

/// <summary>A model with a parameter of its own outside its submodules: logits divided by a learnt temperature.</summary>
internal sealed class TemperatureNet : nn.Module<Tensor, Tensor>
{
    public readonly Linear fc = nn.Linear(3, 2);
    public readonly Parameter temperature = nn.Parameter(torch.tensor(2f));
    public TemperatureNet() : base(nameof(TemperatureNet)) => RegisterComponents();
    public override Tensor forward(Tensor x) => fc.call(x) / temperature;
}

/// <summary>
/// Issue 14, item 10: every module with parameters of its own and no rule on the path from the saliency layer to the
/// output is an <see cref="UnsupportedLayerException"/> naming it, whatever its forward's signature and wherever it sits
/// (a two-input layer, a block holding the saliency layer, the model itself), unless its plain gradient is allowed.
/// </summary>
[TestClass]
public sealed class ParametricLayerTests
{
    private static void AssertUnsupported(nn.Module<Tensor, Tensor> model, Tensor x, string layer, string type, SaliencyOptions? options = null)
    {
        model.eval();
        using var before = model.call(x).detach().clone();
        var ex = Assert.Throws<UnsupportedLayerException>(() => new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(0), options));
        Assert.AreEqual(layer, ex.LayerName);
        Assert.AreEqual(type, ex.LayerType);
        StringAssert.Contains(ex.Message, type);
        BadInputTests.AssertUntouched(model, x, before);
    }

    /// <summary>The map with the layer's plain gradient allowed: finite, and a second call gives the same.</summary>
    private static float[] OptedIn(nn.Module<Tensor, Tensor> model, Tensor x, SaliencyOptions options)
    {
        var explainer = new SaliencyExplainer(model);
        using var a = explainer.Explain(x, SaliencyTarget.Class(0), options);
        using var b = explainer.Explain(x, SaliencyTarget.Class(0), options);
        Assert.IsTrue(a.Map.isfinite().all().item<bool>());
        Assert.IsTrue(TestModels.Same(a.Map, b.Map));
        return a.Map.data<float>().ToArray();
    }

    [TestMethod]
    public void Bilinear_IsUnsupported_UnlessOptedIn()
    {
        using var model = TestModels.Reinitialise(new BilinearNet(), 100);
        using var x = TestModels.Image(101, 1, 3);
        AssertUnsupported(model, x, "bil", "Bilinear");
        // The plain gradient of bil is what the gradient method sees there: with fc's rule off too, EBP with every
        // layer opted in equals the gradient-sum map.
        var both = OptedIn(model, x, new SaliencyOptions { PlainGradientForUnsupportedLayers = true, Composite = Composite.ExcitationBackprop.WithRule("fc", LayerRule.Gradient) });
        using var grad = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(0), new SaliencyOptions { Method = SaliencyMethod.GradientSum });
        CollectionAssert.AreEqual(grad.Map.data<float>().ToArray(), both);
        OptedIn(model, x, new SaliencyOptions { PlainGradientLayers = new[] { "bil" } });
    }

    [TestMethod]
    public void GatedSum_IsUnsupported_UnlessOptedIn()
    {
        using var model = TestModels.Reinitialise(new GatedNet(), 102);
        using (torch.no_grad()) model.gate.gate.fill_(0.75f);
        using var x = TestModels.Image(103, 1, 3);
        AssertUnsupported(model, x, "gate", "GatedSum");
        OptedIn(model, x, new SaliencyOptions { PlainGradientLayers = new[] { "gate" } });
    }

    [TestMethod]
    public void BlockWithOwnParameters_HoldingTheSaliencyLayer_IsUnsupported()
    {
        using var model = TestModels.Reinitialise(nn.Sequential(
            ("block", new ScaledBlock()), ("relu", nn.ReLU()), ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(4, 2))), 104);
        using var x = TestModels.Image(105, 1, 3, 6, 6);
        // Its input is not on the path (the saliency layer is inside it), its output is, and so is its scale.
        AssertUnsupported(model, x, "block", "ScaledBlock", new SaliencyOptions { SaliencyLayer = "block.conv" });
        AssertUnsupported(model, x, "block", "ScaledBlock");
        OptedIn(model, x, new SaliencyOptions { SaliencyLayer = "block.conv", PlainGradientLayers = new[] { "block" } });
        // Above the block nothing is in the way.
        OptedIn(model, x, new SaliencyOptions { SaliencyLayer = "relu" });
    }

    [TestMethod]
    public void ModelWithOwnParameters_IsUnsupported_UnlessItsTypeHasARuleOrOptedIn()
    {
        using var model = TestModels.Reinitialise(new TemperatureNet(), 106);
        using (torch.no_grad()) model.temperature.fill_(2f);
        using var x = TestModels.Image(107, 1, 3);
        AssertUnsupported(model, x, "", "TemperatureNet");
        var byType = OptedIn(model, x, new SaliencyOptions { Composite = Composite.ExcitationBackprop.WithRule<TemperatureNet>(LayerRule.Gradient) });
        var all = OptedIn(model, x, new SaliencyOptions { PlainGradientForUnsupportedLayers = true });
        CollectionAssert.AreEqual(byType, all);
        // EBP's map is invariant to a positive scale of the output: the temperature's plain gradient scales the seed only.
        using var fc = nn.Linear(3, 2);
        using (torch.no_grad())
        {
            fc.weight!.copy_(model.fc.weight!);
            fc.bias!.copy_(model.fc.bias!);
        }
        using var plain = nn.Sequential(("fc", fc));
        using var fcOnly = new SaliencyExplainer(plain).Explain(x, SaliencyTarget.Class(0));
        CollectionAssert.AreEqual(fcOnly.Map.data<float>().ToArray(), all.Select(v => v * 2f).ToArray());
        // The gradient method runs with every rule off.
        OptedIn(model, x, new SaliencyOptions { Method = SaliencyMethod.Gradient });
    }
}
