using System.Globalization;
using System.Text;

namespace Ebp.Audit;

/// <summary>
/// The <c>faithfulness</c> section of <c>summary.json</c> and <c>summary.md</c>: mean deletion and insertion areas per
/// method, over all rows and per class. Present only for jobs run with <c>--faithfulness</c>.
/// </summary>
internal sealed class FaithfulnessSummary
{
    private readonly JobInfo _job;
    private readonly List<(string Method, Means All, List<(int Class, Means Means)> PerClass)> _methods;

    private FaithfulnessSummary(JobInfo job, IEnumerable<RowRecord> rows)
    {
        _job = job;
        var measured = rows.Where(r => r.DeletionAuc is not null && r.InsertionAuc is not null).ToList();
        _methods = job.Methods.Select(m =>
        {
            var mine = measured.Where(r => r.Method == m).ToList();
            var perClass = mine.GroupBy(r => r.Class).OrderBy(g => g.Key).Select(g => (g.Key, Means.Of(g))).ToList();
            return (m, Means.Of(mine), perClass);
        }).ToList();
    }

    /// <summary>The summary of <paramref name="rows"/>, or null when <paramref name="job"/> did not measure faithfulness.</summary>
    public static FaithfulnessSummary? Of(JobInfo job, IEnumerable<RowRecord> rows) =>
        job.FaithfulnessSteps is null ? null : new FaithfulnessSummary(job, rows);

    internal readonly record struct Means(int Rows, double? Deletion, double? Insertion)
    {
        public static Means Of(IEnumerable<RowRecord> rows)
        {
            var list = rows.ToList();
            return list.Count == 0
                ? new Means(0, null, null)
                : new Means(list.Count, list.Average(r => r.DeletionAuc!.Value), list.Average(r => r.InsertionAuc!.Value));
        }
    }

    /// <summary>The <c>faithfulness</c> object of <c>summary.json</c> (numbers as <c>summary.md</c> prints them).</summary>
    public FaithfulnessDocument Document(Func<int, string> className)
    {
        return new FaithfulnessDocument(
            _job.FaithfulnessSteps!.Value,
            _job.FaithfulnessScore,
            FaithfulnessRows.DeletionBaseline.ToString().ToLowerInvariant(),
            FaithfulnessRows.InsertionBaseline.ToString().ToLowerInvariant(),
            _methods.ToDictionary(m => m.Method, m => new FaithfulnessMethod(
                m.All.Rows, m.All.Deletion, m.All.Insertion,
                m.PerClass.Select(p => new FaithfulnessClass(p.Class, className(p.Class), p.Means.Rows, p.Means.Deletion, p.Means.Insertion)).ToList())));
    }

    /// <summary>
    /// The page's texts of the means, formatted as in <c>summary.md</c>: per method, key <c>all</c> and one key per class
    /// (the class number as text).
    /// </summary>
    public Dictionary<string, Dictionary<string, FaithfulnessText>> Texts()
    {
        static string R(double? v) => v is { } x ? ReportWriter.FormatRatio(x) : "–";
        return _methods.ToDictionary(m => m.Method, m =>
        {
            var texts = m.PerClass.ToDictionary(p => p.Class.ToString(CultureInfo.InvariantCulture), p => new FaithfulnessText(R(p.Means.Deletion), R(p.Means.Insertion)));
            texts["all"] = new FaithfulnessText(R(m.All.Deletion), R(m.All.Insertion));
            return texts;
        });
    }

    public void AppendMarkdown(StringBuilder sb, Func<int, string> className)
    {
        string R(double? v) => v is { } x ? ReportWriter.FormatRatio(x) : "–";
        sb.Append("## Faithfulness (deletion / insertion)\n\n");
        sb.Append($"Mean area under the deletion curve (lower is better) / insertion curve (higher is better): the {_job.FaithfulnessScore} score of the class ");
        sb.Append($"as the map's top pixels are set to zero / inserted into a blurred copy, in {_job.FaithfulnessSteps} steps (RISE).\n\n");
        if (_methods.All(m => m.All.Rows == 0))
        {
            sb.Append("No rows measured.\n\n");
            return;
        }
        var classes = _methods.SelectMany(m => m.PerClass.Select(p => p.Class)).Distinct().Order().ToList();
        sb.Append("| class | " + string.Join(" | ", _methods.Select(m => m.Method)) + " |\n");
        sb.Append("|---|" + string.Concat(_methods.Select(_ => "---:|")) + "\n");
        foreach (var c in classes)
        {
            sb.Append($"| {className(c).Replace("|", "\\|")} |");
            foreach (var m in _methods)
            {
                var p = m.PerClass.FirstOrDefault(x => x.Class == c).Means;
                sb.Append(p.Rows > 0 ? $" {R(p.Deletion)} / {R(p.Insertion)} ({p.Rows.ToString(CultureInfo.InvariantCulture)}) |" : " – |");
            }
            sb.Append('\n');
        }
        sb.Append("| **all** |" + string.Concat(_methods.Select(m => $" **{R(m.All.Deletion)} / {R(m.All.Insertion)}** ({m.All.Rows.ToString(CultureInfo.InvariantCulture)}) |")) + "\n\n");
    }
}
