namespace Ebp.Core.Tests.Attribution;

/// <summary>
/// Runs work on a new thread of its own. Task.Run would not do: waiting for a task that has not started yet may run it
/// inline on the waiting thread, which is exactly the thread the test must not be on.
/// </summary>
internal static class OtherThread
{
    public static Task<T> Run<T>(Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try { done.SetResult(work()); }
            catch (Exception e) { done.SetException(e); }
        }) { IsBackground = true };
        thread.Start();
        return done.Task;
    }
}
