using System.Text;

namespace Ebp.Audit.Tests;

[TestClass]
public sealed class RobustnessTests
{
    /// <summary>Stops the job after <paramref name="batches"/> batches through the token, as Ctrl-C would.</summary>
    private sealed class CancelAfter(CancellationTokenSource cts, int batches) : IProgress<AuditProgress>
    {
        public List<AuditProgress> Reports { get; } = new();

        public void Report(AuditProgress value)
        {
            Reports.Add(value);
            if (value.Phase == AuditPhase.Batch && value.Batches >= batches) cts.Cancel();
        }
    }

    [TestMethod]
    public void CorruptUnreadableAndInvalidEntries_AreReportedAndSkipped_TheRestIsDone()
    {
        var dir = TestSet.NewFolder("corrupt-input");
        var images = Path.Combine(dir, "img");
        Directory.CreateDirectory(images);
        var manifest = new StringBuilder("path,label,annotation\n");
        for (int i = 0; i < 4; i++)
        {
            File.Copy(Path.Combine(TestSet.Images, $"scene_{i:00}.png"), Path.Combine(images, $"good_{i}.png"));
            File.Copy(Path.Combine(TestSet.Images, $"scene_{i:00}.xml"), Path.Combine(images, $"good_{i}.xml"));
            manifest.Append($"img/good_{i}.png,,img/good_{i}.xml\n");
        }
        var png = File.ReadAllBytes(Path.Combine(TestSet.Images, "scene_04.png"));
        File.WriteAllBytes(Path.Combine(images, "truncated.png"), png[..(png.Length * 6 / 10)]);
        File.WriteAllText(Path.Combine(images, "text.png"), "this is a text file with a .png name\n");
        File.WriteAllBytes(Path.Combine(images, "empty.png"), []);
        File.WriteAllBytes(Path.Combine(images, "header-only.png"), png[..20]);
        File.Copy(Path.Combine(TestSet.Images, "scene_05.png"), Path.Combine(images, "bad-annotation.png"));
        File.WriteAllText(Path.Combine(images, "bad-annotation.xml"), "<annotation><size><width>80</width>");
        File.Copy(Path.Combine(TestSet.Images, "scene_06.png"), Path.Combine(images, "bad-label.png"));
        manifest.Append("img/truncated.png,,\nimg/text.png,,\nimg/empty.png,,\nimg/header-only.png,,\nimg/missing.png,,\n");
        manifest.Append("img/bad-annotation.png,,img/bad-annotation.xml\n\"img/bad-label.png\",cat,\nimg/good_0.png,,\n");
        File.WriteAllText(Path.Combine(dir, "manifest.csv"), manifest.ToString());

        var output = Path.Combine(dir, "out");
        var result = new AuditJob(TestSet.Options(output) with { ManifestPath = Path.Combine(dir, "manifest.csv"), Methods = [AuditMethod.Ebp] }).Run();

        Assert.AreEqual(AuditStatus.Complete, result.Status);
        Assert.AreEqual(4, result.Processed);
        Assert.AreEqual(8, result.Skipped);
        var summary = Outputs.Summary(output);
        var skipped = summary["skipped"]!.AsArray().ToDictionary(s => Outputs.Str(s!["image"])!, s => Outputs.Str(s!["reason"])!);
        Assert.HasCount(8, skipped);
        StringAssert.Contains(skipped["img/truncated.png"], "truncated");
        StringAssert.Contains(skipped["img/text.png"], "not a supported image");
        Assert.AreEqual("empty file", skipped["img/empty.png"]);
        Assert.IsTrue(skipped["img/header-only.png"].Contains("truncated") || skipped["img/header-only.png"].Contains("not a supported"), skipped["img/header-only.png"]);
        Assert.AreEqual("file not found", skipped["img/missing.png"]);
        StringAssert.Contains(skipped["img/bad-annotation.png"], "annotation 'bad-annotation.xml'");
        StringAssert.Contains(skipped["img/bad-label.png"], "label 'cat' is not a model class");
        StringAssert.Contains(skipped.Single(s => s.Key.StartsWith("img/good_0.png#line", StringComparison.Ordinal)).Value, "duplicate manifest entry");

        var rows = Outputs.Rows(output);
        CollectionAssert.AreEquivalent(Enumerable.Range(0, 4).Select(i => $"img/good_{i}.png").ToList(),
                                       rows.Select(r => Outputs.Str(r["image"])).Distinct().ToList());
        var md = File.ReadAllText(Path.Combine(output, "summary.md"));
        StringAssert.Contains(md, "## Skipped files");
        StringAssert.Contains(md, "img/truncated.png");

        // A rerun changes nothing (skipped files are final until they change), then a fixed file is picked up.
        var again = new AuditJob(TestSet.Options(output) with { ManifestPath = Path.Combine(dir, "manifest.csv"), Methods = [AuditMethod.Ebp] }).Run();
        Assert.AreEqual(12, again.ResumedImages);
        Assert.AreEqual(8, again.Skipped);
        File.WriteAllBytes(Path.Combine(images, "truncated.png"), png);
        var fixedRun = new AuditJob(TestSet.Options(output) with { ManifestPath = Path.Combine(dir, "manifest.csv"), Methods = [AuditMethod.Ebp] }).Run();
        Assert.AreEqual(11, fixedRun.ResumedImages);
        Assert.AreEqual(5, fixedRun.Processed);
        Assert.AreEqual(7, fixedRun.Skipped);
    }

    [TestMethod]
    public void InterruptedRun_WritesAConsistentReport_AndTheRerunEqualsAnUninterruptedRun()
    {
        var output = TestSet.NewFolder("resume");
        using var cts = new CancellationTokenSource();
        var progress = new CancelAfter(cts, 1);
        var first = new AuditJob(TestSet.Options(output)).Run(progress, cts.Token);

        Assert.AreEqual(AuditStatus.Cancelled, first.Status);
        Assert.AreEqual(4, first.Processed, "one batch of 4");
        Assert.AreEqual(8, first.Pending);
        var summary = Outputs.Summary(output);
        Assert.AreEqual("cancelled", Outputs.Str(summary["status"]));
        Assert.AreEqual(4, Outputs.Int(summary["counts"]!["processed"]));
        Assert.AreEqual(8, Outputs.Int(summary["counts"]!["pending"]));
        var rows = Outputs.Rows(output);
        Assert.AreEqual(Outputs.Int(summary["counts"]!["rows"]), rows.Count);
        Assert.HasCount(4, rows.Select(r => Outputs.Str(r["image"])).Distinct().ToArray());
        Assert.IsTrue(rows.All(r => File.Exists(Path.Combine(output, Outputs.Str(r["overlay"])!))), "every listed overlay exists");
        Assert.AreEqual(rows.Count, Outputs.OverlayFiles(output).Count, "no overlay of an unfinished batch");
        Assert.AreEqual(AuditPhase.Finished, progress.Reports[^1].Phase);

        var second = new AuditJob(TestSet.Options(output)).Run();
        Assert.AreEqual(AuditStatus.Complete, second.Status);
        Assert.AreEqual(4, second.ResumedImages);
        Assert.AreEqual(0, second.JournalEntriesDropped);
        Outputs.AssertSameReport(TestSet.Reference, output);
    }

    [TestMethod]
    public void Resume_DropsATornJournalLineAndEntriesWhoseOverlayIsMissing()
    {
        var output = TestSet.NewFolder("torn");
        using var cts = new CancellationTokenSource();
        new AuditJob(TestSet.Options(output)).Run(new CancelAfter(cts, 2), cts.Token);
        var journal = Path.Combine(output, ".audit", "journal.jsonl");
        var lines = File.ReadAllLines(journal);
        Assert.HasCount(8, lines);
        // A crash in the middle of an append, and a lost overlay file.
        File.AppendAllText(journal, lines[0][..(lines[0].Length / 2)]);
        var victim = Outputs.Rows(output).First(r => Outputs.Str(r["image"]) == TestSet.Key(5));
        File.Delete(Path.Combine(output, Outputs.Str(victim["overlay"])!));

        var result = new AuditJob(TestSet.Options(output)).Run();
        Assert.AreEqual(AuditStatus.Complete, result.Status);
        Assert.AreEqual(7, result.ResumedImages);
        Assert.AreEqual(2, result.JournalEntriesDropped, "the torn line and the image without its overlay");
        Outputs.AssertSameReport(TestSet.Reference, output);
    }

    [TestMethod]
    public void AnotherJobInTheOutputFolder_IsRefused_UnlessRestart()
    {
        var output = TestSet.NewFolder("other-job");
        new AuditJob(TestSet.Options(output) with { Methods = [AuditMethod.Ebp], BatchSize = 12 }).Run();
        var e = Assert.ThrowsExactly<AuditUsageException>(() => new AuditJob(TestSet.Options(output) with { Methods = [AuditMethod.Gradient] }).Run());
        StringAssert.Contains(e.Message, "methods");
        StringAssert.Contains(e.Message, "--restart");
        var result = new AuditJob(TestSet.Options(output) with { Methods = [AuditMethod.Gradient], BatchSize = 12, Restart = true }).Run();
        Assert.AreEqual(0, result.ResumedImages);
        Assert.IsTrue(Outputs.Rows(output).All(r => Outputs.Str(r["method"]) == "gradient"));
        Assert.IsFalse(Outputs.OverlayFiles(output).Any(f => f.Contains("/ebp_", StringComparison.Ordinal)), "old overlays removed");

        // Only the report threshold changed: no recomputation, the flags follow.
        var strict = new AuditJob(TestSet.Options(output) with { Methods = [AuditMethod.Gradient], BatchSize = 12, MinEnergy = 1.0 }).Run();
        Assert.AreEqual(12, strict.ResumedImages);
        Assert.AreEqual(Outputs.Rows(output).Count(r => Outputs.Double(r["energy_in_boxes"]) is < 1.0), Outputs.Int(Outputs.Summary(output)["flags"]!["low_energy"]));
    }
}
