namespace Ebp.Datasets;

/// <summary>
/// The pointing game (Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016): a
/// saliency map "hits" for a class when its maximum lies on, or within a tolerance of, that class's
/// ground-truth region. Pure C#, no tensors.
/// </summary>
public static class PointingGame
{
    /// <summary>The tolerance of the original protocol: 15 pixels on a 224-pixel input.</summary>
    public const double ReferenceTolerancePx = 15.0;

    /// <summary>The input size the reference tolerance refers to.</summary>
    public const int ReferenceSize = 224;

    /// <summary>The 15-px-at-224 tolerance scaled to a canvas of <paramref name="canvasSize"/> pixels: 15*size/224.</summary>
    public static double ScaledTolerance(int canvasSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(canvasSize);
        return ReferenceTolerancePx * canvasSize / ReferenceSize;
    }

    /// <summary>
    /// True when some pixel of <paramref name="mask"/> (width*height, row-major, true = target) lies at a
    /// Euclidean distance strictly less than <paramref name="tolerancePx"/> from pixel (<paramref name="px"/>,
    /// <paramref name="py"/>): TorchRay's rule, <c>du² + dv² &lt; tolerance²</c>, so a mask pixel exactly at the
    /// tolerance is a miss, and with a tolerance of 0 nothing is a hit (as in the reference). Distances are between
    /// pixel indices (compared squared, in exact integer/double arithmetic). The point may lie outside the canvas.
    /// </summary>
    public static bool IsHit(bool[] mask, int width, int height, int px, int py, double tolerancePx)
    {
        ArgumentNullException.ThrowIfNull(mask);
        CheckSize(mask.Length, width, height, nameof(mask));
        if (double.IsNaN(tolerancePx) || tolerancePx < 0)
            throw new ArgumentOutOfRangeException(nameof(tolerancePx), tolerancePx, "The tolerance must be >= 0.");

        // Only pixels within ceil(tolerance) of the point can qualify (clamped: huge tolerances scan the canvas).
        long reach = (long)Math.Min(Math.Ceiling(tolerancePx), (double)width + height);
        long x0 = Math.Max(0, px - reach), x1 = Math.Min(width - 1, px + reach);
        long y0 = Math.Max(0, py - reach), y1 = Math.Min(height - 1, py + reach);
        double tol2 = tolerancePx * tolerancePx;
        for (long y = y0; y <= y1; y++)
        {
            long dy = y - py;
            for (long x = x0; x <= x1; x++)
            {
                if (!mask[y * width + x]) continue;
                long dx = x - px;
                if (dx * dx + dy * dy < tol2) return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Position of the maximum of a width*height row-major map: the first maximum in row-major order
    /// (smallest y, then smallest x). NaN entries are ignored; a map of only NaN gives (0, 0).
    /// </summary>
    public static (int X, int Y) ArgMax(ReadOnlySpan<float> map, int width, int height)
    {
        CheckSize(map.Length, width, height, nameof(map));
        int best = 0;
        float bestValue = float.NegativeInfinity;
        bool found = false;
        for (int i = 0; i < map.Length; i++)
        {
            float v = map[i];
            if (float.IsNaN(v)) continue;
            if (!found || v > bestValue)
            {
                best = i;
                bestValue = v;
                found = true;
            }
        }

        return (best % width, best / width);
    }

    /// <summary>
    /// The default "difficult" subset, fixed before any result was looked at: a (scene, target digit)
    /// pair is difficult when the scene has at least 3 digits AND the target digit's box area is strictly
    /// below the median box area of all digits of <paramref name="evaluationScenes"/> (median of an even
    /// count = mean of the two middle values). Small targets among several distractors, in the spirit of
    /// the original paper's VOC07 "difficult" set (small objects with distractor classes).
    /// </summary>
    public static Func<ClutteredScene, SceneDigit, bool> DefaultDifficultPredicate(IEnumerable<ClutteredScene> evaluationScenes)
    {
        ArgumentNullException.ThrowIfNull(evaluationScenes);
        double median = MedianBoxArea(evaluationScenes);
        return (scene, digit) => scene.Digits.Count >= 3 && digit.Box.Area < median;
    }

    /// <summary>Median of the box areas of all digits of the scenes (NaN when there is none).</summary>
    public static double MedianBoxArea(IEnumerable<ClutteredScene> scenes)
    {
        ArgumentNullException.ThrowIfNull(scenes);
        return Quantiles.Median(scenes.SelectMany(s => s.Digits).Select(d => (double)d.Box.Area));
    }

    private static void CheckSize(int length, int width, int height, string name)
    {
        if (width <= 0 || height <= 0) throw new ArgumentException($"Size must be positive, got {width}x{height}.", name);
        if ((long)width * height != length)
            throw new ArgumentException($"Expected {width}x{height} = {(long)width * height} values, got {length}.", name);
    }
}

/// <summary>Per-class and mean pointing accuracy of one subset ("all" or "difficult").</summary>
public sealed class PointingGameResult
{
    internal PointingGameResult(int[] hits, int[] totals)
    {
        Hits = hits;
        Totals = totals;
        var accuracy = new double[hits.Length];
        PerClassAccuracy = accuracy;
        double sum = 0;
        int classes = 0;
        for (int c = 0; c < hits.Length; c++)
        {
            if (totals[c] == 0)
            {
                accuracy[c] = double.NaN;
                continue;
            }

            accuracy[c] = (double)hits[c] / totals[c];
            sum += accuracy[c];
            classes++;
        }

        ClassesEvaluated = classes;
        MeanAccuracy = classes == 0 ? double.NaN : sum / classes;
        TotalHits = hits.Sum();
        TotalCount = totals.Sum();
    }

    /// <summary>Hits per class.</summary>
    public IReadOnlyList<int> Hits { get; }

    /// <summary>Trials (image, class present) per class.</summary>
    public IReadOnlyList<int> Totals { get; }

    /// <summary>Hits/Totals per class; NaN for a class with no trial.</summary>
    public IReadOnlyList<double> PerClassAccuracy { get; }

    /// <summary>Number of classes with at least one trial.</summary>
    public int ClassesEvaluated { get; }

    /// <summary>Mean of <see cref="PerClassAccuracy"/> over the classes with at least one trial (NaN if none).</summary>
    public double MeanAccuracy { get; }

    /// <summary>All hits.</summary>
    public int TotalHits { get; }

    /// <summary>All trials.</summary>
    public int TotalCount { get; }

    /// <summary>TotalHits/TotalCount, pooled over classes (NaN if none); the paper reports <see cref="MeanAccuracy"/>.</summary>
    public double OverallAccuracy => TotalCount == 0 ? double.NaN : (double)TotalHits / TotalCount;
}

/// <summary>
/// Collects pointing-game trials, one per (image, class present in it), and reports per-class accuracy
/// and its mean over classes for all trials and for the "difficult" ones. Not thread-safe.
/// </summary>
public sealed class PointingGameAccumulator
{
    private readonly int[] _hits, _totals, _hardHits, _hardTotals;

    /// <summary>An empty accumulator for classes 0..<paramref name="classCount"/>-1.</summary>
    public PointingGameAccumulator(int classCount = MnistSet.ClassCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(classCount);
        _hits = new int[classCount];
        _totals = new int[classCount];
        _hardHits = new int[classCount];
        _hardTotals = new int[classCount];
    }

    /// <summary>Number of classes.</summary>
    public int ClassCount => _hits.Length;

    /// <summary>Records one trial; <paramref name="difficult"/> also counts it in the difficult subset.</summary>
    public void Record(int classId, bool hit, bool difficult = false)
    {
        if ((uint)classId >= (uint)ClassCount)
            throw new ArgumentOutOfRangeException(nameof(classId), classId, $"Classes are 0..{ClassCount - 1}.");
        _totals[classId]++;
        if (hit) _hits[classId]++;
        if (!difficult) return;
        _hardTotals[classId]++;
        if (hit) _hardHits[classId]++;
    }

    /// <summary>
    /// Plays one trial on a scene: the maximum of <paramref name="saliency"/> (scene-sized map for the
    /// class of <paramref name="target"/>) is a hit when within <paramref name="tolerancePx"/> of the
    /// digit's ink mask. Difficulty comes from <paramref name="isDifficult"/> (none if null).
    /// Returns whether it was a hit.
    /// </summary>
    public bool Play(
        ClutteredScene scene, SceneDigit target, ReadOnlySpan<float> saliency, double tolerancePx,
        Func<ClutteredScene, SceneDigit, bool>? isDifficult = null)
    {
        ArgumentNullException.ThrowIfNull(scene);
        ArgumentNullException.ThrowIfNull(target);
        (int x, int y) = PointingGame.ArgMax(saliency, scene.Width, scene.Height);
        bool hit = PointingGame.IsHit(target.InkMask, scene.Width, scene.Height, x, y, tolerancePx);
        Record(target.ClassId, hit, isDifficult?.Invoke(scene, target) ?? false);
        return hit;
    }

    /// <summary>Results over all trials.</summary>
    public PointingGameResult All => new((int[])_hits.Clone(), (int[])_totals.Clone());

    /// <summary>Results over the trials recorded as difficult.</summary>
    public PointingGameResult Difficult => new((int[])_hardHits.Clone(), (int[])_hardTotals.Clone());
}
