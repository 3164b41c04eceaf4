using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Ebp.Datasets;
using Ebp.Models;
using SkiaSharp;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ebp.Audit.Tests;

/// <summary>
/// Shared test data, made once per process in a temporary folder: 12 cluttered-MNIST scenes (seeded, from the committed
/// MNIST subset) rendered to 80×80 RGB PNGs with VOC XML next to them, a manifest with labels (some wrong, one missing)
/// and annotations (one missing), and a small seeded 3-channel VGG (briefly fitted to the scenes) with a model card.
/// </summary>
internal static class TestSet
{
    public const int Count = 12;
    public const int Size = 80;
    public const string Spec = """{"kind":"vgg","cfg":[8,"M",16,"M"],"in_channels":3,"hidden":32,"num_classes":10,"pool_size":2}""";
    public const string SaliencyLayer = "features.2";
    public const string ContrastLayer = "classifier.4";

    private static readonly Lazy<string> RootLazy = new(Create);

    public static string Root => RootLazy.Value;
    public static string Images => Path.Combine(Root, "set", "images");
    public static string Manifest => Path.Combine(Root, "set", "manifest.csv");
    public static string Card => Path.Combine(Root, "model", "test-vgg.json");
    public static string Weights => Path.Combine(Root, "model", "test-vgg.safetensors");

    private static IReadOnlyList<ClutteredScene> _scenes = [];

    /// <summary>The scenes (index i is <c>images/scene_{i:00}.png</c>).</summary>
    public static IReadOnlyList<ClutteredScene> Scenes
    {
        get
        {
            _ = Root;
            return _scenes;
        }
    }

    /// <summary>The manifest label of scene i (null = no label).</summary>
    public static int? LabelOf(int i) => LabelOf(Scenes, i);

    private static int? LabelOf(IReadOnlyList<ClutteredScene> scenes, int i) =>
        i == 5 ? null : i % 4 == 3 ? WrongLabel(scenes[i]) : scenes[i].Digits[0].ClassId;

    private static readonly Lazy<string> ReferenceLazy = new(() =>
    {
        var output = NewFolder("reference");
        var result = new AuditJob(Options(output)).Run();
        if (result.Status != AuditStatus.Complete) throw new InvalidOperationException("The reference run did not complete.");
        return output;
    });

    /// <summary>The output folder of one uninterrupted standard run (shared by the comparison tests).</summary>
    public static string Reference => ReferenceLazy.Value;

    /// <summary>Whether scene i's manifest row names its annotation.</summary>
    public static bool AnnotatedInManifest(int i) => i != 6;

    public static string Key(int i) => $"images/scene_{i:00}.png";

    /// <summary>A fresh folder under the test root.</summary>
    public static string NewFolder(string name)
    {
        var dir = Path.Combine(Root, "runs", name + "-" + Guid.NewGuid().ToString("N")[..6]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>The options of the standard run on the manifest (three methods, batch 4).</summary>
    public static AuditOptions Options(string output, int batchSize = 4) => new()
    {
        ManifestPath = Manifest,
        OutputFolder = output,
        Model = Card,
        Methods = [AuditMethod.Ebp, AuditMethod.Cebp, AuditMethod.Gradient],
        BatchSize = batchSize,
        TopK = 1,
        MinEnergy = 0.5,
        Threads = 1, // TorchSharp's thread pool spins; on a busy 2-core machine one thread is several times faster
    };

    /// <summary>A model with the test weights.</summary>
    public static nn.Module<Tensor, Tensor> CreateModel()
    {
        var model = ModelSpec.Build(Spec);
        Ebp.Weights.WeightLoader.Load(model, Weights);
        model.eval();
        return model;
    }

    private static int WrongLabel(ClutteredScene s) => Enumerable.Range(0, 10).First(c => !s.ContainsClass(c));

    private static string Create()
    {
        var root = Path.Combine(Path.GetTempPath(), "ebp-audit-tests-" + Environment.ProcessId + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        var mnist = MnistSource.LoadTest(MnistSubset);
        var scenes = ClutteredMnistGenerator.ForTest(mnist).Generate(Count, seed: 2024);
        _scenes = scenes;
        var images = Path.Combine(root, "set", "images");
        Directory.CreateDirectory(images);
        var manifest = new StringBuilder("path,label,annotation\n");
        for (int i = 0; i < Count; i++)
        {
            var s = scenes[i];
            var name = $"scene_{i:00}";
            File.WriteAllBytes(Path.Combine(images, name + ".png"), RenderRgbPng(s.Pixels, s.Width, s.Height));
            VocAnnotation.FromScene(s, name + ".png").Save(Path.Combine(images, name + ".xml"));
            var label = LabelOf(scenes, i)?.ToString(CultureInfo.InvariantCulture) ?? "";
            var ann = AnnotatedInManifest(i) ? $"images/{name}.xml" : "";
            manifest.Append($"images/{name}.png,{label},{ann}\n");
        }
        File.WriteAllText(Path.Combine(root, "set", "manifest.csv"), manifest.ToString());

        var modelDir = Path.Combine(root, "model");
        Directory.CreateDirectory(modelDir);
        torch.set_num_threads(1); // see Options: one thread is much faster on a busy 2-core machine
        using (torch.NewDisposeScope())
        {
            using var model = ModelSpec.Build(Spec);
            var g = new Generator(99);
            using (torch.no_grad())
            {
                foreach (var (_, p) in model.named_parameters())
                {
                    if (p.dim() > 1) p.copy_(torch.randn(p.shape, generator: g) * Math.Sqrt(2.0 / (p.numel() / p.shape[0])));
                    else p.zero_();
                }
            }
            // A few hundred milliseconds of training on the 12 scenes (multi-label, as the real model): the predictions then
            // follow the digits, so some labels match and some do not, and the maps are not arbitrary.
            var x = torch.stack(scenes.Select(sc => torch.tensor(sc.Pixels, new long[] { 1, Size, Size }).expand(3, Size, Size)).ToArray());
            var y = torch.stack(scenes.Select(sc => torch.tensor(sc.MultiHot)).ToArray());
            model.train();
            var optimizer = torch.optim.Adam(model.parameters(), 0.01);
            using var loss = nn.BCEWithLogitsLoss();
            for (int step = 0; step < 40; step++)
            {
                using var stepScope = torch.NewDisposeScope();
                optimizer.zero_grad();
                loss.call(model.call(x), y).backward();
                optimizer.step();
            }
            model.eval();
            Safetensors.SaveStateDict(Path.Combine(modelDir, "test-vgg.safetensors"), model.state_dict());
        }
        var card = new JsonObject
        {
            ["name"] = "test-vgg",
            ["model"] = JsonNode.Parse(Spec),
            ["weights"] = "test-vgg.safetensors",
            ["class_names"] = new JsonArray(Enumerable.Range(0, 10).Select(c => (JsonNode)c.ToString(CultureInfo.InvariantCulture)).ToArray()),
            ["input"] = new JsonObject { ["channels"] = 3, ["height"] = Size, ["width"] = Size },
            ["saliency"] = new JsonObject { ["saliency_layer"] = SaliencyLayer, ["contrast_layer"] = ContrastLayer },
        };
        File.WriteAllText(Path.Combine(modelDir, "test-vgg.json"), card.ToJsonString());
        return root;
    }

    /// <summary>Deletes the test folder (at the end of the test run), unless EBP_AUDIT_KEEP_TEST_FILES is set.</summary>
    public static void Delete()
    {
        if (!RootLazy.IsValueCreated || Environment.GetEnvironmentVariable("EBP_AUDIT_KEEP_TEST_FILES") is not null) return;
        try { Directory.Delete(RootLazy.Value, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>
    /// Writes <paramref name="count"/> cluttered-MNIST test scenes (seeded, from the t10k images in <paramref name="mnistFolder"/>)
    /// as <c>scene_NNNN.png</c> (grey, stored as RGB) with VOC XML next to each: the default model's kind of input.
    /// </summary>
    public static void WriteScenes(string folder, string mnistFolder, int count, ulong seed)
    {
        var mnist = MnistSource.LoadTest(mnistFolder);
        var scenes = ClutteredMnistGenerator.ForTest(mnist).Generate(count, seed);
        Directory.CreateDirectory(folder);
        for (int i = 0; i < scenes.Count; i++)
        {
            var name = $"scene_{i:0000}";
            File.WriteAllBytes(Path.Combine(folder, name + ".png"), RenderRgbPng(scenes[i].Pixels, scenes[i].Width, scenes[i].Height));
            VocAnnotation.FromScene(scenes[i], name + ".png").Save(Path.Combine(folder, name + ".xml"));
        }
    }

    /// <summary>The committed 200-digit t10k subset the scenes are made of.</summary>
    public static string MnistSubset => Path.Combine(AppContext.BaseDirectory, "TestData", "mnist-subset");

    /// <summary>A grey [0, 1] image as an RGB PNG (the value in all three channels).</summary>
    public static byte[] RenderRgbPng(float[] pixels, int width, int height)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                byte v = (byte)Math.Round(255 * Math.Clamp(pixels[y * width + x], 0f, 1f));
                bitmap.SetPixel(x, y, new SKColor(v, v, v));
            }
        using var image = SKImage.FromBitmap(bitmap);
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        return png.ToArray();
    }
}
