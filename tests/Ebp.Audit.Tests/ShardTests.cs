namespace Ebp.Audit.Tests;

[TestClass]
public sealed class ShardTests
{
    [TestMethod]
    public void ThreeShardsMerged_EqualOneProcess()
    {
        var root = TestSet.NewFolder("shards");
        var env = new Dictionary<string, string?> { ["JOB_COMPLETION_INDEX"] = "0", ["EBP_AUDIT_SHARDS"] = "3" };
        // Shard 0 through the command line and the Kubernetes environment variables, shards 1 and 2 through the API.
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Ebp.Audit.Program.Run(
            ["--manifest", TestSet.Manifest, "--out", root, "--model", TestSet.Card, "--method", "ebp,cebp", "--method", "gradient",
             "--batch-size", "4", "--threads", "1", "--progress", "lines", "--min-energy", "0.5"],
            stdout, stderr, name => env.GetValueOrDefault(name));
        Assert.AreEqual(0, code, stderr.ToString());
        StringAssert.Contains(stdout.ToString(), "shard 0/3");
        for (int i = 1; i < 3; i++)
        {
            var r = new AuditJob(TestSet.Options(root) with { Shard = new ShardSpec(i, 3) }).Run();
            Assert.AreEqual(AuditStatus.Complete, r.Status);
        }
        var sizes = Enumerable.Range(0, 3).Select(i => Outputs.Int(Outputs.Summary(Path.Combine(root, $"shard-{i}-of-3"))["counts"]!["inputs"])!.Value).ToList();
        Assert.AreEqual(TestSet.Count, sizes.Sum());
        for (int i = 0; i < 3; i++)
        {
            var keys = Outputs.Rows(Path.Combine(root, $"shard-{i}-of-3")).Select(r => Outputs.Str(r["image"])!).Distinct();
            Assert.IsTrue(keys.All(k => ShardSpec.Of(k, 3) == i), $"shard {i} holds only its images");
        }

        // merge: discovers shard-*-of-3 under the root.
        var merged = Path.Combine(root, "merged");
        var stdout2 = new StringWriter();
        code = Ebp.Audit.Program.Run(["merge", root, "--out", merged, "--min-energy", "0.5"], stdout2, stderr, _ => null);
        Assert.AreEqual(0, code, stderr.ToString());
        Outputs.AssertSameReport(TestSet.Reference, merged);
        var run = Outputs.Summary(merged)["run"]!;
        Assert.HasCount(3, run["merged_from"]!.AsArray());
        Assert.AreEqual(Outputs.Summary(TestSet.Reference)["run"]!["input_fingerprint"]!.ToString(), run["input_fingerprint"]!.ToString());

        // The merged folder is itself a complete run: resuming it with the unsharded job recomputes nothing.
        var resumed = new AuditJob(TestSet.Options(merged)).Run();
        Assert.AreEqual(TestSet.Count, resumed.ResumedImages);
        Outputs.AssertSameReport(TestSet.Reference, merged);

        // Missing shards are refused.
        var partial = TestSet.NewFolder("partial");
        var e = Assert.ThrowsExactly<AuditUsageException>(() => Merger.Merge(new MergeOptions
        {
            Sources = [Path.Combine(root, "shard-0-of-3"), Path.Combine(root, "shard-2-of-3")],
            OutputFolder = partial,
        }));
        StringAssert.Contains(e.Message, "1/3");
    }

    [TestMethod]
    public void ShardResolution_FromArgumentsAndEnvironment()
    {
        static Func<string, string?> Env(params (string, string)[] vars) => n => vars.FirstOrDefault(v => v.Item1 == n).Item2;
        Assert.AreEqual(ShardSpec.None, ShardSpec.Resolve(null, null, Env()));
        Assert.AreEqual(new ShardSpec(2, 5), ShardSpec.Resolve("2/5", null, Env(("JOB_COMPLETION_INDEX", "1"), ("EBP_AUDIT_SHARDS", "3"))));
        Assert.AreEqual(new ShardSpec(1, 3), ShardSpec.Resolve(null, null, Env(("JOB_COMPLETION_INDEX", "1"), ("EBP_AUDIT_SHARDS", "3"))));
        Assert.AreEqual(new ShardSpec(1, 4), ShardSpec.Resolve(null, null, Env(("JOB_COMPLETION_INDEX", "1"), ("JOB_COMPLETION_COUNT", "4"))));
        Assert.AreEqual(new ShardSpec(1, 6), ShardSpec.Resolve(null, 6, Env(("JOB_COMPLETION_INDEX", "1"), ("EBP_AUDIT_SHARDS", "3"))));
        StringAssert.Contains(Assert.ThrowsExactly<AuditUsageException>(() => ShardSpec.Resolve(null, null, Env(("JOB_COMPLETION_INDEX", "1")))).Message, "--shards");
        StringAssert.Contains(Assert.ThrowsExactly<AuditUsageException>(() => ShardSpec.Resolve(null, null, Env(("JOB_COMPLETION_INDEX", "3"), ("EBP_AUDIT_SHARDS", "3")))).Message, "outside 0..2");
        Assert.ThrowsExactly<AuditUsageException>(() => ShardSpec.Resolve("3/3", null, Env()));
        Assert.ThrowsExactly<AuditUsageException>(() => ShardSpec.Resolve("1/3", 4, Env()));
        Assert.ThrowsExactly<AuditUsageException>(() => ShardSpec.Resolve(null, 3, Env()));
        Assert.ThrowsExactly<AuditUsageException>(() => ShardSpec.Parse("a/b"));

        // The assignment is a fixed function of the path (FNV-1a 64), stable across runs, machines and versions.
        Assert.AreEqual(0xaf63dc4c8601ec8cUL % 7, (ulong)ShardSpec.Of("a", 7));
        Assert.AreEqual(ShardSpec.Of("images/scene_00.png", 3), ShardSpec.Of("images/scene_00.png", 3));
        var counts = new int[4];
        for (int i = 0; i < 4000; i++) counts[ShardSpec.Of($"dir/img_{i:00000}.jpg", 4)]++;
        Assert.IsTrue(counts.All(c => c is > 900 and < 1100), string.Join(",", counts));
    }
}
