namespace Ebp.Audit.Tests;

/// <summary>
/// The test assembly is also a console program, the fresh process of the signal test:
/// <c>dotnet Ebp.Audit.Tests.dll ebp-audit [--slow MS] ARGS...</c> runs the real command line (with its SIGINT/SIGTERM
/// handling); <c>--slow MS</c> makes every batch take at least MS milliseconds so that a signal lands mid-run.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length < 1 || args[0] != "ebp-audit")
        {
            Console.Error.WriteLine("usage: Ebp.Audit.Tests ebp-audit [--slow MS] ARGS...");
            return 2;
        }
        var rest = args.Skip(1).ToList();
        int slow = 0;
        if (rest.Count >= 2 && rest[0] == "--slow")
        {
            slow = int.Parse(rest[1], System.Globalization.CultureInfo.InvariantCulture);
            rest.RemoveRange(0, 2);
        }
        return Ebp.Audit.Program.Run(rest.ToArray(), Console.Out, Console.Error, Environment.GetEnvironmentVariable, handleSignals: true,
            observer: p => { if (p.Phase == AuditPhase.Batch && slow > 0) Thread.Sleep(slow); });
    }
}
