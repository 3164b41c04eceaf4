using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;

namespace Ebp.Audit.Tests;

[TestClass]
public sealed class CliTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = Ebp.Audit.Program.Run(args, o, e, _ => null);
        return (code, o.ToString(), e.ToString());
    }

    [TestMethod]
    public void UsageErrors_ExitWith2AndSayWhatIsWrong()
    {
        var (code, _, err) = Run("--manifest", TestSet.Manifest);
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "--out");

        (code, _, err) = Run("--input", TestSet.Images, "--manifest", TestSet.Manifest, "--out", TestSet.NewFolder("usage"));
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "exactly one input");

        (code, _, err) = Run("--manifest", TestSet.Manifest, "--out", TestSet.NewFolder("usage"), "--method", "lrp");
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "Unknown method 'lrp'");

        (code, _, err) = Run("--manifest", TestSet.Manifest, "--out", TestSet.NewFolder("usage"), "--shard", "3/3");
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "outside 0..2");

        (code, _, err) = Run("--manifest", TestSet.Manifest, "--out", TestSet.NewFolder("usage"), "--model", TestSet.Card, "--layer", "features.99");
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "features.99");

        (code, _, err) = Run("--manifest", TestSet.Manifest, "--out", TestSet.NewFolder("usage"), "--model", "vgg16");
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "--weights");

        (code, var help, _) = Run("--help");
        Assert.AreEqual(0, code);
        StringAssert.Contains(help, "--min-energy");
        StringAssert.Contains(help, "merge");
    }

    [TestMethod]
    public void ParsedOptions_MapToTheJobOptions()
    {
        var o = Ebp.Audit.Program.ParseRunOptions(
            ["-m", "m.csv", "-o", "out", "--method", "cebp,ebp", "-k", "3", "--input-size", "64x48", "--mean", "0.5", "--std", "0.25,0.5,1",
             "--min-energy", "0.3", "--tolerance", "4", "--no-overlays", "--shards", "2"],
            n => n == "JOB_COMPLETION_INDEX" ? "1" : null);
        CollectionAssert.AreEqual(new[] { AuditMethod.Cebp, AuditMethod.Ebp }, o.Methods.ToArray());
        Assert.AreEqual(3, o.TopK);
        Assert.AreEqual((64, 48), o.InputSize);
        CollectionAssert.AreEqual(new[] { 0.5f }, o.Mean);
        CollectionAssert.AreEqual(new[] { 0.25f, 0.5f, 1f }, o.Std);
        Assert.AreEqual(0.3, o.MinEnergy);
        Assert.AreEqual(4.0, o.TolerancePx);
        Assert.IsFalse(o.WriteOverlays);
        Assert.AreEqual(new ShardSpec(1, 2), o.Shard);
        Assert.AreEqual(Path.Combine("out", "shard-1-of-2"), o.EffectiveOutputFolder);
        Assert.AreEqual("default", o.Model);
    }

    [TestMethod]
    public void ReportCommand_RewritesTheReportWithAnotherThreshold()
    {
        var output = TestSet.NewFolder("report");
        foreach (var f in Directory.GetFiles(TestSet.Reference, "*", SearchOption.AllDirectories))
        {
            var dst = Path.Combine(output, Path.GetRelativePath(TestSet.Reference, f));
            Directory.CreateDirectory(Path.GetDirectoryName(dst)!);
            File.Copy(f, dst);
        }
        var (code, stdout, err) = Run("report", output, "--min-energy", "0.95");
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(stdout, "complete");
        var rows = Outputs.Rows(output);
        Assert.AreEqual(rows.Count(r => Outputs.Double(r["energy_in_boxes"]) is < 0.95), Outputs.Int(Outputs.Summary(output)["flags"]!["low_energy"]));
        Assert.AreEqual("0.9500", Outputs.Summary(output)["job"]!["min_energy"]!.ToJsonString());

        // Back to the run's threshold (TestSet.Options: 0.5 for every method): the same report as the run's.
        (code, _, err) = Run("report", output, "--min-energy", "0.5");
        Assert.AreEqual(0, code, err);
        Outputs.AssertSameReport(TestSet.Reference, output);
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    private const int SigTerm = 15;

    /// <summary>SIGTERM (as Kubernetes sends on eviction) in a real process: the batch finishes, the report is consistent, the rerun completes.</summary>
    [TestMethod]
    public void Sigterm_StopsAfterTheCurrentBatch_WithAConsistentReport()
    {
        if (!OperatingSystem.IsLinux()) Assert.Inconclusive("POSIX signals: Linux only.");
        var output = TestSet.NewFolder("sigterm");
        string[] args = ["--manifest", TestSet.Manifest, "--out", output, "--model", TestSet.Card, "--method", "ebp,cebp,gradient",
                         "--batch-size", "2", "--threads", "1", "--progress", "lines", "--min-energy", "0.5"];
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Ebp.Audit.Tests.dll"));
        psi.ArgumentList.Add("ebp-audit");
        psi.ArgumentList.Add("--slow");
        psi.ArgumentList.Add("400");
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var lines = new List<string>();
        string? line;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while ((line = p.StandardOutput.ReadLine()) is not null && DateTime.UtcNow < deadline)
        {
            lines.Add(line);
            if (line.StartsWith("progress", StringComparison.Ordinal)) break;
        }
        Assert.IsNotNull(line, $"no progress line: {string.Join('\n', lines)} {err.Result}");
        Assert.AreEqual(0, Kill(p.Id, SigTerm));
        var rest = p.StandardOutput.ReadToEnd();
        Assert.IsTrue(p.WaitForExit(60_000), "the process did not stop");
        Assert.AreEqual(Ebp.Audit.Program.Terminated, p.ExitCode, $"{rest}\n{err.Result}");
        StringAssert.Contains(err.Result, "SIGTERM: stopping after the current batch");

        var summary = Outputs.Summary(output);
        Assert.AreEqual("cancelled", Outputs.Str(summary["status"]));
        int processed = Outputs.Int(summary["counts"]!["processed"])!.Value;
        Assert.IsTrue(processed is >= 2 and < TestSet.Count && processed % 2 == 0, $"whole batches only: {processed}");
        Assert.AreEqual(TestSet.Count - processed, Outputs.Int(summary["counts"]!["pending"]));
        var rows = Outputs.Rows(output);
        Assert.AreEqual(processed, rows.Select(r => Outputs.Str(r["image"])).Distinct().Count());
        Assert.AreEqual(rows.Count, Outputs.OverlayFiles(output).Count);

        var (code, _, e2) = Run(args);
        Assert.AreEqual(0, code, e2);
        Outputs.AssertSameReport(TestSet.Reference, output);
    }

    /// <summary>The audit reads model cards with the same checks as every other reader (Ebp.Models.ModelCard).</summary>
    [TestMethod]
    public void ACardWhoseWeightsLieOutsideItsFolderIsAUsageError()
    {
        var folder = TestSet.NewFolder("card-escape");
        var cards = Path.Combine(folder, "cards");
        Directory.CreateDirectory(cards);
        File.Copy(TestSet.Weights, Path.Combine(folder, "escaped.safetensors"));
        var card = JsonNode.Parse(File.ReadAllText(TestSet.Card))!.AsObject();
        card["weights"] = "../escaped.safetensors"; // a real file, one folder up
        card.Remove("weights_sha256");
        var path = Path.Combine(cards, "card.json");
        File.WriteAllText(path, card.ToJsonString());

        var (code, _, err) = Run("--manifest", TestSet.Manifest, "--out", Path.Combine(folder, "out"), "--model", path,
                                 "--threads", "1", "--progress", "none");
        Assert.AreEqual(2, code, err);
        StringAssert.Contains(err, "must be a file name in the card's folder");
        StringAssert.Contains(err, "../escaped.safetensors");
    }
}
