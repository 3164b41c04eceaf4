namespace Ebp.Evaluation;

/// <summary>
/// One curve: the class score after each step, against the fraction of pixels deleted (or inserted), and the area
/// under it by the trapezoid rule over the fractions 0 … 1.
/// </summary>
public sealed record FaithfulnessCurve
{
    /// <param name="fractions">Fractions of pixels changed, increasing from 0 to 1.</param>
    /// <param name="scores">The score at each fraction.</param>
    public FaithfulnessCurve(IReadOnlyList<double> fractions, IReadOnlyList<double> scores)
    {
        ArgumentNullException.ThrowIfNull(fractions);
        ArgumentNullException.ThrowIfNull(scores);
        if (fractions.Count != scores.Count || fractions.Count < 2)
            throw new ArgumentException($"A curve needs at least two points and as many scores as fractions (got {fractions.Count} fractions, {scores.Count} scores).");
        Fractions = fractions;
        Scores = scores;
        Auc = Trapezoid(fractions, scores);
    }

    /// <summary>Fractions of the pixels deleted (or inserted): 0, …, 1.</summary>
    public IReadOnlyList<double> Fractions { get; }

    /// <summary>The class score at each fraction.</summary>
    public IReadOnlyList<double> Scores { get; }

    /// <summary>Area under the curve: Σ (x<sub>i+1</sub> − x<sub>i</sub>)(y<sub>i</sub> + y<sub>i+1</sub>)/2.</summary>
    public double Auc { get; }

    /// <summary>The trapezoid rule over points with increasing <paramref name="x"/>.</summary>
    /// <exception cref="ArgumentException">Fewer than two points, unequal lengths, decreasing x or a non-finite value.</exception>
    public static double Trapezoid(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        if (x.Count != y.Count || x.Count < 2)
            throw new ArgumentException($"The trapezoid rule needs at least two points and as many y as x (got {x.Count} x, {y.Count} y).");
        double area = 0;
        for (int i = 0; i < x.Count; i++)
        {
            if (!double.IsFinite(x[i]) || !double.IsFinite(y[i]))
                throw new ArgumentException($"Point {i} is not finite (x = {x[i]}, y = {y[i]}).");
            if (i == 0) continue;
            if (x[i] < x[i - 1]) throw new ArgumentException($"x must not decrease (x[{i - 1}] = {x[i - 1]}, x[{i}] = {x[i]}).");
            area += (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2;
        }
        return area;
    }
}

/// <summary>
/// Deletion and insertion curves of one saliency map (Petsiuk et al., RISE, BMVC 2018). A faithful map makes the
/// class score fall fast when its top pixels are deleted (low <see cref="Deletion"/> area) and rise fast when they
/// are inserted (high <see cref="Insertion"/> area).
/// </summary>
/// <param name="Class">The class whose score was recorded.</param>
/// <param name="Deletion">Pixels replaced by the deletion baseline in saliency order.</param>
/// <param name="Insertion">Pixels of the image put into the insertion baseline in saliency order.</param>
public sealed record DeletionInsertionResult(int Class, FaithfulnessCurve Deletion, FaithfulnessCurve Insertion);
