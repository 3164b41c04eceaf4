using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Attribution;

[TestClass]
public sealed class InvariantTests
{
    [TestMethod]
    [DataRow("")]
    [DataRow("1")]
    [DataRow("2")]
    [DataRow("5")]
    [DataRow("7")]
    public void OneHotEbpMap_OfBiasFreeModel_SumsToOne(string layer)
    {
        using var model = TestModels.BiasFreeCnn(11);
        using var x = TestModels.Image(12, 1, 3, 16, 16);
        for (int c = 0; c < 5; c++)
        {
            using var r = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(c), new SaliencyOptions { SaliencyLayer = layer });
            Assert.AreEqual(1.0, r.Map.sum().item<float>(), 1e-4, $"class {c} at '{layer}'");
            Assert.IsTrue(r.Map.min().item<float>() >= 0, "EBP of a bias-free model with non-negative input is non-negative");
        }
    }

    [TestMethod]
    public void Batch_IsIndependent()
    {
        using var model = TestModels.CnnWithBn(13);
        using var a = TestModels.Image(14, 1, 3, 12, 12);
        using var b = TestModels.Image(15, 1, 3, 12, 12);
        using var both = torch.cat(new[] { a, b }, 0);
        var explainer = new SaliencyExplainer(model);
        foreach (var method in new[] { SaliencyMethod.ExcitationBackprop, SaliencyMethod.ContrastiveExcitationBackprop, SaliencyMethod.Gradient })
        {
            var options = new SaliencyOptions
            {
                Method = method, SaliencyLayer = "3",
                ContrastLayer = method == SaliencyMethod.ContrastiveExcitationBackprop ? "9" : null,
            };
            using var rb = explainer.Explain(both, SaliencyTarget.Classes(1, 3), options);
            using var ra = explainer.Explain(a, SaliencyTarget.Class(1), options);
            using var r2 = explainer.Explain(b, SaliencyTarget.Class(3), options);
            Assert.IsTrue(rb.Map[0].allclose(ra.Map[0], rtol: 1e-5, atol: 1e-7), $"{method}: sample 0");
            Assert.IsTrue(rb.Map[1].allclose(r2.Map[0], rtol: 1e-5, atol: 1e-7), $"{method}: sample 1");
        }
    }

    [TestMethod]
    public void ModelOutput_IsBitIdentical_BeforeAndAfterCalls_AndHooksAreRemoved()
    {
        using var model = TestModels.CnnWithBn(16);
        model.train(); // the caller's mode must survive
        using var x = TestModels.Image(17, 2, 3, 12, 12);
        model.eval();
        using var before = model.call(x).detach().clone();
        model.train();
        var flags = model.parameters().Select(p => p.requires_grad).ToArray();

        using (var r = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(0),
                   new SaliencyOptions { Method = SaliencyMethod.ContrastiveExcitationBackprop, SaliencyLayer = "2", ContrastLayer = "8", CollectSignals = true }))
        {
            Assert.IsTrue(TestModels.Same(r.Scores, before), "scores of the saliency call equal the eval-mode forward");
        }

        Assert.AreEqual(0, TestModels.HookCount(model), "no hooks left");
        Assert.IsTrue(model.training, "training mode restored");
        Assert.IsTrue(model.modules().All(m => m.training), "every submodule's training flag restored");
        CollectionAssert.AreEqual(flags, model.parameters().Select(p => p.requires_grad).ToArray(), "requires_grad restored");
        Assert.IsFalse(x.requires_grad, "the caller's input is left as it was");
        model.eval();
        using var after = model.call(x);
        Assert.IsTrue(TestModels.Same(after, before), "bit-identical output after the call");
    }

    [TestMethod]
    public void FrozenParameters_AndEvalMode_DuringCall_RestoredAfterFailure()
    {
        using var model = TestModels.CnnWithBn(18);
        model.eval();
        using var x = TestModels.Image(19, 1, 3, 12, 12);
        using var before = model.call(x).detach().clone();
        model.train();
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(99), new SaliencyOptions { SaliencyLayer = "2" }));
        Assert.AreEqual(0, TestModels.HookCount(model));
        Assert.IsTrue(model.training);
        Assert.IsTrue(model.parameters().All(p => p.requires_grad));
        model.eval();
        using var after = model.call(x);
        Assert.IsTrue(TestModels.Same(after, before));
    }

    [TestMethod]
    public void TwoThreads_OnTwoModelInstances_GiveSequentialResults()
    {
        var models = new[] { TestModels.CnnWithBn(20), TestModels.CnnWithBn(20) };
        var inputs = Enumerable.Range(0, 6).Select(i => TestModels.Image(100 + i, 1, 3, 12, 12)).ToArray();
        var options = new SaliencyOptions { Method = SaliencyMethod.ContrastiveExcitationBackprop, SaliencyLayer = "3", ContrastLayer = "9" };
        var sequential = inputs.Select(x =>
        {
            using var r = new SaliencyExplainer(models[0]).Explain(x, SaliencyTarget.Class(1), options);
            return r.Map.data<float>().ToArray();
        }).ToArray();

        var parallel = new float[inputs.Length][];
        var threads = Enumerable.Range(0, 2).Select(t => new Thread(() =>
        {
            for (int i = t; i < inputs.Length; i += 2)
            {
                using var scope = torch.NewDisposeScope();
                using var r = new SaliencyExplainer(models[t]).Explain(inputs[i], SaliencyTarget.Class(1), options);
                parallel[i] = r.Map.data<float>().ToArray();
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        for (int i = 0; i < inputs.Length; i++) CollectionAssert.AreEqual(sequential[i], parallel[i], $"input {i}");
        foreach (var m in models) m.Dispose();
        foreach (var x in inputs) x.Dispose();
    }

    [TestMethod]
    public void ContrastiveMap_IsClampedAtZero_AndPartlyPositive()
    {
        using var model = TestModels.CnnWithBn(21);
        using var x = TestModels.Image(22, 1, 3, 12, 12);
        using var r = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(0),
            new SaliencyOptions { Method = SaliencyMethod.ContrastiveExcitationBackprop, SaliencyLayer = "", ContrastLayer = "9" });
        Assert.AreEqual(0f, r.Map.min().item<float>());
        Assert.IsTrue(r.Map.gt(0).any().item<bool>(), "some positive evidence");
    }

    [TestMethod]
    public void Resize_AndSmoothing_KeepShapeAndMass()
    {
        using var model = TestModels.BiasFreeCnn(23);
        using var x = TestModels.Image(24, 1, 3, 16, 16);
        var explainer = new SaliencyExplainer(model);
        using var native = explainer.Explain(x, SaliencyTarget.Class(0), new SaliencyOptions { SaliencyLayer = "2" });
        using var resized = explainer.Explain(x, SaliencyTarget.Class(0), new SaliencyOptions { SaliencyLayer = "2", Resize = MapSize.Of(20, 12), ResizeMode = ResizeMode.Nearest });
        using var smoothed = explainer.Explain(x, SaliencyTarget.Class(0), new SaliencyOptions { SaliencyLayer = "2", SmoothingSigma = 0.1 });
        CollectionAssert.AreEqual(new long[] { 1, 1, 8, 8 }, native.Map.shape);
        CollectionAssert.AreEqual(new long[] { 1, 1, 12, 20 }, resized.Map.shape);
        // nearest: output (d_h, d_w) takes source (floor(d_h·8/12), floor(d_w·8/20))
        Assert.AreEqual(native.Map[0, 0, 7, 7].item<float>(), resized.Map[0, 0, 11, 19].item<float>());
        Assert.AreEqual(native.Map[0, 0, 3, 2].item<float>(), resized.Map[0, 0, 5, 6].item<float>());
        // Gaussian smoothing with replicated borders keeps the mean close and lowers the peak.
        Assert.IsTrue(smoothed.Map.max().item<float>() < native.Map.max().item<float>());
        Assert.AreEqual(native.Map.mean().item<float>(), smoothed.Map.mean().item<float>(), 0.1 * native.Map.mean().item<float>());
    }

    [TestMethod]
    public void Signals_ListEveryModuleAboveTheSaliencyLayer()
    {
        using var model = TestModels.BiasFreeCnn(25);
        using var x = TestModels.Image(26, 1, 3, 16, 16);
        using var r = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(3), new SaliencyOptions { SaliencyLayer = "2", CollectSignals = true });
        CollectionAssert.AreEquivalent(new[] { "2", "3", "4", "5", "6", "7", "8", "9", "10" }, r.Signals!.Keys.ToArray());
        // Conservation at every layer of a bias-free model: each signal sums to 1.
        foreach (var (name, g) in r.Signals) Assert.AreEqual(1.0, g.sum().item<float>(), 1e-4, name);
    }

    [TestMethod]
    public void ExplainEach_OneForwardForManyTargets_EqualsSeparateCalls()
    {
        using var model = TestModels.CnnWithBn(27);
        using var x = TestModels.Image(28, 2, 3, 12, 12);
        var explainer = new SaliencyExplainer(model);
        foreach (var method in new[] { SaliencyMethod.ExcitationBackprop, SaliencyMethod.ContrastiveExcitationBackprop })
        {
            var options = new SaliencyOptions { Method = method, SaliencyLayer = "3", ContrastLayer = method == SaliencyMethod.ContrastiveExcitationBackprop ? "9" : null };
            var targets = SaliencyTarget.TopK(3);
            var many = explainer.ExplainEach(x, targets, options);
            try
            {
                Assert.AreEqual(3, many.Count);
                using var order = many[0].Scores.argsort(1, descending: true);
                for (int k = 0; k < 3; k++)
                {
                    var classes = new[] { (int)order[0, k].item<long>(), (int)order[1, k].item<long>() };
                    using var single = explainer.Explain(x, SaliencyTarget.Classes(classes), options);
                    Assert.IsTrue(many[k].Map.allclose(single.Map, rtol: 1e-6, atol: 1e-9), $"{method}, rank {k}");
                }
            }
            finally { foreach (var r in many) r.Dispose(); }
        }
    }
}
