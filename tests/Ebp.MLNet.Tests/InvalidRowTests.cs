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
        // A skipped row: all-zero map and scores (never NaN), label −1, and the reason in the error column.
        foreach (int bad in new[] { 2, 4, 5 })
        {
            Assert.AreEqual(-1, rows[bad].PredictedLabel, $"row {bad}");
            Assert.HasCount(TestData.Size * TestData.Size, rows[bad].Saliency, $"row {bad}");
            Assert.IsTrue(rows[bad].Saliency.All(v => v == 0f), $"row {bad}: map not all zero");
            Assert.HasCount(TestData.Classes, rows[bad].Scores, $"row {bad}");
            Assert.IsTrue(rows[bad].Scores.All(v => v == 0f), $"row {bad}: scores not all zero");
        }
        Assert.StartsWith("the image in column 'Image' could not be read:", rows[2].SaliencyError);
        Assert.Contains("missing.png", rows[2].SaliencyError);
        Assert.StartsWith("the image in column 'Image' could not be read:", rows[4].SaliencyError);
        Assert.AreEqual("the image in column 'Image' is missing (null, e.g. an empty path)", rows[5].SaliencyError);
        foreach (int ok in new[] { 0, 1, 3, 6 })
        {
            TestData.AssertClose(good[ok].Saliency, rows[ok].Saliency, 1e-5, $"row {ok}");
            Assert.AreEqual("", rows[ok].SaliencyError, $"row {ok}");
            Assert.IsGreaterThanOrEqualTo(0, rows[ok].PredictedLabel, $"row {ok}");
        }
        Assert.AreEqual(TextDataViewType.Instance, view.Schema["SaliencyError"].Type);
        Assert.AreEqual(WithBadRows.Length, TestData.AssertNoNaNOrInfinity(view));

        // Preview reads every column, the failing image column included: no exception, null image and overlay.
        var preview = view.Preview();
        var images = preview.ColumnView.Single(c => c.Column.Name == "Image" && !c.Column.IsHidden).Values;
        var overlays = preview.ColumnView.Single(c => c.Column.Name == "Overlay").Values;
        Assert.IsNull(images[2]);
        Assert.IsNull(overlays[4]);
        Assert.IsNotNull(overlays[3]);
        var errors = preview.ColumnView.Single(c => c.Column.Name == "SaliencyError").Values;
        Assert.AreEqual("", errors[3].ToString());
        Assert.StartsWith("the image in column 'Image' could not be read:", errors[4].ToString()!);

        // The prediction engine skips the same way.
        using var engine = ml.Model.CreatePredictionEngine<ImageRow, SaliencyRow>(model);
        var skipped = engine.Predict(new ImageRow { Path = "corrupt.png" });
        Assert.AreEqual(-1, skipped.PredictedLabel);
        Assert.IsTrue(skipped.Saliency.All(v => v == 0f) && skipped.Scores.All(v => v == 0f));
        Assert.StartsWith("the image in column 'Image' could not be read:", skipped.SaliencyError);
        var fine = engine.Predict(new ImageRow { Path = "3.png" });
        Assert.AreEqual("", fine.SaliencyError);
        TestData.AssertClose(good[3].Saliency, fine.Saliency, 1e-5, "engine row 3");
    }

    [TestMethod]
    public void ErrorColumnIsEmptyInThrowModeAndCanBeOmitted()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        using (var model = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(TestData.Options("Image", 3))).Fit(data))
        {
            var view = model.Transform(data);
            Assert.AreEqual(TextDataViewType.Instance, view.Schema["SaliencyError"].Type);
            Assert.AreEqual("SaliencyError", model.LastTransformer.ErrorColumnName);
            var rows = TestData.Read(ml, view);
            Assert.HasCount(TestData.ImageNames.Length, rows);
            Assert.IsTrue(rows.All(r => r.SaliencyError == ""));
            TestData.AssertNoNaNOrInfinity(view);
        }

        var o = TestData.Options("Image", 3);
        o.ErrorColumnName = null;
        using (var model = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(o)).Fit(data))
        {
            var view = model.Transform(data);
            Assert.IsNull(view.Schema.GetColumnOrNull("SaliencyError"));
            Assert.IsNull(model.LastTransformer.ErrorColumnName);
        }

        o = TestData.Options("Image");
        o.ErrorColumnName = "Why";
        o.InvalidRows = InvalidRowHandling.Skip;
        var bad = ml.Data.LoadFromEnumerable(TestData.Rows("0.png", "missing.png"));
        using (var model = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(o)).Fit(bad))
        {
            var view = model.Transform(bad);
            using var cursor = view.GetRowCursor(new[] { view.Schema["Why"] });
            var why = cursor.GetGetter<ReadOnlyMemory<char>>(view.Schema["Why"]);
            ReadOnlyMemory<char> text = default;
            Assert.IsTrue(cursor.MoveNext());
            why(ref text);
            Assert.AreEqual("", text.ToString());
            Assert.IsTrue(cursor.MoveNext());
            why(ref text);
            Assert.Contains("missing.png", text.ToString());
            Assert.IsFalse(cursor.MoveNext());
        }
        o.ErrorColumnName = "";
        Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.ComputeSaliency(o));
        o.ErrorColumnName = "Saliency";
        Assert.Contains("used twice", Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.ComputeSaliency(o)).Message);
    }

    [TestMethod]
    public void FiniteCheckFindsEveryNonFiniteValue()
    {
        foreach (int length in new[] { 0, 1, 7, 8, 9, 31, 3 * TestData.Size * TestData.Size })
        {
            var values = Enumerable.Range(0, length).Select(i => (i % 5 - 2) * 1e30f).ToArray();
            if (length > 0) values[^1] = float.MaxValue;
            Assert.IsTrue(Internal.RowReader.AllFinite(values), $"length {length}");
            foreach (var bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
                for (int at = 0; at < length; at += Math.Max(1, length / 13))
                {
                    var copy = (float[])values.Clone();
                    copy[at] = bad;
                    Assert.IsFalse(Internal.RowReader.AllFinite(copy), $"length {length}, {bad} at {at}");
                    copy[at] = values[at];
                    copy[^1] = bad; // the scalar tail
                    Assert.IsFalse(Internal.RowReader.AllFinite(copy), $"length {length}, {bad} at the end");
                }
        }
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

        // Skipped: zeros and the reason, no NaN passes through to any output column.
        var o = TestData.Options("Pixels");
        o.InvalidRows = InvalidRowHandling.Skip;
        using var skipping = ml.Transforms.ComputeSaliency(o).Fit(data);
        var view = skipping.Transform(data);
        var rows = TestData.Read(ml, view);
        Assert.AreEqual("", rows[0].SaliencyError);
        Assert.AreEqual("the image in column 'Pixels' contains NaN or infinity", rows[1].SaliencyError);
        Assert.IsTrue(rows[1].Saliency.All(v => v == 0f) && rows[1].Scores.All(v => v == 0f));
        Assert.AreEqual(-1, rows[1].PredictedLabel);
        // The input column itself still holds the NaN pixel: it is the caller's data, passed through unchanged.
        var outputs = new[] { "Saliency", "PredictedLabel", "Scores", "SaliencyError" };
        var stageOnly = ml.Transforms.SelectColumns(outputs).Fit(view).Transform(view);
        Assert.AreEqual(2, TestData.AssertNoNaNOrInfinity(stageOnly));
    }
}
