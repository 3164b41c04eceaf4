using Ebp.Evaluation;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Demo.Tests;

/// <summary>Deletion and insertion curves on models whose scores can be worked out by hand.</summary>
[TestClass]
public sealed class DeletionInsertionTests
{
    /// <summary>
    /// logit₀ = Σ wᵢ·xᵢ with w = (1, 2, 3, 4) over the four pixels of a 2×2 image (row-major), logit₁ = 0, no bias.
    /// </summary>
    private static nn.Module<Tensor, Tensor> LinearModel(float[] weights0, float bias = 0)
    {
        var linear = nn.Linear(weights0.Length, 2);
        using (torch.no_grad())
        {
            var w = new float[2 * weights0.Length];
            weights0.CopyTo(w, 0);
            linear.weight!.copy_(torch.tensor(w, new long[] { 2, weights0.Length }));
            linear.bias!.copy_(torch.tensor(new[] { bias, 0f }));
        }
        var model = nn.Sequential(nn.Flatten(), linear);
        model.eval();
        return model;
    }

    private static Tensor Image(float[] pixels, int h, int w) => torch.tensor(pixels, new long[] { 1, 1, h, w });

    private static readonly float[] W = [1, 2, 3, 4];
    private static readonly float[] X = [4, 3, 2, 1];            // contributions wᵢxᵢ = 4, 6, 6, 4; logit 20
    private static readonly float[] Map = [0.1f, 0.4f, 0.3f, 0.2f]; // order: pixel 1, 2, 3, 0
    private static readonly DeletionInsertionOptions Four = new() { Steps = 4 };

    private static void AreEqual(double[] expected, IReadOnlyList<double> actual, double tolerance, string what)
    {
        Assert.HasCount(expected.Length, actual, what);
        for (int i = 0; i < expected.Length; i++) Assert.AreEqual(expected[i], actual[i], tolerance, $"{what}[{i}]");
    }

    [TestMethod]
    public void LinearModel_Logit_CurvesAndAreasAsComputedByHand()
    {
        using var model = LinearModel(W);
        using var x = Image(X, 2, 2);
        var r = DeletionInsertion.Measure(model, x, Map, 2, 2, 0, new DeletionInsertionOptions
        {
            Steps = 4, Score = FaithfulnessScore.Logit, DeletionBaseline = PerturbationBaseline.Zero, InsertionBaseline = PerturbationBaseline.Mean,
        });
        AreEqual([0, 0.25, 0.5, 0.75, 1], r.Deletion.Fractions, 0, "fractions");
        // Deleting pixels 1, 2, 3, 0 (to 0) removes 6, 6, 4, 4 from the logit.
        AreEqual([20, 14, 8, 4, 0], r.Deletion.Scores, 1e-5, "deletion");
        Assert.AreEqual(0.25 * (17 + 11 + 6 + 2), r.Deletion.Auc, 1e-5);
        // From the image mean 2.5 everywhere (logit 25), inserting pixels 1, 2, 3, 0 adds 2·0.5, 3·(−0.5), 4·(−1.5), 1·1.5.
        AreEqual([25, 26, 24.5, 18.5, 20], r.Insertion.Scores, 1e-5, "insertion");
        Assert.AreEqual(0.25 * (25.5 + 25.25 + 21.5 + 19.25), r.Insertion.Auc, 1e-5);
        Assert.AreEqual(0, r.Class);
    }

    [TestMethod]
    public void LinearModel_Softmax_IsTheLogisticOfTheLogitDifference()
    {
        using var model = LinearModel(W);
        using var x = Image(X, 2, 2);
        var r = DeletionInsertion.Measure(model, x, Map, 2, 2, 0, new DeletionInsertionOptions { Steps = 4 });
        // Two classes, logit₁ = 0: softmax₀ = 1 / (1 + e^(−logit₀)).
        AreEqual(new double[] { 20, 14, 8, 4, 0 }.Select(l => 1 / (1 + Math.Exp(-l))).ToArray(), r.Deletion.Scores, 1e-7, "softmax deletion");
        var one = DeletionInsertion.Measure(model, x, Map, 2, 2, 1, new DeletionInsertionOptions { Steps = 4 });
        for (int i = 0; i <= 4; i++) Assert.AreEqual(1, r.Deletion.Scores[i] + one.Deletion.Scores[i], 1e-12, "the two classes' probabilities sum to 1");
        var sigmoid = DeletionInsertion.Measure(model, x, Map, 2, 2, 1, new DeletionInsertionOptions { Steps = 4, Score = FaithfulnessScore.Sigmoid });
        Assert.IsTrue(sigmoid.Deletion.Scores.All(s => s == 0.5), "class 1's logit is always 0: sigmoid 0.5");
        Assert.AreEqual(0.5, sigmoid.Deletion.Auc, 1e-12);
    }

    [TestMethod]
    public void StepsThatDoNotDivideThePixels_UseTheActualFractions()
    {
        using var model = LinearModel(W);
        using var x = Image(X, 2, 2);
        var r = DeletionInsertion.Measure(model, x, Map, 2, 2, 0, new DeletionInsertionOptions { Steps = 3, Score = FaithfulnessScore.Logit });
        // ⌊i·4/3⌋ = 0, 1, 2, 4 pixels.
        AreEqual([0, 0.25, 0.5, 1], r.Deletion.Fractions, 0, "fractions");
        AreEqual([20, 14, 8, 0], r.Deletion.Scores, 1e-5, "deletion");
        Assert.AreEqual(0.25 * 17 + 0.25 * 11 + 0.5 * 4, r.Deletion.Auc, 1e-5);
    }

    [TestMethod]
    public void ConstantModel_GivesConstantCurves_WhoseAreaIsTheConstant()
    {
        using var model = LinearModel([0, 0, 0, 0], bias: 1.5f);
        using var x = Image(X, 2, 2);
        var r = DeletionInsertion.Measure(model, x, Map, 2, 2, 0, new DeletionInsertionOptions { Steps = 3 });
        double p = 1 / (1 + Math.Exp(-1.5));
        Assert.IsTrue(r.Deletion.Scores.Concat(r.Insertion.Scores).All(s => Math.Abs(s - p) < 1e-7));
        Assert.AreEqual(p, r.Deletion.Auc, 1e-7);
        Assert.AreEqual(p, r.Insertion.Auc, 1e-7);
        Assert.AreEqual(2.5, FaithfulnessCurve.Trapezoid([0, 0.1, 0.7, 1], [2.5, 2.5, 2.5, 2.5]), 1e-15, "uneven spacing");
    }

    [TestMethod]
    public void PixelOrder_IsDescending_TiesByIndex()
    {
        CollectionAssert.AreEqual(new[] { 1, 2, 3, 0 }, DeletionInsertion.PixelOrder(Map));
        CollectionAssert.AreEqual(new[] { 1, 3, 0, 2, 4 }, DeletionInsertion.PixelOrder([0.5f, 0.9f, 0.5f, 0.9f, -1f]));
        CollectionAssert.AreEqual(new[] { 0, 1, 2 }, DeletionInsertion.PixelOrder([0f, -0f, 0f]), "−0 ties with 0");
    }

    [TestMethod]
    public void ConstantMap_OfAnySize_DeletesInIndexOrder()
    {
        using var model = LinearModel(W);
        using var x = Image(X, 2, 2);
        using var map = torch.full(new long[] { 1, 1, 1, 1 }, 0.3f);
        var r = DeletionInsertion.Measure(model, x, map, 0, new DeletionInsertionOptions { Steps = 4, Score = FaithfulnessScore.Logit });
        // Pixels 0, 1, 2, 3 remove 4, 6, 6, 4.
        AreEqual([20, 16, 10, 4, 0], r.Deletion.Scores, 1e-5, "deletion");
    }

    [TestMethod]
    public void LinearModel_TheContributionMap_HasTheLowestDeletionAndHighestInsertionArea()
    {
        // For logit = Σ wᵢxᵢ and a zero baseline, deleting by descending contribution wᵢxᵢ lowers every point of the
        // curve as far as any order can, and inserting in that order raises it as far as any order can.
        const int side = 6;
        var rng = new Random(7);
        var w = Enumerable.Range(0, side * side).Select(_ => (float)(rng.NextDouble() * 2 - 0.5)).ToArray();
        var px = Enumerable.Range(0, side * side).Select(_ => (float)rng.NextDouble()).ToArray();
        using var model = LinearModel(w);
        using var x = Image(px, side, side);
        var o = new DeletionInsertionOptions { Steps = side * side, Score = FaithfulnessScore.Logit, InsertionBaseline = PerturbationBaseline.Zero };
        var contribution = w.Zip(px, (a, b) => a * b).ToArray();
        var best = DeletionInsertion.Measure(model, x, contribution, side, side, 0, o);
        var worst = DeletionInsertion.Measure(model, x, contribution.Select(c => -c).ToArray(), side, side, 0, o);
        for (int trial = 0; trial < 5; trial++)
        {
            var random = Enumerable.Range(0, side * side).Select(_ => (float)rng.NextDouble()).ToArray();
            var r = DeletionInsertion.Measure(model, x, random, side, side, 0, o);
            Assert.IsLessThan(r.Deletion.Auc, best.Deletion.Auc);
            Assert.IsGreaterThan(r.Insertion.Auc, best.Insertion.Auc);
            Assert.IsGreaterThan(r.Deletion.Auc, worst.Deletion.Auc);
            for (int i = 0; i <= o.Steps; i++)
                Assert.IsLessThanOrEqualTo(r.Deletion.Scores[i] + 1e-4, best.Deletion.Scores[i], $"step {i}");
        }
        // Both curves run between the full image and the baseline, whatever the order.
        double full = contribution.Sum();
        Assert.AreEqual(full, best.Deletion.Scores[0], 1e-4);
        Assert.AreEqual(full, best.Insertion.Scores[^1], 1e-4);
        Assert.AreEqual(0, best.Deletion.Scores[^1], 1e-5);
        Assert.AreEqual(0, best.Insertion.Scores[0], 1e-5);
    }

    [TestMethod]
    public void Measure_LeavesModelInputAndMapAsTheyWere()
    {
        using var model = LinearModel(W);
        using var x = Image(X, 2, 2);
        using var map = torch.tensor(Map, new long[] { 2, 2 });
        var before = model.call(x).data<float>().ToArray();
        var parameters = model.parameters().Select(p => p.clone()).ToList();
        DeletionInsertion.Measure(model, x, map, 0, Four);
        CollectionAssert.AreEqual(before, model.call(x).data<float>().ToArray(), "the model's outputs");
        foreach (var (p, q) in model.parameters().Zip(parameters)) Assert.IsTrue(p.equal(q).all().item<bool>(), "a parameter changed");
        foreach (var q in parameters) q.Dispose();
        CollectionAssert.AreEqual(X, x.data<float>().ToArray(), "the input");
        CollectionAssert.AreEqual(Map, map.data<float>().ToArray(), "the map");
        Assert.IsFalse(model.training);
        Assert.IsFalse(x.IsInvalid, "the input is not disposed");
        Assert.IsFalse(map.IsInvalid, "the map is not disposed");
    }

    [TestMethod]
    public void BadInput_GivesClearErrors()
    {
        using var model = LinearModel(W);
        using var x = Image(X, 2, 2);
        var nan = DeletionInsertion_Throws<ArgumentException>(() => DeletionInsertion.Measure(model, x, [0.1f, float.NaN, 0.2f, 0.3f], 2, 2, 0, Four));
        StringAssert.Contains(nan.Message, "1 values that are NaN");
        var inf = DeletionInsertion_Throws<ArgumentException>(() => DeletionInsertion.Measure(model, x, [0.1f, float.PositiveInfinity, 0.2f, 0.3f], 2, 2, 0, Four));
        StringAssert.Contains(inf.Message, "NaN or ∞");
        var cls = DeletionInsertion_Throws<ArgumentOutOfRangeException>(() => DeletionInsertion.Measure(model, x, Map, 2, 2, 2, Four));
        StringAssert.Contains(cls.Message, "2 classes (0..1)");
        DeletionInsertion_Throws<ArgumentOutOfRangeException>(() => DeletionInsertion.Measure(model, x, Map, 2, 2, -1, Four));
        var steps = DeletionInsertion_Throws<ArgumentOutOfRangeException>(() => DeletionInsertion.Measure(model, x, Map, 2, 2, 0, new DeletionInsertionOptions { Steps = 0 }));
        StringAssert.Contains(steps.Message, "at least 1");
        var many = DeletionInsertion_Throws<ArgumentOutOfRangeException>(() => DeletionInsertion.Measure(model, x, Map, 2, 2, 0, new DeletionInsertionOptions { Steps = 5 }));
        StringAssert.Contains(many.Message, "at most the number of pixels");
        DeletionInsertion_Throws<ArgumentOutOfRangeException>(() => DeletionInsertion.Measure(model, x, Map, 2, 2, 0, new DeletionInsertionOptions { MaxBatch = 0 }));
        DeletionInsertion_Throws<ArgumentOutOfRangeException>(() => DeletionInsertion.Measure(model, x, Map, 2, 2, 0, new DeletionInsertionOptions { BlurSigma = double.NaN }));
        var size = DeletionInsertion_Throws<ArgumentException>(() => DeletionInsertion.Measure(model, x, Map, 3, 2, 0, Four));
        StringAssert.Contains(size.Message, "needs 6 values");
        using (var two = torch.zeros(2, 1, 2, 2))
            StringAssert.Contains(DeletionInsertion_Throws<ArgumentException>(() => DeletionInsertion.Measure(model, two, Map, 2, 2, 0, Four)).Message, "one image [1, C, H, W]");
        using (var maps = torch.zeros(2, 2, 2))
            StringAssert.Contains(DeletionInsertion_Throws<ArgumentException>(() => DeletionInsertion.Measure(model, x, maps, 0, Four)).Message, "one 2-D map");
        using (var bad = Image([1, float.NaN, 0, 0], 2, 2))
            StringAssert.Contains(DeletionInsertion_Throws<ArgumentException>(() => DeletionInsertion.Measure(model, bad, Map, 2, 2, 0, Four)).Message, "NaN or ∞");
        model.train();
        StringAssert.Contains(DeletionInsertion_Throws<InvalidOperationException>(() => DeletionInsertion.Measure(model, x, Map, 2, 2, 0, Four)).Message, "model.eval()");
        Assert.IsTrue(model.training, "the caller's mode is left alone");
    }

    private static T DeletionInsertion_Throws<T>(Action action) where T : Exception => Assert.ThrowsExactly<T>(action);
}
