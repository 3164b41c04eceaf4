using System.Text.Json.Nodes;
using Ebp.Models;
using Ebp.Evaluation;
using TorchSharp;

namespace Ebp.Demo.Tests;

/// <summary>Issue 11: the pointing-game tool takes the input normalisation from the model card, as numbers.</summary>
[TestClass]
public sealed class CardNormalizationTests
{
    private static string WriteCard(Action<JsonObject> edit)
    {
        var card = JsonNode.Parse(File.ReadAllText(CommittedModel.CardPath))!.AsObject();
        edit(card["input"]!.AsObject());
        string path = Path.Combine(Path.GetTempPath(), $"ebp-card-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, card.ToJsonString());
        return path;
    }

    [TestMethod]
    public void MeanAndStdFromTheCardAreAppliedToTheModelsInput()
    {
        string path = WriteCard(i => { i["mean"] = new JsonArray(0.5); i["std"] = new JsonArray(0.25); });
        try
        {
            var norm = ModelCard.Load(path).Input.Normalization;
            Assert.IsNotNull(norm);
            var scenes = CommittedModel.Scenes(4);
            using var raw = SceneData.ToTensor(scenes);
            using var normalized = SceneData.ToTensor(scenes, norm);
            using var expected = (raw - 0.5) / 0.25;
            Assert.IsTrue(normalized.allclose(expected, rtol: 0, atol: 1e-6));
            Assert.IsNull(ModelCard.Load(CommittedModel.CardPath).Input.Normalization, "the committed card has no normalisation");

            // The maps change with it: the normalisation reaches the model through the evaluator.
            var explainer = new SaliencyExplainer(CommittedModel.Model.Model);
            float[][] plain, withNorm;
            lock (CommittedModel.Gate)
            {
                plain = PointingEvaluator.MapsOf(explainer, PointingMethod.Gradient(), scenes, out _);
                withNorm = PointingEvaluator.MapsOf(explainer, PointingMethod.Gradient(), scenes, out _, norm);
            }
            Assert.IsFalse(plain[0].SequenceEqual(withNorm[0]), "normalised input gave the same gradient map");
        }
        finally { File.Delete(path); }
    }

    [TestMethod]
    public void BadNormalisationInTheCardIsAClearError()
    {
        foreach (var (edit, expected) in new (Action<JsonObject>, string)[]
                 {
                     (i => i["mean"] = new JsonArray(0.485, 0.456, 0.406), "input.mean has 3 values, but the input has 1 channel(s)"),
                     (i => i["std"] = new JsonArray(0.0), "input.std must hold finite numbers > 0"),
                 })
        {
            string path = WriteCard(edit);
            try
            {
                var e = Assert.ThrowsExactly<InvalidDataException>(() => ModelCard.Load(path));
                StringAssert.Contains(e.Message, expected);
                StringAssert.Contains(e.Message, path);
            }
            finally { File.Delete(path); }
        }
    }
}
