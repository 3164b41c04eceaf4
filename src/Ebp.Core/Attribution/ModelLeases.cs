using System.Diagnostics;
using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp;

/// <summary>
/// Which Ebp call or session holds each module. A scope puts hooks and flags on every module of its model's tree, so
/// two callers whose trees share a module (a model and a <c>Sequential</c> wrapping it) must take turns. A caller takes
/// all modules of its tree at once or none of them, so overlapping callers wait for each other and never deadlock.
/// Keyed weakly by module: nothing is kept alive.
/// </summary>
internal static class ModelLeases
{
    internal sealed class Slot
    {
        public Lease? Holder;
    }

    private static readonly ConditionalWeakTable<nn.Module, Slot> Slots = new();
    private static readonly object Sync = new();

    /// <summary>How often a waiter looks again for a holder whose session was collected without being disposed.</summary>
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(250);

    /// <summary>One caller's hold on every module of a model's tree.</summary>
    internal sealed class Lease : IDisposable
    {
        private readonly Slot[] _slots;
        private WeakReference<SaliencySession>? _session;
        private Action? _restore;
        private int _closed;

        public Lease(Slot[] slots, string holder)
        {
            _slots = slots;
            Holder = holder;
        }

        /// <summary>Who holds the modules, for error messages: "an Explain call on thread 7", "a SaliencySession opened at …".</summary>
        public string Holder { get; }

        public int Thread { get; } = Environment.CurrentManagedThreadId;

        internal Slot[] Slots => _slots;

        /// <summary>
        /// Ties the lease to an open session: <paramref name="restore"/> (which must not reference the session) runs when
        /// the session is disposed, or on a live caller's thread once the session has been collected without Dispose.
        /// </summary>
        public void HoldFor(SaliencySession session, Action restore)
        {
            lock (Sync) // seen by the waiters, which read it under the same lock
            {
                _restore = restore;
                _session = new WeakReference<SaliencySession>(session);
            }
        }

        /// <summary>Opened by a session that the garbage collector has collected, and not yet restored.</summary>
        public bool IsAbandoned => _session is { } s && !s.TryGetTarget(out _) && Volatile.Read(ref _closed) == 0;

        public bool IsSession => _session is not null;

        /// <summary>Being restored and given back, perhaps by another thread than its own.</summary>
        public bool IsClosing => Volatile.Read(ref _closed) != 0;

        /// <summary>Restores the model (a session's hooks and flags) and gives the modules back; once.</summary>
        public void Dispose() => Close(onlyIfAbandoned: false);

        /// <summary>As <see cref="Dispose"/>, but only for a session that was collected without being disposed.</summary>
        public void RestoreIfAbandoned() => Close(onlyIfAbandoned: true);

        private void Close(bool onlyIfAbandoned)
        {
            if (onlyIfAbandoned && !IsAbandoned) return;
            if (Interlocked.Exchange(ref _closed, 1) != 0) return;
            try
            {
                _restore?.Invoke();
            }
            finally
            {
                _restore = null;
                Release(this);
            }
        }
    }

    /// <summary>
    /// Takes every module of <paramref name="model"/>'s tree for <paramref name="holder"/>, waiting for the callers that
    /// hold any of them: for one-off calls as long as they run (they always end), for open sessions up to
    /// <paramref name="timeout"/> in all. A session that was collected without being disposed is restored here, on this
    /// thread, instead of being waited for.
    /// </summary>
    /// <exception cref="InvalidOperationException">This thread itself holds one of the modules (an open session, a nested call).</exception>
    /// <exception cref="TimeoutException">An open session kept a module longer than <paramref name="timeout"/>.</exception>
    public static Lease Acquire(nn.Module model, string holder, TimeSpan timeout)
    {
        var slots = model.modules().Prepend(model).Distinct(ReferenceEqualityComparer.Instance).Cast<nn.Module>()
            .Select(m => Slots.GetValue(m, _ => new Slot())).ToArray();
        var lease = new Lease(slots, holder);
        var waitedForSessions = TimeSpan.Zero;
        while (true)
        {
            Lease? blocker;
            lock (Sync)
            {
                blocker = FirstHolder(slots);
                if (blocker is null)
                {
                    foreach (var slot in slots) slot.Holder = lease;
                    return lease;
                }
                if (!blocker.IsAbandoned)
                {
                    if (blocker.Thread == lease.Thread && !blocker.IsClosing) throw HeldByThisThread(model, blocker);
                    var left = timeout == Timeout.InfiniteTimeSpan || !blocker.IsSession ? Poll : timeout - waitedForSessions;
                    if (left <= TimeSpan.Zero) throw TimedOut(model, blocker, timeout);
                    long start = Stopwatch.GetTimestamp();
                    Monitor.Wait(Sync, left < Poll ? left : Poll);
                    if (blocker.IsSession) waitedForSessions += Stopwatch.GetElapsedTime(start);
                    continue;
                }
            }
            // Outside the lock: restoring takes it again to give the modules back.
            blocker.RestoreIfAbandoned();
        }
    }

    /// <summary>Restores the sessions on <paramref name="model"/>'s modules that were collected without being disposed.</summary>
    public static void RestoreAbandoned(nn.Module model)
    {
        List<Lease> abandoned;
        lock (Sync)
        {
            abandoned = model.modules().Prepend(model)
                .Select(m => Slots.TryGetValue(m, out var s) ? s.Holder : null)
                .OfType<Lease>().Where(l => l.IsAbandoned).Distinct().ToList();
        }
        foreach (var lease in abandoned) lease.RestoreIfAbandoned();
    }

    /// <summary>
    /// The first of <paramref name="model"/> and its submodules that an open session holds (a session on a model
    /// containing it holds them too), or null.
    /// </summary>
    public static nn.Module? HeldBySession(nn.Module model)
    {
        lock (Sync)
            return model.modules().Prepend(model).FirstOrDefault(m =>
                Slots.TryGetValue(m, out var s) && s.Holder is { IsSession: true, IsClosing: false });
    }

    /// <summary>Wakes the waiters, so that they look for collected sessions now. Safe from a finaliser: touches no module.</summary>
    public static void Wake()
    {
        lock (Sync) Monitor.PulseAll(Sync);
    }

    private static void Release(Lease lease)
    {
        lock (Sync)
        {
            foreach (var slot in lease.Slots)
                if (ReferenceEquals(slot.Holder, lease)) slot.Holder = null;
            Monitor.PulseAll(Sync);
        }
    }

    private static Lease? FirstHolder(Slot[] slots)
    {
        foreach (var slot in slots)
            if (slot.Holder is { } holder) return holder;
        return null;
    }

    private static InvalidOperationException HeldByThisThread(nn.Module model, Lease blocker) => new(
        blocker.IsSession
            ? $"{Capitalised(blocker.Holder)} is open on this model ({model.GetType().Name}) or on modules it shares, in this thread; " +
              "call session.Explain, or dispose the session first."
            : $"{Capitalised(blocker.Holder)} is still running on this model ({model.GetType().Name}) or on modules it shares: " +
              "an Ebp call cannot start from inside another one on the same thread (e.g. from a forward hook). Call it afterwards.");

    private static TimeoutException TimedOut(nn.Module model, Lease blocker, TimeSpan timeout) => new(
        $"This call waited {timeout.TotalSeconds:0.###} s (SaliencyExplainer.WaitTimeout) for {blocker.Holder}, which holds this model " +
        $"({model.GetType().Name}) or modules it shares, and gave up; nothing was changed. " +
        "Dispose that session when it is no longer needed (using var session = explainer.OpenSession(...)): a session dropped " +
        "without Dispose keeps its hooks on the model until the garbage collector has collected it. " +
        "Otherwise explain a separate model instance on this thread, or raise WaitTimeout.");

    private static string Capitalised(string text) => text.Length == 0 ? text : char.ToUpperInvariant(text[0]) + text[1..];
}
