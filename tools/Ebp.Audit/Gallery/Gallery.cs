using System.Net;
using System.Reflection;
using System.Text.RegularExpressions;

namespace Ebp.Audit;

/// <summary>
/// The static gallery (<c>index.html</c>): one self-contained page, plain HTML + JavaScript + inline SVG, no external
/// assets. Its markup, style and script are embedded resources (<c>Gallery/gallery.html</c>, <c>.css</c>, <c>.js</c>); the
/// report's data is embedded as JSON. The page shows the summary (counts, flags, a per-class pointing chart, predicted
/// against annotated classes), then the worst cases side by side (input, every method), then all rows in a table with
/// filters and sorting kept in the URL fragment, e.g.
/// <c>index.html#flag=low_energy&amp;class=3&amp;method=ebp&amp;sort=energy_in_boxes&amp;dir=asc&amp;page=2&amp;size=50&amp;q=cat</c>.
/// </summary>
internal static partial class Gallery
{
    private static readonly Lazy<string> Template = new(() => Resource("gallery.html"));
    private static readonly Lazy<string> Style = new(() => Resource("gallery.css"));
    private static readonly Lazy<string> Script = new(() => Resource("gallery.js"));

    /// <summary>The page: the template with its placeholders filled (texts HTML-encoded, the data as JSON).</summary>
    public static string Html(string dataJson, ReportSummary summary)
    {
        var values = new Dictionary<string, string>
        {
            ["title"] = WebUtility.HtmlEncode("Saliency audit"),
            ["status"] = WebUtility.HtmlEncode(summary.StatusText),
            ["job"] = WebUtility.HtmlEncode(summary.JobLine),
            ["css"] = Style.Value,
            ["script"] = Script.Value,
            // Inside <script>: the serializer already escapes '<'; this also keeps a hand-made "</" from closing the element.
            ["data"] = dataJson.Replace("</", "<\\/", StringComparison.Ordinal),
        };
        // One pass, so that a value containing "{{…}}" is never expanded.
        return Placeholder().Replace(Template.Value, m => values[m.Groups[1].Value]);
    }

    private static string Resource(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("Ebp.Audit.Gallery." + name)
                           ?? throw new InvalidOperationException($"The gallery resource '{name}' is missing from the assembly.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    [GeneratedRegex(@"\{\{(title|status|job|css|script|data)\}\}")]
    private static partial Regex Placeholder();
}
