using Ebp.MLNet;
using Ebp.Models;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Benchmarks;

/// <summary>
/// Issue #3: throughput of the ML.NET stage against the engine alone on the same images (goal: ≤ 5 % overhead), at
/// batch 1 and 8. Both sides start from the same managed float arrays and end with each image's map as managed floats;
/// they share one model instance, so weights and memory are identical.
/// </summary>
internal static class MlNetSection
{
    private const int Images = 32, Size = 224, Seed = 0;
    private const string Layer = "layer2";

    /// <summary>One image as the stage reads it: planar RGB floats.</summary>
    private sealed class PixelRow
    {
        [VectorType(3, Size, Size)]
        public float[] Pixels { get; set; } = [];
    }

    public static void Run(int runs, int warmup)
    {
        Console.WriteLine();
        Console.WriteLine($"## ML.NET stage vs engine alone (resnet18 @{Layer}, EBP, target = predicted, map at input resolution)");
        Console.WriteLine();
        Console.WriteLine($"{Images} random 3×{Size}×{Size} images per run; load average before: {LoadAverage()}");
        Console.WriteLine();

        torch.manual_seed(Seed);
        using var model = ModelZoo.Create("resnet18");
        var rnd = new Random(Seed);
        int pixels = 3 * Size * Size, mapSize = Size * Size;
        var images = Enumerable.Range(0, Images).Select(_ =>
        {
            var a = new float[pixels];
            for (int i = 0; i < a.Length; i++) a[i] = rnd.NextSingle();
            return a;
        }).ToArray();

        var explainer = new SaliencyExplainer(model);
        var options = new SaliencyOptions { SaliencyLayer = Layer, Resize = MapSize.Input };
        var ml = new MLContext(seed: Seed);
        var data = ml.Data.LoadFromEnumerable(images.Select(p => new PixelRow { Pixels = p }));

        Console.WriteLine("| batch | engine ms/image | stage ms/image | overhead % |");
        Console.WriteLine("|---|---|---|---|");
        foreach (int batch in new[] { 1, 8 })
        {
            var engineMaps = new float[Images][];
            var stageMaps = new float[Images][];

            // (a) The engine alone: tensor from the float arrays → Explain → each image's map to a float[].
            void Engine()
            {
                for (int start = 0; start < Images; start += batch)
                {
                    int n = Math.Min(batch, Images - start);
                    var buffer = new float[n * pixels];
                    for (int k = 0; k < n; k++) images[start + k].CopyTo(buffer, k * pixels);
                    using var scope = torch.NewDisposeScope();
                    var x = torch.tensor(buffer, new long[] { n, 3, Size, Size });
                    using var result = explainer.Explain(x, SaliencyTarget.Predicted, options);
                    var maps = result.Map.data<float>().ToArray();
                    for (int k = 0; k < n; k++) engineMaps[start + k] = maps.AsSpan(k * mapSize, mapSize).ToArray();
                }
            }

            // (b) The stage: the same vectors in an IDataView, a cursor reading Saliency for every row.
            using var stage = ml.Transforms.ComputeSaliency(new SaliencyEstimator.Options
            {
                InputColumnName = "Pixels",
                Model = model,
                SaliencyLayer = Layer,
                Resolution = MapResolution.Input,
                ImageWidth = Size,
                ImageHeight = Size,
                BatchSize = batch,
            }).Fit(data);
            var view = stage.Transform(data);
            var column = view.Schema["Saliency"];
            void Stage()
            {
                using var cursor = view.GetRowCursor(new[] { column });
                var getter = cursor.GetGetter<VBuffer<float>>(column);
                VBuffer<float> map = default;
                int row = 0;
                while (cursor.MoveNext())
                {
                    getter(ref map);
                    stageMaps[row++] = map.GetValues().ToArray();
                }
                if (row != Images) throw new InvalidOperationException($"The stage served {row} rows, expected {Images}.");
            }

            var medians = Harness.InterleavedMediansMs(new Action[] { Engine, Stage }, warmup, runs);
            double engine = medians[0] / Images, stageMs = medians[1] / Images;
            double diff = MaxRelativeDifference(engineMaps, stageMaps);
            if (diff > 1e-4) throw new InvalidOperationException($"The stage's maps differ from the engine's (max relative difference {diff:G3}).");
            Console.WriteLine($"| {batch} | {engine:F1} | {stageMs:F1} | {100 * (stageMs / engine - 1):+0.0;-0.0} |");
        }
        Console.WriteLine();
        Console.WriteLine($"Medians of {runs} interleaved runs after {warmup} warm-up; maps of both sides agree (max relative difference ≤ 1e-4). " +
                          $"Load average after: {LoadAverage()}.");
    }

    private static double MaxRelativeDifference(float[][] a, float[][] b)
    {
        double worst = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double scale = a[i].Max(v => Math.Abs((double)v)) + 1e-30;
            for (int j = 0; j < a[i].Length; j++) worst = Math.Max(worst, Math.Abs(a[i][j] - b[i][j]) / scale);
        }
        return worst;
    }

    private static string LoadAverage()
    {
        try { return string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "n/a"; }
    }
}
