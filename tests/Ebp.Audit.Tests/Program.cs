namespace Ebp.Audit.Tests;

/// <summary>
/// The test assembly is also a console program, the fresh process of the signal test:
/// <c>dotnet Ebp.Audit.Tests.dll ebp-audit [--slow MS] ARGS...</c> runs the real command line (with its SIGINT/SIGTERM
/// handling); <c>--slow MS</c> makes every batch take at least MS milliseconds so that a signal lands mid-run.
/// <c>dotnet Ebp.Audit.Tests.dll scenes OUT COUNT SEED [MNIST_DIR]</c> writes cluttered-MNIST test scenes with VOC XML
/// (<see cref="TestSet.WriteScenes"/>; default MNIST_DIR: the committed subset), the input of the threshold calibration
/// in docs/AUDIT.md.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length is 4 or 5 && args[0] == "scenes")
        {
            var inv = System.Globalization.CultureInfo.InvariantCulture;
            TestSet.WriteScenes(args[1], args.Length == 5 ? args[4] : TestSet.MnistSubset, int.Parse(args[2], inv), ulong.Parse(args[3], inv));
            return 0;
        }
        if (args.Length < 1 || args[0] != "ebp-audit")
        {
            Console.Error.WriteLine("usage: Ebp.Audit.Tests ebp-audit [--slow MS] ARGS... | Ebp.Audit.Tests scenes OUT COUNT SEED [MNIST_DIR]");
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
