using System.Text.Json.Nodes;

namespace Ebp.Audit.Tests;

/// <summary>The reports written from hand-made records (no model): thresholds per method, CSV quoting, HTML encoding, rounding.</summary>
[TestClass]
public sealed class ReportTests
{
    [TestMethod]
    public void MinEnergy_ParsesOneValueOrPairsPerMethod()
    {
        Assert.AreEqual(EnergyThresholds.All(0.3), EnergyThresholds.Parse("0.3"));
        var pairs = EnergyThresholds.Parse("ebp=0.1, cebp=0.5");
        Assert.AreEqual(0.1, pairs.Ebp);
        Assert.AreEqual(0.5, pairs.Cebp);
        Assert.AreEqual(EnergyThresholds.Default.Gradient, pairs.Gradient, "a method not named keeps its default");
        Assert.AreEqual(0.05, EnergyThresholds.Parse("grad=0.05").For("gradient"));
        foreach (var bad in new[] { "lrp=0.1", "ebp=2", "-0.1", "ebp=", "x" })
            Assert.ThrowsExactly<AuditUsageException>(() => EnergyThresholds.Parse(bad), bad);

        var o = Ebp.Audit.Program.ParseRunOptions(["-m", "m.csv", "-o", "out", "--min-energy", "cebp=0.6"], _ => null);
        Assert.AreEqual(EnergyThresholds.Default with { Cebp = 0.6 }, o.MinEnergy);
        Assert.AreEqual(EnergyThresholds.Default, Ebp.Audit.Program.ParseRunOptions(["-m", "m.csv", "-o", "out"], _ => null).MinEnergy);
    }

    [TestMethod]
    public void Reports_FlagPerMethod_QuoteCsv_EncodeHtml_AndRoundAlike()
    {
        var folder = TestSet.NewFolder("report-unit");
        var layout = new OutputLayout(folder);
        var job = new JobInfo
        {
            Model = "card <script>alert(1)</script> & co",
            ModelIdentity = "0123456789abcdef",
            ClassNames = ["cat", "dog \"big\", brown"],
            Methods = ["ebp", "gradient"],
            SaliencyLayer = "features.2",
            GradientLayer = "",
        };
        RowRecord Row(string method, int c, double energy, bool hit) => new()
        {
            Method = method, Class = c, Rank = c + 1, Score = 1.5f - c, PeakX = 1, PeakY = 2, ClassAnnotated = true,
            Energy = energy, Hit = hit, PeakInObject = true,
        };
        const string Key = "odd, \"name\" <b>.png";
        var records = new List<ImageRecord>
        {
            // Energy 0.10: below ebp's 0.12, above gradient's 0.09.
            new() { Image = Key, Predicted = 0, Objects = 2, Annotated = true, Rows = [Row("ebp", 0, 0.10, true), Row("gradient", 0, 0.10, true)] },
            new() { Image = "b.png", Predicted = 0, Objects = 1, Annotated = true, Rows = [Row("ebp", 0, 0.5, false), Row("gradient", 0, 0.5, true)] },
            new() { Image = "c.png", Predicted = 0, Objects = 1, Annotated = true, Rows = [Row("ebp", 0, 0.5, true), Row("gradient", 0, 0.5, false)] },
        };
        var run = new RunInfo { Status = AuditStatus.Complete, Inputs = 3 };
        ReportWriter.Write(layout, job, records, run, EnergyThresholds.Default, new Timings());

        var rows = Outputs.Rows(folder);
        Assert.HasCount(6, rows);
        List<string> FlagsOf(string image, string method) => rows.Single(r => Outputs.Str(r["image"]) == image && Outputs.Str(r["method"]) == method)["flags"]!
            .AsArray().Select(f => f!.GetValue<string>()).ToList();
        CollectionAssert.Contains(FlagsOf(Key, "ebp"), Flags.LowEnergy);
        CollectionAssert.DoesNotContain(FlagsOf(Key, "gradient"), Flags.LowEnergy);
        Assert.AreEqual("0.1000", rows[0]["energy_in_boxes"]!.ToJsonString(), "4 decimals, as in the CSV");

        // CSV: quotes and commas quoted, read back by the manifest reader.
        using (var reader = new StreamReader(Path.Combine(folder, "results.csv")))
        {
            var csv = Csv.ReadRecords(reader).ToList();
            CollectionAssert.AreEqual(ReportWriter.Columns, csv[0].Fields);
            var first = csv.Skip(1).First(r => r.Fields[0] == Key).Fields;
            Assert.HasCount(ReportWriter.Columns.Length, first);
            Assert.AreEqual("0.1000", first[Array.IndexOf(ReportWriter.Columns, "energy_in_boxes")]);
        }
        var summary = Outputs.Summary(folder);
        Assert.IsNull(summary["job"]!["min_energy"]);
        Assert.AreEqual("0.0900", summary["job"]!["min_energy_by_method"]!["gradient"]!.ToJsonString());
        Assert.AreEqual("0.6667", summary["pointing"]!["ebp"]!["accuracy"]!.ToJsonString());

        // HTML: the model text is encoded in the markup; the data block cannot close its script element.
        var html = File.ReadAllText(Path.Combine(folder, "index.html"));
        Assert.DoesNotContain("<script>alert", html);
        StringAssert.Contains(html, "card &lt;script&gt;alert(1)&lt;/script&gt; &amp; co");
        Assert.DoesNotContain("<b>.png", html, "the key is escaped in the embedded JSON");
        var dataStart = html.IndexOf("<script id=\"audit-data\" type=\"application/json\">", StringComparison.Ordinal);
        var data = JsonNode.Parse(html[(dataStart + 48)..html.IndexOf("</script>", dataStart, StringComparison.Ordinal)])!;
        Assert.AreEqual(Key, data["rows"]![0]!["image"]!.GetValue<string>());

        // The same percentage text in summary.md and in the page's data: 2 of 3 hits.
        Assert.AreEqual("66.7 % (2/3)", data["text"]!["pointing"]!["ebp"]!.GetValue<string>());
        StringAssert.Contains(File.ReadAllText(Path.Combine(folder, "summary.md")), "**66.7 %** (2/3)");
        Assert.AreEqual("66.7 % (2/3)", data["text"]!["per_class"]!["ebp"]!["0"]!.GetValue<string>());
    }
}
