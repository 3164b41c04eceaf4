using System.Globalization;
using Microsoft.ML;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Audit.Tests;

/// <summary><c>--faithfulness</c>: deletion and insertion areas per row and their means in the summary.</summary>
[TestClass]
public sealed class FaithfulnessTests
{
    private static void RequireDefaultModel()
    {
        try
        {
            AuditModel.LocateDefaultModel();
        }
        catch (AuditUsageException e)
        {
            Assert.Inconclusive(e.Message);
        }
    }

    private static AuditOptions DefaultModelOptions(string output) => new()
    {
        InputFolder = TestSet.Images,
        OutputFolder = output,
        Model = "default",
        Methods = [AuditMethod.Ebp, AuditMethod.Cebp],
        WriteOverlays = false,
        Threads = 1,
        Faithfulness = true,
        FaithfulnessSteps = 8,
    };

    [TestMethod]
    public void Faithfulness_AddsAreasInZeroOne_AndTheirMeansPerMethodAndClass()
    {
        RequireDefaultModel();
        var output = Path.Combine(TestSet.NewFolder("faithfulness"), "out");
        var result = new AuditJob(DefaultModelOptions(output)).Run();
        Assert.AreEqual(AuditStatus.Complete, result.Status);

        var header = File.ReadLines(Path.Combine(output, "results.csv")).First().Split(',');
        CollectionAssert.IsSubsetOf(new[] { "deletion_auc", "insertion_auc" }, header);
        var rows = Outputs.Rows(output);
        Assert.HasCount(result.Rows, rows);
        foreach (var row in rows)
            foreach (var column in new[] { "deletion_auc", "insertion_auc" })
            {
                double? v = Outputs.Double(row[column]);
                Assert.IsNotNull(v, $"{column} of {row["image"]} {row["method"]} {row["class"]}");
                Assert.IsTrue(double.IsFinite(v.Value) && v >= 0 && v <= 1, $"{column} = {v}");
            }

        var section = Outputs.Summary(output)["faithfulness"]!;
        Assert.AreEqual(8, Outputs.Int(section["steps"]));
        Assert.AreEqual("softmax", Outputs.Str(section["score"]));
        foreach (var method in new[] { "ebp", "cebp" })
        {
            var mine = rows.Where(r => Outputs.Str(r["method"]) == method).ToList();
            var m = section["methods"]![method]!;
            Assert.AreEqual(mine.Count, Outputs.Int(m["rows"]));
            // The printed means are of the unrounded areas; the rows print them to 4 decimals.
            Assert.AreEqual(mine.Average(r => Outputs.Double(r["deletion_auc"])!.Value), Outputs.Double(m["deletion_auc"])!.Value, 1e-4);
            Assert.AreEqual(mine.Average(r => Outputs.Double(r["insertion_auc"])!.Value), Outputs.Double(m["insertion_auc"])!.Value, 1e-4);
            var perClass = m["per_class"]!.AsArray();
            Assert.AreEqual(mine.Count, perClass.Sum(p => Outputs.Int(p!["rows"])!.Value));
            foreach (var p in perClass)
            {
                int c = Outputs.Int(p!["class"])!.Value;
                var ofClass = mine.Where(r => Outputs.Int(r["class"]) == c).ToList();
                Assert.AreEqual(ofClass.Count, Outputs.Int(p["rows"]));
                Assert.AreEqual(ofClass.Average(r => Outputs.Double(r["deletion_auc"])!.Value), Outputs.Double(p["deletion_auc"])!.Value, 1e-4);
            }
        }
        var md = File.ReadAllText(Path.Combine(output, "summary.md"));
        StringAssert.Contains(md, "## Faithfulness (deletion / insertion)");
        var cebp = section["methods"]!["cebp"]!;
        StringAssert.Contains(md, $"**{Outputs.Double(cebp["deletion_auc"])!.Value.ToString("F4", CultureInfo.InvariantCulture)} / ");

        // Another faithfulness setting is another job: no silent mix of rows with and without areas.
        var e = Assert.ThrowsExactly<AuditUsageException>(() => new AuditJob(DefaultModelOptions(output) with { Faithfulness = false }).Run());
        StringAssert.Contains(e.Message, "faithfulness_steps");
    }

    [TestMethod]
    public void WithoutTheOption_TheColumnsAreEmpty_AndTheSummaryHasNoSection()
    {
        var reference = TestSet.Reference;
        var rows = Outputs.Rows(reference);
        Assert.IsNotEmpty(rows);
        Assert.IsTrue(rows.All(r => r.ContainsKey("deletion_auc") && r["deletion_auc"] is null && r["insertion_auc"] is null));
        Assert.IsFalse(Outputs.Summary(reference).ContainsKey("faithfulness"));
        StringAssert.DoesNotMatch(File.ReadAllText(Path.Combine(reference, "summary.md")), new System.Text.RegularExpressions.Regex("Faithfulness"));
    }

    [TestMethod]
    public void ModelInput_IsWhatTheStageScores()
    {
        // The areas are measured on SaliencyStage.ModelInput: the network's logits on it must be the stage's scores.
        RequireDefaultModel();
        var o = DefaultModelOptions(TestSet.NewFolder("model-input"));
        using var model = AuditModel.Load(o);
        var ml = new MLContext(seed: 0);
        using var stage = SaliencyStage.Create(ml, model, AuditMethod.Ebp, byTarget: false, batchSize: 1, device: "cpu");
        var path = Path.Combine(TestSet.Images, "scene_00.png");
        var decoded = ImageFile.TryDecode(path, out var error, AuditJob.WorkingSide(model)) ?? throw new AssertFailedException(error ?? "decode failed");
        using var image = decoded.ToMLImage();
        float[] scores = [];
        stage.Run([new StageRow { Image = image }], (_, output) => scores = output.Scores.ToArray());
        var input = stage.ModelInput(image);
        Assert.HasCount(model.Channels * model.Width * model.Height, input);
        // The grey scene was written as an RGB PNG of round(255·v): the grey model's input is that byte / 255.
        var scene = TestSet.Scenes[0];
        for (int i = 0; i < input.Length; i++)
            Assert.AreEqual(Math.Round(255 * Math.Clamp(scene.Pixels[i], 0f, 1f)) / 255, input[i], 1e-6, $"pixel {i}");
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var logits = model.Module.call(torch.tensor(input, new long[] { 1, model.Channels, model.Height, model.Width })).data<float>().ToArray();
        Assert.HasCount(scores.Length, logits);
        for (int c = 0; c < logits.Length; c++) Assert.AreEqual(scores[c], logits[c], 1e-4, $"class {c}");
    }

    [TestMethod]
    public void CommandLine_ParsesTheOptions_AndRejectsBadValues()
    {
        var o = Ebp.Audit.Program.ParseRunOptions(["--input", TestSet.Images, "--out", "x", "--faithfulness", "--faithfulness-steps", "4", "--faithfulness-score", "sigmoid"], _ => null);
        Assert.IsTrue(o.Faithfulness);
        Assert.AreEqual(4, o.FaithfulnessSteps);
        Assert.AreEqual(Ebp.Evaluation.FaithfulnessScore.Sigmoid, o.FaithfulnessScore);
        var d = Ebp.Audit.Program.ParseRunOptions(["--input", TestSet.Images, "--out", "x"], _ => null);
        Assert.IsFalse(d.Faithfulness);
        Assert.AreEqual(16, d.FaithfulnessSteps);
        Assert.AreEqual(Ebp.Evaluation.FaithfulnessScore.Softmax, d.FaithfulnessScore);

        var err = new StringWriter();
        int code = Ebp.Audit.Program.Run(["--input", TestSet.Images, "--out", TestSet.NewFolder("steps"), "--faithfulness", "--faithfulness-steps", "0"], TextWriter.Null, err, _ => null);
        Assert.AreEqual(Ebp.Audit.Program.Usage, code);
        StringAssert.Contains(err.ToString(), "--faithfulness-steps must be at least 1");
        err = new StringWriter();
        code = Ebp.Audit.Program.Run(["--input", TestSet.Images, "--out", TestSet.NewFolder("score"), "--faithfulness-score", "logit"], TextWriter.Null, err, _ => null);
        Assert.AreEqual(Ebp.Audit.Program.Usage, code);
        StringAssert.Contains(err.ToString(), "softmax");
        RequireDefaultModel();
        var e = Assert.ThrowsExactly<AuditUsageException>(() => new AuditJob(DefaultModelOptions(TestSet.NewFolder("many")) with { FaithfulnessSteps = 80 * 80 + 1 }).Run());
        StringAssert.Contains(e.Message, "6400 pixels");
    }
}
