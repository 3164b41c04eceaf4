namespace Ebp.Datasets.Tests;

[TestClass]
public sealed class PointingGameTests
{
    private const int W = 10, H = 10;

    private static bool[] MaskWith(params (int X, int Y)[] pixels)
    {
        var mask = new bool[W * H];
        foreach ((int x, int y) in pixels) mask[y * W + x] = true;
        return mask;
    }

    [TestMethod]
    public void ScaledTolerance_Is15PxAt224()
    {
        Assert.AreEqual(15.0, PointingGame.ScaledTolerance(224));
        Assert.AreEqual(1200.0 / 224.0, PointingGame.ScaledTolerance(80), 1e-12);
        Assert.AreEqual(5.357142857142857, PointingGame.ScaledTolerance(80), 1e-12);
        Assert.AreEqual(7.5, PointingGame.ScaledTolerance(112));
    }

    [TestMethod]
    public void PointOnTheMask_IsAHitForAnyPositiveTolerance_NothingHitsAtZero()
    {
        // TorchRay: accept = (u² + v²) < tolerance², so at tolerance 0 even the point itself is outside.
        bool[] mask = MaskWith((5, 5));
        Assert.IsTrue(PointingGame.IsHit(mask, W, H, 5, 5, 0.5));
        Assert.IsFalse(PointingGame.IsHit(mask, W, H, 5, 5, 0));
        Assert.IsFalse(PointingGame.IsHit(mask, W, H, 6, 5, 0));
        Assert.IsFalse(PointingGame.IsHit(mask, W, H, 6, 5, 1));  // distance 1 = tolerance: a miss
        Assert.IsTrue(PointingGame.IsHit(mask, W, H, 6, 5, 1.001));
    }

    [TestMethod]
    public void PointExactlyAtTheTolerance_IsAMiss_JustInsideIsAHit()
    {
        // The reference's strict rule, du² + dv² < tolerance²: the boundary itself is outside.
        bool[] mask = MaskWith((5, 5));
        Assert.IsFalse(PointingGame.IsHit(mask, W, H, 8, 5, 3));  // distance exactly 3
        Assert.IsTrue(PointingGame.IsHit(mask, W, H, 8, 5, 3.001));
        Assert.IsFalse(PointingGame.IsHit(mask, W, H, 9, 5, 3));  // distance 4
        Assert.IsFalse(PointingGame.IsHit(mask, W, H, 8, 5, 2.999));
        Assert.IsFalse(PointingGame.IsHit(mask, W, H, 8, 9, 5));  // 3-4-5 triangle: distance exactly 5
        Assert.IsTrue(PointingGame.IsHit(mask, W, H, 8, 9, 5.001));
        Assert.IsFalse(PointingGame.IsHit(mask, W, H, 8, 9, 4.99));
        Assert.IsFalse(PointingGame.IsHit(mask, W, H, 5 + 15, 5, 15)); // the default 15 px at 224, exactly
        Assert.IsTrue(PointingGame.IsHit(mask, W, H, 5 + 14, 5, 15));
        Assert.IsTrue(PointingGame.IsHit(mask, W, H, 8, 8, 4.25)); // sqrt(18) = 4.2426
        Assert.IsFalse(PointingGame.IsHit(mask, W, H, 8, 8, 4.24));
        Assert.IsTrue(PointingGame.IsHit(mask, W, H, 2, 5, 3.5)); // to the left, too
        Assert.IsFalse(PointingGame.IsHit(mask, W, H, 2, 5, 3));
    }

    [TestMethod]
    public void NearestOfSeveralMaskPixels_Counts()
    {
        bool[] mask = MaskWith((0, 0), (9, 9), (6, 2));
        Assert.IsTrue(PointingGame.IsHit(mask, W, H, 6, 4, 2.5));  // (6,2) is 2 away
        Assert.IsFalse(PointingGame.IsHit(mask, W, H, 6, 4, 2));   // ... which is not strictly within 2
        Assert.IsFalse(PointingGame.IsHit(mask, W, H, 3, 5, 2)); // nearest (6,2): sqrt(18) > 2
    }

    [TestMethod]
    public void CanvasBorders_AreHandled()
    {
        bool[] corner = MaskWith((0, 0));
        Assert.IsTrue(PointingGame.IsHit(corner, W, H, 0, 0, 0.5));
        Assert.IsTrue(PointingGame.IsHit(corner, W, H, 2, 0, 2.5));
        Assert.IsFalse(PointingGame.IsHit(corner, W, H, 2, 0, 2));
        Assert.IsFalse(PointingGame.IsHit(corner, W, H, 3, 0, 2.5));
        Assert.IsTrue(PointingGame.IsHit(corner, W, H, -1, 0, 1.5), "a point just off the canvas still measures distance");
        Assert.IsFalse(PointingGame.IsHit(corner, W, H, 9, 9, 2));

        bool[] farCorner = MaskWith((9, 9));
        Assert.IsTrue(PointingGame.IsHit(farCorner, W, H, 9, 9, 0.5));
        Assert.IsTrue(PointingGame.IsHit(farCorner, W, H, 9, 7, 2.5));
        Assert.IsFalse(PointingGame.IsHit(farCorner, W, H, 6, 5, 5));  // 3-4-5 to the bottom-right corner: on the boundary
        Assert.IsTrue(PointingGame.IsHit(farCorner, W, H, 6, 5, 5.01));
        Assert.IsFalse(PointingGame.IsHit(farCorner, W, H, 6, 5, 4.9));

        bool[] rightEdge = MaskWith((9, 3));
        Assert.IsTrue(PointingGame.IsHit(rightEdge, W, H, 9, 0, 3.5));
        Assert.IsFalse(PointingGame.IsHit(rightEdge, W, H, 0, 3, 8.5));
        Assert.IsFalse(PointingGame.IsHit(rightEdge, W, H, 0, 3, 9));
        Assert.IsTrue(PointingGame.IsHit(rightEdge, W, H, 0, 3, 9.5));
    }

    [TestMethod]
    public void EmptyMask_NeverHits_HugeToleranceAlwaysDoes()
    {
        Assert.IsFalse(PointingGame.IsHit(new bool[W * H], W, H, 5, 5, 1e9));
        Assert.IsTrue(PointingGame.IsHit(MaskWith((0, 9)), W, H, 9, 0, 1e9));
        Assert.IsTrue(PointingGame.IsHit(MaskWith((0, 9)), W, H, 9, 0, double.PositiveInfinity));
    }

    [TestMethod]
    public void BadArguments_Throw()
    {
        Assert.ThrowsExactly<ArgumentException>(() => PointingGame.IsHit(new bool[99], W, H, 0, 0, 1));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => PointingGame.IsHit(new bool[100], W, H, 0, 0, -1));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => PointingGame.IsHit(new bool[100], W, H, 0, 0, double.NaN));
        Assert.ThrowsExactly<ArgumentException>(() => PointingGame.ArgMax(new float[5], 2, 3));
    }

    [TestMethod]
    public void ArgMax_IsTheFirstMaximumInRowMajorOrder()
    {
        // 3 wide, 2 high: maxima at (1,0) and (0,1); (1,0) comes first.
        Assert.AreEqual((1, 0), PointingGame.ArgMax([0f, 1f, 0f, 1f, 0f, 0f], 3, 2));
        Assert.AreEqual((2, 1), PointingGame.ArgMax([0f, 1f, 0f, 1f, 0f, 2f], 3, 2));
        Assert.AreEqual((0, 0), PointingGame.ArgMax([-3f, -5f, -4f, -3f], 2, 2));
        Assert.AreEqual((1, 1), PointingGame.ArgMax([float.NaN, -1f, float.NaN, 0f], 2, 2), "NaN is ignored");
        Assert.AreEqual((0, 0), PointingGame.ArgMax([5f, 5f, 5f, 5f], 2, 2));
    }

    [TestMethod]
    public void Accumulator_GivesPerClassAccuracyAndTheMeanOverClasses()
    {
        var acc = new PointingGameAccumulator();
        acc.Record(0, hit: true);
        acc.Record(0, hit: true, difficult: true);
        acc.Record(0, hit: false, difficult: true);
        acc.Record(1, hit: true);

        PointingGameResult all = acc.All;
        Assert.AreEqual(2.0 / 3.0, all.PerClassAccuracy[0], 1e-12);
        Assert.AreEqual(1.0, all.PerClassAccuracy[1]);
        Assert.IsTrue(double.IsNaN(all.PerClassAccuracy[2]), "a class without trials has no accuracy");
        Assert.AreEqual(2, all.ClassesEvaluated);
        Assert.AreEqual((2.0 / 3.0 + 1.0) / 2.0, all.MeanAccuracy, 1e-12);
        Assert.AreEqual(0.8333, all.MeanAccuracy, 1e-4);
        Assert.AreEqual(0.75, all.OverallAccuracy, 1e-12);
        Assert.AreEqual(3, all.TotalHits);
        Assert.AreEqual(4, all.TotalCount);
        CollectionAssert.AreEqual(new[] { 2, 1, 0, 0, 0, 0, 0, 0, 0, 0 }, all.Hits.ToArray());
        CollectionAssert.AreEqual(new[] { 3, 1, 0, 0, 0, 0, 0, 0, 0, 0 }, all.Totals.ToArray());

        PointingGameResult hard = acc.Difficult;
        Assert.AreEqual(1, hard.ClassesEvaluated);
        Assert.AreEqual(0.5, hard.PerClassAccuracy[0]);
        Assert.AreEqual(0.5, hard.MeanAccuracy);
        Assert.IsTrue(double.IsNaN(hard.PerClassAccuracy[1]));

        Assert.IsTrue(double.IsNaN(new PointingGameAccumulator().All.MeanAccuracy));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => acc.Record(10, true));
    }

    [TestMethod]
    public void Play_OnAScene_HitsWithTheOwnMask_MissesFarAway()
    {
        ClutteredScene scene = ClutteredMnistGenerator.ForTest(TestSets.Test).GenerateOne(3, 0);
        double tol = PointingGame.ScaledTolerance(scene.Width);
        SceneDigit target = scene.Digits[0];
        var acc = new PointingGameAccumulator();

        float[] perfect = target.InkMask.Select(b => b ? 1f : 0f).ToArray();
        Assert.IsTrue(acc.Play(scene, target, perfect, tol, (_, _) => true));

        // Peak at the first pixel farther than the tolerance from the target's ink.
        int far = Enumerable.Range(0, scene.Pixels.Length)
            .First(i => !PointingGame.IsHit(target.InkMask, scene.Width, scene.Height, i % scene.Width, i / scene.Width, tol));
        var wrong = new float[scene.Pixels.Length];
        wrong[far] = 1f;
        Assert.IsFalse(acc.Play(scene, target, wrong, tol));

        Assert.AreEqual(0.5, acc.All.PerClassAccuracy[target.ClassId]);
        Assert.AreEqual(1.0, acc.Difficult.PerClassAccuracy[target.ClassId]);
        Assert.AreEqual(1, acc.Difficult.TotalCount);
    }

    [TestMethod]
    public void DefaultDifficult_IsSmallTargetsInThreeDigitScenes()
    {
        var scenes = ClutteredMnistGenerator.ForTest(TestSets.Test).Generate(60, 17);
        double median = PointingGame.MedianBoxArea(scenes);
        int[] areas = scenes.SelectMany(s => s.Digits).Select(d => d.Box.Area).Order().ToArray();
        Assert.AreEqual(
            areas.Length % 2 == 1 ? areas[areas.Length / 2] : (areas[areas.Length / 2 - 1] + areas[areas.Length / 2]) / 2.0,
            median);

        Func<ClutteredScene, SceneDigit, bool> difficult = PointingGame.DefaultDifficultPredicate(scenes);
        int count = 0;
        foreach (ClutteredScene s in scenes)
        {
            foreach (SceneDigit d in s.Digits)
            {
                bool expected = s.Digits.Count == 3 && d.Box.Area < median;
                Assert.AreEqual(expected, difficult(s, d));
                if (expected) count++;
            }
        }

        Assert.IsGreaterThan(0, count, "some pairs are difficult");
        Assert.IsTrue(double.IsNaN(PointingGame.MedianBoxArea([])));
    }

    [TestMethod]
    public void MedianBoxArea_OfHandMadeBoxes()
    {
        ClutteredScene Scene(params int[] sides) => new(
            MnistSplit.Test, 0, 0, 80, new float[6400],
            sides.Select((side, i) => new SceneDigit(i, new BoundingBox(0, 0, side, 10), new bool[6400], 0, 28)).ToArray(),
            []);

        // Areas 100, 200 | 300, 400: median (200 + 300) / 2.
        Assert.AreEqual(250.0, PointingGame.MedianBoxArea([Scene(10, 20), Scene(30, 40)]));
        Assert.AreEqual(200.0, PointingGame.MedianBoxArea([Scene(10, 20, 30)]));
    }
}
