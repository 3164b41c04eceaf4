namespace Ebp.Evaluation;

/// <summary>Average precision of multi-label scores (no interpolation).</summary>
public static class AveragePrecision
{
    /// <summary>
    /// AP of one class: sort the samples by score (descending; ties keep sample order), then average,
    /// over the positive samples, the precision among the samples ranked at or above each of them.
    /// NaN when there is no positive.
    /// </summary>
    public static double Of(IReadOnlyList<float> scores, IReadOnlyList<bool> positive)
    {
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentNullException.ThrowIfNull(positive);
        if (scores.Count != positive.Count)
            throw new ArgumentException($"{scores.Count} scores but {positive.Count} labels.");
        var order = Ranking.Descending(scores.ToArray());
        int seen = 0, hits = 0;
        double sum = 0;
        foreach (int i in order)
        {
            seen++;
            if (!positive[i]) continue;
            hits++;
            sum += (double)hits / seen;
        }
        return hits == 0 ? double.NaN : sum / hits;
    }

    /// <summary>
    /// Per-class AP and their mean (mAP over the classes with at least one positive) for
    /// <paramref name="scores"/>[sample][class] and <paramref name="labels"/>[sample][class] (non-zero = present).
    /// </summary>
    public static (double Mean, double[] PerClass) Mean(IReadOnlyList<float[]> scores, IReadOnlyList<float[]> labels)
    {
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentNullException.ThrowIfNull(labels);
        if (scores.Count != labels.Count) throw new ArgumentException($"{scores.Count} score rows but {labels.Count} label rows.");
        if (scores.Count == 0) return (double.NaN, Array.Empty<double>());
        int classes = scores[0].Length;
        var perClass = new double[classes];
        for (int c = 0; c < classes; c++)
            perClass[c] = Of(scores.Select(s => s[c]).ToArray(), labels.Select(l => l[c] != 0).ToArray());
        var valid = perClass.Where(a => !double.IsNaN(a)).ToArray();
        return (valid.Length == 0 ? double.NaN : valid.Average(), perClass);
    }

    /// <summary>Fraction of samples whose top-|labels| scoring classes are exactly their label set.</summary>
    public static double ExactSetAccuracy(IReadOnlyList<float[]> scores, IReadOnlyList<float[]> labels)
    {
        if (scores.Count == 0) return double.NaN;
        int ok = 0;
        for (int i = 0; i < scores.Count; i++)
        {
            int k = labels[i].Count(v => v != 0);
            var top = Ranking.Descending(scores[i]).Take(k);
            if (top.All(c => labels[i][c] != 0)) ok++;
        }
        return (double)ok / scores.Count;
    }
}
