using Ebp.Onnx;

namespace Ebp.Audit.Tests;

/// <summary><c>--model file.onnx</c>: the importer's module, input size, class names and suggested layers.</summary>
[TestClass]
public sealed class OnnxModelTests
{
    private static string Fixture => Path.Combine(AppContext.BaseDirectory, "TestData", "onnx", "softmax_head.onnx");

    [TestMethod]
    public void OnnxModel_AuditsEndToEnd_AtTheSuggestedLayers()
    {
        using var onnx = OnnxModel.Load(Fixture);
        var dir = TestSet.NewFolder("onnx");
        var images = Path.Combine(dir, "images");
        Directory.CreateDirectory(images);
        var few = Enumerable.Range(0, 4).Select(i => $"scene_{i:00}").ToList();
        foreach (var name in few)
            foreach (var ext in new[] { ".png", ".xml" })
                if (File.Exists(Path.Combine(TestSet.Images, name + ext)))
                    File.Copy(Path.Combine(TestSet.Images, name + ext), Path.Combine(images, name + ext));
        var output = Path.Combine(dir, "out");
        var result = new AuditJob(new AuditOptions
        {
            InputFolder = images,
            OutputFolder = output,
            Model = Fixture,
            Methods = [AuditMethod.Ebp, AuditMethod.Cebp],
            Threads = 1,
        }).Run();
        Assert.AreEqual(AuditStatus.Complete, result.Status);
        Assert.AreEqual(few.Count, result.Processed);

        var job = Outputs.Summary(output)["job"]!;
        Assert.AreEqual(onnx.Suggested.SaliencyLayer, Outputs.Str(job["saliency_layer"]));
        Assert.AreEqual(onnx.Suggested.ContrastLayer, Outputs.Str(job["contrast_layer"]));
        Assert.AreEqual(onnx.Suggested.ClassifierLayer, Outputs.Str(job["classifier_layer"]));
        Assert.AreEqual("32x32x3", Outputs.Str(job["input_size"]));
        Assert.AreEqual(10, Outputs.Int(job["classes"]));
        StringAssert.Contains(Outputs.Str(job["model"]), "softmax_head.onnx");
        var md = File.ReadAllText(Path.Combine(output, "summary.md"));
        StringAssert.Contains(md, $"ebp at `{onnx.Suggested.SaliencyLayer}`");
        StringAssert.Contains(md, $"contrast layer `{onnx.Suggested.ContrastLayer}`");

        // The model's class names from the file's metadata are the report's class names.
        var csv = File.ReadAllLines(Path.Combine(output, "results.csv"));
        Assert.AreEqual("class_name", csv[0].Split(',')[3]);
        Assert.IsGreaterThanOrEqualTo(few.Count * 2, csv.Length - 1);
        foreach (var line in csv.Skip(1))
        {
            var f = line.Split(',');
            Assert.AreEqual($"class_{f[2]}", f[3], line);
        }
    }

    [TestMethod]
    public void MissingOnnxFile_OrWeightsWithIt_IsAUsageError()
    {
        var dir = TestSet.NewFolder("onnx-bad");
        var missing = Assert.ThrowsExactly<AuditUsageException>(() =>
            AuditModel.Load(TestSet.Options(dir) with { Model = Path.Combine(dir, "none.onnx") }));
        StringAssert.Contains(missing.Message, "none.onnx");
        var weights = Assert.ThrowsExactly<AuditUsageException>(() =>
            AuditModel.Load(TestSet.Options(dir) with { Model = Fixture, WeightsPath = TestSet.Weights }));
        StringAssert.Contains(weights.Message, "--weights does not apply to an ONNX model");
    }
}
