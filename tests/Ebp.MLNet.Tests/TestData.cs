using Ebp.Models;
using Ebp.MLNet;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using SkiaSharp;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ebp.MLNet.Tests;

/// <summary>
/// An input row: an image path and a key-typed label. ML.NET's LoadFromEnumerable reads a key field as 0-based
/// (the class index) and stores it as key = value + 1; values ≥ the key count become key 0 (missing).
/// </summary>
public sealed class ImageRow
{
    public string Path { get; set; } = "";

    [KeyType(TestData.Classes)]
    public uint Label { get; set; }
}

/// <summary>An input row holding planar pixels directly.</summary>
public sealed class PixelRow
{
    [VectorType(3, TestData.Size, TestData.Size)]
    public float[] Pixels { get; set; } = [];
}

/// <summary>The stage's outputs (plus the path, passed through).</summary>
public sealed class SaliencyRow
{
    public string Path { get; set; } = "";
    public float[] Saliency { get; set; } = [];
    public int PredictedLabel { get; set; }
    public float[] Scores { get; set; } = [];
    public string SaliencyError { get; set; } = "";
}

/// <summary>The stage's outputs with <c>TopK</c> &gt; 1.</summary>
public sealed class TopKRow
{
    public string Path { get; set; } = "";
    public float[] Saliency { get; set; } = [];
    public int PredictedLabel { get; set; }
    public float[] Scores { get; set; } = [];
    public int[] TopKClasses { get; set; } = [];
    public string SaliencyError { get; set; } = "";
}

/// <summary>
/// Shared test data, made once per process: seven small PNG images (some not 32×32, so ResizeImages matters), a small
/// VGG spec and seeded weights for it in a safetensors file.
/// </summary>
public static class TestData
{
    public const int Size = 32;
    public const int Classes = 5;
    public const string Layer = "features.3";

    /// <summary>A small VGG: conv8, pool, conv16, pool, avgpool 2×2, classifier 64→32→32→5.</summary>
    public const string Spec = """{"kind":"vgg","cfg":[8,"M",16,"M"],"hidden":32,"num_classes":5,"pool_size":2}""";

    private static readonly Lazy<string> Root = new(Create);

    public static string Folder => Path.Combine(Root.Value, "images");

    public static string WeightsPath => Path.Combine(Root.Value, "small-vgg.safetensors");

    public static string TempDir => Root.Value;

    public static readonly string[] ImageNames = ["0.png", "1.png", "2.png", "3.png", "4.png", "5.png", "6.png"];

    /// <summary>Labels (class indices; stored as key = class + 1) of the seven images.</summary>
    public static readonly uint[] Labels = [0, 1, 2, 3, 4, 1, 3];

    public static ImageRow[] Rows(params string[] names) =>
        (names.Length == 0 ? ImageNames : names).Select((n, i) => new ImageRow { Path = n, Label = Labels[i % Labels.Length] }).ToArray();

    /// <summary>A model instance with the test weights.</summary>
    public static nn.Module<Tensor, Tensor> CreateModel()
    {
        var model = ModelSpec.Build(Spec);
        Weights.WeightLoader.Load(model, WeightsPath);
        return model;
    }

    /// <summary>Options for the small VGG with the test weights (spec + weights file, so the stage is self-describing).</summary>
    public static SaliencyEstimator.Options Options(string input = "Image", int batchSize = 8) => new()
    {
        InputColumnName = input,
        ModelSpecJson = Spec,
        WeightsPath = WeightsPath,
        SaliencyLayer = Layer,
        ImageWidth = Size,
        ImageHeight = Size,
        BatchSize = batchSize,
    };

    /// <summary>LoadImages → ResizeImages to 32×32 (column "Image").</summary>
    public static EstimatorChain<ImageResizingTransformer> ImagePipeline(MLContext ml) =>
        ml.Transforms.LoadImages("Image", Folder, nameof(ImageRow.Path))
          .Append(ml.Transforms.ResizeImages("Image", Size, Size));

    /// <summary>… → ExtractPixels (planar RGB, scaled to [0, 1]) into "Pixels".</summary>
    public static EstimatorChain<ImagePixelExtractingTransformer> PixelPipeline(MLContext ml) =>
        ImagePipeline(ml).Append(ml.Transforms.ExtractPixels("Pixels", "Image", interleavePixelColors: false, scaleImage: 1f / 255));

    public static List<SaliencyRow> Read(MLContext ml, IDataView view) =>
        ml.Data.CreateEnumerable<SaliencyRow>(view, reuseRowObject: false, ignoreMissingColumns: true).ToList();

    /// <summary>
    /// Reads every column of every row through a cursor and asserts that no float value (scalar or vector) is NaN or ∞:
    /// the stage's "never NaN silently" rule.
    /// </summary>
    public static int AssertNoNaNOrInfinity(IDataView view)
    {
        int rows = 0;
        var floatVectors = view.Schema.Where(c => c.Type is VectorDataViewType { ItemType: NumberDataViewType n } && n == NumberDataViewType.Single).ToList();
        var floats = view.Schema.Where(c => c.Type == NumberDataViewType.Single).ToList();
        using var cursor = view.GetRowCursor(view.Schema);
        var vectorGetters = floatVectors.Select(c => (c.Name, Get: cursor.GetGetter<VBuffer<float>>(c))).ToList();
        var scalarGetters = floats.Select(c => (c.Name, Get: cursor.GetGetter<float>(c))).ToList();
        VBuffer<float> buffer = default;
        while (cursor.MoveNext())
        {
            foreach (var (name, get) in vectorGetters)
            {
                get(ref buffer);
                foreach (var v in buffer.DenseValues())
                    Assert.IsTrue(float.IsFinite(v), $"row {cursor.Position}, column '{name}': {v}");
            }
            foreach (var (name, get) in scalarGetters)
            {
                float v = 0;
                get(ref v);
                Assert.IsTrue(float.IsFinite(v), $"row {cursor.Position}, column '{name}': {v}");
            }
            rows++;
        }
        Assert.IsTrue(floatVectors.Count > 0, "no float vector column was checked");
        return rows;
    }

    /// <summary>Asserts |a − b| ≤ rel · max|a| elementwise (NaN must match NaN).</summary>
    public static void AssertClose(float[] expected, float[] actual, double rel = 1e-5, string what = "")
    {
        Assert.HasCount(expected.Length, actual, $"{what}: length");
        double scale = expected.Where(float.IsFinite).Select(v => Math.Abs((double)v)).DefaultIfEmpty(0).Max();
        for (int i = 0; i < expected.Length; i++)
        {
            if (float.IsNaN(expected[i]))
            {
                Assert.IsTrue(float.IsNaN(actual[i]), $"{what}: [{i}] expected NaN, got {actual[i]}");
                continue;
            }
            double diff = Math.Abs((double)expected[i] - actual[i]);
            Assert.IsTrue(diff <= rel * scale + 1e-12, $"{what}: [{i}] expected {expected[i]}, got {actual[i]} (|diff| {diff}, scale {scale})");
        }
    }

    private static string Create()
    {
        var root = Path.Combine(Path.GetTempPath(), "ebp-mlnet-tests-" + Environment.ProcessId + "-" + Guid.NewGuid().ToString("N")[..8]);
        var images = Path.Combine(root, "images");
        Directory.CreateDirectory(images);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        };

        var rnd = new Random(12345);
        for (int i = 0; i < ImageNames.Length; i++)
        {
            int w = i % 3 == 0 ? 40 : Size, h = i % 3 == 0 ? 36 : Size;
            using var bitmap = new SKBitmap(w, h);
            using (var canvas = new SKCanvas(bitmap))
            {
                canvas.Clear(new SKColor((byte)rnd.Next(40, 220), (byte)rnd.Next(40, 220), (byte)rnd.Next(40, 220)));
                for (int k = 0; k < 3; k++)
                {
                    using var paint = new SKPaint { Color = new SKColor((byte)rnd.Next(256), (byte)rnd.Next(256), (byte)rnd.Next(256)), IsAntialias = false };
                    if (k % 2 == 0) canvas.DrawCircle(rnd.Next(w), rnd.Next(h), rnd.Next(3, 9), paint);
                    else canvas.DrawRect(rnd.Next(w - 8), rnd.Next(h - 8), rnd.Next(4, 12), rnd.Next(4, 12), paint);
                }
            }
            using var image = SKImage.FromBitmap(bitmap);
            using var png = image.Encode(SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(Path.Combine(images, ImageNames[i]), png.ToArray());
        }
        File.WriteAllText(Path.Combine(images, "corrupt.png"), "this is not an image");

        using (var scope = torch.NewDisposeScope())
        {
            var model = ModelSpec.Build(Spec);
            var g = new Generator(99); // zero biases and this seed make the 7 images fall into several classes
            using (torch.no_grad())
            {
                foreach (var (name, p) in model.named_parameters())
                {
                    if (p.dim() > 1) p.copy_(torch.randn(p.shape, generator: g) * Math.Sqrt(2.0 / (p.numel() / p.shape[0])));
                    else p.zero_();
                }
            }
            Safetensors.SaveStateDict(Path.Combine(root, "small-vgg.safetensors"), model.state_dict());
            model.Dispose();
        }
        return root;
    }
}
