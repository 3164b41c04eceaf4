using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Attribution;

[TestClass]
public sealed class ReductionAndOptionTests
{
    /// <summary>The input gradient of class <paramref name="cls"/> by plain autograd, without Ebp.</summary>
    private static Tensor PlainGradient(nn.Module<Tensor, Tensor> model, Tensor x, int cls)
    {
        model.eval();
        var leaf = x.detach().clone().requires_grad_(true);
        var y = model.call(leaf);
        y[TensorIndex.Colon, cls].sum().backward();
        return leaf.grad!.detach().clone();
    }

    [TestMethod]
    public void Gradient_IsMaxAbsOverChannels_GradientSum_IsTheSignedSum()
    {
        using var model = TestModels.CnnWithBn(80);
        using var x = TestModels.Image(81, 2, 3, 12, 12);
        var explainer = new SaliencyExplainer(model);
        using var max = explainer.Explain(x, SaliencyTarget.Class(3), new SaliencyOptions { Method = SaliencyMethod.Gradient });
        using var sum = explainer.Explain(x, SaliencyTarget.Class(3), new SaliencyOptions { Method = SaliencyMethod.GradientSum });
        using var g = PlainGradient(model, x, 3);
        using var wantMax = g.abs().amax(new long[] { 1 }, keepdim: true);
        using var wantSum = g.sum(1, keepdim: true);
        Assert.IsTrue(max.Map.allclose(wantMax, rtol: 1e-5, atol: 1e-8));
        Assert.IsTrue(sum.Map.allclose(wantSum, rtol: 1e-5, atol: 1e-8));
        Assert.IsTrue(sum.Map.lt(0).any().item<bool>(), "the signed sum has negative entries, so the two reductions differ");
    }

    [TestMethod]
    public void UserReduction_IsApplied_AndAWrongShapeIsAClearError()
    {
        using var model = TestModels.CnnWithBn(82);
        using var x = TestModels.Image(83, 1, 3, 12, 12);
        var explainer = new SaliencyExplainer(model);
        var squares = MapReduction.Custom("sum of squares", s => s.pow(2).sum(1, keepdim: true));
        using var r = explainer.Explain(x, SaliencyTarget.Class(1), new SaliencyOptions { Method = SaliencyMethod.GradientSum, Reduction = squares });
        using var g = PlainGradient(model, x, 1);
        Assert.IsTrue(r.Map.allclose(g.pow(2).sum(1, keepdim: true), rtol: 1e-5, atol: 1e-10));

        var wrong = MapReduction.Custom("no reduction", s => s.clone());
        var ex = Assert.Throws<InvalidOperationException>(() => explainer.Explain(x, SaliencyTarget.Class(1), new SaliencyOptions { Reduction = wrong }));
        StringAssert.Contains(ex.Message, "no reduction");
        Assert.AreEqual(0, TestModels.HookCount(model));
    }

    [TestMethod]
    public void Smoothing_KeepsAConstantMapConstant_AndHandlesTapsWiderThanTheMap()
    {
        using var constant = torch.full(new long[] { 1, 1, 5, 7 }, 2.5f);
        using var smoothed = MapPostProcessing.Smooth(constant, 0.5); // sigma 3.5: taps to ±14, wider than the map
        Assert.IsTrue(smoothed.allclose(constant, rtol: 1e-6, atol: 1e-6));

        // One 1 in the middle of a 1×9 row, sigma 1 (w = 4): the output is the taps exp(−(k/(√2 + ε))²), normalised.
        using var impulse = torch.zeros(1, 1, 1, 9);
        impulse[0, 0, 0, 4] = torch.tensor(1f);
        using var row = MapPostProcessing.Smooth(impulse, 1.0 / 9);
        static double Tap(int k) => Math.Exp(-Math.Pow(k / (Math.Sqrt(2) + 1.1920929e-07), 2));
        double total = Enumerable.Range(-4, 9).Sum(Tap);
        for (int k = -4; k <= 4; k++)
            Assert.AreEqual(Tap(k) / total, row[0, 0, 0, 4 + k].item<float>(), 1e-6, $"tap {k}");
    }

    [TestMethod]
    public void InvalidOptions_AreRejectedUpFront()
    {
        using var model = TestModels.CnnWithBn(84);
        using var x = TestModels.Image(85, 1, 3, 12, 12);
        var explainer = new SaliencyExplainer(model);
        foreach (var sigma in new[] { double.PositiveInfinity, 1e9, -0.1, double.NaN })
        {
            var ex = Assert.Throws<ArgumentOutOfRangeException>(() => explainer.Explain(x, SaliencyTarget.Class(0), new SaliencyOptions { SmoothingSigma = sigma }));
            StringAssert.Contains(ex.Message, "SmoothingSigma");
        }
        var method = Assert.Throws<ArgumentOutOfRangeException>(() => explainer.Explain(x, SaliencyTarget.Class(0), new SaliencyOptions { Method = (SaliencyMethod)99 }));
        StringAssert.Contains(method.Message, "99");
        Assert.Throws<ArgumentOutOfRangeException>(() => explainer.Explain(x, SaliencyTarget.Class(0), new SaliencyOptions { ResizeMode = (ResizeMode)7 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => explainer.OpenSession(new SaliencyOptions { Method = (SaliencyMethod)99 }));
        Assert.AreEqual(0, TestModels.HookCount(model));
        Assert.IsTrue(model.parameters().All(p => p.requires_grad));
    }
}

[TestClass]
public sealed class NativeErrorMessageTests
{
    [TestMethod]
    public void NativeForwardError_ReachesTheCallerWithoutTheLibtorchBacktrace()
    {
        using var model = TestModels.BiasFreeCnn(86);
        using var x = TestModels.Image(87, 1, 3, 1, 1); // MaxPool2d(2) on a 1×1 map fails inside libtorch
        var ex = Assert.Throws<ArgumentException>(() => new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(0)));
        StringAssert.Contains(ex.Message, "does not fit the model");
        Assert.IsFalse(ex.Message.Contains("frame #") || ex.Message.Contains("Exception raised from"), ex.Message);
        Assert.IsNotNull(ex.InnerException);
        Assert.AreEqual(0, TestModels.HookCount(model));
    }
}
