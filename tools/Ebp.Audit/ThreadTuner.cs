namespace Ebp.Audit;

/// <summary>How the run's torch intra-op thread count was decided (<c>summary.json</c> → <c>run.timings.threads_chosen_by</c>).</summary>
internal static class ThreadChoice
{
    /// <summary><c>--threads</c> was given.</summary>
    public const string Option = "option";

    /// <summary><c>OMP_NUM_THREADS</c> was set.</summary>
    public const string Environment = "environment";

    /// <summary>The first batches were timed at each candidate count and the fastest kept.</summary>
    public const string Measured = "measured";

    /// <summary>The CPUs available, untimed: one CPU, or too few images for a trial.</summary>
    public const string Default = "default";
}

/// <summary>The seconds of saliency computation per image measured at one thread count during the trial.</summary>
internal sealed record ThreadTrial(int Threads, int Batches, int Images, double Seconds)
{
    public double SecondsPerImage => Images > 0 ? Seconds / Images : double.PositiveInfinity;
}

/// <summary>
/// Picks the torch intra-op thread count of a run without <c>--threads</c> by timing real batches: one warm-up batch
/// (JIT and first allocations, not counted), then the candidates in turn for <see cref="Rounds"/> rounds, then the
/// fastest candidate for the rest of the run.
/// </summary>
/// <remarks>
/// No fixed count is right: a small model on a shared host runs faster on one thread (a parallel region waits for a
/// thread that is not scheduled), a large one on a quiet host faster on all of them. The trial batches are part of the
/// run (their results are kept), so the trial only costs the slower candidates' extra time. Alternating the candidates
/// spreads a change of the host's load over all of them.
/// </remarks>
internal sealed class ThreadTuner
{
    /// <summary>Rounds of the trial: each candidate is timed on this many batches.</summary>
    public const int Rounds = 2;

    /// <summary>A candidate with more threads must be faster than this share to be chosen (threads cost the host).</summary>
    public const double TieMargin = 0.10;

    private readonly List<int> _schedule = new();
    private readonly Dictionary<int, ThreadTrial> _trials = new();
    private int _batch;

    /// <summary>A tuner for <paramref name="pendingImages"/> images in batches of <paramref name="batchSize"/>.</summary>
    /// <param name="available">The CPUs the process may use (or <c>OMP_NUM_THREADS</c>).</param>
    /// <param name="pendingImages">Images this run computes.</param>
    /// <param name="batchSize">Images per batch.</param>
    public ThreadTuner(int available, int pendingImages, int batchSize)
    {
        Available = Math.Max(1, available);
        Candidates = CandidatesFor(Available);
        int trialBatches = 1 + Rounds * Candidates.Count;
        // The trial takes at most half of the run; with fewer images it would decide on noise and cost a larger share.
        if (Candidates.Count > 1 && (long)pendingImages >= 2L * trialBatches * batchSize)
        {
            _schedule.Add(Available);
            for (int r = 0; r < Rounds; r++) _schedule.AddRange(Candidates);
        }
        Chosen = Available;
    }

    /// <summary>The CPUs available.</summary>
    public int Available { get; }

    /// <summary>The thread counts tried.</summary>
    public IReadOnlyList<int> Candidates { get; }

    /// <summary>Whether this run is timed (enough images and more than one candidate).</summary>
    public bool Trying => _schedule.Count > 0;

    /// <summary>The count for the rest of the run once the trial is over (until then, <see cref="Available"/>).</summary>
    public int Chosen { get; private set; }

    /// <summary>Whether the trial is over and <see cref="Chosen"/> was measured.</summary>
    public bool Decided { get; private set; }

    /// <summary>The timings per candidate, fewest threads first (empty when not <see cref="Trying"/>).</summary>
    public IReadOnlyList<ThreadTrial> Trials => _trials.Values.OrderBy(t => t.Threads).ToList();

    /// <summary>1, the midpoint from 4 CPUs on, and all available CPUs.</summary>
    public static IReadOnlyList<int> CandidatesFor(int available)
    {
        var set = new SortedSet<int> { 1, Math.Max(1, available) };
        if (available >= 4) set.Add(available / 2);
        return set.ToList();
    }

    /// <summary>The thread count for the next batch.</summary>
    public int Next() => _batch < _schedule.Count ? _schedule[_batch] : Chosen;

    /// <summary>
    /// Records the batch just computed at <paramref name="threads"/> (<paramref name="images"/> computed in
    /// <paramref name="seconds"/>); after the trial's last batch, <see cref="Chosen"/> is decided.
    /// </summary>
    public void Record(int threads, int images, double seconds)
    {
        int index = _batch++;
        if (index >= _schedule.Count) return;
        // The first batch pays for JIT compilation and first allocations; a batch without images measured nothing.
        if (index > 0 && images > 0)
        {
            var t = _trials.GetValueOrDefault(threads) ?? new ThreadTrial(threads, 0, 0, 0);
            _trials[threads] = t with { Batches = t.Batches + 1, Images = t.Images + images, Seconds = t.Seconds + seconds };
        }
        if (_batch == _schedule.Count && _trials.Count > 0)
        {
            Chosen = Choose(_trials.Values.ToDictionary(t => t.Threads, t => t.SecondsPerImage));
            Decided = true;
        }
    }

    /// <summary>
    /// The thread count with the least time per image; among counts within <paramref name="tieMargin"/> of it, the
    /// fewest threads.
    /// </summary>
    /// <exception cref="ArgumentException">No timings.</exception>
    public static int Choose(IReadOnlyDictionary<int, double> secondsPerImage, double tieMargin = TieMargin)
    {
        ArgumentNullException.ThrowIfNull(secondsPerImage);
        var valid = secondsPerImage.Where(kv => kv.Key > 0 && double.IsFinite(kv.Value) && kv.Value >= 0).ToList();
        if (valid.Count == 0) throw new ArgumentException("No finite timings to choose a thread count from.", nameof(secondsPerImage));
        double best = valid.Min(kv => kv.Value);
        return valid.Where(kv => kv.Value <= best * (1 + tieMargin)).Min(kv => kv.Key);
    }
}
