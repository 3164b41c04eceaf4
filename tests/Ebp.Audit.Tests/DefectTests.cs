using System.Text.Json.Nodes;
using SkiaSharp;

namespace Ebp.Audit.Tests;

/// <summary>The reproductions of issue 15's defects 1, 2, 3, 5, 6 and 8.</summary>
[TestClass]
public sealed class DefectTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = Ebp.Audit.Program.Run(args, o, e, _ => null);
        return (code, o.ToString(), e.ToString());
    }

    /// <summary>A folder holding scenes <paramref name="scenes"/> under the given file names (PNG, no annotations).</summary>
    private static string Folder(string name, params (int Scene, string File)[] scenes)
    {
        var dir = TestSet.NewFolder(name);
        foreach (var (scene, file) in scenes)
            File.Copy(Path.Combine(TestSet.Images, $"scene_{scene:00}.png"), Path.Combine(dir, file));
        return dir;
    }

    [TestMethod]
    public void OutEqualToOrAboveTheInput_IsRefused_OutInsideIsExcluded()
    {
        var root = TestSet.NewFolder("out-in");
        var images = Path.Combine(root, "images");
        Directory.CreateDirectory(images);
        for (int i = 0; i < 2; i++) File.Copy(Path.Combine(TestSet.Images, $"scene_{i:00}.png"), Path.Combine(images, $"s{i}.png"));

        var (code, _, err) = Run("--input", images, "--out", images + "/", "--model", TestSet.Card, "--threads", "1", "--progress", "none");
        Assert.AreEqual(2, code, err);
        StringAssert.Contains(err, "is the input folder");
        Assert.IsFalse(File.Exists(Path.Combine(images, "summary.json")), "nothing written among the images");

        (code, _, err) = Run("--input", images, "--out", root, "--model", TestSet.Card, "--threads", "1", "--progress", "none");
        Assert.AreEqual(2, code, err);
        StringAssert.Contains(err, "contains the input folder");

        var inside = Path.Combine(images, "audit");
        (code, var stdout, err) = Run("--input", images, "--out", inside, "--model", TestSet.Card, "--threads", "1", "--progress", "none");
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(stdout, "2 processed");
        // A rerun does not pick up the overlays it wrote inside the input folder.
        (code, stdout, err) = Run("--input", images, "--out", inside, "--model", TestSet.Card, "--threads", "1", "--progress", "none");
        Assert.AreEqual(0, code, err);
        Assert.AreEqual(2, Outputs.Int(Outputs.Summary(inside)["counts"]!["inputs"]));
    }

    [TestMethod]
    public void OverlayNames_DoNotCollide()
    {
        var dir = Folder("collide", (0, "x y.png"), (1, "x_y.png"));
        var output = TestSet.NewFolder("collide-out");
        var (code, _, err) = Run("--input", dir, "--out", output, "--model", TestSet.Card, "--top-k", "10", "--threads", "1", "--progress", "none");
        Assert.AreEqual(0, code, err);
        var rows = Outputs.Rows(output);
        Assert.HasCount(20, rows);
        var overlays = rows.Select(r => Outputs.Str(r["overlay"])!).ToList();
        Assert.HasCount(20, overlays.Distinct().ToList(), "one overlay per row");
        Assert.HasCount(20, Outputs.OverlayFiles(output));
        // The two images differ, so their overlays for one class differ too.
        string Of(string image) => overlays[rows.FindIndex(r => Outputs.Str(r["image"]) == image && Outputs.Int(r["class"]) == 3)];
        CollectionAssert.AreNotEqual(File.ReadAllBytes(Path.Combine(output, Of("x y.png"))), File.ReadAllBytes(Path.Combine(output, Of("x_y.png"))));
    }

    [TestMethod]
    public void GradientDefaultsToTheInput_EachMethodItsLayer()
    {
        var summary = Outputs.Summary(TestSet.Reference);
        var layers = summary["job"]!["layers"]!.AsObject();
        Assert.AreEqual(TestSet.SaliencyLayer, Outputs.Str(layers["ebp"]));
        Assert.AreEqual(TestSet.SaliencyLayer, Outputs.Str(layers["cebp"]));
        Assert.AreEqual("", Outputs.Str(layers["gradient"]));
        StringAssert.Contains(File.ReadAllText(Path.Combine(TestSet.Reference, "summary.md")), "gradient at `(input)`");
        var o = Ebp.Audit.Program.ParseRunOptions(["-m", "m.csv", "-o", "out", "--gradient-layer", "features.2"], _ => null);
        Assert.AreEqual("features.2", o.GradientLayer);
    }

    [TestMethod]
    public void TopKZero_IsRejected()
    {
        var (code, _, err) = Run("--manifest", TestSet.Manifest, "--out", TestSet.NewFolder("topk"), "--model", TestSet.Card, "--top-k", "0");
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "--top-k must be at least 1");
    }

    [TestMethod]
    public void MergeAllowIncomplete_NamesExactlyTheMissingShards_TimingsNotMixed()
    {
        var root = TestSet.NewFolder("merge-incomplete");
        for (int i = 0; i < 3; i++)
            Assert.AreEqual(AuditStatus.Complete, new AuditJob(TestSet.Options(root) with { Methods = [AuditMethod.Ebp], Shard = new ShardSpec(i, 3) }).Run().Status);
        string S(int i) => Path.Combine(root, $"shard-{i}-of-3");

        var merged = TestSet.NewFolder("merged");
        var stdout = new StringWriter();
        int code = Ebp.Audit.Program.Run(["merge", S(0), S(2), "--out", merged, "--allow-incomplete"], stdout, new StringWriter(), _ => null);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stdout.ToString(), "missing shards 1/3");
        var run = Outputs.Summary(merged)["run"]!;
        CollectionAssert.AreEqual(new[] { "1/3" }, run["missing_shards"]!.AsArray().Select(n => n!.GetValue<string>()).ToArray());
        StringAssert.Contains(File.ReadAllText(Path.Combine(merged, "summary.md")), "Missing shards: 1/3");

        // The same shard twice (spelled differently): merged once; still exactly shard 1 missing.
        var merged2 = TestSet.NewFolder("merged2");
        stdout = new StringWriter();
        code = Ebp.Audit.Program.Run(["merge", S(0), S(0) + "/", S(2), "--out", merged2, "--allow-incomplete"], stdout, new StringWriter(), _ => null);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stdout.ToString(), "given more than once");
        StringAssert.Contains(stdout.ToString(), "missing shards 1/3 ");
        Assert.AreEqual(File.ReadAllText(Path.Combine(merged, "results.csv")), File.ReadAllText(Path.Combine(merged2, "results.csv")));

        // A copy of shard 0 in another folder: the error names the shard and both folders, and the missing one.
        var copy = Path.Combine(TestSet.NewFolder("copy"), "shard-0-of-3");
        CopyTree(S(0), copy);
        var e = Assert.ThrowsExactly<AuditUsageException>(() => Merger.Merge(new MergeOptions { Sources = [S(0), copy, S(2)], OutputFolder = TestSet.NewFolder("m3"), AllowIncomplete = true }));
        StringAssert.Contains(e.Message, "Shard 0/3 is given twice");
        StringAssert.Contains(e.Message, "missing shard 1/3");

        // Complete merge: the timings are the shards' summed, the rate per shard process, the merge time apart.
        var full = TestSet.NewFolder("merged-full");
        Assert.AreEqual(AuditStatus.Complete, Merger.Merge(new MergeOptions { Sources = [root], OutputFolder = full }).Status);
        var t = Outputs.Summary(full)["run"]!["timings"]!;
        double compute = Enumerable.Range(0, 3).Sum(i => Outputs.Double(Outputs.Summary(S(i))["run"]!["timings"]!["compute_s"])!.Value);
        Assert.AreEqual(compute, Outputs.Double(t["compute_s"])!.Value, 0.0021);
        Assert.IsGreaterThan(0.0, Outputs.Double(t["images_per_s"])!.Value);
        Assert.IsNotNull(t["merge_s"]);
        Assert.IsEmpty(Outputs.Summary(full)["run"]!["missing_shards"]!.AsArray());
    }

    private static void CopyTree(string from, string to)
    {
        foreach (var f in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            var dst = Path.Combine(to, Path.GetRelativePath(from, f));
            Directory.CreateDirectory(Path.GetDirectoryName(dst)!);
            File.Copy(f, dst);
        }
    }

    [TestMethod]
    public void JpegNamedPng_IsProcessed_AndNoted()
    {
        var dir = Folder("jpeg", (0, "real.png"));
        using (var bitmap = SKBitmap.Decode(Path.Combine(TestSet.Images, "scene_01.png")))
        using (var image = SKImage.FromBitmap(bitmap))
        using (var jpeg = image.Encode(SKEncodedImageFormat.Jpeg, 95))
            File.WriteAllBytes(Path.Combine(dir, "fake.png"), jpeg.ToArray());
        var output = TestSet.NewFolder("jpeg-out");
        var result = new AuditJob(TestSet.Options(output) with { ManifestPath = null, InputFolder = dir, Methods = [AuditMethod.Ebp] }).Run();
        Assert.AreEqual(2, result.Processed);
        var warnings = Outputs.Summary(output)["warnings"]!.AsArray();
        var w = warnings.Single(n => Outputs.Str(n!["warning"])!.Contains("holds a JPEG image"))!;
        Assert.AreEqual(1, Outputs.Int(w["images"]));
        CollectionAssert.AreEqual(new[] { "fake.png" }, w["examples"]!.AsArray().Select(n => n!.GetValue<string>()).ToArray());
        StringAssert.Contains(File.ReadAllText(Path.Combine(output, "summary.md")), "fake.png");
    }
}
