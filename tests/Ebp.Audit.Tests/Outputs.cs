using System.Text.Json.Nodes;

namespace Ebp.Audit.Tests;

/// <summary>Reads and compares audit output folders.</summary>
public static class Outputs
{
    public static List<JsonObject> Rows(string folder) =>
        File.ReadAllLines(Path.Combine(folder, "results.jsonl")).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    public static JsonObject Summary(string folder) => JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "summary.json")))!.AsObject();

    /// <summary>summary.json without its run section (timings, shard, resume counts).</summary>
    public static string SummaryWithoutRun(string folder)
    {
        var s = Summary(folder);
        s.Remove("run");
        return s.ToJsonString();
    }

    public static string MarkdownWithoutRun(string folder)
    {
        var md = File.ReadAllText(Path.Combine(folder, "summary.md"));
        int i = md.IndexOf("## Run", StringComparison.Ordinal);
        return i < 0 ? md : md[..i];
    }

    public static int? Int(JsonNode? n) => n is null ? null : n.GetValue<int>();
    public static double? Double(JsonNode? n) => n is null ? null : n.GetValue<double>();
    public static string? Str(JsonNode? n) => n?.GetValue<string>();

    /// <summary>
    /// Asserts that <paramref name="actual"/> holds the same report as <paramref name="expected"/>: byte-identical
    /// results.csv, results.jsonl, index.html and overlay PNGs; summary.json and summary.md equal apart from the run
    /// section (compute batch 1 makes every number independent of the batch composition).
    /// </summary>
    public static void AssertSameReport(string expected, string actual)
    {
        foreach (var name in new[] { "results.csv", "results.jsonl", "index.html" })
        {
            var a = File.ReadAllBytes(Path.Combine(expected, name));
            var b = File.ReadAllBytes(Path.Combine(actual, name));
            Assert.IsTrue(a.AsSpan().SequenceEqual(b), $"{name} differs between {expected} and {actual}");
        }
        Assert.AreEqual(SummaryWithoutRun(expected), SummaryWithoutRun(actual), "summary.json (without run)");
        Assert.AreEqual(MarkdownWithoutRun(expected), MarkdownWithoutRun(actual), "summary.md (without run)");
        var ea = OverlayFiles(expected);
        var eb = OverlayFiles(actual);
        CollectionAssert.AreEqual(ea, eb, "the overlay files");
        foreach (var f in ea)
        {
            var a = File.ReadAllBytes(Path.Combine(expected, f));
            var b = File.ReadAllBytes(Path.Combine(actual, f));
            Assert.IsTrue(a.AsSpan().SequenceEqual(b), $"overlay {f} differs");
        }
    }

    public static List<string> OverlayFiles(string folder)
    {
        var dir = Path.Combine(folder, "overlays");
        if (!Directory.Exists(dir)) return new();
        return Directory.GetFiles(dir, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(folder, f).Replace('\\', '/')).Order(StringComparer.Ordinal).ToList();
    }
}
