using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Weights;

/// <summary>
/// Refuses loading weights into modules an open <see cref="SaliencySession"/> covers (its lease, <see cref="ModelLeases"/>):
/// a session freezes the parameters and caches W⁺ = max(W, 0) for its whole life, so weights copied in meanwhile
/// would give maps that match neither the old nor the new weights.
/// </summary>
internal static class OpenSessions
{
    /// <summary>Throws when a session is open on <paramref name="model"/>, one of its submodules or a model containing it.</summary>
    /// <exception cref="InvalidOperationException">A session is open.</exception>
    public static void ThrowIfOpen(nn.Module model, string source)
    {
        ModelLeases.RestoreAbandoned(model); // a session collected without Dispose no longer counts
        if (ModelLeases.HeldBySession(model) is { } m)
            throw new InvalidOperationException(
                $"Cannot load weights from {source} into {model.GetName()} ({model.GetType().Name}): a SaliencySession is open on " +
                (ReferenceEquals(m, model) ? "it (or on a model containing it)" : $"its submodule '{m.GetName()}'") +
                ". The session froze the parameters and cached W⁺ = max(W, 0), so its maps would match neither the old nor the new " +
                "weights. Nothing was copied. Dispose the session, load the weights, then open a new session.");
    }
}
