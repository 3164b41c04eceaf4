using System.Globalization;

namespace Ebp.Audit;

/// <summary>
/// The <c>low_energy</c> threshold of each method: a row is flagged when less than this share of its map's positive mass
/// lies inside the class's boxes. The methods spread their mass very differently (c-EBP concentrates it, EBP and the
/// input gradient spread it over every digit and edge), so one threshold for all either flags every EBP row or none of
/// the c-EBP rows. <see cref="Default"/> is calibrated to flag about the worst 5 % of each method on the default model's
/// scenes (docs/AUDIT.md, <i>Flags</i>, says how).
/// </summary>
internal sealed record EnergyThresholds
{
    /// <summary>The threshold of <c>ebp</c>.</summary>
    public double Ebp { get; init; }

    /// <summary>The threshold of <c>cebp</c>.</summary>
    public double Cebp { get; init; }

    /// <summary>The threshold of <c>gradient</c>.</summary>
    public double Gradient { get; init; }

    /// <summary>The calibrated defaults: per method, the 5th percentile of energy in boxes on 400 cluttered-MNIST t10k scenes with the default model, rounded down to two decimals.</summary>
    public static EnergyThresholds Default { get; } = new() { Ebp = 0.12, Cebp = 0.52, Gradient = 0.09 };

    /// <summary>One threshold for every method.</summary>
    public static EnergyThresholds All(double value) => new() { Ebp = value, Cebp = value, Gradient = value };

    /// <summary>One threshold for every method (what <c>--min-energy X</c> means).</summary>
    public static implicit operator EnergyThresholds(double value) => All(value);

    /// <summary>The threshold of a method by its report name (<c>ebp</c>, <c>cebp</c>, <c>gradient</c>).</summary>
    public double For(string method) => For(AuditMethods.Parse(method));

    /// <summary>The threshold of a method.</summary>
    public double For(AuditMethod method) => method switch
    {
        AuditMethod.Ebp => Ebp,
        AuditMethod.Cebp => Cebp,
        AuditMethod.Gradient => Gradient,
        _ => throw new ArgumentOutOfRangeException(nameof(method)),
    };

    /// <summary>A copy with the threshold of <paramref name="method"/> replaced.</summary>
    public EnergyThresholds With(AuditMethod method, double value) => method switch
    {
        AuditMethod.Ebp => this with { Ebp = value },
        AuditMethod.Cebp => this with { Cebp = value },
        AuditMethod.Gradient => this with { Gradient = value },
        _ => throw new ArgumentOutOfRangeException(nameof(method)),
    };

    /// <summary>
    /// Parses <c>--min-energy</c>: one number for every method (<c>0.3</c>), or <c>method=value</c> pairs
    /// (<c>ebp=0.1,cebp=0.5</c>; methods not named keep <see cref="Default"/>'s value).
    /// </summary>
    /// <exception cref="AuditUsageException">Malformed text or a value outside [0, 1].</exception>
    public static EnergyThresholds Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        const string Expected = "--min-energy expects a share in [0, 1] for every method (e.g. 0.3) or method=value pairs (e.g. ebp=0.1,cebp=0.5,gradient=0.05)";
        if (!text.Contains('='))
        {
            if (!double.TryParse(text.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double all))
                throw new AuditUsageException($"{Expected}, got '{text}'.");
            return All(all).Checked();
        }
        var result = Default;
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int eq = part.IndexOf('=');
            if (eq <= 0 || !double.TryParse(part[(eq + 1)..].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double v))
                throw new AuditUsageException($"{Expected}, got '{text}'.");
            result = result.With(AuditMethods.Parse(part[..eq]), v);
        }
        return result.Checked();
    }

    /// <summary>This value, or a usage error naming the first threshold outside [0, 1].</summary>
    public EnergyThresholds Checked()
    {
        foreach (var m in Enum.GetValues<AuditMethod>())
            if (!(For(m) >= 0 && For(m) <= 1))
                throw new AuditUsageException($"--min-energy must be in [0, 1] (got {For(m).ToString(CultureInfo.InvariantCulture)} for {m.Name()}).");
        return this;
    }

    /// <summary>Whether <paramref name="methods"/> all share one threshold.</summary>
    public bool IsUniform(IEnumerable<string> methods) => methods.Select(For).Distinct().Count() <= 1;

    /// <summary>The thresholds of <paramref name="methods"/> as the reports print them: <c>ebp 0.1200, cebp 0.5300</c>.</summary>
    public string Describe(IEnumerable<string> methods) =>
        string.Join(", ", methods.Select(m => $"{m} {ReportWriter.FormatRatio(For(m))}"));
}
