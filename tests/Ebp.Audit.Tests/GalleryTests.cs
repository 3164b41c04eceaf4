using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Ebp.Audit.Tests;

/// <summary>The HTML gallery rendered by headless Chromium (Debian package <c>chromium</c>).</summary>
[TestClass]
public sealed partial class GalleryTests
{
    private const string Chromium = "/usr/bin/chromium";

    [TestMethod]
    public void Gallery_RendersAllRows_AndTheHashFiltersAndSorts()
    {
        RequireChromium();
        var folder = TestSet.Reference;
        var rows = Outputs.Rows(folder);
        var index = Path.Combine(folder, "index.html");

        var all = Render(index, "#size=1000");
        Assert.HasCount(rows.Count, RowTags().Matches(all), "one table row per result row");
        Assert.AreEqual(rows.Count.ToString(), Count(all));
        foreach (var r in rows.Take(5)) StringAssert.Contains(all, $"src=\"{Outputs.Str(r["overlay"])}\"");
        StringAssert.Contains(all, $"ebp at {TestSet.SaliencyLayer}, cebp at {TestSet.SaliencyLayer}, gradient at (input)", "each method's layer");

        // The default page size is 100.
        var firstPage = Render(index, "");
        Assert.HasCount(Math.Min(100, rows.Count), RowTags().Matches(firstPage));

        var mismatch = rows.Count(r => r["flags"]!.AsArray().Any(f => f!.GetValue<string>() == Flags.LabelMismatch));
        Assert.IsGreaterThan(0, mismatch);
        var filtered = Render(index, "#flag=label_mismatch&size=1000");
        Assert.HasCount(mismatch, RowTags().Matches(filtered));
        Assert.AreEqual(mismatch.ToString(), Count(filtered));
        Assert.IsTrue(RowTags().Matches(filtered).All(m => m.Groups["flags"].Value.Split(' ').Contains(Flags.LabelMismatch)));

        var unflagged = rows.Count(r => r["flags"]!.AsArray().Count == 0);
        Assert.HasCount(unflagged, RowTags().Matches(Render(index, "#flag=none&size=1000")));

        var cls = Outputs.Int(rows[0]["class"])!.Value;
        var byClassAndMethod = rows.Count(r => Outputs.Int(r["class"]) == cls && Outputs.Str(r["method"]) == "cebp");
        Assert.HasCount(byClassAndMethod, RowTags().Matches(Render(index, $"#class={cls}&method=cebp&size=1000")));

        var sorted = Render(index, "#sort=score&dir=desc&size=1000");
        var best = rows.OrderByDescending(r => Outputs.Double(r["score"])).First();
        Assert.AreEqual(Outputs.Str(best["image"]), RowTags().Matches(sorted)[0].Groups["image"].Value, "the highest score comes first");
    }

    /// <summary>
    /// The summary comes first (a per-class pointing chart whose labels are summary.md's numbers, the flag counts, the
    /// predicted-vs-annotated table), then the worst cases in the documented order, each with the input and every
    /// method's overlay side by side.
    /// </summary>
    [TestMethod]
    public void Gallery_ShowsTheSummaryAndTheWorstCasesFirst()
    {
        RequireChromium();
        var folder = TestSet.Reference;
        var rows = Outputs.Rows(folder);
        var summary = Outputs.Summary(folder);
        var md = File.ReadAllText(Path.Combine(folder, "summary.md"));
        var dom = Render(Path.Combine(folder, "index.html"), "");
        string[] methods = ["ebp", "cebp", "gradient"];

        // The summary precedes the worst cases, which precede the table.
        int chartAt = dom.IndexOf("id=\"pointing-chart\"", StringComparison.Ordinal), casesAt = dom.IndexOf("class=\"case ", StringComparison.Ordinal);
        int tableAt = dom.IndexOf("<tr class=\"row\"", StringComparison.Ordinal);
        Assert.IsTrue(chartAt > 0 && chartAt < casesAt && casesAt < tableAt, "summary, then worst cases, then all rows");

        // One bar per (method, annotated class) plus one per method for all classes; each label is summary.md's text.
        var bars = Bars().Matches(dom);
        int expectedBars = methods.Sum(m => summary["pointing"]![m]!["per_class"]!.AsArray().Count) + methods.Length;
        Assert.HasCount(expectedBars, bars);
        foreach (Match b in bars)
        {
            var m = b.Groups["method"].Value;
            var label = b.Groups["label"].Value;
            if (b.Groups["class"].Value == "all")
            {
                var p = summary["pointing"]![m]!;
                StringAssert.Contains(md, $"**{label.Split(' ')[0]} %**", $"{m} overall accuracy as in summary.md");
                StringAssert.EndsWith(label, $"({p["hits"]}/{p["total"]})");
            }
            else
            {
                var e = summary["pointing"]![m]!["per_class"]!.AsArray().Single(x => x!["class"]!.ToString() == b.Groups["class"].Value)!;
                Assert.AreEqual(Percent((int)e["hits"]!, (int)e["total"]!), label, $"{m} class {b.Groups["class"].Value}");
                StringAssert.Contains(md, " " + label + " |", "the same text in summary.md");
            }
        }

        // Flag counts as in summary.json.
        foreach (var f in Flags.All)
            StringAssert.Contains(dom, $"<tr data-flag=\"{f}\"><td><a href=\"#flag={f}\"><span class=\"flag\">{f}</span></a></td><td class=\"num\">{summary["flags"]![f]}</td>");

        // Predicted vs annotated: every cell of summary.json's confusion is in the table.
        foreach (var c in summary["confusion"]!.AsArray())
            Assert.IsTrue(Regex.IsMatch(dom, $"<td data-annotated=\"{c!["annotated"]}\" data-predicted=\"{c["predicted"]}\"[^>]*>{c["images"]}</td>"), $"confusion cell {c.ToJsonString()}");

        // The worst cases, recomputed from results.jsonl: missed labels, false positives, pointing misses, low energy,
        // peak outside / empty map, label mismatch; then more flagged methods, lower energy, image, class.
        var expected = rows.GroupBy(r => (Image: Outputs.Str(r["image"])!, Class: Outputs.Int(r["class"])!.Value))
            .Select(g =>
            {
                var flags = g.SelectMany(r => r["flags"]!.AsArray().Select(f => f!.GetValue<string>())).ToHashSet();
                int severity = flags.Contains(Flags.MissedLabel) ? 0 : flags.Contains(Flags.FalsePositive) ? 1
                    : g.Any(r => Outputs.Str(r["pointing"]) == "miss") ? 2 : flags.Contains(Flags.LowEnergy) ? 3
                    : flags.Contains(Flags.PeakOutsideObjects) || flags.Contains(Flags.EmptyMap) ? 4 : 5;
                return (g.Key.Image, g.Key.Class, Any: flags.Count > 0, Severity: severity,
                        Flagged: g.Count(r => r["flags"]!.AsArray().Count > 0),
                        Energy: g.Min(r => Outputs.Double(r["energy_in_boxes"]) ?? double.PositiveInfinity));
            })
            .Where(c => c.Any)
            .OrderBy(c => c.Severity).ThenByDescending(c => c.Flagged).ThenBy(c => c.Energy).ThenBy(c => c.Image, StringComparer.Ordinal).ThenBy(c => c.Class)
            .ToList();
        var cases = Cases().Matches(dom);
        Assert.IsGreaterThan(0, cases.Count);
        Assert.HasCount(Math.Min(expected.Count, 60), cases);
        for (int i = 0; i < cases.Count; i++)
        {
            Assert.AreEqual(expected[i].Image, cases[i].Groups["image"].Value, $"case {i}");
            Assert.AreEqual(expected[i].Class.ToString(), cases[i].Groups["class"].Value, $"case {i}");
            Assert.AreEqual(expected[i].Severity.ToString(), cases[i].Groups["severity"].Value, $"case {i}");
        }
        Assert.AreEqual("0", cases[0].Groups["severity"].Value, "these scenes have missed labels: they come first");

        // Side by side: the input (with its boxes) and every method's overlay of that class.
        var first = cases[0];
        int end = first.Index + dom[first.Index..].IndexOf("</section>", StringComparison.Ordinal);
        var section = dom[first.Index..end];
        var key = OutputLayout.SafeRelative(first.Groups["image"].Value);
        StringAssert.Contains(section, $"src=\"inputs/{key}/input.png\"");
        foreach (var m in methods) StringAssert.Contains(section, $"src=\"overlays/{key}/{m}_c{first.Groups["class"].Value}.png\"");
        Assert.IsTrue(File.Exists(Path.Combine(folder, "inputs", key, "input.png")), "the input panel exists");
    }

    [TestMethod]
    public void Gallery_ShowsTheFaithfulnessMeans_AsSummaryJsonHasThem_OnlyWhenMeasured()
    {
        RequireChromium();
        var output = TestSet.NewFolder("gallery-faithfulness");
        var result = new AuditJob(TestSet.Options(output) with { Faithfulness = true, FaithfulnessSteps = 4, WriteOverlays = false }).Run();
        Assert.AreEqual(AuditStatus.Complete, result.Status);
        var section = Outputs.Summary(output)["faithfulness"]!;
        var dom = Render(Path.Combine(output, "index.html"), "");
        string[] methods = ["ebp", "cebp", "gradient"];
        static string F4(JsonNode? n) => Outputs.Double(n)!.Value.ToString("F4", CultureInfo.InvariantCulture);

        StringAssert.Contains(dom, "<section id=\"faithfulness\">", "shown for a job run with --faithfulness");
        StringAssert.Contains(dom, "lower is better");
        StringAssert.Contains(dom, "higher is better");
        var means = FaithfulnessMeans().Matches(dom);
        Assert.HasCount(methods.Length, means);
        foreach (var (match, method) in means.Zip(methods))
        {
            var m = section["methods"]![method]!;
            Assert.AreEqual(method, match.Groups["method"].Value, "methods in the job's order");
            Assert.AreEqual(F4(m["deletion_auc"]), match.Groups["deletion"].Value, $"{method} deletion");
            Assert.AreEqual(F4(m["insertion_auc"]), match.Groups["insertion"].Value, $"{method} insertion");
            Assert.AreEqual(Outputs.Int(m["rows"]).ToString(), match.Groups["rows"].Value, $"{method} rows");
        }

        var cells = FaithfulnessCells().Matches(dom);
        Assert.AreEqual(methods.Sum(m => section["methods"]![m]!["per_class"]!.AsArray().Count(p => Outputs.Int(p!["rows"]) > 0)), cells.Count);
        Assert.IsTrue(cells.Count >= methods.Length, "at least one class per method");
        foreach (Match c in cells)
        {
            int cls = int.Parse(c.Groups["class"].Value, CultureInfo.InvariantCulture);
            var p = section["methods"]![c.Groups["method"].Value]!["per_class"]!.AsArray().Single(x => Outputs.Int(x!["class"]) == cls)!;
            Assert.AreEqual(F4(p["deletion_auc"]), c.Groups["deletion"].Value, $"{c.Groups["method"].Value} class {cls} deletion");
            Assert.AreEqual(F4(p["insertion_auc"]), c.Groups["insertion"].Value, $"{c.Groups["method"].Value} class {cls} insertion");
            Assert.AreEqual(Outputs.Int(p["rows"]).ToString(), c.Groups["rows"].Value);
        }

        // A job without --faithfulness keeps the section hidden and empty.
        var plain = Render(Path.Combine(TestSet.Reference, "index.html"), "");
        StringAssert.Contains(plain, "<section id=\"faithfulness\" hidden=\"\">");
        Assert.IsEmpty(FaithfulnessMeans().Matches(plain));
    }

    [GeneratedRegex("<tr data-method=\"(?<method>\\w+)\"><th>\\w+</th><td class=\"num\" data-measure=\"deletion\">(?<deletion>[^<]+)</td><td class=\"num\" data-measure=\"insertion\">(?<insertion>[^<]+)</td><td class=\"num\">(?<rows>\\d+)</td>")]
    private static partial Regex FaithfulnessMeans();

    [GeneratedRegex("<td class=\"num\" data-method=\"(?<method>\\w+)\" data-class=\"(?<class>\\d+)\"><span data-measure=\"deletion\">(?<deletion>[^<]+)</span> / <span data-measure=\"insertion\">(?<insertion>[^<]+)</span> \\((?<rows>\\d+)\\)</td>")]
    private static partial Regex FaithfulnessCells();

    private static void RequireChromium()
    {
        if (!File.Exists(Chromium))
            Assert.Inconclusive($"{Chromium} is missing: install Debian's 'chromium' package (apt-get install -y chromium) to run the gallery test.");
    }

    private static string Percent(int hits, int total) =>
        (100.0 * hits / total).ToString("F1", System.Globalization.CultureInfo.InvariantCulture) + $" % ({hits}/{total})";

    [GeneratedRegex("<rect [^>]*class=\"bar m-(?<method>\\w+)\" data-method=\"\\w+\" data-class=\"(?<class>[^\"]+)\" data-label=\"(?<label>[^\"]+)\"")]
    private static partial Regex Bars();

    [GeneratedRegex("<section class=\"case sev-\\d\" data-image=\"(?<image>[^\"]*)\" data-class=\"(?<class>\\d+)\" data-severity=\"(?<severity>\\d)\"")]
    private static partial Regex Cases();

    private static string Count(string dom) => CountSpan().Match(dom) is { Success: true } m ? m.Groups[1].Value : "(no count)";

    [GeneratedRegex("<tr class=\"row\" data-flags=\"(?<flags>[^\"]*)\" data-image=\"(?<image>[^\"]*)\"")]
    private static partial Regex RowTags();

    [GeneratedRegex("<span id=\"count\">(\\d+)</span>")]
    private static partial Regex CountSpan();

    /// <summary>Loads the page in headless Chromium and returns the DOM after its scripts ran.</summary>
    private static string Render(string file, string hash)
    {
        var profile = Path.Combine(Path.GetTempPath(), "ebp-audit-chromium-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(profile);
        try
        {
            var psi = new ProcessStartInfo(Chromium)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                                      "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                      "--disable-dev-shm-usage", $"--user-data-dir={profile}", "--dump-dom",
                                      new Uri(file).AbsoluteUri + hash })
                psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var stderr = p.StandardError.ReadToEndAsync();
            var dom = p.StandardOutput.ReadToEndAsync();
            if (!p.WaitForExit(60_000))
            {
                p.Kill(entireProcessTree: true);
                Assert.Fail("chromium did not finish within 60 s");
            }
            Assert.AreEqual(0, p.ExitCode, $"chromium failed: {stderr.Result}");
            return dom.Result;
        }
        finally
        {
            try { Directory.Delete(profile, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
