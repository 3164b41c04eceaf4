using Ebp.MLNet;
using Microsoft.ML;

namespace Ebp.MLNet.Tests;

/// <summary>Model cards are files from outside: checked before anything is loaded.</summary>
[TestClass]
public sealed class ModelCardTests
{
    private static string WriteCard(string weights, string classNames = """["a","b","c","d","e"]""")
    {
        var folder = Path.Combine(TestData.TempDir, "cards-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(folder);
        File.Copy(TestData.WeightsPath, Path.Combine(folder, "small.safetensors"));
        var card = Path.Combine(folder, "card.json");
        File.WriteAllText(card, $$$"""{"model": {{{TestData.Spec}}}, "weights": "{{{weights}}}", "class_names": {{{classNames}}}, "input": {"channels": 3, "height": 32, "width": 32}, "saliency": {"saliency_layer": "features.3"}}""");
        return card;
    }

    [TestMethod]
    public void Card_FillsWeightsSizeLayerAndClassNames()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        using var fromCard = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(modelCard: WriteCard("small.safetensors"))).Fit(data);
        var stage = fromCard.LastTransformer;
        Assert.AreEqual(TestData.Size, stage.ImageWidth);
        Assert.AreEqual(TestData.Layer, stage.SaliencyLayer);
        CollectionAssert.AreEqual(new[] { "a", "b", "c", "d", "e" }, stage.ClassNames!.ToArray());

        // The same maps as the spec + weight file the card names.
        using var plain = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(TestData.Options())).Fit(data);
        var expected = TestData.Read(ml, plain.Transform(data));
        var o = TestData.Options();
        o.ModelSpecJson = null;
        o.WeightsPath = null;
        o.ModelCardPath = WriteCard("small.safetensors");
        o.PredictedLabelFormat = PredictedLabelFormat.Index;
        using var indexed = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(o)).Fit(data);
        var rows = TestData.Read(ml, indexed.Transform(data));
        for (int i = 0; i < rows.Count; i++)
        {
            Assert.AreEqual(expected[i].PredictedLabel, rows[i].PredictedLabel, $"row {i}");
            TestData.AssertClose(expected[i].Saliency, rows[i].Saliency, 0, $"row {i}");
        }
    }

    [TestMethod]
    public void Card_WithAWeightFileOutsideItsFolder_OrWrongClassCount_IsRejected()
    {
        var ml = new MLContext(seed: 1);
        var e = Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.ComputeSaliency(modelCard: WriteCard("../small.safetensors")));
        Assert.Contains("must be a file name in the card's folder", e.Message);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        var count = Assert.Throws<ArgumentOutOfRangeException>(() =>
            TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(modelCard: WriteCard("small.safetensors", """["a","b"]"""))).Fit(data));
        Assert.Contains("2 class names are given but the model has 5 classes", count.Message);
    }
}
