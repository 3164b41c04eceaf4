namespace Ebp.Rules;

/// <summary>
/// Which thread runs a scope's own call, so that a forward pass through the model on another thread (the user's
/// <c>model.call</c> while the rules are installed) is told apart: it must neither feed the call's trace nor run on
/// the rules, and the call it overlaps must fail naming that cause instead of a misleading layer or shape error.
/// </summary>
internal sealed class CallOwner
{
    /// <summary>The words every error about such a forward pass contains.</summary>
    public const string Cause = "the model is running outside Ebp on another thread";

    private int _thread;  // managed thread id running the call; 0 between calls (a session's idle time)
    private int _foreign; // the first other thread whose forward pass met the hooks during the call; 0 if none

    /// <summary>The call starts on this thread.</summary>
    public void Begin()
    {
        Volatile.Write(ref _foreign, 0);
        Volatile.Write(ref _thread, Environment.CurrentManagedThreadId);
    }

    /// <summary>The call has ended: forward passes from now on are the user's own.</summary>
    public void End() => Volatile.Write(ref _thread, 0);

    /// <summary>The thread of a forward pass that met the hooks during the last call, or 0.</summary>
    public int ForeignThread => Volatile.Read(ref _foreign);

    /// <summary>
    /// For a hook: true on the call's own thread. False for a forward pass outside any call, which passes the hooks
    /// untouched. A forward pass on another thread during a call is recorded (the call then fails) and stopped here.
    /// </summary>
    /// <exception cref="InvalidOperationException">A forward pass on another thread during the call.</exception>
    public bool IsOwnForward()
    {
        int me = Environment.CurrentManagedThreadId, owner = Volatile.Read(ref _thread);
        if (owner == me) return true;
        if (owner == 0) return false;
        Interlocked.CompareExchange(ref _foreign, me, 0);
        throw new InvalidOperationException(
            $"This forward pass on thread {me} went through a model that Ebp is explaining on thread {owner}: Ebp's rules are " +
            "installed on its modules, which are in eval mode with frozen parameters, so the output would not be the model's own. " +
            $"It was stopped, and the Ebp call fails too ({Cause}); both leave the model as it was. " +
            "Use one model instance per thread, or run the forward pass before or after the Ebp call.");
    }

    /// <summary>The error of a call during which another thread's forward pass met the hooks.</summary>
    public InvalidOperationException ForeignForwardError(Exception? inner) => new(
        $"This Ebp call failed because {Cause} (thread {ForeignThread}): a forward pass went through its modules while the rules " +
        "of this call were installed. The model was restored as it was before the call. Do not call the model elsewhere while " +
        "it is explained: use one model instance per thread, or take turns.", inner);
}
