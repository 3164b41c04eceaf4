using System.Diagnostics;
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
        if (!File.Exists(Chromium))
            Assert.Inconclusive($"{Chromium} is missing: install Debian's 'chromium' package (apt-get install -y chromium) to run the gallery test.");
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
