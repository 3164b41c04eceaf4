using System.Text.Json;

namespace Ebp.Audit.Tests;

[TestClass]
public sealed class UnitTests
{
    [TestMethod]
    public void Csv_ReadsQuotesCommasAndMultilineFields_AndEscapesRoundTrip()
    {
        var text = "path,label\n\"a,b.png\",\"say \"\"hi\"\"\"\r\nplain.png,\n\"multi\nline.png\",x";
        var records = Csv.ReadRecords(new StringReader(text)).ToList();
        Assert.HasCount(4, records);
        CollectionAssert.AreEqual(new[] { "a,b.png", "say \"hi\"" }, records[1].Fields);
        CollectionAssert.AreEqual(new[] { "plain.png", "" }, records[2].Fields);
        CollectionAssert.AreEqual(new[] { "multi\nline.png", "x" }, records[3].Fields);
        Assert.AreEqual(4, records[3].Line);
        foreach (var s in new[] { "a,b", "q\"q", "line\nbreak", " lead", "plain" })
            Assert.AreEqual(s, Csv.ReadRecords(new StringReader(Csv.Escape(s) + "\n")).Single().Fields.Single());
        Assert.ThrowsExactly<AuditUsageException>(() => Csv.ReadRecords(new StringReader("\"open")).ToList());
    }

    [TestMethod]
    public void Csv_CountsLinesAcrossBlankLinesAndMultilineFields_AndKeepsStrayQuotes()
    {
        var records = Csv.ReadRecords(new StringReader("a,b\n\n\"x\ny\nz\",2\r\nlast,3")).ToList();
        CollectionAssert.AreEqual(new[] { 1, 2, 3, 6 }, records.Select(r => r.Line).ToArray());
        CollectionAssert.AreEqual(new[] { "" }, records[1].Fields);
        CollectionAssert.AreEqual(new[] { "x\ny\nz", "2" }, records[2].Fields);
        CollectionAssert.AreEqual(new[] { "last", "3" }, records[3].Fields);
        // A quote inside an unquoted field is text (as the reader before CsvHelper kept it).
        CollectionAssert.AreEqual(new[] { "ba\"d.png", "x" }, Csv.ReadRecords(new StringReader("path\nba\"d.png,x\n")).Last().Fields);
        var e = Assert.ThrowsExactly<AuditUsageException>(() => Csv.ReadRecords(new StringReader("path\n\"open.png\nmore\n")).ToList());
        StringAssert.Contains(e.Message, "line 2 is not closed");
    }

    [TestMethod]
    public void JournalAndJobFile_RoundTrip_InTheFormatOfEarlierVersions()
    {
        var record = new ImageRecord
        {
            Image = "a/\"b\".png", Stamp = "12:34", Width = 28, Height = 30, Label = 3, Predicted = 7, Objects = 2, Annotated = true,
            InputPanel = "overlays/x.png", Warnings = ["w"],
            Rows =
            [
                new RowRecord { Method = "ebp", Class = 7, Rank = 1, Score = 0.123456789f, PeakX = 4, PeakY = 5, ClassAnnotated = true, Energy = 0.25, Hit = true,
                                DeletionAuc = 0.125, InsertionAuc = double.NaN },
                new RowRecord { Method = "gradient", Class = 3, Rank = 2, Empty = true },
            ],
        };
        // Journals and job files of earlier versions were written by reflection with these settings: the bytes must not change.
        var earlier = new JsonSerializerOptions
        {
            DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.Never,
            NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
            TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver(),
        };
        var folder = TestSet.NewFolder("journal");
        var path = Path.Combine(folder, "journal.jsonl");
        Journal.Rewrite(path, [record]);
        Assert.AreEqual(JsonSerializer.Serialize(record, earlier) + Environment.NewLine, File.ReadAllText(path));
        var back = Journal.Read(path, out int unreadable).Values.Single();
        Assert.AreEqual(0, unreadable);
        Assert.AreEqual(JsonSerializer.Serialize(record, earlier), JsonSerializer.Serialize(back, earlier));
        Assert.IsTrue(double.IsNaN(back.Rows[0].InsertionAuc!.Value));
        Assert.AreEqual(0.123456789f, back.Rows[0].Score);

        var job = new JobInfo
        {
            Model = "card", ModelIdentity = "sha", ClassNames = ["zero", "one"], Methods = ["ebp", "gradient"], SaliencyLayer = "features.3",
            GradientLayer = "", InputWidth = 28, InputHeight = 30, Channels = 1, Mean = [0.5f], Std = [0.25f], TopK = 2, TolerancePx = 1.5,
            OverlayAlpha = 0.6f, Overlays = true, FaithfulnessSteps = 8, FaithfulnessScore = "softmax",
        };
        var jobPath = Path.Combine(folder, "job.json");
        File.WriteAllText(jobPath, job.ToJson());
        Assert.AreEqual(JsonSerializer.Serialize(job, new JsonSerializerOptions(earlier) { WriteIndented = true }) + "\n", File.ReadAllText(jobPath));
        Assert.IsEmpty(JobInfo.Differences(job, JobInfo.Load(jobPath)));
        File.WriteAllText(jobPath, "{\"format\": 99}");
        StringAssert.Contains(Assert.ThrowsExactly<AuditUsageException>(() => JobInfo.Load(jobPath)).Message, "is not an ebp-audit job file: format 99");
    }

    [TestMethod]
    public void Quantiles_MedianAndPercentile_ByHand()
    {
        Assert.AreEqual(3.0, Quantiles.Median([5.0, 1.0, 3.0]));
        Assert.AreEqual(2.5, Quantiles.Median([4.0, 1.0, 2.0, 3.0]));
        Assert.IsTrue(double.IsNaN(Quantiles.Median([])));
        double[] sorted = [1.0, 2.0, 3.0, 4.0, 5.0];
        Assert.AreEqual(1.2, Quantiles.Percentile(sorted, 0.05)!.Value, 1e-12); // position 0.2 between 1 and 2
        Assert.AreEqual(3.0, Quantiles.Percentile(sorted, 0.5));
        Assert.IsNull(Quantiles.Percentile([], 0.5));
    }

    [TestMethod]
    public void Manifest_ResolvesRelativePaths_AndRequiresAPathColumn()
    {
        var dir = TestSet.NewFolder("manifest");
        File.WriteAllText(Path.Combine(dir, "m.csv"), "# comment\nImage,Label,XML\n./a/x.png,3,a/x.xml\n\nb.png,,\n");
        var list = InputCatalog.FromManifest(Path.Combine(dir, "m.csv"));
        Assert.HasCount(2, list);
        Assert.AreEqual("a/x.png", list[0].Key);
        Assert.AreEqual(Path.Combine(dir, "a", "x.png"), list[0].Path);
        Assert.AreEqual("3", list[0].Label);
        Assert.AreEqual(Path.Combine(dir, "a", "x.xml"), list[0].AnnotationPath);
        Assert.IsNull(list[1].Label);
        Assert.IsNull(list[1].AnnotationPath);

        File.WriteAllText(Path.Combine(dir, "bad.csv"), "file_name,label\nx.png,1\n");
        Assert.AreEqual("file_name", Assert.ThrowsExactly<AuditUsageException>(() => InputCatalog.FromManifest(Path.Combine(dir, "bad.csv"))).Message
            .Contains("'path'") ? "file_name" : "?");
    }

    [TestMethod]
    public void OverlayPaths_StayInsideTheOutputFolder()
    {
        Assert.AreEqual("overlays/a/b.png/ebp_c3.png", OutputLayout.OverlayPath("a/b.png", "ebp", 3));
        Assert.AreEqual("overlays/~2E~2E/~2E~2E/etc/pass~20wd.png/cebp_c0.png", OutputLayout.OverlayPath("../../etc/pass wd.png", "cebp", 0));
        Assert.AreEqual("overlays/~2E/x.png/gradient_c1.png", OutputLayout.OverlayPath("./x.png", "gradient", 1));
        Assert.AreEqual("overlays/~E4~B8~AD/x_y.png/ebp_c2.png", OutputLayout.OverlayPath("中/x_y.png", "ebp", 2));
    }

    [TestMethod]
    public void OverlayPaths_AreDifferentForDifferentKeys()
    {
        // Defect 2: "x y.png" and "x_y.png" both became "x_y.png".
        string[] keys = ["x y.png", "x_y.png", "x~20y.png", "x?y.png", "a/b.png", "a~2Fb.png", "a//b.png", "./a/b.png", "~2E/a/b.png", "~/a/b.png", "é.png", "e\u0301.png"];
        var paths = keys.Select(k => OutputLayout.OverlayPath(k, "ebp", 0)).ToList();
        Assert.HasCount(keys.Length, paths.Distinct().ToList(), string.Join(", ", paths));
    }

    [TestMethod]
    public void RankOrder_SortsByScoreThenIndex()
    {
        CollectionAssert.AreEqual(new[] { 2, 0, 3, 1 }, Ebp.Ranking.Descending([1f, -1f, 5f, 1f]));
    }

    [TestMethod]
    public void ImageFile_RejectsWhatCannotBeFullyDecoded()
    {
        var dir = TestSet.NewFolder("decode");
        var good = Path.Combine(TestSet.Images, "scene_00.png");
        Assert.IsNotNull(ImageFile.TryDecode(good, out var error), error);
        var bytes = File.ReadAllBytes(good);
        File.WriteAllBytes(Path.Combine(dir, "t.png"), bytes[..(bytes.Length - 30)]);
        Assert.IsNull(ImageFile.TryDecode(Path.Combine(dir, "t.png"), out error));
        StringAssert.Contains(error, "truncated");
        Assert.IsNull(ImageFile.TryDecode(Path.Combine(dir, "none.png"), out error));
        Assert.AreEqual("file not found", error);
    }
}

[TestClass]
public sealed class LockTests
{
    [TestMethod]
    public void OutputFolderLock_IsExclusive()
    {
        var layout = new OutputLayout(TestSet.NewFolder("lock"));
        Directory.CreateDirectory(layout.StateFolder);
        using (AuditJob.AcquireLock(layout))
            StringAssert.Contains(Assert.ThrowsExactly<AuditUsageException>(() => AuditJob.AcquireLock(layout)).Message, "Another ebp-audit process");
        using (AuditJob.AcquireLock(layout)) { } // released
    }
}
