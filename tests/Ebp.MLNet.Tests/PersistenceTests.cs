using System.Diagnostics;
using Ebp.Models;
using Ebp.MLNet;
using Microsoft.ML;

namespace Ebp.MLNet.Tests;

/// <summary>SaliencyModel.Save/Load, in this process and in a fresh one.</summary>
[TestClass]
public sealed class PersistenceTests
{
    /// <summary>The test images as a pixel column, materialised (so that a bare saliency stage can be fitted on it).</summary>
    private static IDataView Pixels(MLContext ml)
    {
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        return ml.Data.LoadFromEnumerable(ml.Data.CreateEnumerable<PixelRow>(TestData.PixelPipeline(ml).Fit(data).Transform(data), false).ToList());
    }

    private static string NewPath(string name) => Path.Combine(TestData.TempDir, Guid.NewGuid().ToString("N")[..8] + "-" + name);

    [TestMethod]
    public void SavedPipelineGivesTheSameMapsInAFreshProcess()
    {
        var ml = new MLContext(seed: 1);
        // Fit from a weight file that is deleted before loading: the weights must be inside the saved file.
        var weights = NewPath("weights.safetensors");
        File.Copy(TestData.WeightsPath, weights);
        var options = TestData.Options("Pixels", 3);
        options.WeightsPath = weights;
        var images = TestData.ImageNames.Select(n => Path.Combine(TestData.Folder, n)).ToArray();
        var data = ml.Data.LoadFromEnumerable(images.Select(p => new ImageRow { Path = p }));
        // LoadImages with an empty folder: the rows hold absolute paths.
        var pipeline = ml.Transforms.LoadImages("Image", "", nameof(ImageRow.Path))
            .Append(ml.Transforms.ResizeImages("Image", TestData.Size, TestData.Size))
            .Append(ml.Transforms.ExtractPixels("Pixels", "Image", interleavePixelColors: false, scaleImage: 1f / 255))
            .Append(ml.Transforms.ComputeSaliency(options));
        var modelPath = NewPath("pipeline.zip");
        List<SaliencyRow> expected;
        using (var model = pipeline.Fit(data))
        {
            expected = TestData.Read(ml, model.Transform(data));
            SaliencyModel.Save(ml, model, data.Schema, modelPath);
        }
        File.Delete(weights);

        var output = NewPath("maps.bin");
        var dll = typeof(Program).Assembly.Location;
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (string.IsNullOrEmpty(host) || !File.Exists(host)) host = "dotnet";
        var start = new ProcessStartInfo(host) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { dll, "apply-saved", modelPath, output }.Concat(images)) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(120)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("The helper process did not finish in 120 s.");
        }
        Assert.AreEqual(0, process.ExitCode, $"helper failed:\n{stdout.Result}\n{stderr.Result}");

        using var reader = new BinaryReader(File.OpenRead(output));
        Assert.AreEqual(expected.Count, reader.ReadInt32());
        foreach (var row in expected)
        {
            Assert.AreEqual(row.PredictedLabel, reader.ReadInt32());
            var map = new float[reader.ReadInt32()];
            for (int i = 0; i < map.Length; i++) map[i] = reader.ReadSingle();
            TestData.AssertClose(row.Saliency, map, 1e-6, row.Path);
        }
    }

    [TestMethod]
    public void ManifestKeepsItsFormat_AndADamagedOneIsAClearError()
    {
        var ml = new MLContext(seed: 1);
        var pixels = Pixels(ml);
        var path = NewPath("manifest.zip");
        using (var stage = ml.Transforms.ComputeSaliency(TestData.Options("Pixels")).Fit(pixels))
            SaliencyModel.Save(ml, stage, null, path);
        string Manifest()
        {
            using var zip = System.IO.Compression.ZipFile.OpenRead(path);
            using var reader = new StreamReader(zip.GetEntry("ebp-pipeline.json")!.Open());
            return reader.ReadToEnd();
        }
        // The layout files of earlier versions have (written by hand here, so that a change of serialiser cannot move it).
        Assert.AreEqual(string.Join('\n',
            "{",
            "  \"format\": \"Ebp.MLNet.SaliencyModel\",",
            "  \"version\": 1,",
            "  \"bareTransformer\": true,",
            "  \"stages\": [",
            "    {",
            "      \"kind\": \"saliency\",",
            "      \"settings\": \"stages/0.saliency.json\",",
            "      \"weights\": \"stages/0.weights.safetensors\"",
            "    }",
            "  ]",
            "}"), Manifest().ReplaceLineEndings("\n"));
        using (var loaded = (SaliencyTransformer)SaliencyModel.Load(ml, path, out _))
            Assert.AreEqual(1, loaded.TopK);

        void Replace(string json)
        {
            using var zip = System.IO.Compression.ZipFile.Open(path, System.IO.Compression.ZipArchiveMode.Update);
            zip.GetEntry("ebp-pipeline.json")!.Delete();
            using var writer = new StreamWriter(zip.CreateEntry("ebp-pipeline.json").Open());
            writer.Write(json);
        }
        Replace("{\"format\": \"Ebp.MLNet.SaliencyModel\", \"version\": 1, \"stages\": [{\"kind\": \"saliency\", \"weights\": \"stages/0.weights.safetensors\"}]}");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => SaliencyModel.Load(ml, path, out _)).Message, "no \"settings\" entry");
        Replace("{\"format\": \"Ebp.MLNet.SaliencyModel\", \"version\": \"one\"}");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => SaliencyModel.Load(ml, path, out _)).Message, "ebp-pipeline.json is not a valid stage list");
        Replace("{\"format\": \"Other\", \"version\": 1, \"stages\": []}");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => SaliencyModel.Load(ml, path, out _)).Message, "Not a saved saliency pipeline");
    }

    [TestMethod]
    public void Version1SettingsStillLoad()
    {
        // A stage saved before TopK and the error column existed (settings format version 1) loads with their defaults.
        var ml = new MLContext(seed: 1);
        var pixels = Pixels(ml);
        var path = NewPath("v1.zip");
        List<SaliencyRow> expected;
        using (var stage = ml.Transforms.ComputeSaliency(TestData.Options("Pixels")).Fit(pixels))
        {
            expected = TestData.Read(ml, stage.Transform(pixels));
            SaliencyModel.Save(ml, stage, null, path);
        }
        using (var zip = System.IO.Compression.ZipFile.Open(path, System.IO.Compression.ZipArchiveMode.Update))
        {
            var entry = zip.Entries.Single(e => e.FullName.EndsWith(".saliency.json", StringComparison.Ordinal));
            string json;
            using (var reader = new StreamReader(entry.Open())) json = reader.ReadToEnd();
            var node = System.Text.Json.Nodes.JsonNode.Parse(json)!.AsObject();
            Assert.AreEqual(4, (int)node["Version"]!);
            node["Version"] = 1;
            node.Remove("ErrorColumn");
            node.Remove("TopK");
            node.Remove("TopKClassesColumn");
            entry.Delete();
            using var writer = new StreamWriter(zip.CreateEntry(entry.FullName).Open());
            writer.Write(node.ToJsonString());
        }
        using var loaded = (SaliencyTransformer)SaliencyModel.Load(ml, path, out _);
        Assert.AreEqual(1, loaded.TopK);
        Assert.AreEqual("SaliencyError", loaded.ErrorColumnName);
        var rows = TestData.Read(ml, loaded.Transform(pixels));
        for (int i = 0; i < rows.Count; i++)
        {
            TestData.AssertClose(expected[i].Saliency, rows[i].Saliency, 1e-6, $"row {i}");
            Assert.AreEqual("", rows[i].SaliencyError);
        }
    }

    [TestMethod]
    public void MLNetSaveGivesAClearError()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        using var model = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(TestData.Options())).Fit(data);
        using var stream = new MemoryStream();
        var e = Assert.ThrowsExactly<NotSupportedException>(() => ml.Model.Save(model, data.Schema, stream));
        Assert.Contains("SaliencyModel.Save", e.Message);
    }

    [TestMethod]
    public void BareTransformerAndFactoryStages()
    {
        var ml = new MLContext(seed: 1);
        var pixels = ml.Data.CreateEnumerable<PixelRow>(TestData.PixelPipeline(ml).Fit(ml.Data.LoadFromEnumerable(TestData.Rows())).Transform(ml.Data.LoadFromEnumerable(TestData.Rows())), false).ToList();
        var data = ml.Data.LoadFromEnumerable(pixels);

        // A stage built from a factory: its architecture is code, so Load needs the factory again.
        var options = TestData.Options("Pixels");
        options.ModelSpecJson = null;
        options.WeightsPath = null;
        options.ModelFactory = TestData.CreateModel;
        var path = NewPath("bare.zip");
        List<SaliencyRow> expected;
        using (var stage = ml.Transforms.ComputeSaliency(options).Fit(data))
        {
            expected = TestData.Read(ml, stage.Transform(data));
            SaliencyModel.Save(ml, stage, null, path);
        }

        var e = Assert.ThrowsExactly<InvalidOperationException>(() => SaliencyModel.Load(ml, path, out _));
        Assert.Contains("SaliencyModelLoadOptions.ModelFactory", e.Message);

        // Any factory with the right architecture will do: the weights come from the file.
        using var loaded = (SaliencyTransformer)SaliencyModel.Load(ml, path, out var schema,
            new SaliencyModelLoadOptions { ModelFactory = () => ModelSpec.Build(TestData.Spec), BatchSize = 2 });
        Assert.IsNull(schema);
        Assert.AreEqual(2, loaded.BatchSize);
        var rows = TestData.Read(ml, loaded.Transform(data));
        for (int i = 0; i < rows.Count; i++)
            TestData.AssertClose(expected[i].Saliency, rows[i].Saliency, 1e-5, $"row {i}");

        Assert.ThrowsExactly<FileNotFoundException>(() => SaliencyModel.Load(ml, NewPath("nothing.zip"), out _));
        var notZip = NewPath("not.zip");
        File.WriteAllText(notZip, "hello");
        Assert.ThrowsExactly<InvalidDataException>(() => SaliencyModel.Load(ml, notZip, out _));
    }
}
