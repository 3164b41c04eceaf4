using System.Diagnostics;
using Ebp.Datasets;
using Ebp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Evaluation;

/// <summary>The pointing-game result of one method.</summary>
/// <param name="Method">The method.</param>
/// <param name="All">Accuracy over every (image, class present) trial.</param>
/// <param name="Difficult">Accuracy over the difficult trials.</param>
/// <param name="Images">Number of images evaluated.</param>
/// <param name="Milliseconds">Time spent computing the maps and their argmax (all classes of all images), warm-up excluded.</param>
/// <param name="Batch">Images per saliency call.</param>
public sealed record MethodResult(PointingMethod Method, PointingGameResult All, PointingGameResult Difficult, int Images, double Milliseconds, int Batch)
{
    /// <summary>Milliseconds per image, all classes present in it included.</summary>
    public double MsPerImage => Images == 0 ? double.NaN : Milliseconds / Images;
}

/// <summary>Plays the pointing game on cluttered-MNIST scenes.</summary>
public static class PointingEvaluator
{
    /// <summary>
    /// For every scene and every digit in it, computes the map of that digit's class
    /// (<see cref="SaliencyTarget.Pointing"/>, resized to the canvas), takes its argmax and scores a hit when it lies
    /// within <paramref name="tolerancePx"/> (default <see cref="Datasets.PointingGame.ScaledTolerance"/> of the canvas)
    /// of the digit's ink mask. Scenes are explained <paramref name="batch"/> at a time, all classes of a batch from one
    /// forward pass (<see cref="SaliencyExplainer.ExplainEach"/>).
    /// </summary>
    /// <param name="model">The classifier, eval mode (borrowed; restored after every batch).</param>
    /// <param name="scenes">The scenes; every digit of each is one pointing trial.</param>
    /// <param name="methods">The saliency methods (and baselines) to compare.</param>
    /// <param name="batch">Scenes per forward pass.</param>
    /// <param name="tolerancePx">Hit tolerance in canvas pixels; null: the scaled default.</param>
    /// <param name="isDifficult">The difficult subset; default <see cref="Datasets.PointingGame.DefaultDifficultPredicate"/> of <paramref name="scenes"/>.</param>
    /// <param name="progress">Called after each batch with (method, scenes done).</param>
    /// <param name="normalization">The model card's input normalisation (null: pixel/255 as is).</param>
    /// <param name="onPoint">Called with every (scene, class, method) point and whether it hit.</param>
    public static IReadOnlyList<MethodResult> Run(
        nn.Module<Tensor, Tensor> model, IReadOnlyList<ClutteredScene> scenes, IReadOnlyList<PointingMethod> methods,
        int batch = 25, double? tolerancePx = null, Func<ClutteredScene, SceneDigit, bool>? isDifficult = null,
        Action<PointingMethod, int>? progress = null, InputNormalization? normalization = null, Action<PointRecord>? onPoint = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(scenes);
        ArgumentNullException.ThrowIfNull(methods);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batch);
        if (scenes.Count == 0) throw new ArgumentException("No scenes to evaluate.", nameof(scenes));
        int classes = MnistSet.ClassCount;
        isDifficult ??= Datasets.PointingGame.DefaultDifficultPredicate(scenes);
        double tolerance = tolerancePx ?? Datasets.PointingGame.ScaledTolerance(scenes[0].Width);
        model.eval();
        var explainer = new SaliencyExplainer(model);
        var results = new List<MethodResult>();

        foreach (var method in methods)
        {
            var acc = new PointingGameAccumulator(classes);
            // Warm-up (lazy initialisation, JIT) on the first batch, not timed and not scored.
            if (!method.IsCenter) MapsOf(explainer, method, scenes.Take(Math.Min(batch, scenes.Count)).ToList(), out _, normalization);

            double ms = 0;
            for (int start = 0; start < scenes.Count; start += batch)
            {
                var chunk = scenes.Skip(start).Take(batch).ToList();
                var clock = Stopwatch.StartNew();
                var points = PointsOf(explainer, method, chunk, normalization);
                ms += clock.Elapsed.TotalMilliseconds;
                for (int b = 0; b < chunk.Count; b++)
                {
                    var scene = chunk[b];
                    for (int k = 0; k < scene.Digits.Count; k++)
                    {
                        var digit = scene.Digits[k];
                        var (x, y) = points[b][k];
                        bool hit = Datasets.PointingGame.IsHit(digit.InkMask, scene.Width, scene.Height, x, y, tolerance);
                        acc.Record(digit.ClassId, hit, isDifficult(scene, digit));
                        onPoint?.Invoke(new PointRecord($"scene {start + b}", digit.ClassId.ToString(System.Globalization.CultureInfo.InvariantCulture), method.Name, x, y, hit));
                    }
                }
                progress?.Invoke(method, Math.Min(start + batch, scenes.Count));
            }
            results.Add(new MethodResult(method, acc.All, acc.Difficult, scenes.Count, ms, batch));
        }
        return results;
    }

    /// <summary>The argmax point of each digit of each scene: <c>[scene][digit] → (x, y)</c>.</summary>
    public static (int X, int Y)[][] PointsOf(SaliencyExplainer explainer, PointingMethod method, IReadOnlyList<ClutteredScene> scenes,
        InputNormalization? normalization = null)
    {
        if (method.IsCenter)
            return scenes.Select(s => s.Digits.Select(_ => (s.Width / 2, s.Height / 2)).ToArray()).ToArray();
        var maps = MapsOf(explainer, method, scenes, out int plane, normalization);
        var points = new (int X, int Y)[scenes.Count][];
        for (int b = 0; b < scenes.Count; b++)
        {
            var s = scenes[b];
            points[b] = new (int, int)[s.Digits.Count];
            for (int k = 0; k < s.Digits.Count; k++)
                points[b][k] = Datasets.PointingGame.ArgMax(maps[k].AsSpan(b * plane, plane), s.Width, s.Height);
        }
        return points;
    }

    /// <summary>
    /// Maps of the k-th digit of each scene, for k = 0 .. max digits − 1, from one forward pass:
    /// <c>maps[k]</c> holds B planes of H·W values (scenes with fewer digits get the map of their first digit there, unused).
    /// </summary>
    public static float[][] MapsOf(SaliencyExplainer explainer, PointingMethod method, IReadOnlyList<ClutteredScene> scenes, out int plane,
        InputNormalization? normalization = null)
    {
        if (method.Options is null) throw new ArgumentException("The centre baseline has no map.", nameof(method));
        int kMax = scenes.Max(s => s.Digits.Count);
        var targets = Enumerable.Range(0, kMax)
            .Select(k => SaliencyTarget.Pointing(scenes.Select(s => s.Digits[k < s.Digits.Count ? k : 0].ClassId).ToArray()))
            .ToList();
        plane = scenes[0].Width * scenes[0].Height;
        using var scope = torch.NewDisposeScope();
        using var x = SceneData.ToTensor(scenes, normalization);
        var results = explainer.ExplainEach(x, targets, method.Options);
        try
        {
            return results.Select(r =>
            {
                return r.Map.contiguous().cpu().data<float>().ToArray();
            }).ToArray();
        }
        finally
        {
            foreach (var r in results) r.Dispose();
        }
    }
}
