using System.Text.RegularExpressions;
using Ebp.MLNet;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace Ebp.MLNet.Tests;

/// <summary>
/// The pipelines of src/Ebp.MLNet/README.md, run exactly as printed: each <c>// readme:NAME</c> … <c>// end readme</c>
/// region below must appear verbatim (up to indentation) in the README, which <see cref="ReadmePrintsTheseRegions"/> checks.
/// They use the embedded model (models/cluttered-mnist-vgg.json and its weights).
/// </summary>
[TestClass]
public sealed class ReadmeTests
{
    private static string Data(string name) => Path.Combine(AppContext.BaseDirectory, "TestData", name);

    private static readonly string CardFile = Data("models/cluttered-mnist-vgg.json");

    private static string[] ClassNames() =>
        System.Text.Json.JsonDocument.Parse(File.ReadAllText(CardFile)).RootElement.GetProperty("class_names").EnumerateArray().Select(e => e.GetString()!).ToArray();

    // readme:classes
    class Input { public string ImagePath { get; set; } = ""; }

    class Output
    {
        public string ImagePath { get; set; } = "";
        public float[] Saliency { get; set; } = [];      // 80×80, row-major
        public string PredictedClass { get; set; } = ""; // the class name: MapKeyToValue of the key PredictedLabel
        public float[] Scores { get; set; } = [];        // logits; the column's SlotNames are the class names
        public string SaliencyError { get; set; } = "";  // "" unless the row was skipped (InvalidRows = Skip)
    }

    class SkipOutput
    {
        public string ImagePath { get; set; } = "";
        public string SaliencyError { get; set; } = "";
        [ImageType(80, 80)] public MLImage? Overlay { get; set; }  // null for a skipped row
    }
    // end readme

    [TestMethod]
    public void QuickStart_EmbeddedModel_MapKeyToValueGivesClassNames()
    {
        string[] paths = ["0.png", "1.png", "2.png", "3.png", "4.png", "5.png", "6.png"];
        string imageFolder = TestData.Folder, cardPath = CardFile;
        // readme:quick-start
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(paths.Select(p => new Input { ImagePath = p }));
        var pipeline = ml.Transforms.LoadImages("Image", imageFolder, "ImagePath")
            .Append(ml.Transforms.ResizeImages("Image", 80, 80))
            .Append(ml.Transforms.ComputeSaliency(modelCard: cardPath))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel"));
        using var model = pipeline.Fit(data);
        var view = model.Transform(data);
        foreach (var row in ml.Data.CreateEnumerable<Output>(view, reuseRowObject: false))
            Console.WriteLine($"{row.ImagePath}: {row.PredictedClass}");
        // end readme

        var names = ClassNames();
        var rows = ml.Data.CreateEnumerable<Output>(view, reuseRowObject: false).ToList();
        Assert.HasCount(paths.Length, rows);
        foreach (var r in rows)
        {
            Assert.HasCount(80 * 80, r.Saliency);
            Assert.HasCount(names.Length, r.Scores);
            int argmax = Array.IndexOf(r.Scores, r.Scores.Max());
            Assert.AreEqual(names[argmax], r.PredictedClass, r.ImagePath);
            Assert.IsTrue(r.Saliency.Any(v => v != 0f) && r.Saliency.All(float.IsFinite), r.ImagePath);
        }
        VBuffer<ReadOnlyMemory<char>> slots = default;
        view.Schema["Scores"].GetSlotNames(ref slots);
        CollectionAssert.AreEqual(names, slots.DenseValues().Select(s => s.ToString()).ToArray());
        var key = (KeyDataViewType)view.Schema["PredictedLabel"].Type;
        Assert.AreEqual((ulong)names.Length, key.Count);
    }

    [TestMethod]
    public void SkipPipeline_ExtractPixels_MissingAndTruncatedFiles()
    {
        string[] paths = ["0.png", "missing.png", "1.png", DefectTests.TruncatedPng(), "", "3.png"];
        string imageFolder = TestData.Folder, cardPath = CardFile;
        string outputFolder = Path.Combine(TestData.TempDir, "readme-skip");
        Directory.CreateDirectory(outputFolder);
        // readme:skip
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(paths.Select(p => new Input { ImagePath = p }));
        var pipeline = ml.Transforms.LoadImages("Image", imageFolder, "ImagePath")
            .Append(ml.Transforms.ResizeImages("Image", 80, 80))
            .Append(ml.Transforms.ConvertToGrayscale("Image"))
            .Append(ml.Transforms.ExtractPixels("Pixels", "Image", ImagePixelExtractingEstimator.ColorBits.Red,
                                                interleavePixelColors: false, scaleImage: 1f / 255))
            .Append(ml.Transforms.ComputeSaliency(new SaliencyEstimator.Options
            {
                InputColumnName = "Pixels",
                ModelCardPath = cardPath,
                InvalidRows = InvalidRowHandling.Skip,
                OverlayColumnName = "Overlay",
            }));
        using var model = pipeline.Fit(data);
        foreach (var row in ml.Data.CreateEnumerable<SkipOutput>(model.Transform(data), reuseRowObject: false))
        {
            if (row.SaliencyError == "") SaliencyImages.SavePng(row.Overlay!, Path.Combine(outputFolder, row.ImagePath + ".saliency.png"));
            else Console.WriteLine($"{row.ImagePath}: skipped, {row.SaliencyError}");
        }
        // end readme

        var rows = ml.Data.CreateEnumerable<SkipOutput>(model.Transform(data), reuseRowObject: false).ToList();
        Assert.HasCount(paths.Length, rows);
        foreach (int good in new[] { 0, 2, 5 })
        {
            Assert.AreEqual("", rows[good].SaliencyError, paths[good]);
            Assert.IsTrue(File.Exists(Path.Combine(outputFolder, paths[good] + ".saliency.png")), paths[good]);
        }
        foreach (int bad in new[] { 1, 3, 4 })
        {
            Assert.AreNotEqual("", rows[bad].SaliencyError, $"row {bad}");
            Assert.IsNull(rows[bad].Overlay, $"row {bad}");
        }
        Assert.Contains("missing.png", rows[1].SaliencyError);
        Assert.Contains("truncated", rows[3].SaliencyError);
    }

    [TestMethod]
    public void LabelColumnOfClassNames_TargetsThatClass()
    {
        var ml = new MLContext(seed: 1);
        var lines = new List<string>();
        ml.Log += (_, e) => { if (e.Source.StartsWith("ComputeSaliency", StringComparison.Ordinal)) lines.Add(e.Message); };
        var data = ml.Data.LoadFromEnumerable(new[] { new NamedLabel { ImagePath = "0.png", Digit = "7" }, new NamedLabel { ImagePath = "1.png", Digit = "x" } });
        SaliencyEstimator.Options Options(SaliencyTargetKind target) => new()
        {
            ModelCardPath = CardFile, Target = target, TargetClass = 7, InvalidRows = InvalidRowHandling.Skip,
            PredictedLabelFormat = PredictedLabelFormat.Index,
            LabelColumnName = target == SaliencyTargetKind.LabelColumn ? "Digit" : null,
        };
        var images = ml.Transforms.LoadImages("Image", TestData.Folder, "ImagePath").Append(ml.Transforms.ResizeImages("Image", 80, 80));
        using var byName = images.Append(ml.Transforms.ComputeSaliency(Options(SaliencyTargetKind.LabelColumn))).Fit(data);
        using var fixedClass = images.Append(ml.Transforms.ComputeSaliency(Options(SaliencyTargetKind.FixedClass))).Fit(data);
        var named = TestData.Read(ml, byName.Transform(data));
        // The same row alone, so that both runs compute a batch of one valid row.
        var expected = TestData.Read(ml, fixedClass.Transform(ml.Data.LoadFromEnumerable(new[] { new NamedLabel { ImagePath = "0.png", Digit = "7" } })));
        TestData.AssertClose(expected[0].Saliency, named[0].Saliency, 1e-6, "class '7'");
        Assert.AreEqual("the label in column 'Digit' is \"x\", which is not one of the model's class names", named[1].SaliencyError);

        // The stage logs through MLContext.Log like ML.NET's transforms: the model it built, each batch, each skipped row.
        var log = string.Join("\n", lines);
        Assert.Contains("Kind=Info] Model built: model spec, 1×80×80 input, 10 classes (named), ExcitationBackprop at 'features.13', maps 80×80", log);
        Assert.Contains("Kind=Trace] Batch of rows 0–1 computed.", log);
        Assert.Contains("Kind=Warning] Row 1 skipped: the label in column 'Digit' is \"x\"", log);
    }

    private sealed class NamedLabel
    {
        public string ImagePath { get; set; } = "";
        public string Digit { get; set; } = "";
    }

    [TestMethod]
    public void ReadmePrintsTheseRegions()
    {
        var readme = Normalise(File.ReadAllText(Data("README.md")));
        var source = File.ReadAllText(Data("ReadmeTests.cs.txt"));
        var regions = Regex.Matches(source, @"// readme:(?<name>[\w-]+)\r?\n(?<body>.*?)\r?\n\s*// end readme", RegexOptions.Singleline);
        Assert.HasCount(3, regions);
        foreach (Match m in regions)
            Assert.Contains(Normalise(m.Groups["body"].Value), readme, $"README.md does not print region '{m.Groups["name"].Value}' as the test runs it");
    }

    /// <summary>Each line without its leading and trailing blanks (the README is not indented like a method body).</summary>
    private static string Normalise(string text) =>
        string.Join("\n", text.Replace("\r", "").Split('\n').Select(l => l.Trim()));
}
