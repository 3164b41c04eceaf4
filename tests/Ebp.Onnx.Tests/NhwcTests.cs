using Ebp;
using Ebp.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Onnx.Tests;

/// <summary>A TensorFlow-style export takes [N, H, W, C] and transposes it first: the engine explains it as it comes.</summary>
[TestClass]
public sealed class NhwcTests
{
    [TestMethod]
    public void NhwcModel_GradientAtInput_EqualsAutograd_WithAChannelsLastReduction()
    {
        using var scope = torch.NewDisposeScope();
        using var model = OnnxModel.Load(Fixtures.Path("keras_nhwc.onnx"));
        CollectionAssert.AreEqual(new long[] { 16, 16, 3 }, ((OnnxGraph)model.Module).SampleShape.ToArray());
        var input = torch.rand(new long[] { 1, 16, 16, 3 }, generator: new Generator(5));
        const int target = 3;

        // Independent: autograd on the module itself, reduced over the last (channel) axis.
        var x = input.clone().requires_grad_(true);
        var logits = model.Module.call(x);
        logits[0, target].backward();
        var expected = x.grad!.abs().amax(new long[] { -1 }).unsqueeze(1);

        var channelsLast = MapReduction.Custom("max |G| over the last axis", g => g.abs().amax(new long[] { -1 }).unsqueeze(1));
        using var result = new SaliencyExplainer(model.Module).Explain(input, SaliencyTarget.Class(target),
            new SaliencyOptions { Method = SaliencyMethod.Gradient, Reduction = channelsLast });
        CollectionAssert.AreEqual(new long[] { 1, 1, 16, 16 }, result.Map.shape);
        var err = (result.Map - expected).abs().max().item<float>() / expected.abs().max().item<float>();
        Assert.IsTrue(err < 1e-5, $"relative error {err}");
    }

    [TestMethod]
    public void NhwcModel_Ebp_RunsAndIsFinite_NchwInputIsRefusedClearly()
    {
        using var scope = torch.NewDisposeScope();
        using var model = OnnxModel.Load(Fixtures.Path("keras_nhwc.onnx"));
        var explainer = new SaliencyExplainer(model.Module);
        var input = torch.rand(new long[] { 1, 16, 16, 3 }, generator: new Generator(6));
        using var ebp = explainer.Explain(input, SaliencyTarget.Predicted, new SaliencyOptions { SaliencyLayer = model.Suggested.SaliencyLayer });
        Assert.IsTrue(ebp.Map.isfinite().all().item<bool>());
        Assert.IsTrue(ebp.Map.sum().item<float>() > 0);

        var nchw = torch.rand(1, 3, 16, 16);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => explainer.Explain(nchw, SaliencyTarget.Predicted));
        StringAssert.Contains(ex.Message, "[batch, 16, 16, 3]");
    }
}
