using Ebp.MLNet;
using Ebp.Onnx;
using Microsoft.ML;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.MLNet.Tests;

/// <summary>The stage on an ONNX model (<c>OnnxModelPath</c>), against the engine on the importer's module.</summary>
[TestClass]
public sealed class OnnxStageTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "TestData", "onnx", name);

    private static IDataView Pixels(MLContext ml)
    {
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        return ml.Data.LoadFromEnumerable(
            ml.Data.CreateEnumerable<PixelRow>(TestData.PixelPipeline(ml).Fit(data).Transform(data), false).ToList());
    }

    /// <summary>The engine's maps and predictions on <paramref name="module"/> for the pixel rows.</summary>
    private static List<(int Predicted, float[] Map)> Expected(MLContext ml, IDataView pixels, nn.Module<Tensor, Tensor> module, SaliencyOptions options)
    {
        var explainer = new SaliencyExplainer(module);
        var result = new List<(int, float[])>();
        foreach (var row in ml.Data.CreateEnumerable<PixelRow>(pixels, false))
        {
            using var scope = torch.NewDisposeScope();
            var x = torch.tensor(row.Pixels, new long[] { 1, 3, TestData.Size, TestData.Size });
            using var r = explainer.Explain(x, SaliencyTarget.Predicted, options);
            result.Add(((int)r.Scores.argmax(1).item<long>(), r.Map.flatten().data<float>().ToArray()));
        }
        return result;
    }

    [TestMethod]
    public void OnnxModelPath_GivesTheEnginesMapsAtTheSuggestedLayers()
    {
        var ml = new MLContext(seed: 1);
        var pixels = Pixels(ml);
        var path = Fixture("softmax_head.onnx");
        using var onnx = OnnxModel.Load(path);
        Assert.AreNotEqual("", onnx.Suggested.SaliencyLayer, "the fixture should have a suggested layer inside the network");

        foreach (var method in new[] { SaliencyMethod.ExcitationBackprop, SaliencyMethod.ContrastiveExcitationBackprop })
        {
            var options = new SaliencyEstimator.Options
            {
                InputColumnName = "Pixels",
                OnnxModelPath = path,
                Method = method,
                PredictedLabelFormat = PredictedLabelFormat.Index,
            };
            using var stage = ml.Transforms.ComputeSaliency(options).Fit(pixels);
            Assert.AreEqual(onnx.Suggested.SaliencyLayer, stage.SaliencyLayer);
            Assert.AreEqual(32, stage.ImageWidth);
            Assert.AreEqual(32, stage.ImageHeight);
            CollectionAssert.AreEqual(Enumerable.Range(0, 10).Select(i => $"class_{i}").ToArray(), stage.ClassNames!.ToArray());
            if (method == SaliencyMethod.ContrastiveExcitationBackprop)
            {
                Assert.AreEqual(onnx.Suggested.ContrastLayer, stage.Config.ContrastLayer);
                Assert.AreEqual(onnx.Suggested.ClassifierLayer, stage.Config.ClassifierLayer);
            }

            var expected = Expected(ml, pixels, onnx.Module, new SaliencyOptions
            {
                Method = method,
                SaliencyLayer = onnx.Suggested.SaliencyLayer,
                ContrastLayer = method == SaliencyMethod.ContrastiveExcitationBackprop ? onnx.Suggested.ContrastLayer : null,
                ClassifierLayer = method == SaliencyMethod.ContrastiveExcitationBackprop ? onnx.Suggested.ClassifierLayer : null,
                Resize = MapSize.Input,
            });
            var rows = TestData.Read(ml, stage.Transform(pixels));
            Assert.AreEqual(expected.Count, rows.Count);
            for (int i = 0; i < rows.Count; i++)
            {
                Assert.AreEqual(expected[i].Predicted, rows[i].PredictedLabel, $"{method} row {i}");
                TestData.AssertClose(expected[i].Map, rows[i].Saliency, 1e-5, $"{method} row {i}");
            }
        }
    }

    [TestMethod]
    public void SaveLoad_KeepsTheOnnxModelAndItsExternalData()
    {
        var ml = new MLContext(seed: 1);
        // A private copy of the model and its external data, deleted before loading: both must be inside the saved file.
        var folder = Path.Combine(TestData.TempDir, "onnx-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(folder);
        foreach (var f in new[] { "vgg_bn_external.onnx", "vgg_bn_external.weights" })
            File.Copy(Fixture(Path.Combine("external", f)), Path.Combine(folder, f));
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        var pipeline = ml.Transforms.LoadImages("Image", TestData.Folder, nameof(ImageRow.Path))
            .Append(ml.Transforms.ResizeImages("Image", 64, 64))
            .Append(ml.Transforms.ComputeSaliency(onnxModelPath: Path.Combine(folder, "vgg_bn_external.onnx")));
        var saved = Path.Combine(TestData.TempDir, Guid.NewGuid().ToString("N")[..8] + "-onnx-pipeline.zip");
        List<SaliencyRow> expected;
        using (var model = pipeline.Fit(data))
        {
            Assert.AreEqual(64, model.LastTransformer.ImageWidth);
            expected = TestData.Read(ml, model.Transform(data));
            SaliencyModel.Save(ml, model, data.Schema, saved);
        }
        Directory.Delete(folder, recursive: true);

        using (var zip = System.IO.Compression.ZipFile.OpenRead(saved))
        {
            var names = zip.Entries.Select(e => e.FullName).ToList();
            CollectionAssert.Contains(names, "stages/1.onnx/vgg_bn_external.onnx");
            CollectionAssert.Contains(names, "stages/1.onnx/vgg_bn_external.weights");
        }
        var loaded = SaliencyModel.Load(ml, saved, out _);
        try
        {
            var rows = TestData.Read(ml, loaded.Transform(data));
            Assert.AreEqual(expected.Count, rows.Count);
            for (int i = 0; i < rows.Count; i++)
            {
                Assert.AreEqual(expected[i].PredictedLabel, rows[i].PredictedLabel, $"row {i}");
                TestData.AssertClose(expected[i].Saliency, rows[i].Saliency, 0, $"row {i}");
            }
        }
        finally
        {
            (loaded as IDisposable)?.Dispose();
        }
    }

    [TestMethod]
    public void BadOnnxPath_OrFile_OrSecondSource_IsAClearError()
    {
        var ml = new MLContext(seed: 1);
        var pixels = Pixels(ml);
        var missing = Assert.ThrowsExactly<ArgumentException>(() =>
            ml.Transforms.ComputeSaliency(onnxModelPath: Path.Combine(TestData.TempDir, "no-such-model.onnx")).Fit(pixels));
        StringAssert.Contains(missing.Message, "ONNX model not found");
        StringAssert.Contains(missing.Message, "no-such-model.onnx");

        var unsupported = Assert.ThrowsExactly<ArgumentException>(() =>
            ml.Transforms.ComputeSaliency(onnxModelPath: Fixture("bad/unsupported_op.onnx")).Fit(pixels));
        StringAssert.Contains(unsupported.Message, "cannot be used");
        Assert.IsInstanceOfType<OnnxImportException>(unsupported.InnerException);

        var two = Assert.ThrowsExactly<ArgumentException>(() =>
            ml.Transforms.ComputeSaliency(new SaliencyEstimator.Options { OnnxModelPath = Fixture("softmax_head.onnx"), Architecture = "vgg16" }));
        StringAssert.Contains(two.Message, "Set exactly one model source");
    }
}
