using Ebp.Threading;

namespace Ebp.Audit.Tests;

/// <summary>The default thread count honours the cgroup CPU quota (issue 15, defect 4).</summary>
[TestClass]
public sealed class ThreadTests
{
    private static Func<string, string?> Files(params (string Path, string Text)[] files) =>
        p => files.FirstOrDefault(f => f.Path == p).Text;

    [TestMethod]
    public void AvailableCpus_HonoursTheCgroupQuota()
    {
        // cgroup v2: a Kubernetes pod limited to 1.5 CPUs on a 16-core node → 2; a 0.5 CPU limit → 1.
        Assert.AreEqual(2, TorchThreads.AvailableCpus(Files(("/sys/fs/cgroup/cpu.max", "150000 100000\n")), 16));
        Assert.AreEqual(1, TorchThreads.AvailableCpus(Files(("/sys/fs/cgroup/cpu.max", "50000 100000\n")), 16));
        Assert.AreEqual(4, TorchThreads.AvailableCpus(Files(("/sys/fs/cgroup/cpu.max", "400000 100000")), 16));
        // No limit: the visible (affinity) count.
        Assert.AreEqual(16, TorchThreads.AvailableCpus(Files(("/sys/fs/cgroup/cpu.max", "max 100000\n")), 16));
        Assert.AreEqual(16, TorchThreads.AvailableCpus(Files(), 16));
        // The quota never raises the affinity count.
        Assert.AreEqual(2, TorchThreads.AvailableCpus(Files(("/sys/fs/cgroup/cpu.max", "800000 100000")), 2));
        // cgroup v1 CFS files; -1 is "no quota".
        Assert.AreEqual(3, TorchThreads.AvailableCpus(Files(("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "250000"), ("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000")), 16));
        Assert.AreEqual(16, TorchThreads.AvailableCpus(Files(("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1"), ("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000")), 16));
        // The process's own cgroup (systemd slice, nested container) is read too; the smallest quota wins.
        Assert.AreEqual(1, TorchThreads.AvailableCpus(Files(
            ("/proc/self/cgroup", "0::/kubepods/pod1/c1\n"),
            ("/sys/fs/cgroup/kubepods/pod1/c1/cpu.max", "100000 100000"),
            ("/sys/fs/cgroup/cpu.max", "max 100000")), 16));
        Assert.AreEqual(1, TorchThreads.AvailableCpus(Files(("/sys/fs/cgroup/cpu.max", "garbage")), 1));
    }

    /// <summary>Reads <paramref name="root"/> as if it were <c>/</c>: a fake cgroup tree of real files.</summary>
    private static Func<string, string?> Tree(string root) => p =>
    {
        var file = Path.Combine(root, p.TrimStart('/'));
        return File.Exists(file) ? File.ReadAllText(file) : null;
    };

    private static void Write(string root, string path, string text)
    {
        var file = Path.Combine(root, path.TrimStart('/'));
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        File.WriteAllText(file, text);
    }

    [TestMethod]
    public void AvailableCpus_OnAFakeCgroupTree_HonoursTheLimitOfAnAncestor()
    {
        var root = Directory.CreateTempSubdirectory("ebp-cgroup-").FullName;
        try
        {
            // cgroup v2 without a cgroup namespace: the pod's slice has 1.5 CPUs, the container's own scope no limit.
            Write(root, "/proc/self/cgroup", "0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-c1.scope\n");
            Write(root, "/sys/fs/cgroup/cpu.max", "max 100000\n");
            Write(root, "/sys/fs/cgroup/kubepods.slice/cpu.max", "max 100000\n");
            Write(root, "/sys/fs/cgroup/kubepods.slice/kubepods-pod1.slice/cpu.max", "150000 100000\n");
            Write(root, "/sys/fs/cgroup/kubepods.slice/kubepods-pod1.slice/cri-containerd-c1.scope/cpu.max", "max 100000\n");
            Assert.AreEqual(2, TorchThreads.AvailableCpus(Tree(root), 16));
            Assert.AreEqual(1, TorchThreads.AvailableCpus(Tree(root), 1));

            // cgroup v1 as on a Debian 12 host with the hybrid layout: the cpu controller mounted alone, a 1-CPU CFS quota.
            var v1 = Path.Combine(root, "v1");
            Write(v1, "/proc/self/cgroup", "4:memory:/other\n1:cpu:/ebp/bench\n0::/\n");
            foreach (var (dir, quota) in new[] { ("", "-1"), ("/ebp", "100000"), ("/ebp/bench", "-1") })
            {
                Write(v1, $"/sys/fs/cgroup/cpu{dir}/cpu.cfs_quota_us", quota + "\n");
                Write(v1, $"/sys/fs/cgroup/cpu{dir}/cpu.cfs_period_us", "100000\n");
            }
            Assert.AreEqual(1, TorchThreads.AvailableCpus(Tree(v1), 2));
            // No quota anywhere: the processor count (the affinity mask).
            Write(v1, "/sys/fs/cgroup/cpu/ebp/cpu.cfs_quota_us", "-1\n");
            Assert.AreEqual(2, TorchThreads.AvailableCpus(Tree(v1), 2));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [TestMethod]
    public void TheRunRecordsItsThreadCount()
    {
        var t = Outputs.Summary(TestSet.Reference)["run"]!["timings"]!;
        Assert.AreEqual(1, Outputs.Int(t["threads"]));
    }
}

/// <summary>The live progress bar fits narrow terminals (issue 15, defect 9; checked by eye in tmux at 40 and 100 columns).</summary>
[TestClass]
public sealed class ProgressTests
{
    [TestMethod]
    public void LiveProgress_DropsColumnsInNarrowTerminals()
    {
        Assert.HasCount(2, LiveProgress.Columns(40));
        Assert.HasCount(4, LiveProgress.Columns(60));
        Assert.HasCount(5, LiveProgress.Columns(120));
        var p = new AuditProgress(AuditPhase.Batch, 120, 1000, 3, 0, 15, TimeSpan.FromSeconds(30), "x.png");
        Assert.AreEqual("120/1000 · 4.0 img/s · 3 skipped", LiveProgress.Describe(p));
        // Label plus percentage (5 columns) fit 40 columns for thousands of images at tens of images per second.
        Assert.IsLessThanOrEqualTo(35, LiveProgress.Describe(p with { Done = 9_999, Total = 10_000, Elapsed = TimeSpan.FromSeconds(400) }).Length);
    }
}
