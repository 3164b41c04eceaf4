using Ebp.Composites;
using Ebp.Rules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Rules;

/// <summary>
/// Calls with few backward passes evaluate large linear layers block by block of output rows
/// (<see cref="BlockedLinearRule"/>); sessions and many targets materialise W⁺ (<see cref="ExcitationRule"/>).
/// Both must give the same maps.
/// </summary>
[TestClass]
public sealed class BlockedLinearRuleTests
{
    /// <summary>
    /// A 1-D conv front end (so that maps have positions, not just the conserved total) and linear layers whose
    /// widths (23, 11, 5) leave a partial last block for 4 rows per block. Input [B, 2, 9].
    /// </summary>
    private static nn.Module<Tensor, Tensor> Mlp(long seed) => TestModels.Reinitialise(nn.Sequential(
        ("0", nn.Conv1d(2, 4, 3)),
        ("1", nn.ReLU()),
        ("2", nn.Flatten()),
        ("3", nn.Linear(28, 23)),
        ("4", nn.ReLU()),
        ("5", nn.Linear(23, 11)),
        ("6", nn.ReLU()),
        ("7", nn.Linear(11, 5))), seed);

    /// <summary>An explainer whose one-off calls use the blocked rule with <paramref name="rows"/> rows per block.</summary>
    private static SaliencyExplainer Blocked(nn.Module<Tensor, Tensor> model, long rows) => new(model)
    {
        ScopeCreated = scope => scope.RuleOverride = m => m is Linear l ? new BlockedLinearRule(l.weight!, rows) : null,
    };

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        double scale = expected.abs().max().item<float>();
        double diff = (expected - actual).abs().max().item<float>();
        Assert.IsTrue(scale > 0, $"{what}: the map is all zero, the comparison would prove nothing");
        Assert.IsTrue(diff <= 1e-5 * scale, $"{what}: max|Δ| = {diff:E2} against max {scale:E2}");
    }

    [TestMethod]
    [DataRow(1L)]
    [DataRow(4L)]
    [DataRow(100L)]
    public void BlockedRule_EqualsMaterialisedW_ForEbpContrastiveAndSeveralTargets(long rows)
    {
        using var model = Mlp(70);
        using var x = torch.rand(3, 2, 9, generator: new Generator(71));
        var ebp = new SaliencyOptions { SaliencyLayer = "", CollectSignals = true };
        var cebp = new SaliencyOptions { Method = SaliencyMethod.ContrastiveExcitationBackprop, SaliencyLayer = "", ContrastLayer = "6" };
        var targets = new[] { SaliencyTarget.Classes(0, 4, 2), SaliencyTarget.Class(3), SaliencyTarget.Predicted };

        foreach (var options in new[] { ebp, cebp })
        {
            IReadOnlyList<SaliencyResult> expected;
            using (var session = new SaliencyExplainer(model).OpenSession(options)) expected = session.ExplainEach(x, targets);
            var actual = Blocked(model, rows).ExplainEach(x, targets, options);
            try
            {
                for (int k = 0; k < targets.Length; k++)
                {
                    AssertClose(expected[k].Map, actual[k].Map, $"{options.Method}, target {k}, {rows} rows per block");
                    if (options.CollectSignals)
                        foreach (var layer in new[] { "3", "5", "7" })
                            AssertClose(expected[k].Signals![layer], actual[k].Signals![layer], $"signal at {layer}, target {k}");
                }
            }
            finally
            {
                foreach (var r in expected.Concat(actual)) r.Dispose();
            }
        }
    }

    [TestMethod]
    public void BlockedRule_HandComputed_WithOneRowPerBlock()
    {
        // The NaiveRuleTests case, now one row at a time: W⁺ = [[1, 0], [2, 0.5]], Z = [1, 3], seed [0, 1],
        // S = [0, 1/3], W⁺ᵀS = [2/3, 1/6], G_in = x ⊙ that = [2/3, 1/3].
        using var model = nn.Sequential(("id", nn.Identity()), ("fc", nn.Linear(2, 2)));
        TestModels.SetWeights(model, "fc.weight", new[] { 1f, -1f, 2f, 0.5f }, new long[] { 2, 2 });
        using var x = torch.tensor(new[] { 1f, 2f }).reshape(1, 2);
        using var r = Blocked(model, 1).Explain(x, SaliencyTarget.Class(1), new SaliencyOptions { CollectSignals = true });
        var g = r.Signals!["id"].data<float>().ToArray();
        Assert.AreEqual(2.0 / 3, g[0], 1e-6);
        Assert.AreEqual(1.0 / 3, g[1], 1e-6);
    }

    [TestMethod]
    public void BlockedRule_AppliesToEveryLeadingDimension()
    {
        // A linear layer applied to [B, T, in] (a per-position projection), then flattened.
        using var model = TestModels.Reinitialise(nn.Sequential(
            ("0", nn.Linear(6, 7)),
            ("1", nn.ReLU()),
            ("2", nn.Flatten()),
            ("3", nn.Linear(21, 4))), 72);
        using var x = torch.rand(2, 3, 6, generator: new Generator(73));
        var options = new SaliencyOptions { SaliencyLayer = "" };
        SaliencyResult expected;
        using (var session = new SaliencyExplainer(model).OpenSession(options)) expected = session.Explain(x, SaliencyTarget.Classes(1, 3));
        using (expected)
        using (var actual = Blocked(model, 3).Explain(x, SaliencyTarget.Classes(1, 3), options))
        {
            CollectionAssert.AreEqual(new long[] { 2, 1, 6 }, actual.Map.shape);
            AssertClose(expected.Map, actual.Map, "[B, T, in] input");
        }
    }

    [TestMethod]
    public void BlockedRule_LeavesTheWeightsAndOutputsUntouched()
    {
        using var model = Mlp(74);
        using var x = torch.rand(2, 2, 9, generator: new Generator(75));
        var weights = model.parameters().Select(p => p.detach().clone()).ToList();
        using var before = model.call(x).detach().clone();
        var options = new SaliencyOptions { Method = SaliencyMethod.ContrastiveExcitationBackprop, SaliencyLayer = "", ContrastLayer = "6" };
        using (var r = Blocked(model, 4).Explain(x, SaliencyTarget.Class(2), options))
            Assert.IsTrue(r.Map.isfinite().all().item<bool>());
        foreach (var (p, w) in model.parameters().Zip(weights)) Assert.IsTrue(TestModels.Same(p, w), "weights unchanged (the negation is not in place)");
        using var after = model.call(x);
        Assert.IsTrue(TestModels.Same(after, before));
        foreach (var w in weights) w.Dispose();
    }

    [TestMethod]
    public void LargeLinear_FewTargetsStream_ManyTargetsMaterialise_SameMaps()
    {
        // 36 MB of weights: calls with up to MaxStreamedPasses targets stream them (blocked); four targets from
        // one forward pass materialise W⁺ once. Input [B, 1, 3000], so that the map keeps one value per feature.
        using var model = TestModels.Reinitialise(nn.Sequential(
            ("0", nn.Linear(3000, 3000)),
            ("1", nn.ReLU()),
            ("2", nn.Flatten()),
            ("3", nn.Linear(3000, 4))), 76);
        using var x = torch.rand(2, 1, 3000, generator: new Generator(77));
        var explainer = new SaliencyExplainer(model);
        var targets = new[] { SaliencyTarget.Class(1), SaliencyTarget.Classes(3, 0), SaliencyTarget.Class(2), SaliencyTarget.Predicted };
        Assert.IsTrue(targets.Length > BlockedLinearRule.MaxStreamedPasses);
        var many = explainer.ExplainEach(x, targets);
        var few = explainer.ExplainEach(x, targets.Take(2).ToArray());
        try
        {
            for (int k = 0; k < targets.Length; k++)
            {
                using var single = explainer.Explain(x, targets[k]);
                if (k == 0) CollectionAssert.AreEqual(new long[] { 2, 1, 3000 }, single.Map.shape);
                AssertClose(many[k].Map, single.Map, $"target {k}: materialised against streamed");
                if (k < few.Count) AssertClose(few[k].Map, single.Map, $"target {k}: two streamed passes against one");
            }
        }
        finally
        {
            foreach (var r in many.Concat(few)) r.Dispose();
        }
    }

    [TestMethod]
    public void Composite_ChoosesBlockedForLargeLinearInOneOffCalls_AndKeepsWOtherwise()
    {
        using var large = nn.Linear(3000, 3000);   // 36 MB of weights
        using var small = nn.Linear(1000, 300);    // 1.2 MB
        var owned = new List<Tensor>();
        var oneOff = ExcitationComposite.CreateExcitationRule(large, owned, backwardPasses: 1);
        Assert.IsInstanceOfType<BlockedLinearRule>(oneOff);
        Assert.AreEqual(0, owned.Count, "no W⁺ materialised for a one-off call");
        Assert.AreEqual(699, ((BlockedLinearRule)oneOff).RowsPerBlock, "8 MiB / 12,000 bytes per row");
        Assert.AreEqual(300, BlockedLinearRule.For(small).RowsPerBlock, "never more rows than the layer has");
        Assert.AreEqual(2, BlockedLinearRule.For(small, blockBytes: 10_000).RowsPerBlock);
        Assert.AreEqual(1, BlockedLinearRule.For(small, blockBytes: 10).RowsPerBlock);

        Assert.IsInstanceOfType<ExcitationRule>(ExcitationComposite.CreateExcitationRule(small, owned, backwardPasses: 1),
            "a small weight is clamped once per call and serves every pass");
        Assert.IsInstanceOfType<BlockedLinearRule>(ExcitationComposite.CreateExcitationRule(large, owned, backwardPasses: 3));
        Assert.IsInstanceOfType<ExcitationRule>(ExcitationComposite.CreateExcitationRule(large, owned, backwardPasses: 4),
            "four passes: W⁺ materialised once");
        Assert.IsInstanceOfType<ExcitationRule>(ExcitationComposite.CreateExcitationRule(large, owned, backwardPasses: int.MaxValue),
            "a session keeps W⁺");
        Assert.AreEqual(3, owned.Count);
        foreach (var t in owned) t.Dispose();
    }
}
