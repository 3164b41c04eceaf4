using Ebp.Models;
using Ebp.Weights;

namespace Ebp.Core.Tests;

/// <summary>
/// The test assembly doubles as the child process of the hostile-weight-file and custom-backward tests:
/// <c>dotnet Ebp.Core.Tests.dll load-weights SPEC.json FILE...</c> builds the model, loads each file into it and
/// prints, per file, a tab-separated line: name, exception type (or "loaded"), the process's resident memory before
/// the load and its peak during it (KiB, from /proc/self/status, with the peak reset through /proc/self/clear_refs),
/// and the first line of the message. <c>custom-backward …</c>: see <see cref="Attribution.CustomBackwardChild"/>.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args is ["custom-backward", _, _, _]) return Attribution.CustomBackwardChild.Run(args[1..]);
        if (args.Length < 2 || args[0] != "load-weights")
        {
            Console.Error.WriteLine("usage: Ebp.Core.Tests load-weights SPEC.json FILE... | custom-backward METHOD OPT-IN THROW");
            return 2;
        }
        using var model = ModelSpec.Build(File.ReadAllText(args[1]));
        foreach (var file in args.Skip(2))
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            File.WriteAllText("/proc/self/clear_refs", "5"); // resets VmHWM to the current RSS
            long before = StatusKiB("VmRSS");
            string outcome, message = "";
            try
            {
                WeightLoader.Load(model, file);
                outcome = "loaded";
            }
            catch (Exception e)
            {
                outcome = e.GetType().FullName!;
                message = e.Message.Split('\n')[0];
            }
            long peak = StatusKiB("VmHWM");
            Console.WriteLine($"{Path.GetFileName(file)}\t{outcome}\t{before}\t{peak}\t{message}");
        }
        return 0;
    }

    private static long StatusKiB(string field)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0]);
        throw new InvalidOperationException($"/proc/self/status has no {field}.");
    }
}
