using Ebp.Datasets;
using Ebp.Evaluation;
using Ebp.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Demo.Tests;

/// <summary>The committed cluttered-MNIST model: it loads, classifies, and its saliency maps behave.</summary>
[TestClass]
public sealed class CommittedModelTests
{
    // Floors, set a margin below the values measured with the committed weights (a retrained model may land a little
    // lower; these catch a broken model, loader or engine, not small changes):
    //   mAP on 200 scenes built from the committed 200-digit t10k subset: measured 0.9916 → floor 0.95.
    //   c-EBP argmax inside the target digit's box, 30 scenes (70 digits): measured 70/70 → floor 85 %.
    //   One-hot EBP map at features.13 sums to 1: measured |sum − 1| ≤ 1.2e-7 → tolerance 3 %.
    private const double MapFloor = 0.95;
    private const double CebpInsideFloor = 0.85;

    [TestMethod]
    public void CommittedWeights_LoadStrictly_AndMatchTheCard()
    {
        using var fresh = LoadedModel.Load(CommittedModel.CardPath);       // checks the SHA-256 in the card too
        var card = fresh.Card;
        CollectionAssert.AreEqual(Enumerable.Range(0, 10).Select(i => i.ToString()).ToArray(), card.ClassNames.ToArray());
        Assert.AreEqual(1, card.Input.Channels);
        Assert.AreEqual(80, card.Input.Width);
        Assert.AreEqual(80, card.Input.Height);

        // Strict: every key of the model is in the file and nothing else is.
        using var model = card.BuildModel();
        var result = WeightLoader.Load(model, fresh.WeightsPath, strict: true);
        Assert.IsEmpty(result.UnexpectedKeys);
        Assert.IsTrue(result.MissingKeys.All(k => k.EndsWith("num_batches_tracked", StringComparison.Ordinal)));
        Assert.AreEqual(model.state_dict().Count - result.MissingKeys.Count, result.LoadedKeys.Count);

        var names = Ebp.Composites.ModelInspection.NamedModules(model).Select(m => m.Name).ToHashSet();
        Assert.Contains(card.Saliency.SaliencyLayer, names);
        Assert.Contains(card.Saliency.ContrastLayer, names);
    }

    [TestMethod]
    public void Classifier_OnSubsetScenes_ReachesTheFloor()
    {
        var scenes = CommittedModel.Scenes(200);
        List<float[]> scores;
        lock (CommittedModel.Gate) scores = SceneData.Scores(CommittedModel.Model.Model, scenes);
        var (mAP, _) = AveragePrecision.Mean(scores, scenes.Select(s => s.MultiHot).ToList());
        Console.WriteLine($"mAP on 200 subset scenes: {mAP:F4}");
        Assert.IsGreaterThanOrEqualTo(MapFloor, mAP, $"mAP {mAP:F4} is below the floor {MapFloor:F2}");
    }

    [TestMethod]
    public void Ebp_IsFinite_AndOneHotMapSumsToOne()
    {
        var loaded = CommittedModel.Model;
        var explainer = new SaliencyExplainer(loaded.Model);
        var options = new SaliencyOptions { SaliencyLayer = loaded.Card.Saliency.SaliencyLayer };   // native 20×20, no resize
        var scenes = CommittedModel.Scenes(5);
        double worst = 0;
        lock (CommittedModel.Gate)
        {
            foreach (var scene in scenes)
            {
                using var scope = torch.NewDisposeScope();
                var x = SceneData.ToTensor([scene]);
                var targets = scene.Digits.Select(d => SaliencyTarget.Class(d.ClassId)).ToList();
                var results = explainer.ExplainEach(x, targets, options);
                foreach (var r in results)
                {
                    CollectionAssert.AreEqual(new long[] { 1, 1, 20, 20 }, r.Map.shape);
                    Assert.IsTrue(r.Map.isfinite().all().item<bool>());
                    Assert.IsGreaterThanOrEqualTo(0f, r.Map.min().item<float>());
                    double sum = r.Map.sum().item<float>();
                    worst = Math.Max(worst, Math.Abs(sum - 1));
                    Assert.AreEqual(1.0, sum, 0.03, $"scene {scene.Index}: EBP map sums to {sum:F4}");
                    r.Dispose();
                }
            }
        }
        Console.WriteLine($"largest |sum - 1| of the one-hot EBP maps: {worst:E2}");
    }

    [TestMethod]
    public void ContrastiveEbp_PeakFallsInsideTheTargetDigit()
    {
        var loaded = CommittedModel.Model;
        var explainer = new SaliencyExplainer(loaded.Model);
        var method = PointingMethod.ContrastiveEbp(loaded.Card.Saliency.SaliencyLayer, loaded.Card.Saliency.ContrastLayer,
                                                   loaded.Card.Saliency.ClassifierLayer);
        var scenes = CommittedModel.Scenes(30);
        (int X, int Y)[][] points;
        lock (CommittedModel.Gate) points = PointingEvaluator.PointsOf(explainer, method, scenes);
        int inside = 0, total = 0;
        for (int s = 0; s < scenes.Count; s++)
            for (int k = 0; k < scenes[s].Digits.Count; k++)
            {
                total++;
                if (scenes[s].Digits[k].Box.Contains(points[s][k].X, points[s][k].Y)) inside++;
            }
        double rate = (double)inside / total;
        Console.WriteLine($"c-EBP peak inside the digit's box: {inside}/{total} = {rate:P1}");
        Assert.IsGreaterThanOrEqualTo(CebpInsideFloor, rate, $"only {inside}/{total} peaks inside the digit");
    }
}
