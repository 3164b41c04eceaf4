using System.Diagnostics;

namespace Ebp.Benchmarks;

/// <summary>
/// A small timing harness: warm-up runs, then measured runs, reporting the median. Medians resist the
/// noise of a shared 2-core machine better than means; every figure is reported as a ratio to a
/// baseline measured in the same process, interleaved with it.
/// </summary>
internal static class Harness
{
    public static double MedianMs(Action action, int warmup, int runs)
    {
        for (int i = 0; i < warmup; i++) action();
        var times = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            var sw = Stopwatch.StartNew();
            action();
            times[i] = sw.Elapsed.TotalMilliseconds;
        }
        return Quantiles.Median(times);
    }

    /// <summary>
    /// Measures several actions round-robin (A B C A B C …) so that slow drifts of the machine hit all of
    /// them alike, and returns each one's median.
    /// </summary>
    public static double[] InterleavedMediansMs(IReadOnlyList<Action> actions, int warmup, int runs)
    {
        var rounds = Interleaved(actions, warmup, runs);
        return Enumerable.Range(0, actions.Count).Select(rounds.Median).ToArray();
    }

    /// <summary>Measures several actions round-robin and keeps every round's times.</summary>
    public static Rounds Interleaved(IReadOnlyList<Action> actions, int warmup, int runs)
    {
        foreach (var a in actions) for (int i = 0; i < warmup; i++) a();
        var times = actions.Select(_ => new double[runs]).ToArray();
        for (int r = 0; r < runs; r++)
            for (int k = 0; k < actions.Count; k++)
            {
                var sw = Stopwatch.StartNew();
                actions[k]();
                times[k][r] = sw.Elapsed.TotalMilliseconds;
            }
        return new Rounds(times);
    }

    /// <summary>Times of interleaved rounds: <c>Times[action][round]</c> in ms.</summary>
    public sealed record Rounds(double[][] Times)
    {
        public double Median(int action) => Quantiles.Median(Times[action]);

        /// <summary>
        /// The median over rounds of <c>a / b</c> within each round: the two ran back to back, so a slow
        /// stretch of a shared machine affects both, and the ratio is steadier than a ratio of medians.
        /// </summary>
        public double PairedRatio(int a, int b) => Quantiles.Median(Times[a].Zip(Times[b], (x, y) => x / y));
    }

    public static long PeakRssBytes()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmHWM:")) return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        return 0;
    }

    public static long RssBytes()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmRSS:")) return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        return 0;
    }
}
