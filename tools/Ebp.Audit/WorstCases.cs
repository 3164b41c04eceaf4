using System.Globalization;
using static Ebp.Audit.ReportWriter;

namespace Ebp.Audit;

/// <summary>
/// The (image, class) pairs an auditor should look at first, worst first. Severity: 0 the model misses an annotated
/// class (<c>missed_label</c>), 1 its top-1 prediction is not annotated (<c>false_positive</c>), 2 a method's peak misses
/// the class's boxes (pointing <c>miss</c>), 3 <c>low_energy</c>, 4 the peak lies outside every object or the map is
/// empty, 5 only <c>label_mismatch</c>. Within a severity: more methods flagged first, then the lowest energy (as printed), then image
/// key and class. Pairs without any flag are not cases.
/// </summary>
internal static class WorstCases
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>What a flag means, as the reports explain it.</summary>
    public static string Meaning(string flag, string minEnergy) => flag switch
    {
        Flags.PeakOutsideObjects => "the map's peak lies outside every annotated box (beyond the pointing tolerance)",
        Flags.LowEnergy => $"less of the map's positive mass lies in the class's boxes than the method's threshold ({minEnergy})",
        Flags.LabelMismatch => "the top-1 prediction differs from the label",
        Flags.FalsePositive => "the top-1 prediction is none of the image's annotated classes",
        Flags.MissedLabel => "an annotated class is not among the model's top n classes (n = the image's annotated classes)",
        Flags.EmptyMap => "the map has no positive value",
        _ => flag,
    };

    public static List<GalleryCase> Of(JobInfo job, IReadOnlyList<ReportRow> rows)
    {
        var methodOrder = job.Methods.Select((m, i) => (m, i)).ToDictionary(x => x.m, x => x.i);
        var cases = new List<(GalleryCase Case, int Flagged, double Energy)>();
        foreach (var g in rows.GroupBy(r => (r.Image.Image, r.Row.Class)))
        {
            var list = g.OrderBy(r => methodOrder.GetValueOrDefault(r.Row.Method, int.MaxValue)).ToList();
            if (list.All(r => r.Flags.Count == 0)) continue;
            var first = list[0];
            bool Has(string f) => list.Any(r => r.Flags.Contains(f));
            string Methods(Func<ReportRow, bool> p) => string.Join(", ", list.Where(p).Select(r => r.Row.Method));
            string name = ClassName(job, g.Key.Class);
            int severity;
            string reason;
            if (Has(Flags.MissedLabel))
            {
                severity = 0;
                reason = $"missed label: class {name} is annotated, the model ranks it {first.Row.Rank.ToString(Inv)}";
            }
            else if (Has(Flags.FalsePositive))
            {
                severity = 1;
                var annotated = first.Image.Rows.Where(r => r.ClassAnnotated).Select(r => r.Class).Distinct().Order().Select(c => ClassName(job, c));
                reason = $"false positive: predicts class {name}, the image is annotated with {string.Join(", ", annotated)}";
            }
            else if (list.Any(r => r.Row.Hit == false))
            {
                severity = 2;
                reason = $"pointing miss ({Methods(r => r.Row.Hit == false)})";
            }
            else if (Has(Flags.LowEnergy))
            {
                severity = 3;
                reason = $"low energy ({string.Join(", ", list.Where(r => r.Flags.Contains(Flags.LowEnergy)).Select(r => $"{r.Row.Method} {FormatRatio(r.Row.Energy!.Value)}"))})";
            }
            else if (Has(Flags.PeakOutsideObjects) || Has(Flags.EmptyMap))
            {
                severity = 4;
                reason = $"peak outside every object or empty map ({Methods(r => r.Flags.Contains(Flags.PeakOutsideObjects) || r.Flags.Contains(Flags.EmptyMap))})";
            }
            else
            {
                severity = 5;
                reason = "label mismatch: labelled " + (first.Image.Label is { } l ? ClassName(job, l) : "–") + $", predicted {ClassName(job, first.Image.Predicted)}";
            }
            var image = first.Image;
            string title = $"{image.Image}: class {name} (rank {first.Row.Rank.ToString(Inv)}, score {FormatScore(first.Row.Score)}); " +
                           $"predicted {ClassName(job, image.Predicted)}" + (image.Label is { } label ? $", label {ClassName(job, label)}" : "");
            var panels = list.Select(r => new GalleryPanel(r.Row.Method, r.Row.Overlay, Caption(r), r.Flags)).ToList();
            // As printed (4 decimals), like the flags: the order then follows the numbers the auditor sees.
            double energy = list.Select(r => r.Row.Energy is { } e ? Math.Round(e, 4) : double.PositiveInfinity).Min();
            cases.Add((new GalleryCase(image.Image, g.Key.Class, name, severity, reason, title, image.InputPanel, panels),
                       list.Count(r => r.Flags.Count > 0), energy));
        }
        return cases
            .OrderBy(c => c.Case.Severity).ThenByDescending(c => c.Flagged).ThenBy(c => c.Energy)
            .ThenBy(c => c.Case.Image, StringComparer.Ordinal).ThenBy(c => c.Case.Class)
            .Select(c => c.Case).ToList();
    }

    /// <summary>A panel's caption: method, energy in boxes and pointing result.</summary>
    private static string Caption(ReportRow r) =>
        $"{r.Row.Method}: energy {(r.Row.Energy is { } e ? FormatRatio(e) : "–")}, " +
        (r.Row.Hit is { } h ? (h ? "hit" : "miss") : r.Row.Empty ? "empty map" : "no boxes");
}
