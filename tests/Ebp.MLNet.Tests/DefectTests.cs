using Ebp.MLNet;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Ebp.MLNet.Tests;

/// <summary>
/// The defects of issue 12, each reproduced as found by an independent harness (each test failed before its fix).
/// Only API that existed before the fix is used here, so the tests also run against the old stage.
/// </summary>
[TestClass]
public sealed class DefectTests
{
    private static string NewPath(string name) => Path.Combine(TestData.TempDir, Guid.NewGuid().ToString("N")[..8] + "-" + name);

    /// <summary>A PNG of the test set cut to 40 % of its bytes: SkiaSharp still decodes it, with the rest left zero.</summary>
    internal static string TruncatedPng()
    {
        var path = Path.Combine(TestData.Folder, "truncated.png");
        if (!File.Exists(path))
        {
            var bytes = File.ReadAllBytes(Path.Combine(TestData.Folder, "1.png"));
            File.WriteAllBytes(path, bytes[..(bytes.Length * 2 / 5)]);
        }
        return "truncated.png";
    }

    // 1. Disposing a PredictionEngine disposed the stage; the save then wrote an empty weights entry.
    [TestMethod]
    public void DisposingAPredictionEngine_LeavesTheStageWorkingAndSavable()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        using var model = TestData.PixelPipeline(ml).Append(ml.Transforms.ComputeSaliency(TestData.Options("Pixels", 3))).Fit(data);
        var expected = TestData.Read(ml, model.Transform(data));
        using (var engine = ml.Model.CreatePredictionEngine<ImageRow, SaliencyRow>(model))
            Assert.AreEqual(expected[0].PredictedLabel, engine.Predict(TestData.Rows()[0]).PredictedLabel);

        var after = TestData.Read(ml, model.Transform(data));
        for (int i = 0; i < expected.Count; i++) TestData.AssertClose(expected[i].Saliency, after[i].Saliency, 0, $"row {i} after the engine");

        var path = NewPath("after-engine.zip");
        SaliencyModel.Save(ml, model, data.Schema, path);
        using var loaded = (IDisposable)SaliencyModel.Load(ml, path, out _);
        var reloaded = TestData.Read(ml, ((ITransformer)loaded).Transform(data));
        for (int i = 0; i < expected.Count; i++) TestData.AssertClose(expected[i].Saliency, reloaded[i].Saliency, 0, $"row {i} reloaded");
    }

    // 1. A stage whose weights are really gone (a user-supplied module the caller disposed) never saves.
    [TestMethod]
    public void StageWithADisposedModel_DoesNotSave()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        var module = TestData.CreateModel();
        var o = TestData.Options("Pixels");
        o.ModelSpecJson = null;
        o.WeightsPath = null;
        o.Model = module;
        using var model = TestData.PixelPipeline(ml).Append(ml.Transforms.ComputeSaliency(o)).Fit(data);
        module.Dispose();
        var path = NewPath("disposed.zip");
        Assert.ThrowsExactly<ObjectDisposedException>(() => SaliencyModel.Save(ml, model, data.Schema, path));
        Assert.IsFalse(File.Exists(path), "a file was left behind");
    }

    // 2 and 5. The README's ExtractPixels pipeline with InvalidRows = Skip over a missing, a truncated and an empty image.
    [TestMethod]
    public void Skip_WithExtractPixels_MarksMissingTruncatedAndEmptyImages_AndKeepsEveryGoodRow()
    {
        var ml = new MLContext(seed: 1);
        string[] names = ["0.png", "missing.png", "1.png", TruncatedPng(), "", "3.png"];
        var data = ml.Data.LoadFromEnumerable(TestData.Rows(names));
        var o = TestData.Options("Pixels", 2);
        o.InvalidRows = InvalidRowHandling.Skip;
        using var model = TestData.PixelPipeline(ml).Append(ml.Transforms.ComputeSaliency(o)).Fit(data);
        var rows = ml.Data.CreateEnumerable<SaliencyRow>(model.Transform(data), reuseRowObject: false).ToList();
        Assert.HasCount(names.Length, rows);

        var good = TestData.Read(ml, model.Transform(ml.Data.LoadFromEnumerable(TestData.Rows("0.png", "1.png", "3.png"))));
        int[] goodRows = [0, 2, 5];
        for (int k = 0; k < goodRows.Length; k++)
        {
            var r = rows[goodRows[k]];
            Assert.AreEqual("", r.SaliencyError, $"row {goodRows[k]}");
            Assert.AreEqual(good[k].PredictedLabel, r.PredictedLabel, $"row {goodRows[k]}");
            TestData.AssertClose(good[k].Saliency, r.Saliency, 1e-5, $"row {goodRows[k]}");
        }
        foreach (int bad in new[] { 1, 3, 4 })
        {
            Assert.AreEqual(-1, rows[bad].PredictedLabel, $"row {bad}: {rows[bad].SaliencyError}");
            Assert.IsTrue(rows[bad].Saliency.All(v => v == 0f), $"row {bad}");
            Assert.AreNotEqual("", rows[bad].SaliencyError, $"row {bad}");
        }
        Assert.Contains("missing.png", rows[1].SaliencyError);
        Assert.Contains("truncated", rows[3].SaliencyError);
        Assert.AreEqual("the image in column 'Image' (the source of 'Pixels') is missing (null, e.g. an empty path)", rows[4].SaliencyError);
    }

    // 5. The MLImage path: a truncated file is an invalid row, not a good one.
    [TestMethod]
    public void TruncatedImage_IsAnInvalidRow_WithImageInput()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows("0.png", TruncatedPng()));
        using var model = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(TestData.Options("Image"))).Fit(data);
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => TestData.Read(ml, model.Transform(data)));
        Assert.StartsWith("Row 1: the image in column 'Image' could not be read: the file", e.Message);
        Assert.Contains("truncated", e.Message);
    }

    // 3. A contrast layer below the saliency layer passed Fit and failed at the first MoveNext.
    [TestMethod]
    public void ContrastLayerBelowTheSaliencyLayer_FailsInFit()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        var o = TestData.Options("Image");
        o.Method = SaliencyMethod.ContrastiveExcitationBackprop;
        o.SaliencyLayer = "classifier.1";
        o.ContrastLayer = "features.3";
        var pipeline = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(o));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => pipeline.Fit(data));
        Assert.Contains("must lie below the contrast layer 'features.3'", e.Message);
    }

    // 4. The schema message for a 1-channel model quoted a 3-channel vector.
    [TestMethod]
    public void SchemaMessage_ForAGreyModel_QuotesOneChannel()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        var o = TestData.Options("Path");
        o.ModelSpecJson = """{"kind":"vgg","cfg":[8,"M",16,"M"],"in_channels":1,"hidden":32,"num_classes":5,"pool_size":2}""";
        o.WeightsPath = null;
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(o)).Fit(data));
        Assert.Contains($"Schema mismatch for input column 'Path': expected Image or Vector<Single, 1, {TestData.Size}, {TestData.Size}>", e.Message);
    }

    // 6. mlContext.Model.Save threw as documented but left an unloadable file behind.
    [TestMethod]
    public void MLNetModelSave_ThrowsAndLeavesNoFile()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        using var model = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(TestData.Options("Image"))).Fit(data);
        var path = NewPath("mlnet.zip");
        var e = Assert.ThrowsExactly<NotSupportedException>(() => ml.Model.Save(model, data.Schema, path));
        Assert.Contains("SaliencyModel.Save", e.Message);
        if (!OperatingSystem.IsWindows()) Assert.IsFalse(File.Exists(path), "ML.NET's half-written file was left behind");
    }
}
