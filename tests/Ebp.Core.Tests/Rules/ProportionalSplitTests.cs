using Ebp.Composites;
using Ebp.Models;
using Ebp.Rules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Rules;

/// <summary>
/// The residual split's stabiliser (issue 14 item 13): shares <c>(â·ŷ³ + δ⁴/2) / (ŷ⁴ + δ⁴)</c> with â = a/m, ŷ = y/m,
/// m = |a| + |b|, checked by hand, and a one-hot map that sums to 1 on ResNets whose residual sums are near zero.
/// </summary>
[TestClass]
public sealed class ProportionalSplitTests
{
    private static double Share(double a, double b, double delta)
    {
        double m = Math.Abs(a) + Math.Abs(b), ah = a / m, yh = (a + b) / m, d4 = Math.Pow(delta, 4);
        return (ah * Math.Pow(yh, 3) + d4 / 2) / (Math.Pow(yh, 4) + d4);
    }

    [TestMethod]
    public void Split_MatchesTheFormula_ConservesAndIsBounded()
    {
        var a = new[] { 3.0, 1, 1, -1, 2, 1e-30, 1e-30, 0, 1 };
        var b = new[] { 2.0, -0.9, -0.999999, 1, -1.99999, 0, -0.99999e-30, 0, -1 };
        using var ta = torch.tensor(a.Select(v => (float)v).ToArray());
        using var tb = torch.tensor(b.Select(v => (float)v).ToArray());
        using var y = ta + tb;
        using var g = torch.full(a.Length, 2f);
        foreach (var rule in new[] { LayerRule.ProportionalSum, new ProportionalSplitRule { Stabiliser = 1e-2 } })
        {
            var (ga, gb) = ProportionalSplitBackward.Split(ta, tb, y, g, rule);
            var fa = ga.data<float>().ToArray();
            var fb = gb.data<float>().ToArray();
            var ya = y.data<float>().ToArray();
            for (int i = 0; i < a.Length; i++)
            {
                // The formula on the float inputs (y as float computes it), in double.
                double ai = (float)a[i], bi = (float)b[i];
                double m = Math.Abs(ai) + Math.Abs(bi);
                double expected = m == 0 ? 0.5 : Share(ai, ya[i] - ai, rule.Stabiliser);
                Assert.AreEqual(2 * expected, fa[i], 1e-5 * Math.Max(1, Math.Abs(2 * expected)), $"G_a[{i}], δ = {rule.Stabiliser}");
                Assert.AreEqual(2.0, fa[i] + (double)fb[i], 1e-5 * Math.Max(1, Math.Abs(fa[i])), $"G_a + G_b = G at {i}");
                Assert.IsTrue(Math.Abs(fa[i]) <= 2 * (0.6 / rule.Stabiliser + 0.5), $"bounded at {i}: {fa[i]}");
            }
            Assert.AreEqual(1.2, fa[0], 1e-6, "no cancellation: the reference's a/y·G = 3/5·2");
            Assert.AreEqual(1.0, fa[3], 1e-6, "y = 0 exactly: an even split");
            Assert.AreEqual(2.0, fa[5], 1e-6, "a = 1e-30, b = 0: all to a, as a/y");
        }
        // δ = 0 is the reference's plain ratio.
        var (pa, _) = ProportionalSplitBackward.Split(ta, tb, y, g, new ProportionalSplitRule { Stabiliser = 0 });
        Assert.AreEqual(2 * 1 / (double)y.data<float>()[2], pa.data<float>()[2], 1e-3 * Math.Abs(2 / (double)y.data<float>()[2]));
    }

    /// <summary>resnet18 on 32×32 inputs with the last BN scale of every block set to <paramref name="gamma"/>.</summary>
    private static ResNet ZeroInitResNet(double gamma)
    {
        torch.manual_seed(91);
        var model = (ResNet)ModelZoo.Create("resnet18", 10);
        TestModels.Reinitialise(model, 92);
        using var _ = torch.no_grad();
        foreach (var (_, m) in model.named_modules())
            if (m is BasicBlock block) block.Bn2.weight!.fill_(gamma);
        return model;
    }

    private static void AssertMapsSumToOne(nn.Module<Tensor, Tensor> model, string what)
    {
        using var x = torch.rand(2, 3, 32, 32, generator: new Generator(93));
        var explainer = new SaliencyExplainer(model);
        foreach (var layer in new[] { "", "layer1" })
        foreach (var k in new[] { 2, 7 })
        {
            using var r = explainer.Explain(x, SaliencyTarget.Class(k), new SaliencyOptions { SaliencyLayer = layer });
            using var sums = r.Map.sum(new long[] { 1, 2, 3 });
            foreach (var s in sums.data<float>().ToArray())
                Assert.AreEqual(1.0, s, 1e-3, $"{what}: one-hot map of class {k} at '{layer}' sums to {s}");
        }
    }

    [TestMethod]
    [DataRow(0.0)]
    [DataRow(1e-30)]
    [DataRow(1e-20)]
    [DataRow(1e-8)]
    public void ZeroInitialisedResidualBranches_ConserveTheSignal(double gamma)
        => AssertMapsSumToOne(ZeroInitResNet(gamma), $"last BN scale {gamma:E0}");

    [TestMethod]
    [DataRow(1e-7)]
    [DataRow(5e-8)]
    public void NearlyCancellingResidualSum_ConservesTheSignal(double gap)
    {
        // Zero-initialised elsewhere (scale 1e-8), and in layer1.0 a branch that cancels its shortcut up to `gap`:
        // conv1 and conv2 are identities, bn1 the identity, bn2 scales by −(1 − gap), so a = −(1 − gap)·x, b = x and
        // y = gap·x. The reference's shares a/y and b/y are then ∓1/gap; every rule below is exact in exact
        // arithmetic, but the float rounding of the two branches, multiplied by 1/gap, is not.
        using var model = ZeroInitResNet(1e-8);
        var block = (BasicBlock)model.Layer1[0];
        using (torch.no_grad())
        {
            foreach (var conv in new[] { block.Conv1, block.Conv2 })
            {
                conv.weight!.zero_();
                conv.weight.select(3, 1).select(2, 1).copy_(torch.eye(conv.weight.shape[0]));
            }
            foreach (var bn in new[] { block.Bn1, block.Bn2 })
            {
                bn.running_mean!.zero_();
                bn.running_var!.fill_(1 - 1e-5); // BN's eps: exactly x·γ + β
                bn.bias!.zero_();
                bn.weight!.fill_(1);
            }
            block.Bn2.weight!.fill_(-(1 - gap));
        }
        AssertMapsSumToOne(model, $"layer1.0 cancelling to {gap:E0}");
        // The reference's split (δ = 0) on the same model breaks conservation: the failure this stabiliser fixes.
        using var x = torch.rand(2, 3, 32, 32, generator: new Generator(93));
        using var plain = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(2), new SaliencyOptions
        {
            Composite = Composite.ExcitationBackprop.WithRule<Ebp.Modules.ResidualSum>(new ProportionalSplitRule { Stabiliser = 0 }),
        });
        double worst = plain.Map.sum(new long[] { 1, 2, 3 }).sub(1).abs().max().item<float>();
        Assert.IsTrue(worst > 1e-3, $"the unstabilised split conserves here too ({worst:E2}): the model does not test the stabiliser");
    }
}
