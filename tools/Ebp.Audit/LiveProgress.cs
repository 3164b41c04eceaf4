using System.Globalization;
using Spectre.Console;

namespace Ebp.Audit;

/// <summary>
/// The command line's progress bar on a terminal, drawn by Spectre.Console: it fits the terminal's width (also after a
/// resize), is redrawn on a timer (elapsed time and ETA move between batches), and leaves no stale lines.
/// </summary>
internal static class LiveProgress
{
    /// <summary>Runs <paramref name="job"/> under a live progress bar; <paramref name="observer"/> also gets every report.</summary>
    public static AuditResult Run(AuditJob job, Action<AuditProgress>? observer, CancellationToken token)
    {
        AuditResult? result = null;
        AnsiConsole.Progress()
            .AutoRefresh(true)
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(Columns(AnsiConsole.Profile.Width))
            .Start(ctx =>
            {
                var task = ctx.AddTask("starting", autoStart: true, maxValue: 1);
                result = job.Run(new Callback(p =>
                {
                    task.MaxValue = Math.Max(1, p.Total);
                    task.Value = p.Done;
                    task.Description = Markup.Escape(Describe(p));
                    observer?.Invoke(p);
                }), token);
                task.StopTask();
            });
        return result!;
    }

    /// <summary>The columns that fit <paramref name="width"/> characters (a column squeezed below its text wraps per character).</summary>
    internal static ProgressColumn[] Columns(int width)
    {
        var label = new TaskDescriptionColumn { Alignment = Justify.Left };
        if (width < 50) return [new PercentageColumn(), label];
        if (width < 80) return [label, new ProgressBarColumn { Width = 12 }, new PercentageColumn(), new RemainingTimeColumn()];
        return [label, new ProgressBarColumn { Width = 30 }, new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn()];
    }

    /// <summary>The bar's label: <c>120/1000 · 4.1 img/s · 3 skipped</c> (short: the bar takes the rest of the width).</summary>
    internal static string Describe(AuditProgress p) => string.Create(CultureInfo.InvariantCulture,
        $"{p.Done}/{p.Total} · {p.Rate:F1} img/s{(p.Skipped > 0 ? $" · {p.Skipped} skipped" : "")}");

    private sealed class Callback(Action<AuditProgress> action) : IProgress<AuditProgress>
    {
        public void Report(AuditProgress value) => action(value);
    }
}
