using Ebp.Evaluation;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Demo.Tests;

/// <summary>Deletion and insertion curves of the committed model's maps (issue 15: is the map faithful?).</summary>
[TestClass]
public sealed class FaithfulnessTests
{
    private const int Scenes = 40;
    private const int RandomMapSeed = 15;

    [TestMethod]
    public void CebpMaps_DeleteTheEvidenceFasterThanRandomMaps()
    {
        // Measured with the committed weights, 40 scenes (every digit), k = 16, softmax, RISE baselines:
        // see the figures printed below and docs/AUDIT.md.
        var loaded = CommittedModel.Model;
        var s = loaded.Card.Saliency;
        var cebp = PointingMethod.ContrastiveEbp(s.SaliencyLayer, s.ContrastLayer, s.ClassifierLayer);
        var ebp = PointingMethod.Ebp(s.SaliencyLayer);
        var scenes = CommittedModel.Scenes(Scenes);
        var rng = new Random(RandomMapSeed);
        var sums = new Dictionary<string, (double Deletion, double Insertion, int N)>();
        void Add(string name, DeletionInsertionResult r)
        {
            var (d, i, n) = sums.GetValueOrDefault(name);
            sums[name] = (d + r.Deletion.Auc, i + r.Insertion.Auc, n + 1);
        }
        int cebpBetter = 0, pairs = 0;
        lock (CommittedModel.Gate)
        {
            var explainer = new SaliencyExplainer(loaded.Model);
            for (int start = 0; start < scenes.Count; start += 10)
            {
                var chunk = scenes.Skip(start).Take(10).ToList();
                var cebpMaps = PointingEvaluator.MapsOf(explainer, cebp, chunk, out int plane);
                var ebpMaps = PointingEvaluator.MapsOf(explainer, ebp, chunk, out _);
                using var batch = SceneData.ToTensor(chunk);
                for (int b = 0; b < chunk.Count; b++)
                {
                    using var x = batch[b..(b + 1)];
                    var scene = chunk[b];
                    for (int k = 0; k < scene.Digits.Count; k++)
                    {
                        int c = scene.Digits[k].ClassId;
                        var rc = DeletionInsertion.Measure(loaded.Model, x, cebpMaps[k].AsSpan(b * plane, plane), scene.Width, scene.Height, c);
                        var re = DeletionInsertion.Measure(loaded.Model, x, ebpMaps[k].AsSpan(b * plane, plane), scene.Width, scene.Height, c);
                        var random = Enumerable.Range(0, plane).Select(_ => (float)rng.NextDouble()).ToArray();
                        var rr = DeletionInsertion.Measure(loaded.Model, x, random, scene.Width, scene.Height, c);
                        Add("cebp", rc);
                        Add("ebp", re);
                        Add("random", rr);
                        pairs++;
                        if (rc.Deletion.Auc < rr.Deletion.Auc) cebpBetter++;
                        foreach (var r in new[] { rc, re, rr })
                        {
                            Assert.IsTrue(r.Deletion.Scores.Concat(r.Insertion.Scores).All(v => v >= 0 && v <= 1), "softmax scores lie in [0, 1]");
                            Assert.AreEqual(r.Deletion.Scores[0], r.Insertion.Scores[^1], 1e-9, "both curves end at the full image");
                        }
                    }
                }
            }
        }
        double Mean(string m, bool deletion) => (deletion ? sums[m].Deletion : sums[m].Insertion) / sums[m].N;
        foreach (var m in new[] { "cebp", "ebp", "random" })
            Console.WriteLine($"{m,-6}: mean deletion AUC {Mean(m, true):F4}, mean insertion AUC {Mean(m, false):F4} over {sums[m].N} (scene, digit) pairs");
        Console.WriteLine($"c-EBP deletion AUC below the random map's in {cebpBetter}/{pairs} pairs");
        Assert.IsLessThan(Mean("random", true), Mean("cebp", true), "c-EBP's deletion AUC must be lower than a random map's");
        Assert.IsGreaterThan(Mean("random", false), Mean("cebp", false), "c-EBP's insertion AUC should be higher than a random map's");
    }

    [TestMethod]
    public void Batched_EqualsOneImageAtATime_AndAnIndependentLoop()
    {
        var loaded = CommittedModel.Model;
        var scene = CommittedModel.Scenes(1)[0];
        int c = scene.Digits[0].ClassId, w = scene.Width, h = scene.Height, n = w * h;
        var rng = new Random(3);
        // A coarse map (10×10) with ties after upsampling exercises the resize and the tie-break.
        var map = Enumerable.Range(0, 100).Select(_ => (float)Math.Round(rng.NextDouble(), 1)).ToArray();
        const int steps = 8;
        lock (CommittedModel.Gate)
        {
            using var x = SceneData.ToTensor([scene]);
            var batched = DeletionInsertion.Measure(loaded.Model, x, map, 10, 10, c, new DeletionInsertionOptions { Steps = steps });
            var single = DeletionInsertion.Measure(loaded.Model, x, map, 10, 10, c, new DeletionInsertionOptions { Steps = steps, MaxBatch = 1 });
            var odd = DeletionInsertion.Measure(loaded.Model, x, map, 10, 10, c, new DeletionInsertionOptions { Steps = steps, MaxBatch = 5 });
            for (int i = 0; i <= steps; i++)
            {
                Assert.AreEqual(single.Deletion.Scores[i], batched.Deletion.Scores[i], 1e-5, $"deletion step {i}");
                Assert.AreEqual(single.Insertion.Scores[i], batched.Insertion.Scores[i], 1e-5, $"insertion step {i}");
                Assert.AreEqual(single.Deletion.Scores[i], odd.Deletion.Scores[i], 1e-5, $"deletion step {i}, batches of 5");
            }

            // The same deletion curve from scratch: the upsampled map, its order, the pixels set to 0 one image at a time.
            using var noGrad = torch.no_grad();
            float[] upsampled;
            using (var coarse = torch.tensor(map, new long[] { 1, 1, 10, 10 }))
            using (var fine = MapPostProcessing.Resize(coarse, new long[] { h, w }, ResizeMode.Bilinear))
                upsampled = fine.data<float>().ToArray();
            var order = DeletionInsertion.PixelOrder(upsampled);
            var pixels = scene.Pixels.ToArray();
            int deleted = 0;
            for (int i = 0; i <= steps; i++)
            {
                for (; deleted < i * n / steps; deleted++) pixels[order[deleted]] = 0;
                using var scope = torch.NewDisposeScope();
                var logits = loaded.Model.call(torch.tensor(pixels, new long[] { 1, 1, h, w }));
                double p = torch.softmax(logits.to(ScalarType.Float64), 1)[0, c].item<double>();
                Assert.AreEqual(p, batched.Deletion.Scores[i], 1e-5, $"independent deletion step {i}");
            }
        }
    }
}
