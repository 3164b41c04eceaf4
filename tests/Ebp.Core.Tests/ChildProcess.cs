using System.Diagnostics;

namespace Ebp.Core.Tests;

/// <summary>Runs this test assembly as a child process (see <see cref="Program"/>) and collects what it did.</summary>
public static class ChildProcess
{
    public sealed record Outcome(int ExitCode, string StdOut, string StdErr)
    {
        public List<string> Lines => StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).ToList();
    }

    /// <summary>Runs <c>dotnet Ebp.Core.Tests.dll ARGS</c>; fails the test if the child takes longer than <paramref name="timeoutSeconds"/>.</summary>
    public static Outcome Run(IEnumerable<string> args, int timeoutSeconds = 300)
    {
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (string.IsNullOrEmpty(host) || !File.Exists(host)) host = "dotnet";
        var start = new ProcessStartInfo(host) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add(typeof(Program).Assembly.Location);
        foreach (var a in args) start.ArgumentList.Add(a);
        // A crashing child must not leave a core dump per test run.
        start.Environment["DOTNET_DbgEnableMiniDump"] = "0";
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(timeoutSeconds)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"The child process did not finish in {timeoutSeconds} s.");
        }
        return new Outcome(process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>As <see cref="Run"/>, and the child must exit with 0; returns its output lines.</summary>
    public static List<string> RunOk(IEnumerable<string> args)
    {
        var outcome = Run(args);
        Assert.AreEqual(0, outcome.ExitCode, $"child failed:\n{outcome.StdOut}\n{outcome.StdErr}");
        return outcome.Lines;
    }
}
