namespace Ebp.Datasets.Tests;

[TestClass]
public sealed class ClutteredMnistGeneratorTests
{
    /// <summary>
    /// SHA-256 of the pixels (little-endian float32) of scenes 0..9 of seed 42, default options, built from
    /// the committed train subset. Pinned when the generator was written: a change means scenes differ
    /// from those of earlier runs or other machines (or the algorithm was changed on purpose: then update it).
    /// </summary>
    private const string PinnedHashSeed42 = "9181f9b817d223155cf92f3f7bcad5e72c8a485eb267d37ca43eda5069eb23cf";

    private static readonly ClutteredMnistOptions Clean = new() { NoiseStd = 0 };

    private static readonly Lazy<IReadOnlyList<ClutteredScene>> LazyTrainScenes =
        new(() => ClutteredMnistGenerator.ForTraining(TestSets.Train).Generate(200, 2024));

    /// <summary>200 default training scenes of seed 2024, shared by the property tests.</summary>
    private static IReadOnlyList<ClutteredScene> TrainScenes => LazyTrainScenes.Value;

    [TestMethod]
    public void SameSeed_GivesIdenticalScenes_AndThePinnedHash()
    {
        // Two independently built generators (and sets read twice) must agree bit for bit.
        var a = ClutteredMnistGenerator.ForTraining(TestSets.Train).Generate(10, 42);
        MnistSet reread = IdxReader.ReadSet(TestSets.TrainImages, TestSets.TrainLabels, MnistSplit.Train);
        var b = ClutteredMnistGenerator.ForTraining(reread).Generate(10, 42);
        for (int i = 0; i < a.Count; i++) AssertSameScene(a[i], b[i]);
        Assert.AreEqual(TestSets.PixelHash(a), TestSets.PixelHash(b));
        Assert.AreEqual(PinnedHashSeed42, TestSets.PixelHash(a));
    }

    [TestMethod]
    public void PinnedFirstScene_Seed42()
    {
        ClutteredScene s = ClutteredMnistGenerator.ForTraining(TestSets.Train).GenerateOne(42, 0);
        Assert.AreEqual(42UL, s.Seed);
        Assert.AreEqual(0L, s.Index);
        Assert.AreEqual("8@[x=58, y=30, w=13, h=20]/28 6@[x=19, y=3, w=14, h=20]/28", string.Join(" ", s.Digits.Select(d => $"{d.ClassId}@{d.Box}/{d.Size}")));
    }

    [TestMethod]
    public void DifferentSeed_GivesDifferentScenes()
    {
        var gen = ClutteredMnistGenerator.ForTraining(TestSets.Train);
        string h42 = TestSets.PixelHash(gen.Generate(10, 42));
        string h43 = TestSets.PixelHash(gen.Generate(10, 43));
        Assert.AreNotEqual(h42, h43);
        CollectionAssert.AreNotEqual(gen.GenerateOne(42, 0).Pixels, gen.GenerateOne(43, 0).Pixels);
        CollectionAssert.AreNotEqual(gen.GenerateOne(42, 0).Pixels, gen.GenerateOne(42, 1).Pixels, "scenes of one seed differ too");
    }

    [TestMethod]
    public void Shards_ReproduceTheWholeRun()
    {
        var gen = ClutteredMnistGenerator.ForTraining(TestSets.Train);
        var whole = gen.Generate(12, 7);
        var shard = gen.Generate(5, 7, firstIndex: 6);
        for (int i = 0; i < shard.Count; i++)
        {
            Assert.AreEqual(6L + i, shard[i].Index);
            AssertSameScene(whole[6 + i], shard[i]);
        }

        // Out of order and on other threads: still only (seed, index) matters.
        var parallel = new ClutteredScene[12];
        Parallel.For(0, 12, i => parallel[11 - i] = gen.GenerateOne(7, 11 - i));
        for (int i = 0; i < 12; i++) AssertSameScene(whole[i], parallel[i]);
    }

    [TestMethod]
    public void Scenes_HaveTwoOrThreeDigitsOfDistinctClasses_AndMatchingMultiHot()
    {
        var counts = new int[4];
        foreach (ClutteredScene s in TrainScenes)
        {
            Assert.AreEqual(80, s.Width);
            Assert.AreEqual(80, s.Height);
            Assert.HasCount(80 * 80, s.Pixels);
            Assert.IsTrue(s.Digits.Count is 2 or 3, $"scene {s.Index} has {s.Digits.Count} digits");
            counts[s.Digits.Count]++;
            int[] classes = s.Digits.Select(d => d.ClassId).ToArray();
            Assert.AreEqual(classes.Length, classes.Distinct().Count(), $"scene {s.Index}: classes {string.Join(",", classes)}");

            Assert.HasCount(10, s.MultiHot);
            for (int c = 0; c < 10; c++)
            {
                Assert.AreEqual(classes.Contains(c) ? 1f : 0f, s.MultiHot[c], $"scene {s.Index}, class {c}");
                Assert.AreEqual(classes.Contains(c), s.ContainsClass(c));
            }

            Assert.AreEqual(s.Digits.Count, (int)s.MultiHot.Sum());
            foreach (float v in s.Pixels) Assert.IsTrue(v is >= 0f and <= 1f, $"pixel {v} outside [0,1]");
        }

        Assert.IsGreaterThan(50, counts[2], "2-digit scenes should be common");
        Assert.IsGreaterThan(50, counts[3], "3-digit scenes should be common");
    }

    [TestMethod]
    public void Boxes_LieInTheCanvas_AndKeepTheMarginBetweenThem()
    {
        foreach (ClutteredScene s in TrainScenes)
        {
            for (int i = 0; i < s.Digits.Count; i++)
            {
                BoundingBox a = s.Digits[i].Box;
                Assert.IsTrue(a.X >= 0 && a.Y >= 0 && a.Right <= 80 && a.Bottom <= 80, $"scene {s.Index}: box {a} leaves the canvas");
                Assert.IsFalse(a.IsEmpty);
                for (int j = i + 1; j < s.Digits.Count; j++)
                {
                    BoundingBox b = s.Digits[j].Box;
                    Assert.IsFalse(a.Intersects(b), $"scene {s.Index}: boxes {a} and {b} overlap");
                    Assert.IsFalse(a.Inflate(2).Intersects(b), $"scene {s.Index}: boxes {a} and {b} are closer than the 2-px margin");
                }
            }
        }
    }

    [TestMethod]
    public void Masks_LieInsideTheirBoxes_AndAgreeWithTheNoisyPixels()
    {
        var gen = ClutteredMnistGenerator.ForTraining(TestSets.Train);
        double bound = gen.NoiseBound;
        Assert.IsTrue(bound > 0 && bound < 0.2, $"noise bound {bound}");
        foreach (ClutteredScene s in TrainScenes)
        {
            foreach (SceneDigit d in s.Digits)
            {
                Assert.HasCount(80 * 80, d.InkMask);
                Assert.IsGreaterThan(10, d.InkPixelCount, $"scene {s.Index}: digit {d.ClassId} has almost no ink");
                for (int i = 0; i < d.InkMask.Length; i++)
                {
                    if (!d.InkMask[i]) continue;
                    Assert.IsTrue(d.Box.Contains(i % 80, i / 80), $"scene {s.Index}: mask pixel ({i % 80},{i / 80}) outside {d.Box}");
                    Assert.IsGreaterThanOrEqualTo(0.5 - bound, (double)s.Pixels[i], $"scene {s.Index}: mask pixel too dark");
                }
            }
        }
    }

    [TestMethod]
    public void WithoutNoise_MasksAreExactlyTheBrightPixelsOfTheBoxes()
    {
        var scenes = ClutteredMnistGenerator.ForTraining(TestSets.Train, Clean).Generate(100, 5);
        foreach (ClutteredScene s in scenes)
        {
            foreach (SceneDigit d in s.Digits)
            {
                BoundingBox b = d.Box;
                bool touchesLeft = false, touchesRight = false, touchesTop = false, touchesBottom = false;
                for (int y = b.Y; y < b.Bottom; y++)
                {
                    for (int x = b.X; x < b.Right; x++)
                    {
                        float v = s.PixelAt(x, y);
                        bool inMask = d.InkMask[y * 80 + x];
                        Assert.AreEqual(v > 0.5f, inMask, $"scene {s.Index}, digit {d.ClassId}, pixel ({x},{y}) = {v}");
                        if (inMask) Assert.IsGreaterThanOrEqualTo(0.5f, v);
                        if (v > 0)
                        {
                            touchesLeft |= x == b.X;
                            touchesRight |= x == b.Right - 1;
                            touchesTop |= y == b.Y;
                            touchesBottom |= y == b.Bottom - 1;
                        }
                    }
                }

                Assert.IsTrue(touchesLeft && touchesRight && touchesTop && touchesBottom, $"scene {s.Index}: box {b} is not tight");
            }
        }
    }

    [TestMethod]
    public void WithoutNoiseOrClutter_EverythingOutsideTheBoxesIsBlack()
    {
        var options = Clean with { ClutterFragmentsMin = 0, ClutterFragmentsMax = 0 };
        foreach (ClutteredScene s in ClutteredMnistGenerator.ForTraining(TestSets.Train, options).Generate(30, 9))
        {
            Assert.HasCount(0, s.Clutter);
            for (int i = 0; i < s.Pixels.Length; i++)
            {
                if (s.Digits.Any(d => d.Box.Contains(i % 80, i / 80))) continue;
                Assert.AreEqual(0f, s.Pixels[i], $"scene {s.Index}: pixel ({i % 80},{i / 80}) outside every box");
            }
        }
    }

    [TestMethod]
    public void Clutter_ComesFromAbsentClasses_AndStaysOutOfDigitBoxes()
    {
        int fragments = 0;
        foreach (ClutteredScene s in TrainScenes)
        {
            Assert.IsTrue(s.Clutter.Count <= 8);
            fragments += s.Clutter.Count;
            foreach (ClutterFragment f in s.Clutter)
            {
                Assert.IsFalse(s.ContainsClass(f.ClassId), $"scene {s.Index}: clutter of present class {f.ClassId}");
                Assert.AreEqual(f.ClassId, TestSets.Train.Labels[f.SourceIndex]);
                Assert.IsTrue(f.CanvasBox.Width is >= 8 and <= 12 && f.CanvasBox.Width == f.CanvasBox.Height);
                Assert.IsTrue(f.CanvasBox.X >= 0 && f.CanvasBox.Y >= 0 && f.CanvasBox.Right <= 80 && f.CanvasBox.Bottom <= 80);
                Assert.IsTrue(f.SourceCrop.X >= 0 && f.SourceCrop.Right <= 28 && f.SourceCrop.Y >= 0 && f.SourceCrop.Bottom <= 28);
                foreach (SceneDigit d in s.Digits)
                    Assert.IsFalse(d.Box.Inflate(2).Intersects(f.CanvasBox), $"scene {s.Index}: clutter {f.CanvasBox} near {d.Box}");
            }
        }

        Assert.IsGreaterThan(200 * 4 * 3 / 4, fragments, "most requested fragments find a place");
    }

    [TestMethod]
    public void DigitSizes_FollowTheOptions()
    {
        var sizes = TrainScenes.SelectMany(s => s.Digits).Select(d => d.Size).ToArray();
        Assert.IsTrue(sizes.All(z => z is >= 20 and <= 36));
        Assert.AreEqual(20, sizes.Min());
        Assert.AreEqual(36, sizes.Max());
        foreach (SceneDigit d in TrainScenes.SelectMany(s => s.Digits))
            Assert.IsTrue(d.Box.Width <= d.Size && d.Box.Height <= d.Size);
    }

    [TestMethod]
    public void TestGenerator_UsesOnlyTheT10kDigits()
    {
        MnistSet test = TestSets.Test;
        var gen = ClutteredMnistGenerator.ForTest(test, Clean);
        Assert.AreEqual(MnistSplit.Test, gen.Split);
        foreach (ClutteredScene s in gen.Generate(40, 11))
        {
            Assert.AreEqual(MnistSplit.Test, s.SourceSplit);
            foreach (SceneDigit d in s.Digits)
            {
                Assert.IsTrue(d.SourceIndex is >= 0 and < 200);
                Assert.AreEqual(d.ClassId, test.Labels[d.SourceIndex]);

                // The box holds exactly the resized t10k digit (no noise, clutter never enters a box).
                int[] patch = ClutteredMnistGenerator.ResizeBilinear(test[d.SourceIndex], d.Size, d.Size);
                (int offX, int offY) = FindOffset(patch, d.Size, d.Box);
                for (int y = d.Box.Y; y < d.Box.Bottom; y++)
                {
                    for (int x = d.Box.X; x < d.Box.Right; x++)
                    {
                        float expected = patch[(y - offY) * d.Size + (x - offX)] / (float)ClutteredMnistGenerator.One;
                        Assert.AreEqual(expected, s.PixelAt(x, y), $"scene {s.Index}, ({x},{y})");
                    }
                }
            }

            foreach (ClutterFragment f in s.Clutter) Assert.AreEqual(f.ClassId, test.Labels[f.SourceIndex]);
        }
    }

    [TestMethod]
    public void SplitsCannotBeMixedUp()
    {
        var e1 = Assert.ThrowsExactly<ArgumentException>(() => ClutteredMnistGenerator.ForTraining(TestSets.Test));
        StringAssert.Contains(e1.Message, "Train");
        var e2 = Assert.ThrowsExactly<ArgumentException>(() => ClutteredMnistGenerator.ForTest(TestSets.Train));
        StringAssert.Contains(e2.Message, "Test");
        Assert.AreEqual(MnistSplit.Train, ClutteredMnistGenerator.ForTraining(TestSets.Train).Split);
    }

    [TestMethod]
    public void BadOptions_AreRejected()
    {
        Assert.ThrowsExactly<ArgumentException>(() => ClutteredMnistGenerator.ForTraining(TestSets.Train, new() { DigitsMax = 11 }));
        Assert.ThrowsExactly<ArgumentException>(() => ClutteredMnistGenerator.ForTraining(TestSets.Train, new() { DigitsMin = 4, DigitsMax = 3 }));
        Assert.ThrowsExactly<ArgumentException>(() => ClutteredMnistGenerator.ForTraining(TestSets.Train, new() { ScaleMax = 81 }));
        Assert.ThrowsExactly<ArgumentException>(() => ClutteredMnistGenerator.ForTraining(TestSets.Train, new() { NoiseStd = -0.1 }));
        Assert.ThrowsExactly<ArgumentException>(() => ClutteredMnistGenerator.ForTraining(TestSets.Train, new() { FragmentSizeMax = 29 }));

        // Only two classes in the source: three distinct digits are impossible.
        MnistSet twoClasses = TwoClassSet();
        Assert.ThrowsExactly<ArgumentException>(() => ClutteredMnistGenerator.ForTraining(twoClasses));
        var ok = ClutteredMnistGenerator.ForTraining(twoClasses, new() { DigitsMin = 2, DigitsMax = 2 }).GenerateOne(1, 0);
        Assert.HasCount(0, ok.Clutter, "no class is left for clutter");
    }

    [TestMethod]
    public void ImpossibleLayout_FailsClearly_InsteadOfLooping()
    {
        var crowded = new ClutteredMnistOptions
        {
            CanvasSize = 40, DigitsMin = 3, DigitsMax = 3, ScaleMin = 36, ScaleMax = 36, MaxLayoutAttempts = 3,
        };
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => ClutteredMnistGenerator.ForTraining(TestSets.Train, crowded).GenerateOne(1, 0));
        StringAssert.Contains(e.Message, "40x40");

        // Overlap allowed: the same crowded setting works.
        var scene = ClutteredMnistGenerator.ForTraining(TestSets.Train, crowded with { NoOverlap = false }).GenerateOne(1, 0);
        Assert.HasCount(3, scene.Digits);
    }

    [TestMethod]
    public void BilinearResize_IsExactOnKnownCases()
    {
        // Same size: identity (bytes times 256).
        MnistDigit digit = TestSets.Train[0];
        int[] same = ClutteredMnistGenerator.ResizeBilinear(digit, 28, 28);
        for (int i = 0; i < 784; i++) Assert.AreEqual(digit.Pixels.Span[i] * 256, same[i]);

        // 2 -> 4 with half-pixel centres: samples at -0.25 (clamped), 0.25, 0.75, 1.25 (clamped)
        // give [a, .75a+.25b, .25a+.75b, b]; for a=0, b=255: 0, 63.75, 191.25, 255 (x256 in fixed point).
        var tiny = new MnistDigit(0, new byte[] { 0, 255, 0, 255 }, 2, 2, 0);
        int[] up = ClutteredMnistGenerator.ResizeBilinear(tiny, 4, 4);
        for (int y = 0; y < 4; y++)
            CollectionAssert.AreEqual(new[] { 0, 16320, 48960, 65280 }, up[(y * 4)..(y * 4 + 4)]);
    }

    private static MnistSet TwoClassSet()
    {
        MnistSet train = TestSets.Train;
        int[] picked = Enumerable.Range(0, train.Count).Where(i => train.Labels[i] is 0 or 1).ToArray();
        byte[] pixels = picked.SelectMany(i => train[i].Pixels.ToArray()).ToArray();
        byte[] labels = picked.Select(i => train.Labels[i]).ToArray();
        return new MnistSet(MnistSplit.Train, 28, 28, pixels, labels);
    }

    /// <summary>Where the patch's tight ink box was placed: the offset mapping patch to canvas coordinates.</summary>
    private static (int X, int Y) FindOffset(int[] patch, int side, BoundingBox box)
    {
        int minX = side, minY = side;
        for (int y = 0; y < side; y++)
        {
            for (int x = 0; x < side; x++)
            {
                if (patch[y * side + x] == 0) continue;
                minX = Math.Min(minX, x);
                minY = Math.Min(minY, y);
            }
        }

        return (box.X - minX, box.Y - minY);
    }

    private static void AssertSameScene(ClutteredScene a, ClutteredScene b)
    {
        Assert.AreEqual(a.Seed, b.Seed);
        Assert.AreEqual(a.Index, b.Index);
        CollectionAssert.AreEqual(a.Pixels, b.Pixels, $"scene {a.Index}");
        CollectionAssert.AreEqual(a.MultiHot, b.MultiHot);
        Assert.HasCount(a.Digits.Count, b.Digits);
        for (int i = 0; i < a.Digits.Count; i++)
        {
            Assert.AreEqual(a.Digits[i].ClassId, b.Digits[i].ClassId);
            Assert.AreEqual(a.Digits[i].Box, b.Digits[i].Box);
            Assert.AreEqual(a.Digits[i].SourceIndex, b.Digits[i].SourceIndex);
            CollectionAssert.AreEqual(a.Digits[i].InkMask, b.Digits[i].InkMask);
        }

        CollectionAssert.AreEqual(a.Clutter.ToArray(), b.Clutter.ToArray());
    }
}
