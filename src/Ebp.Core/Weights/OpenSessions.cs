using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Weights;

/// <summary>
/// Which modules an open <see cref="SaliencySession"/> covers, so that loading weights into them can be refused:
/// a session freezes the parameters and caches W⁺ = max(W, 0) for its whole life, so weights copied in meanwhile
/// would give maps that match neither the old nor the new weights. Keyed weakly by module: nothing is kept alive.
/// </summary>
internal static class OpenSessions
{
    private sealed class Count
    {
        public int Value;
    }

    private static readonly ConditionalWeakTable<nn.Module, Count> Open = new();

    /// <summary>Marks <paramref name="model"/> and all its submodules as in a session until the result is disposed.</summary>
    public static IDisposable Register(nn.Module model)
    {
        var modules = model.modules().Prepend(model).Distinct().ToList();
        foreach (var m in modules)
            Interlocked.Increment(ref Open.GetValue(m, _ => new Count()).Value);
        return new Registration(modules);
    }

    /// <summary>Throws when a session is open on <paramref name="model"/>, one of its submodules or a model containing it.</summary>
    /// <exception cref="InvalidOperationException">A session is open.</exception>
    public static void ThrowIfOpen(nn.Module model, string source)
    {
        ModelLeases.RestoreAbandoned(model); // a session collected without Dispose no longer counts
        foreach (var m in model.modules().Prepend(model))
            if (Open.TryGetValue(m, out var c) && Volatile.Read(ref c.Value) > 0)
                throw new InvalidOperationException(
                    $"Cannot load weights from {source} into {model.GetName()} ({model.GetType().Name}): a SaliencySession is open on " +
                    (ReferenceEquals(m, model) ? "it (or on a model containing it)" : $"its submodule '{m.GetName()}'") +
                    ". The session froze the parameters and cached W⁺ = max(W, 0), so its maps would match neither the old nor the new " +
                    "weights. Nothing was copied. Dispose the session, load the weights, then open a new session.");
    }

    private sealed class Registration(List<nn.Module> modules) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            foreach (var m in modules)
                if (Open.TryGetValue(m, out var c))
                    Interlocked.Decrement(ref c.Value);
        }
    }
}
