using Ebp.MLNet;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Ebp.MLNet.Tests;

/// <summary>Missing, corrupt or empty images and NaN pixels: a clear error for the row, or a documented skip.</summary>
[TestClass]
public sealed class InvalidRowTests
{
    private static readonly string[] WithBadRows = ["0.png", "1.png", "missing.png", "3.png", "corrupt.png", "", "6.png"];

    [TestMethod]
    public void BadImagesThrowNamingTheRow()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows(WithBadRows));
        using var model = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(TestData.Options("Image", 2))).Fit(data);
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => TestData.Read(ml, model.Transform(data)));
        Assert.StartsWith("Row 2: the image in column 'Image' could not be read:", e.Message);
        Assert.Contains("missing.png", e.Message);
        Assert.Contains("InvalidRowHandling.Skip", e.Message);

        // A cursor that failed does not serve the rows of its incomplete batch.
        var view = model.Transform(data);
        using (var cursor = view.GetRowCursor(view.Schema))
        {
            Assert.IsTrue(cursor.MoveNext()); // rows 0–1
            Assert.IsTrue(cursor.MoveNext());
            Assert.ThrowsExactly<InvalidOperationException>(() => cursor.MoveNext()); // rows 2–3: row 2 is missing
            Assert.Contains("create a new cursor", Assert.ThrowsExactly<InvalidOperationException>(() => cursor.MoveNext()).Message);
        }

        using var engine = ml.Model.CreatePredictionEngine<ImageRow, SaliencyRow>(model);
        Assert.AreEqual(TestData.Read(ml, model.Transform(ml.Data.LoadFromEnumerable(TestData.Rows("0.png"))))[0].PredictedLabel,
                        engine.Predict(new ImageRow { Path = "0.png" }).PredictedLabel);
        var pe = Assert.ThrowsExactly<InvalidOperationException>(() => engine.Predict(new ImageRow { Path = "corrupt.png" }));
        Assert.Contains("could not be read", pe.Message);
        // The engine still works after a failed row.
        Assert.IsGreaterThanOrEqualTo(0, engine.Predict(new ImageRow { Path = "1.png" }).PredictedLabel);
    }

    [TestMethod]
    public void SkipGivesEmptyRowsAndKeepsTheOthers()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows(WithBadRows));
        var o = TestData.Options("Image", 3);
        o.InvalidRows = InvalidRowHandling.Skip;
        o.OverlayColumnName = "Overlay";
        using var model = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(o)).Fit(data);
        var view = model.Transform(data);
        var rows = TestData.Read(ml, view);
        Assert.HasCount(WithBadRows.Length, rows);

        var goodData = ml.Data.LoadFromEnumerable(TestData.Rows());
        var good = TestData.Read(ml, model.Transform(goodData));
        foreach (int bad in new[] { 2, 4, 5 })
        {
            Assert.AreEqual(-1, rows[bad].PredictedLabel, $"row {bad}");
            Assert.IsTrue(rows[bad].Saliency.All(float.IsNaN) && rows[bad].Scores.All(float.IsNaN), $"row {bad}");
        }
        foreach (int ok in new[] { 0, 1, 3, 6 })
            TestData.AssertClose(good[ok].Saliency, rows[ok].Saliency, 1e-5, $"row {ok}");

        // Preview reads every column, the failing image column included: no exception, null image and overlay.
        var preview = view.Preview();
        var images = preview.ColumnView.Single(c => c.Column.Name == "Image" && !c.Column.IsHidden).Values;
        var overlays = preview.ColumnView.Single(c => c.Column.Name == "Overlay").Values;
        Assert.IsNull(images[2]);
        Assert.IsNull(overlays[4]);
        Assert.IsNotNull(overlays[3]);
    }

    [TestMethod]
    public void NaNPixels()
    {
        var ml = new MLContext(seed: 1);
        var pixels = new float[3 * TestData.Size * TestData.Size];
        var bad = (float[])pixels.Clone();
        bad[17] = float.NaN;
        var data = ml.Data.LoadFromEnumerable(new[] { new PixelRow { Pixels = pixels }, new PixelRow { Pixels = bad } });
        using var stage = ml.Transforms.ComputeSaliency(TestData.Options("Pixels")).Fit(data);
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => TestData.Read(ml, stage.Transform(data)));
        Assert.StartsWith("Row 1: the image in column 'Pixels' contains NaN or infinity", e.Message);
    }
}
