using Ebp.MLNet;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.MLNet.Tests;

/// <summary>The stage computes what <see cref="SaliencyExplainer"/> computes, whatever the input kind and target.</summary>
[TestClass]
public sealed class EquivalenceTests
{
    private static (List<PixelRow> Pixels, IDataView Data) Inputs(MLContext ml)
    {
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        var pixels = ml.Data.CreateEnumerable<PixelRow>(TestData.PixelPipeline(ml).Fit(data).Transform(data), false).ToList();
        return (pixels, data);
    }

    /// <summary>The explainer on the ExtractPixels vectors, all rows in one call.</summary>
    private static (float[][] Maps, float[][] Scores) Direct(List<PixelRow> pixels, SaliencyTarget target, SaliencyOptions options)
    {
        using var scope = torch.NewDisposeScope();
        using var model = TestData.CreateModel();
        var x = torch.tensor(pixels.SelectMany(p => p.Pixels).ToArray(), new long[] { pixels.Count, 3, TestData.Size, TestData.Size });
        using var result = new SaliencyExplainer(model).Explain(x, target, options);
        long mapSize = result.Map.shape[2] * result.Map.shape[3];
        var maps = result.Map.reshape(pixels.Count, mapSize).data<float>().ToArray();
        var scores = result.Scores.data<float>().ToArray();
        return (Enumerable.Range(0, pixels.Count).Select(i => maps.Skip(i * (int)mapSize).Take((int)mapSize).ToArray()).ToArray(),
                Enumerable.Range(0, pixels.Count).Select(i => scores.Skip(i * TestData.Classes).Take(TestData.Classes).ToArray()).ToArray());
    }

    private static void AssertRows(List<SaliencyRow> rows, (float[][] Maps, float[][] Scores) expected, string what)
    {
        Assert.HasCount(expected.Maps.Length, rows);
        for (int i = 0; i < rows.Count; i++)
        {
            TestData.AssertClose(expected.Maps[i], rows[i].Saliency, 1e-5, $"{what} row {i} map");
            TestData.AssertClose(expected.Scores[i], rows[i].Scores, 1e-5, $"{what} row {i} scores");
            int argmax = Array.IndexOf(expected.Scores[i], expected.Scores[i].Max());
            Assert.AreEqual(argmax, rows[i].PredictedLabel, $"{what} row {i} predicted");
        }
    }

    [TestMethod]
    public void StageEqualsExplainerForImageAndPixelInput()
    {
        var ml = new MLContext(seed: 1);
        var (pixels, data) = Inputs(ml);
        var expected = Direct(pixels, SaliencyTarget.Predicted, new SaliencyOptions { SaliencyLayer = TestData.Layer, Resize = MapSize.Input });

        using var imageModel = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(TestData.Options("Image", 3))).Fit(data);
        AssertRows(TestData.Read(ml, imageModel.Transform(data)), expected, "MLImage input");

        using var pixelModel = TestData.PixelPipeline(ml).Append(ml.Transforms.ComputeSaliency(TestData.Options("Pixels", 3))).Fit(data);
        AssertRows(TestData.Read(ml, pixelModel.Transform(data)), expected, "pixel-vector input");
    }

    [TestMethod]
    public void MeanStdAndChannelOrderApplyToBothInputKinds()
    {
        var ml = new MLContext(seed: 1);
        var (pixels, data) = Inputs(ml);
        float[] mean = [0.2f, 0.1f, 0.3f], std = [0.5f, 0.6f, 0.7f];
        // BGR planes normalised by hand = what the stage should feed the model.
        int plane = TestData.Size * TestData.Size;
        var bgr = pixels.Select(p => new PixelRow
        {
            Pixels = Enumerable.Range(0, 3).SelectMany(c => p.Pixels.Skip((2 - c) * plane).Take(plane).Select(v => (v - mean[c]) / std[c])).ToArray(),
        }).ToList();
        var options = new SaliencyOptions { SaliencyLayer = TestData.Layer, Resize = MapSize.Input };
        var expected = Direct(bgr, SaliencyTarget.Predicted, options);

        var o = TestData.Options("Image");
        o.Mean = mean;
        o.Std = std;
        o.ChannelOrder = ChannelOrder.Bgr;
        using var imageModel = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(o)).Fit(data);
        AssertRows(TestData.Read(ml, imageModel.Transform(data)), expected, "MLImage BGR");

        // Vectors are taken in model order as they are; only Mean/Std apply.
        var rawBgr = pixels.Select(p => new PixelRow
        {
            Pixels = Enumerable.Range(0, 3).SelectMany(c => p.Pixels.Skip((2 - c) * plane).Take(plane)).ToArray(),
        }).ToList();
        var v = TestData.Options("Pixels");
        v.Mean = mean;
        v.Std = std;
        var vectorData = ml.Data.LoadFromEnumerable(rawBgr);
        using var vectorStage = ml.Transforms.ComputeSaliency(v).Fit(vectorData);
        AssertRows(TestData.Read(ml, vectorStage.Transform(vectorData)), expected, "vector BGR");
    }

    [TestMethod]
    public void ContrastiveFixedClassAndNativeResolution()
    {
        var ml = new MLContext(seed: 1);
        var (pixels, data) = Inputs(ml);
        var o = TestData.Options("Pixels", 4);
        o.Method = SaliencyMethod.ContrastiveExcitationBackprop;
        o.ContrastLayer = "classifier.4";
        o.Target = SaliencyTargetKind.FixedClass;
        o.TargetClass = 2;
        o.Resolution = MapResolution.Native;
        var expected = Direct(pixels, SaliencyTarget.Class(2),
            new SaliencyOptions { Method = SaliencyMethod.ContrastiveExcitationBackprop, SaliencyLayer = TestData.Layer, ContrastLayer = "classifier.4" });
        using var model = TestData.PixelPipeline(ml).Append(ml.Transforms.ComputeSaliency(o)).Fit(data);
        Assert.AreEqual(16, model.LastTransformer.MapHeight, "features.3 runs at 16×16 on a 32×32 input");
        var view = model.Transform(data);
        Assert.AreEqual(new Microsoft.ML.Data.VectorDataViewType(Microsoft.ML.Data.NumberDataViewType.Single, 16, 16), view.Schema["Saliency"].Type);
        AssertRows(TestData.Read(ml, view), expected, "contrastive, class 2, native");
    }

    [TestMethod]
    public void LabelColumnTarget()
    {
        var ml = new MLContext(seed: 1);
        var (pixels, data) = Inputs(ml);
        var o = TestData.Options("Image", 3);
        o.Target = SaliencyTargetKind.LabelColumn;
        o.LabelColumnName = nameof(ImageRow.Label);
        var classes = TestData.Labels.Select(k => (int)k).ToArray();
        var expected = Direct(pixels, SaliencyTarget.Classes(classes), new SaliencyOptions { SaliencyLayer = TestData.Layer, Resize = MapSize.Input });
        using var model = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(o)).Fit(data);
        var rows = TestData.Read(ml, model.Transform(data));
        for (int i = 0; i < rows.Count; i++)
            TestData.AssertClose(expected.Maps[i], rows[i].Saliency, 1e-5, $"row {i}");

        // Key 0 is a missing label: an error naming the row, or an empty row with Skip.
        var missing = TestData.Rows();
        missing[1].Label = 99; // out of the key range: LoadFromEnumerable stores key 0
        var missingData = ml.Data.LoadFromEnumerable(missing);
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => TestData.Read(ml, model.Transform(missingData)));
        Assert.Contains("Row 1: the label in column 'Label' is missing (key value 0)", e.Message);
        o.InvalidRows = InvalidRowHandling.Skip;
        using var skipping = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(o)).Fit(data);
        var skipped = TestData.Read(ml, skipping.Transform(missingData));
        Assert.AreEqual(-1, skipped[1].PredictedLabel);
        Assert.IsTrue(skipped[1].Saliency.All(v => v == 0f) && skipped[1].Scores.All(v => v == 0f));
        Assert.AreEqual("the label in column 'Label' is missing (key value 0)", skipped[1].SaliencyError);
        Assert.AreEqual("", skipped[2].SaliencyError);
        TestData.AssertClose(expected.Maps[2], skipped[2].Saliency, 1e-5, "row 2 next to a skipped row");
    }

    [TestMethod]
    public void OverlaysAgreeForImageAndPixelInput()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        MLImage[] Overlays(IEstimator<ITransformer> pipeline, string input)
        {
            var o = TestData.Options(input);
            o.OverlayColumnName = "Overlay";
            o.OverlayAlpha = 0.4f;
            using var model = pipeline.Append(ml.Transforms.ComputeSaliency(o)).Fit(data);
            var view = model.Transform(data);
            using var cursor = view.GetRowCursor(new[] { view.Schema["Overlay"] });
            var getter = cursor.GetGetter<MLImage>(view.Schema["Overlay"]);
            var result = new List<MLImage>();
            while (cursor.MoveNext())
            {
                MLImage image = null!;
                getter(ref image);
                result.Add(image);
            }
            return result.ToArray();
        }
        var fromImages = Overlays(TestData.ImagePipeline(ml), "Image");
        var fromPixels = Overlays(TestData.PixelPipeline(ml), "Pixels");
        Assert.HasCount(TestData.ImageNames.Length, fromImages);
        for (int i = 0; i < fromImages.Length; i++)
        {
            Assert.AreEqual(TestData.Size, fromPixels[i].Width);
            var a = fromImages[i].Pixels.ToArray();
            var b = fromPixels[i].Pixels.ToArray();
            Assert.HasCount(a.Length, b);
            // Display pixels are reconstructed from the vector (v / Scale): equal up to rounding.
            Assert.IsTrue(a.Zip(b).All(p => Math.Abs(p.First - p.Second) <= 1), $"row {i}");
        }
    }

    [TestMethod]
    public void ImagesOfAnotherSizeAreResizedByTheStage()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        // LoadImages only: images of 40×36 and 32×32 reach the stage, which resizes them to 32×32.
        var pipeline = ml.Transforms.LoadImages("Image", TestData.Folder, nameof(ImageRow.Path))
            .Append(ml.Transforms.ComputeSaliency(TestData.Options()));
        using var model = pipeline.Fit(data);
        var rows = TestData.Read(ml, model.Transform(data));
        Assert.HasCount(TestData.ImageNames.Length, rows);
        Assert.IsTrue(rows.All(r => r.Saliency.Length == TestData.Size * TestData.Size && r.Saliency.All(float.IsFinite)));
        Assert.IsTrue(rows.All(r => r.PredictedLabel >= 0));
    }
}
