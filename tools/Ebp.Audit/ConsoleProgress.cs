using System.Globalization;

namespace Ebp.Audit;

/// <summary>
/// Shows <see cref="AuditProgress"/> on the console (library use; the command line draws its bar with Spectre.Console,
/// see <see cref="LiveProgress"/>): a one-line bar with rate and ETA redrawn in place after each batch and cut to the
/// terminal's width when stdout is a terminal, otherwise a plain line at most every <see cref="LineInterval"/> (and at the start and end), which suits logs
/// (Kubernetes, CI).
/// </summary>
internal sealed class ConsoleProgress : IProgress<AuditProgress>
{
    private readonly TextWriter _out;
    private readonly bool _bar;
    private readonly bool _silent;
    private DateTime _lastLine = DateTime.MinValue;
    private int _lastWidth;

    public ConsoleProgress(ProgressStyle style, TextWriter? output = null)
    {
        _out = output ?? Console.Out;
        _silent = style == ProgressStyle.None;
        _bar = style == ProgressStyle.Bar || (style == ProgressStyle.Auto && !Console.IsOutputRedirected && output is null);
    }

    /// <summary>Minimum time between plain progress lines. Default 10 s.</summary>
    public TimeSpan LineInterval { get; init; } = TimeSpan.FromSeconds(10);

    public void Report(AuditProgress p)
    {
        if (_silent) return;
        if (_bar)
        {
            if (p.Phase == AuditPhase.Finished) { FinishBar(); return; }
            DrawBar(p);
            return;
        }
        var now = DateTime.UtcNow;
        // Every non-batch event, the first batch, the last one, and otherwise one line per interval.
        if (p.Phase == AuditPhase.Batch && p.Batches > 1 && p.Done < p.Total && now - _lastLine < LineInterval) return;
        if (p.Phase == AuditPhase.Batch) _lastLine = now;
        _out.WriteLine(Line(p));
        _out.Flush();
    }

    /// <summary>A plain progress line: <c>progress 120/1000 (12.0 %), 3 skipped, 4.10 images/s, ETA 00:03:34</c>.</summary>
    public static string Line(AuditProgress p)
    {
        var inv = CultureInfo.InvariantCulture;
        string pct = p.Total > 0 ? (100.0 * p.Done / p.Total).ToString("F1", inv) : "100.0";
        string head = p.Phase switch
        {
            AuditPhase.Started => p.Resumed > 0 ? $"start: {p.Total} images, {p.Resumed} already done (resuming)" : $"start: {p.Total} images",
            AuditPhase.Finished => "done",
            _ => "progress",
        };
        if (p.Phase == AuditPhase.Started) return head;
        return string.Create(inv, $"{head} {p.Done}/{p.Total} ({pct} %), {p.Skipped} skipped, {p.Rate:F2} images/s, ETA {Format(p.Eta)}");
    }

    private void DrawBar(AuditProgress p)
    {
        var inv = CultureInfo.InvariantCulture;
        int width = 30;
        double f = p.Total > 0 ? (double)p.Done / p.Total : 1;
        int filled = (int)Math.Round(f * width);
        string bar = new string('#', filled) + new string('-', width - filled);
        string text = string.Create(inv,
            $"[{bar}] {p.Done}/{p.Total} {100 * f:F1}%  {p.Rate:F2} img/s  ETA {Format(p.Eta)}  skipped {p.Skipped}");
        // Never wider than the terminal: a wrapped line cannot be redrawn in place and leaves stale lines.
        int columns = TerminalColumns();
        if (columns > 1 && text.Length > columns - 1) text = text[..(columns - 1)];
        int pad = Math.Max(0, Math.Min(_lastWidth, columns > 1 ? columns - 1 : int.MaxValue) - text.Length);
        _out.Write("\r" + text + new string(' ', pad));
        _out.Flush();
        _lastWidth = text.Length;
    }

    private int TerminalColumns()
    {
        if (!ReferenceEquals(_out, Console.Out) || Console.IsOutputRedirected) return 0;
        try { return Console.WindowWidth; }
        catch (Exception e) when (e is IOException or PlatformNotSupportedException) { return 0; }
    }

    private void FinishBar()
    {
        if (_lastWidth > 0) _out.WriteLine();
        _lastWidth = 0;
    }

    private static string Format(TimeSpan? t) =>
        t is { } x ? (x.TotalHours >= 100 ? ">99h" : $"{(int)x.TotalHours:00}:{x.Minutes:00}:{x.Seconds:00}") : "--:--:--";
}
