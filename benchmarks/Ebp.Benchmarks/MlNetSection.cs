using Ebp.MLNet;
using Ebp.Models;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Benchmarks;

/// <summary>
/// Issue #3: throughput of the ML.NET stage against the engine alone on the same images (goal: ≤ 5 % overhead), at
/// batch 1 and 8. Both sides start from the same managed float arrays and end with each image's map as a managed
/// float[]; they share one model instance, so weights and memory are identical.
/// </summary>
/// <remarks>
/// On a loaded machine the resnet18 figures swing by tens of percent between runs. The second table measures the same
/// two paths with a tiny model, where the model costs almost nothing and what remains is the per-image cost of each
/// path (copies, cursors, ML.NET); its difference, divided by the engine's resnet18 time, bounds the stage's true
/// overhead more tightly than the noisy direct ratio.
/// </remarks>
internal static class MlNetSection
{
    private const int Images = 32, Size = 224, Seed = 0;
    private const string Layer = "layer2";

    /// <summary>A 3→4 conv, max-pool and a small classifier: nearly free, so the stage's own costs show.</summary>
    private const string TinySpec = """{"kind":"vgg","cfg":[4,"M"],"hidden":8,"num_classes":10,"pool_size":1}""";

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
        var rnd = new Random(Seed);
        var images = Enumerable.Range(0, Images).Select(_ =>
        {
            var a = new float[3 * Size * Size];
            for (int i = 0; i < a.Length; i++) a[i] = rnd.NextSingle();
            return a;
        }).ToArray();
        var batches = new[] { 1, 8 };

        var resnet = new Dictionary<int, double>();
        using (var model = ModelZoo.Create("resnet18"))
        {
            Console.WriteLine("| batch | engine ms/image | stage ms/image | overhead % |");
            Console.WriteLine("|---|---|---|---|");
            foreach (int batch in batches)
            {
                var (engine, stage) = Measure(model, Layer, images, batch, runs, warmup);
                resnet[batch] = engine;
                Console.WriteLine($"| {batch} | {engine:F1} | {stage:F1} | {100 * (stage / engine - 1):+0.0;-0.0} |");
            }
        }

        Console.WriteLine();
        Console.WriteLine("Per-image cost of each path with a tiny model (3→4 conv; the model is nearly free), and that difference as a share of the engine's resnet18 time:");
        Console.WriteLine();
        Console.WriteLine("| batch | engine ms/image | stage ms/image | stage − engine ms/image | ÷ resnet18 engine ms/image |");
        Console.WriteLine("|---|---|---|---|---|");
        using (var tiny = ModelSpec.Build(TinySpec))
        {
            foreach (int batch in batches)
            {
                var (engine, stage) = Measure(tiny, "features.1", images, batch, Math.Max(runs, 9), Math.Max(warmup, 2));
                Console.WriteLine($"| {batch} | {engine:F2} | {stage:F2} | {stage - engine:+0.00;-0.00} | {100 * (stage - engine) / resnet[batch]:+0.0;-0.0} % |");
            }
        }
        Console.WriteLine();
        Console.WriteLine($"Medians of {runs} (tiny model: {Math.Max(runs, 9)}) interleaved runs after {warmup} warm-up; both sides' maps agree (max relative difference ≤ 1e-4). " +
                          $"Load average after: {LoadAverage()}.");
    }

    /// <summary>Median ms per image of (a) the engine alone and (b) the stage, interleaved, on the same images and model.</summary>
    private static (double Engine, double Stage) Measure(nn.Module<Tensor, Tensor> model, string layer, float[][] images, int batch, int runs, int warmup)
    {
        int pixels = 3 * Size * Size, mapSize = Size * Size;
        var engineMaps = new float[images.Length][];
        var stageMaps = new float[images.Length][];
        var explainer = new SaliencyExplainer(model);
        var options = new SaliencyOptions { SaliencyLayer = layer, Resize = MapSize.Input };

        // (a) The engine alone: tensor from the float arrays → Explain → each image's map to a float[].
        void Engine()
        {
            for (int start = 0; start < images.Length; start += batch)
            {
                int n = Math.Min(batch, images.Length - start);
                var buffer = new float[n * pixels];
                for (int k = 0; k < n; k++) images[start + k].CopyTo(buffer, k * pixels);
                using var scope = torch.NewDisposeScope();
                var x = torch.tensor(buffer, new long[] { n, 3, Size, Size });
                using var result = explainer.Explain(x, SaliencyTarget.Predicted, options);
                var maps = result.Map.data<float>().ToArray();
                for (int k = 0; k < n; k++) engineMaps[start + k] = maps.AsSpan(k * mapSize, mapSize).ToArray();
            }
        }

        // (b) The stage: the same vectors in an IDataView (LoadFromEnumerable), a cursor reading Saliency for every row.
        var ml = new MLContext(seed: Seed);
        var data = ml.Data.LoadFromEnumerable(images.Select(p => new PixelRow { Pixels = p }));
        using var stage = ml.Transforms.ComputeSaliency(new SaliencyEstimator.Options
        {
            InputColumnName = "Pixels",
            Model = model,
            SaliencyLayer = layer,
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
            if (row != images.Length) throw new InvalidOperationException($"The stage served {row} rows, expected {images.Length}.");
        }

        var medians = Harness.InterleavedMediansMs(new Action[] { Engine, Stage }, warmup, runs);
        double diff = MaxRelativeDifference(engineMaps, stageMaps);
        if (diff > 1e-4) throw new InvalidOperationException($"The stage's maps differ from the engine's (max relative difference {diff:G3}).");
        return (medians[0] / images.Length, medians[1] / images.Length);
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
