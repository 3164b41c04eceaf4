using System.Globalization;
using System.Runtime.InteropServices;
using TorchSharp;

namespace Ebp.Threading;

/// <summary>
/// The CPU threads libtorch should use: as many intra-op threads as CPUs this process may actually run on (the cgroup
/// CPU quota of a container or Kubernetes pod, and the affinity mask), with OpenMP's idle threads sleeping instead of
/// spinning.
/// </summary>
/// <remarks>
/// <para>libtorch's OpenMP pool defaults to the visible core count and its idle threads spin (OpenMP's active wait
/// policy). When other processes hold the cores, or a cgroup quota allows fewer CPUs than are visible, a parallel region
/// waits for threads that are not scheduled while the spinning ones burn the quota: several times slower than one
/// thread. <see cref="PreferPassiveWaiting"/> (first thing in <c>Main</c>, before anything touches TorchSharp: the OpenMP
/// runtime reads <c>OMP_WAIT_POLICY</c> once, when libtorch is loaded) and <see cref="Configure"/> fix both causes.</para>
/// <para>An explicit <c>OMP_WAIT_POLICY</c> or <c>OMP_NUM_THREADS</c> in the environment is respected.</para>
/// </remarks>
public static class TorchThreads
{
    /// <summary>The environment variable of the OpenMP wait policy (<c>PASSIVE</c> / <c>ACTIVE</c>).</summary>
    public const string WaitPolicyVariable = "OMP_WAIT_POLICY";

    /// <summary>
    /// CPUs available to this process: <see cref="Environment.ProcessorCount"/> (the affinity mask, or
    /// <c>DOTNET_PROCESSOR_COUNT</c>), bounded by the cgroup CPU quota (v2 <c>cpu.max</c>, v1
    /// <c>cpu.cfs_quota_us</c>/<c>cpu.cfs_period_us</c>), rounded up; at least 1.
    /// </summary>
    public static int AvailableCpus() => AvailableCpus(ReadSmallFile, Environment.ProcessorCount);

    /// <summary>
    /// <see cref="AvailableCpus()"/> over a given file reader (null for a missing file) and processor count: the
    /// process's own cgroup (from <c>/proc/self/cgroup</c>), its ancestors and the cgroup root are consulted, the
    /// smallest quota wins.
    /// </summary>
    public static int AvailableCpus(Func<string, string?> readFile, int processorCount)
    {
        ArgumentNullException.ThrowIfNull(readFile);
        int cpus = Math.Max(1, processorCount);
        if (QuotaCpus(readFile) is { } quota) cpus = Math.Min(cpus, quota);
        return cpus;
    }

    /// <summary>The cgroup CPU quota in CPUs (rounded up), or null when there is none.</summary>
    public static int? QuotaCpus(Func<string, string?> readFile)
    {
        ArgumentNullException.ThrowIfNull(readFile);
        var v2Dirs = new List<string> { "/sys/fs/cgroup" };
        var v1Dirs = new List<string> { "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct" };
        // /proc/self/cgroup: "0::/path" (v2) or "N:cpu,cpuacct:/path" (v1); outside a container the path is not "/".
        // A limit on any ancestor (a Kubernetes pod's slice above its container's scope) bounds the process too.
        foreach (var line in (readFile("/proc/self/cgroup") ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(':', 3);
            if (parts.Length != 3 || parts[2] is "" or "/" || parts[2].Contains("..", StringComparison.Ordinal)) continue;
            for (var path = parts[2].TrimEnd('/'); path.Length > 0; path = path[..Math.Max(0, path.LastIndexOf('/'))])
            {
                if (parts[1].Length == 0) v2Dirs.Insert(0, "/sys/fs/cgroup" + path);
                else if (parts[1].Split(',').Contains("cpu"))
                {
                    v1Dirs.Insert(0, "/sys/fs/cgroup/cpu,cpuacct" + path);
                    v1Dirs.Insert(0, "/sys/fs/cgroup/cpu" + path);
                }
            }
        }
        int? best = null;
        void Take(double quota, double period)
        {
            if (!(quota > 0 && period > 0)) return;
            int n = Math.Max(1, (int)Math.Ceiling(quota / period - 1e-9));
            best = best is { } b ? Math.Min(b, n) : n;
        }
        foreach (var dir in v2Dirs)
        {
            var parts = (readFile(dir + "/cpu.max") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (parts.Length == 2 && parts[0] != "max" && Number(parts[0]) is { } q && Number(parts[1]) is { } p) Take(q, p);
        }
        foreach (var dir in v1Dirs)
        {
            if (Number(readFile(dir + "/cpu.cfs_quota_us")) is { } q && Number(readFile(dir + "/cpu.cfs_period_us")) is { } p) Take(q, p);
        }
        return best;
    }

    /// <summary>
    /// The intra-op thread count to use: <c>OMP_NUM_THREADS</c> when set to a positive number, else
    /// <see cref="AvailableCpus()"/>.
    /// </summary>
    public static int RecommendedIntraOpThreads()
    {
        var env = Environment.GetEnvironmentVariable("OMP_NUM_THREADS");
        if (int.TryParse(env, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0) return n;
        return AvailableCpus();
    }

    /// <summary>
    /// Asks OpenMP to let idle threads sleep (<c>OMP_WAIT_POLICY=PASSIVE</c>) unless the environment already says
    /// otherwise. Effective only before libtorch is loaded (the first TorchSharp call). Returns whether it set it.
    /// </summary>
    public static bool PreferPassiveWaiting()
    {
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(WaitPolicyVariable))) return false;
        Environment.SetEnvironmentVariable(WaitPolicyVariable, "PASSIVE");
        // .NET keeps its own copy of the environment on Unix; the OpenMP runtime reads the C library's.
        if (!OperatingSystem.IsWindows())
        {
            try { return Native.setenv(WaitPolicyVariable, "PASSIVE", 0) == 0; }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return false; }
        }
        return true;
    }

    /// <summary>
    /// Sets libtorch's intra-op threads to <paramref name="threads"/> or, when null, <see cref="RecommendedIntraOpThreads"/>,
    /// and returns the count. Call <see cref="PreferPassiveWaiting"/> first, at the very start of <c>Main</c> (it changes
    /// the process environment, which is only safe before other threads run and only effective before libtorch loads).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="threads"/> is not positive.</exception>
    public static int Configure(int? threads = null)
    {
        if (threads is < 1) throw new ArgumentOutOfRangeException(nameof(threads), threads, "The thread count must be positive.");
        int n = threads ?? RecommendedIntraOpThreads();
        torch.set_num_threads(n);
        return n;
    }

    private static double? Number(string? text) =>
        double.TryParse(text?.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : null;

    private static string? ReadSmallFile(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllText(path) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static class Native
    {
        [DllImport("libc", SetLastError = true)]
        internal static extern int setenv(string name, string value, int overwrite);
    }
}
