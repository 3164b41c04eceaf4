using System.Collections.Concurrent;
using TorchSharp;

namespace Ebp.Core.Tests.Attribution;

/// <summary>
/// Counts the calls of several threads: a map equal to the sequential one, a failure the test allows (named by
/// <c>allowed</c>), or anything else, which is recorded and fails <see cref="AssertAll"/>.
/// </summary>
internal sealed class CallTally(TorchSharp.torch.Tensor expected, Func<Exception, bool>? allowed = null)
{
    private readonly ConcurrentBag<string> _wrong = new();
    private int _equal, _allowed;

    public int Equal => Volatile.Read(ref _equal);
    public int Allowed => Volatile.Read(ref _allowed);

    public void Run(Func<SaliencyResult> call)
    {
        try
        {
            using var scope = torch.NewDisposeScope();
            using var r = call();
            if (TestModels.Same(r.Map, expected)) Interlocked.Increment(ref _equal);
            else _wrong.Add("a map differs from the sequential one");
        }
        catch (Exception e) when (allowed?.Invoke(e) == true) { Interlocked.Increment(ref _allowed); }
        catch (Exception e) { _wrong.Add(e.GetType().Name + ": " + e.Message); }
    }

    /// <summary>Something else went wrong (a plain forward pass's output, say).</summary>
    public void Wrong(string what) => _wrong.Add(what);

    /// <summary>Nothing went wrong, and <paramref name="calls"/> calls each gave the map or an allowed failure.</summary>
    public void AssertAll(int calls)
    {
        Assert.AreEqual(0, _wrong.Count, string.Join("\n", _wrong.Distinct()));
        Assert.AreEqual(calls, Equal + Allowed);
    }
}
