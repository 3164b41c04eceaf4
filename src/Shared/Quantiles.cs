namespace Ebp;

/// <summary>
/// The one median (and percentile) of the repository. The projects that need it share no library they all reference
/// (<c>Ebp.Datasets</c> references nothing, the benchmarks do not reference it), and a median is no part of any
/// library's public API, so this file is compiled into each of them as an internal class (linked from their csproj).
/// </summary>
internal static class Quantiles
{
    /// <summary>The median of <paramref name="values"/> (the mean of the two middle values for an even count); NaN for none.</summary>
    public static double Median(IEnumerable<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var sorted = values.ToArray();
        Array.Sort(sorted);
        int n = sorted.Length;
        if (n == 0) return double.NaN;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }

    /// <summary>
    /// The <paramref name="p"/>-quantile of ascending <paramref name="sorted"/> values by linear interpolation between
    /// the closest ranks (p = 0.5 is the median); null for none.
    /// </summary>
    public static double? Percentile(IReadOnlyList<double> sorted, double p)
    {
        ArgumentNullException.ThrowIfNull(sorted);
        if (sorted.Count == 0) return null;
        double pos = p * (sorted.Count - 1);
        int lo = (int)Math.Floor(pos), hi = Math.Min(sorted.Count - 1, lo + 1);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
    }
}
