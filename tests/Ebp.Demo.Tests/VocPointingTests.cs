using Ebp.Datasets;
using Ebp.Models;
using Ebp.Evaluation;
using Ebp.Weights;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Demo.Tests;

/// <summary>
/// The VOC-folder pointing game on a tiny synthetic set whose answer is known in advance: a hand-built model whose
/// class "left" looks only at the left half of the image and "right" only at the right half, so the EBP map of a class
/// (at the input) is the image restricted to that half and its argmax is that half's brightest pixel.
/// </summary>
[TestClass]
public sealed class VocPointingTests
{
    private const int Size = 40;
    private static readonly string[] Classes = ["left", "right"];

    private static nn.Module<Tensor, Tensor> HalfImageModel()
    {
        var model = ModelSpec.Build($$"""
            {"kind": "sequential", "layers": [
              {"type": "conv2d", "in": 1, "out": 1, "kernel": 1, "bias": false},
              {"type": "flatten"},
              {"type": "linear", "in": {{Size * Size}}, "out": 2, "bias": false}]}
            """);
        var left = new float[Size * Size];
        var right = new float[Size * Size];
        for (int y = 0; y < Size; y++)
            for (int x = 0; x < Size; x++)
                (x < Size / 2 ? left : right)[y * Size + x] = 1;
        var weights = new Dictionary<string, Tensor>
        {
            ["0.weight"] = torch.ones(1, 1, 1, 1),
            ["2.weight"] = torch.tensor(left.Concat(right).ToArray(), new long[] { 2, Size * Size }),
        };
        WeightLoader.LoadStateDict(model, weights);
        foreach (var t in weights.Values) t.Dispose();
        return model;
    }

    /// <summary>A grey PNG: background 26/255 with single bright pixels.</summary>
    private static void WritePng(string path, params (int X, int Y, byte V)[] bright)
    {
        using var bitmap = new SKBitmap(Size, Size, SKColorType.Rgba8888, SKAlphaType.Premul);
        bitmap.Erase(new SKColor(26, 26, 26));
        foreach (var (x, y, v) in bright) bitmap.SetPixel(x, y, new SKColor(v, v, v));
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        using var stream = File.Create(path);
        data.SaveTo(stream);
    }

    private static VocObject Box(string name, int x0, int y0, int x1, int y1) =>
        new(name, VocBox.FromPixelBox(BoundingBox.FromEdges(x0, y0, x1 + 1, y1 + 1)));

    private static string MakeFolder()
    {
        string root = Path.Combine(Path.GetTempPath(), "ebp-demo-voc-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path.Combine(root, "Annotations"));
        Directory.CreateDirectory(Path.Combine(root, "JPEGImages"));
        // Image a: each class's brightest pixel lies in its box → EBP hits both; the centre (20,20) is in neither box.
        WritePng(Path.Combine(root, "JPEGImages", "a.png"), (8, 12, 255), (30, 25, 230));
        new VocAnnotation("a.png", Size, Size, 1, [Box("left", 6, 10, 10, 14), Box("right", 28, 23, 32, 27)]).Save(Path.Combine(root, "Annotations", "a.xml"));
        // Image b: both peaks lie outside their boxes → EBP misses both; the "right" box covers the centre.
        WritePng(Path.Combine(root, "JPEGImages", "b.png"), (5, 5, 255), (35, 35, 255));
        new VocAnnotation("b.png", Size, Size, 1, [Box("left", 12, 30, 16, 35), Box("right", 18, 18, 24, 24)]).Save(Path.Combine(root, "Annotations", "b.xml"));
        return root;
    }

    [TestMethod]
    public void PointsCsvHasOneRowPerTrialMatchingTheTable()
    {
        string root = MakeFolder();
        string csv = Path.Combine(root, "out", "points.csv");
        try
        {
            var items = VocEvaluator.Scan(root);
            using var model = HalfImageModel();
            IReadOnlyList<MethodResult> results;
            using (var writer = new PointsCsvWriter(csv))
                results = VocEvaluator.Run(model, Classes, 1, items, [PointingMethod.Center, PointingMethod.Ebp("")], 1.0, out _,
                    onPoint: writer.Write);
            var lines = File.ReadAllLines(csv);
            Assert.AreEqual("image,class,method,x,y,hit", lines[0]);
            var rows = lines.Skip(1).Select(l => l.Split(',')).ToList();
            Assert.HasCount(2 * 4, rows, "2 methods × 2 images × 2 classes");
            // The centre of the 40×40 image is (20, 20) for every trial.
            Assert.IsTrue(rows.Where(r => r[2] == "center").All(r => r[3] == "20" && r[4] == "20"));
            foreach (var (r, m) in results.Select((r, i) => (r, i == 0 ? "center" : "ebp")))
                Assert.AreEqual(r.All.TotalHits, rows.Count(row => row[2] == m && row[5] == "True"), m);
            CollectionAssert.Contains(rows.Select(r => $"{r[0]},{r[1]},{r[2]}").ToList(), "a.png,left,ebp");
        }
        finally
        {
            try { Directory.Delete(root, recursive: true); } catch (IOException) { }
        }
    }

    [TestMethod]
    public void VocLayoutsFoundInTheWildAreAccepted()
    {
        // VOCdevkit/VOC2007/{Annotations,JPEGImages}; lower-case folder names; XML next to the images.
        foreach (var layout in new[] { "devkit", "lowercase", "flat" })
        {
            string root = MakeFolder();
            try
            {
                string scanned = root;
                switch (layout)
                {
                    case "devkit":
                        string voc = Path.Combine(root, "VOCdevkit", "VOC2007");
                        string tmp = root + "-moved";
                        Directory.Move(root, tmp);
                        Directory.CreateDirectory(Path.GetDirectoryName(voc)!);
                        Directory.Move(tmp, voc);
                        break;
                    case "lowercase":
                        Directory.Move(Path.Combine(root, "Annotations"), Path.Combine(root, "annotations"));
                        Directory.Move(Path.Combine(root, "JPEGImages"), Path.Combine(root, "jpegimages"));
                        break;
                    case "flat":
                        foreach (var f in Directory.GetFiles(Path.Combine(root, "Annotations")).Concat(Directory.GetFiles(Path.Combine(root, "JPEGImages"))))
                            File.Move(f, Path.Combine(root, Path.GetFileName(f)));
                        Directory.Delete(Path.Combine(root, "Annotations"));
                        Directory.Delete(Path.Combine(root, "JPEGImages"));
                        break;
                }
                var items = VocEvaluator.Scan(scanned);
                Assert.HasCount(2, items, layout);
                CollectionAssert.AreEqual(new[] { "a.png", "b.png" }, items.Select(i => Path.GetFileName(i.ImagePath)).ToArray(), layout);
                Assert.IsTrue(items.All(i => File.Exists(i.ImagePath)), layout);
            }
            finally
            {
                try { Directory.Delete(root, recursive: true); } catch (IOException) { }
            }
        }
    }

    [TestMethod]
    public void SyntheticVoc_GivesTheKnownAccuracies()
    {
        string root = MakeFolder();
        try
        {
            var items = VocEvaluator.Scan(root);
            Assert.HasCount(2, items);
            Assert.AreEqual("a.png", Path.GetFileName(items[0].ImagePath));

            using var model = HalfImageModel();
            var methods = new[]
            {
                PointingMethod.Center,
                PointingMethod.Ebp(""),                 // EBP at the input: the image on the class's half
                PointingMethod.Gradient(),              // constant on the half → argmax at its first pixel
            };
            var results = VocEvaluator.Run(model, Classes, 1, items, methods, tolerancePx: 1.0, out int skipped);
            Assert.AreEqual(0, skipped);

            var center = results[0];
            CollectionAssert.AreEqual(new[] { 0, 1 }, center.All.Hits.ToArray());
            CollectionAssert.AreEqual(new[] { 2, 2 }, center.All.Totals.ToArray());
            Assert.AreEqual(0.25, center.All.MeanAccuracy, 1e-12);

            var ebp = results[1];
            CollectionAssert.AreEqual(new[] { 1, 1 }, ebp.All.Hits.ToArray());
            Assert.AreEqual(0.5, ebp.All.MeanAccuracy, 1e-12);

            var gradient = results[2];
            Assert.AreEqual(0.0, gradient.All.MeanAccuracy, 1e-12);

            // Every trial is "difficult" (small boxes, another class present), so the subsets agree.
            foreach (var r in results)
            {
                CollectionAssert.AreEqual(r.All.Totals.ToArray(), r.Difficult.Totals.ToArray());
                Assert.AreEqual(r.All.MeanAccuracy, r.Difficult.MeanAccuracy, 1e-12);
            }
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [TestMethod]
    public void UnknownClasses_AreSkipped_AndFlatLayoutWorks()
    {
        string root = Path.Combine(Path.GetTempPath(), "ebp-demo-voc-flat-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(root);
        try
        {
            WritePng(Path.Combine(root, "only.png"), (8, 12, 255));
            new VocAnnotation(null, Size, Size, 1, [Box("left", 6, 10, 10, 14), Box("cat", 0, 0, 3, 3)]).Save(Path.Combine(root, "only.xml"));
            var items = VocEvaluator.Scan(root);
            using var model = HalfImageModel();
            // Tolerance 0.5: only the box itself counts (TorchRay's strict rule: at 0 nothing would).
            var results = VocEvaluator.Run(model, Classes, 1, items, [PointingMethod.Ebp("")], 0.5, out int skipped);
            Assert.AreEqual(1, skipped);
            CollectionAssert.AreEqual(new[] { 1, 0 }, results[0].All.Hits.ToArray());
            CollectionAssert.AreEqual(new[] { 1, 0 }, results[0].All.Totals.ToArray());
            Assert.AreEqual(1.0, results[0].All.MeanAccuracy, 1e-12);        // "right" has no trial: not averaged
            Assert.AreEqual(0, results[0].Difficult.TotalCount);                 // one class only: no distractor
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [TestMethod]
    public void LoadImage_ReadsGreyAndRgbAsPixelOver255()
    {
        string path = Path.Combine(Path.GetTempPath(), "ebp-demo-img-" + Guid.NewGuid().ToString("N") + ".png");
        try
        {
            WritePng(path, (3, 4, 255));
            using var grey = VocEvaluator.LoadImage(path, 1);
            CollectionAssert.AreEqual(new long[] { 1, 1, Size, Size }, grey.shape);
            Assert.AreEqual(1f, grey[0, 0, 4, 3].item<float>(), 1e-6f);
            Assert.AreEqual(26f / 255f, grey[0, 0, 0, 0].item<float>(), 1e-6f);
            using var rgb = VocEvaluator.LoadImage(path, 3);
            CollectionAssert.AreEqual(new long[] { 1, 3, Size, Size }, rgb.shape);
            Assert.AreEqual(1f, rgb[0, 2, 4, 3].item<float>(), 1e-6f);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void AveragePrecision_MatchesAHandComputedValue()
    {
        // Ranked: +, -, +, -, + → precisions at the positives 1/1, 2/3, 3/5 → AP = (1 + 2/3 + 3/5) / 3.
        float[] scores = [0.9f, 0.8f, 0.7f, 0.6f, 0.5f];
        bool[] positive = [true, false, true, false, true];
        Assert.AreEqual((1 + 2.0 / 3 + 3.0 / 5) / 3, AveragePrecision.Of(scores, positive), 1e-12);
        Assert.IsTrue(double.IsNaN(AveragePrecision.Of(scores, new bool[5])));
    }
}
